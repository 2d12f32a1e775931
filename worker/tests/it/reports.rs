//! A report job in the real worker binary, killed with -9 while writing
//! (a 300,000-row CSV, a 250,000-row XLSX): nothing is published under the
//! report's key, and the redelivery publishes exactly one complete file.

use std::time::{Duration, Instant};

use hangar_tests::TestApp;
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");

async fn job(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/jobs/{id}")).await.1
}

#[tokio::test]
async fn a_worker_killed_mid_csv_report_publishes_nothing_and_its_redelivery_one_file() {
    killed_mid_report("csv", 300_000).await;
}

#[tokio::test]
async fn a_worker_killed_mid_xlsx_report_publishes_nothing_and_its_redelivery_one_file() {
    // 250,000 rows: a 50,000-row XLSX is written in under a second even by
    // a debug build, too quickly to be caught mid-write.
    killed_mid_report("xlsx", 250_000).await;
}

async fn killed_mid_report(format: &str, workspaces: i64) {
    let app = TestApp::builder().without_worker().spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO workspaces (account, region, workspace_id, user_name, state, tags)
         SELECT 'prod', 'eu-west-1', 'ws-' || lpad(n::text, 7, '0'), 'user' || n, 'AVAILABLE', '{\"team\": \"ops\"}'
         FROM generate_series(1, $1) AS n",
    )
    .bind(workspaces)
    .execute(&pool)
    .await
    .unwrap();
    let dir = std::path::PathBuf::from(app.env["HANGAR_REPORTS_URL"].strip_prefix("file://").unwrap())
        .join("report.inventory");

    let mut victim = app.worker_process(WORKER, "reports=1", &[]);
    let (status, v) = app
        .post("/api/v1/reports", json!({"type": "inventory", "format": format}))
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    // Killed while its bytes are being written: once the staging directory
    // holds the attempt's file (it is renamed into place only when
    // complete). Waiting for a progress count instead raced with the end:
    // an XLSX is serialized in one go after its last row, and a fast
    // machine saw the first progress after the file was published.
    let staging = dir.parent().unwrap().join(".staging");
    let start = Instant::now();
    loop {
        let writing = std::fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_some());
        if writing {
            break;
        }
        let j = job(&app, &id).await;
        assert!(
            start.elapsed() < Duration::from_secs(60) && j["state"] != "succeeded",
            "the report was never seen mid-write: {j}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let j = job(&app, &id).await;
    assert_ne!(j["state"], "succeeded", "killed mid-write, not after: {j}");
    // Nothing under the report's key: its bytes were in the staging
    // directory, which the store never serves.
    let objects: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        objects,
        Vec::<String>::new(),
        "nothing under the report's key after the kill: {j}"
    );
    let (status, _) = app.get(&format!("/api/v1/reports/{id}/download")).await;
    assert_eq!(status, 409, "not ready, so not served");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0);

    // The lease lapses (2 s in tests); another worker takes the job over.
    let mut rescuer = app.worker_process(WORKER, "reports=1", &[]);
    let start = Instant::now();
    let j = loop {
        let j = job(&app, &id).await;
        if j["state"] == "succeeded" || j["state"] == "dead" {
            break j;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "not redelivered: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(j["state"], "succeeded", "{j}");
    assert!(j["deliveries"].as_u64().unwrap() >= 2, "{j}");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        [format!("{id}.{format}")],
        "exactly one file, the complete one"
    );
    let staged: Vec<String> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        staged,
        Vec::<String>::new(),
        "the killed attempt's temporary file removed by the redelivery"
    );
    let path = dir.join(format!("{id}.{format}"));
    let size = std::fs::metadata(&path).unwrap().len();
    if format == "csv" {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count() as i64,
            workspaces + 1,
            "every row and the header"
        );
        assert!(text.ends_with("team=ops\r\n"));
    } else {
        // A whole zip: every member's CRC checks out, and the data sheet
        // ends at the last row.
        let check = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
                 print(z.read('xl/worksheets/sheet1.xml').count(b'<row '))",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let rows: i64 = String::from_utf8_lossy(&check.stdout).trim().parse().unwrap();
        assert_eq!(rows, workspaces + 1, "every row and the header");
    }
    let (_, report) = app.get(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(report["file"]["rows"], workspaces, "{report}");
    assert_eq!(report["file"]["size_bytes"], size, "{report}");
    rescuer.kill().unwrap();
    rescuer.wait().unwrap();
    pool.close().await;
    app.shutdown().await;
}
