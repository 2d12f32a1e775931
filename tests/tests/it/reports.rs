//! Report jobs end to end: asked for through the API, written by the real
//! worker from the synced tables, published to the report store, and
//! downloaded; every cell compared with what SQL over the same tables says.

use std::time::Duration;

use hangar_tests::{JobStatus, TestApp};
use serde_json::{Value, json};

/// A small fleet in the synced tables: two accounts, a deleted workspace,
/// one never connected, tags, a bundle name from `bundles`.
async fn seed(app: &TestApp) -> sqlx::PgPool {
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql(
        r#"
        INSERT INTO bundles (account, region, bundle_id, name, compute_type)
        VALUES ('prod', 'eu-west-1', 'wsb-1', 'Standard Windows', 'STANDARD');
        INSERT INTO workspaces (account, region, workspace_id, directory_id, user_name, ip_address, state,
                                bundle_id, computer_name, running_mode, auto_stop_timeout_minutes, compute_type,
                                tags, first_seen_at, deleted_at)
        VALUES
          ('prod', 'eu-west-1', 'ws-a', 'd-1', 'alice', '10.0.0.1', 'AVAILABLE', 'wsb-1', 'A-PC', 'AUTO_STOP', 60,
           'STANDARD', '{"team": "ops", "Cost": "42"}', '2026-10-01T08:00:00Z', NULL),
          ('prod', 'eu-west-1', 'ws-b', 'd-1', 'Bob "B", Jr', NULL, 'STOPPED', 'wsb-1', 'B-PC', 'AUTO_STOP', 120,
           'STANDARD', '{}', '2026-10-02T08:00:00Z', NULL),
          ('prod', 'eu-west-1', 'ws-gone', 'd-1', 'carol', NULL, 'TERMINATED', 'wsb-1', NULL, 'ALWAYS_ON', NULL,
           'STANDARD', '{}', '2026-09-01T08:00:00Z', '2026-11-01T00:00:00Z'),
          ('dev', 'us-west-2', 'ws-c', 'd-2', 'dave', '10.1.0.9', 'AVAILABLE', 'wsb-9', 'C-PC', 'ALWAYS_ON', NULL,
           'VALUE', '{"env": "dev"}', '2026-11-15T08:00:00Z', NULL);
        INSERT INTO workspace_connections (account, region, workspace_id, connection_state, last_user_connection_at)
        VALUES ('prod', 'eu-west-1', 'ws-a', 'CONNECTED', now() - interval '3 days 2 hours'),
               ('dev', 'us-west-2', 'ws-c', 'DISCONNECTED', now() - interval '40 days');
        "#,
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// What the report's rows must be, straight from SQL (CSV text as written).
async fn expected_rows(pool: &sqlx::PgPool, include_deleted: bool) -> Vec<Vec<String>> {
    let rows = sqlx::query_as::<_, (Vec<Option<String>>,)>(
        r#"SELECT ARRAY[w.account, w.region, w.directory_id, w.workspace_id, w.user_name, w.computer_name,
                        w.ip_address, w.bundle_id, b.name, w.compute_type, w.running_mode,
                        w.auto_stop_timeout_minutes::text, w.state,
                        to_char(w.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                        to_char(w.deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                        to_char(c.last_user_connection_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                        floor(extract(epoch FROM now() - c.last_user_connection_at) / 86400)::bigint::text,
                        (SELECT string_agg(key || '=' || value, '; ' ORDER BY key COLLATE "C")
                         FROM jsonb_each_text(w.tags))]
           FROM workspaces w
           LEFT JOIN workspace_connections c USING (account, region, workspace_id)
           LEFT JOIN bundles b ON b.account = w.account AND b.region = w.region AND b.bundle_id = w.bundle_id
           WHERE $1 OR w.deleted_at IS NULL
           ORDER BY w.account, w.region, w.workspace_id"#,
    )
    .bind(include_deleted)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(cells,)| cells.into_iter().map(Option::unwrap_or_default).collect())
        .collect()
}

async fn ask(app: &TestApp, body: Value) -> String {
    let (status, v) = app.post("/api/v1/reports", body).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["job"]["queue"], "reports");
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    id
}

/// What openpyxl reads from an XLSX file: each sheet's name, cells (typed:
/// numbers, ISO datetimes, text), header font, frozen pane, autofilter and
/// number formats of the first data row.
fn xlsx_dump(bytes: &[u8]) -> Value {
    let path = std::env::temp_dir().join(format!("hangar-xlsx-{}.xlsx", ulid::Ulid::new()));
    std::fs::write(&path, bytes).unwrap();
    let script = r#"
import json, sys, datetime, openpyxl
book = openpyxl.load_workbook(sys.argv[1])
def cell(v):
    if isinstance(v, datetime.datetime):
        return {"datetime": v.isoformat()}
    return v
out = []
for ws in book.worksheets:
    rows = [[cell(c.value) for c in r] for r in ws.iter_rows()]
    second = list(ws.iter_rows(min_row=2, max_row=2))
    out.append({
        "name": ws.title,
        "rows": rows,
        "header_bold": [c.font.b for c in next(ws.iter_rows(max_row=1))],
        "freeze": ws.freeze_panes,
        "autofilter": ws.auto_filter.ref,
        "formats": [c.number_format for c in second[0]] if second else [],
    })
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 with openpyxl (scripts/services.sh installs it)");
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn download(app: &TestApp, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(format!("{}/api/v1/reports/{id}/download", app.base));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn an_inventory_report_matches_the_synced_tables_cell_for_cell() {
    let app = TestApp::builder().spawn().await;
    let pool = seed(&app).await;

    // CSV, every workspace gone or not.
    let id = ask(
        &app,
        json!({"type": "inventory", "format": "csv", "params": {"include_deleted": true}}),
    )
    .await;
    let (status, report) = app.get(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["type"], "inventory");
    assert_eq!(report["format"], "csv");
    assert_eq!(report["params"], json!({"include_deleted": true}));
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["file"]["rows"], 4);
    let r = download(&app, &id, None).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"report-inventory-{id}.csv\"").as_str()
    );
    let sha = report["file"]["sha256"].as_str().unwrap();
    assert_eq!(h["etag"], format!("\"{sha}\"").as_str());
    let body = r.bytes().await.unwrap();
    assert_eq!(h["content-length"], body.len().to_string().as_str());
    assert_eq!(report["file"]["size_bytes"], body.len());
    let mut csv = csv::Reader::from_reader(&body[..]);
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..4], ["account", "region", "directory_id", "workspace_id"]);
    assert_eq!(header.len(), 18);
    let got: Vec<Vec<String>> = csv
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(got, expected_rows(&pool, true).await);
    assert_eq!(got[2][4], "Bob \"B\", Jr", "quotes and commas survive");
    assert_eq!(got[1][17], "Cost=42; team=ops");

    // A viewer reads and downloads a report someone else asked for (viewers
    // read everything), but may not ask for one.
    let viewer = hangar_tests::client_with_token(&hangar_tests::token("vera", "viewer"));
    let r = viewer
        .get(format!("{}/api/v1/reports/{id}/download", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), body);
    let r = viewer
        .post(format!("{}/api/v1/reports", app.base))
        .json(&json!({"type": "inventory", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A range of it, and a conditional request.
    let r = download(&app, &id, Some("bytes=0-6")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-6/{}", body.len()).as_str()
    );
    assert_eq!(&r.bytes().await.unwrap()[..], &body[..7]);
    let r = download(&app, &id, Some(&format!("bytes={}-", body.len()))).await;
    assert_eq!(r.status(), 416);
    let r = app
        .http
        .get(format!("{}/api/v1/reports/{id}/download", app.base))
        .header("if-none-match", format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // JSON, filtered: the same rows, typed.
    let id = ask(
        &app,
        json!({"type": "inventory", "format": "json", "params": {"account": "prod", "state": "available"}}),
    )
    .await;
    let doc: Value = download(&app, &id, None).await.json().await.unwrap();
    assert_eq!(
        doc["params"],
        json!({"account": "prod", "state": "available", "include_deleted": false}),
        "the parameters, defaults filled in"
    );
    assert_eq!(
        doc["columns"][11],
        json!({"name": "auto_stop_timeout_minutes", "type": "integer"})
    );
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{doc}");
    assert_eq!(rows[0][3], "ws-a");
    assert_eq!(rows[0][11], 60, "numbers stay numbers");
    assert_eq!(rows[0][16], 3, "days since the last connection");
    assert_eq!(rows[0][14], Value::Null);

    // XLSX: the same rows as typed cells, a bold frozen header with an
    // autofilter, and an About sheet.
    let id = ask(
        &app,
        json!({"type": "inventory", "format": "xlsx", "params": {"include_deleted": true}}),
    )
    .await;
    let r = download(&app, &id, None).await;
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let book = xlsx_dump(&r.bytes().await.unwrap());
    assert_eq!(book[0]["name"], "Inventory");
    assert_eq!(book[1]["name"], "About");
    let sheet = &book[0];
    assert_eq!(sheet["rows"][0][3], "workspace_id");
    assert!(sheet["header_bold"].as_array().unwrap().iter().all(|b| b == true));
    assert_eq!(sheet["freeze"], "A2");
    assert_eq!(sheet["autofilter"], "A1:R5");
    assert_eq!(sheet["formats"][13], "yyyy-mm-dd hh:mm:ss", "times are dates");
    let want = expected_rows(&pool, true).await;
    let rows = sheet["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len() + 1);
    for (got, want) in rows[1..].iter().zip(&want) {
        for (col, (g, w)) in got.as_array().unwrap().iter().zip(want).enumerate() {
            let as_text = match g {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Number(n) => {
                    assert!([11, 16].contains(&col), "column {col} is a number: {g}");
                    n.as_f64().unwrap().to_string()
                }
                Value::Object(o) => format!("{}Z", o["datetime"].as_str().unwrap()),
                other => panic!("unexpected cell {other}"),
            };
            assert_eq!(as_text, *w, "column {col}");
        }
    }
    let about: Vec<(String, String)> = book[1]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        about.contains(&("param: include_deleted".into(), "true".into())),
        "{about:?}"
    );
    assert!(about.iter().any(|(k, _)| k == "generated_at (UTC)"));
    assert!(
        about.contains(&("sync.workspaces last succeeded".into(), "never".into())),
        "{about:?}"
    );

    // The list, newest first, filtered by type and state.
    let (_, page) = app.get("/api/v1/reports?type=inventory&state=succeeded").await;
    let ids: Vec<&str> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], id);
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_empty_report_is_a_valid_file_and_bad_requests_name_the_field() {
    let app = TestApp::builder().spawn().await;
    let id = ask(&app, json!({"type": "inventory", "format": "csv"})).await;
    let body = download(&app, &id, None).await.bytes().await.unwrap();
    assert!(
        body.starts_with(b"account,region,directory_id,workspace_id,"),
        "{body:?}"
    );
    assert_eq!(
        body.iter().filter(|b| **b == b'\n').count(),
        1,
        "the header row alone"
    );

    for (body, field) in [
        (json!({"format": "csv"}), "type"),
        (json!({"type": "everything", "format": "csv"}), "type"),
        (json!({"type": "inventory"}), "format"),
        (json!({"type": "inventory", "format": "pdf"}), "format"),
        (
            json!({"type": "inventory", "format": "csv", "params": {"state": "ASLEEP"}}),
            "params.state",
        ),
        (
            json!({"type": "inventory", "format": "csv", "params": {"colour": "red"}}),
            "params.colour",
        ),
        (
            json!({"type": "inventory", "format": "csv", "params": {"format": "json"}}),
            "params.format",
        ),
        (
            json!({"type": "inventory", "format": "csv", "params": []}),
            "params",
        ),
        (json!({"type": "inventory", "format": "csv", "extra": 1}), "extra"),
    ] {
        let (status, v) = app.post("/api/v1/reports", body.clone()).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let (status, _) = app.get("/api/v1/reports/01JD3Q6W8Y4N2M5K7P9R1T3V5X").await;
    assert_eq!(status, 404);
    let (status, v) = app.get("/api/v1/reports?state=sleeping").await;
    assert_eq!((status, v["error"]["field"].as_str()), (422, Some("state")));
    app.shutdown().await;
}

#[tokio::test]
async fn a_report_not_ready_answers_409_and_an_expired_one_410() {
    let app = TestApp::builder().without_worker().spawn().await;
    let (status, v) = app
        .post("/api/v1/reports", json!({"type": "inventory", "format": "csv"}))
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["job"]["id"].as_str().unwrap();
    let r = download(&app, id, None).await;
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("not ready"),
        "{v}"
    );

    // Published long ago and past its expiry.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO reports (id, kind, format, object_key, content_type, row_count, size_bytes, sha256, expires_at)
         VALUES ($1, 'report.inventory', 'csv', 'x.csv', 'text/csv', 0, 0, '00', now() - interval '1 day')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(download(&app, id, None).await.status(), 410);
    pool.close().await;
    app.shutdown().await;
}

/// The production store: an S3 bucket (the emulator's), with a prefix.
#[tokio::test]
async fn reports_go_to_an_s3_bucket_when_the_store_is_one() {
    let moto = hangar_tests::moto::Moto::start().await;
    let created = reqwest::Client::new()
        .put(format!("{}/hangar-reports", moto.url))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "bucket: {}", created.status());
    let mut env = moto.aws_env();
    env.push((
        "HANGAR_REPORTS_URL".into(),
        "s3://hangar-reports/team-a/reports".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::builder().envs(&env).spawn().await;
    let pool = seed(&app).await;
    let id = ask(&app, json!({"type": "inventory", "format": "csv"})).await;
    let body = download(&app, &id, None).await.bytes().await.unwrap();
    let mut csv = csv::Reader::from_reader(&body[..]);
    let got: Vec<Vec<String>> = csv
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(got, expected_rows(&pool, false).await);
    // Under the prefix in the bucket, nowhere else.
    let listing = reqwest::get(format!("{}/hangar-reports?list-type=2", moto.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = format!("<Key>team-a/reports/report.inventory/{id}.csv</Key>");
    assert!(listing.contains(&key), "{listing}");
    assert_eq!(listing.matches("<Key>").count(), 1, "{listing}");
    pool.close().await;
    app.shutdown().await;
}

/// `system.retention` removes a report past its expiry (its file, then its
/// record; the download then answers 410) and keeps a report's job record
/// as long as its file, past the job records' own age limit.
#[tokio::test]
async fn retention_removes_expired_reports_and_keeps_the_jobs_of_kept_ones() {
    let app = TestApp::builder().spawn().await;
    let pool = seed(&app).await;
    let expired = ask(&app, json!({"type": "inventory", "format": "csv"})).await;
    let kept = ask(&app, json!({"type": "inventory", "format": "json"})).await;
    let file = |id: &str, ext: &str| {
        let dir = app.env["HANGAR_REPORTS_URL"]
            .strip_prefix("file://")
            .unwrap()
            .to_owned();
        std::path::PathBuf::from(dir).join(format!("report.inventory/{id}.{ext}"))
    };
    let (expired_file, kept_file) = (file(&expired, "csv"), file(&kept, "json"));
    assert!(expired_file.exists() && kept_file.exists());
    sqlx::query("UPDATE reports SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(&expired)
        .execute(&pool)
        .await
        .unwrap();
    // Both jobs were asked for and finished long ago: a job's id begins with
    // its creation time (job_runs is partitioned by it, and retention reads
    // no further than the cutoff's id), so the ids go back too.
    let expired = backdate_report(&pool, &expired, 400).await;
    let kept = backdate_report(&pool, &kept, 400).await;
    let id = app.enqueue(json!({"kind": "system.retention"})).await;
    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(job["result"]["reports_deleted"], 1, "{job}");
    assert_eq!(
        job["result"]["job_runs_deleted"], 1,
        "the expired report's job only: {job}"
    );
    assert!(!expired_file.exists(), "the expired file is gone");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE id = $1")
        .bind(&expired)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the expired report's job record is gone");
    assert!(kept_file.exists(), "the kept file stays");
    let (status, _) = app.get(&format!("/api/v1/reports/{kept}")).await;
    assert_eq!(status, 200, "a kept report's job record stays");
    assert_eq!(download(&app, &kept, None).await.status(), 200);
    pool.close().await;
    app.shutdown().await;
}

/// Moves a report's job (and the report record, which shares its id) `days`
/// back in time, as if it had been asked for and finished then; answers the
/// new id. The file keeps its name: the record's object key still points at it.
async fn backdate_report(pool: &sqlx::PgPool, id: &str, days: i32) -> String {
    let mut tx = pool.begin().await.unwrap();
    let aged: String = sqlx::query_scalar(
        "UPDATE job_runs SET id = left(hangar_id_at(now() - make_interval(days => $2)), 10) || substr(id, 11),
                             created_at = now() - make_interval(days => $2),
                             finished_at = now() - make_interval(days => $2)
          WHERE id = $1 RETURNING id",
    )
    .bind(id)
    .bind(days)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE reports SET id = $2 WHERE id = $1")
        .bind(id)
        .bind(&aged)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    aged
}

/// A JSON report's rows as objects keyed by column name.
async fn json_rows(app: &TestApp, body: Value) -> Vec<serde_json::Map<String, Value>> {
    let id = ask(app, body).await;
    let doc: Value = download(app, &id, None).await.json().await.unwrap();
    let names: Vec<String> = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            names
                .iter()
                .cloned()
                .zip(r.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn unused_billing_mode_costs_and_audit_reports_read_what_the_tables_hold() {
    let app = TestApp::builder()
        .env("HANGAR_WORKSPACES_HOURLY_RATES", "STANDARD=0.30")
        .spawn()
        .await;
    let pool = seed(&app).await;
    // Usage for ws-a: every hour of this month before the current one (at
    // most 100): one session; ws-b tagged Skip_Convert; usage read for
    // prod/eu-west-1 only; this month's WorkSpaces cost for AutoStop
    // Standard, shared by ws-a and ws-b.
    let n: i64 = sqlx::query_scalar(
        "SELECT LEAST(100, GREATEST(0, floor(extract(epoch FROM now() - date_trunc('month', now())) / 3600)::int - 1))::bigint",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        r#"
        INSERT INTO workspace_usage (account, region, workspace_id, hour, periods)
        SELECT 'prod', 'eu-west-1', 'ws-a', date_trunc('month', now()) + make_interval(hours => h), 4095
        FROM generate_series(0, {n} - 1) AS h;
        UPDATE workspaces SET tags = '{{"skip_CONVERT": "yes"}}' WHERE workspace_id = 'ws-b';
        UPDATE workspaces SET standby_of = 'us-west-2/ws-primary' WHERE workspace_id = 'ws-c';
        INSERT INTO sync_cursors (account, region, kind, position) VALUES ('prod', 'eu-west-1', 'sync.usage', now());
        INSERT INTO cost_daily (account, view, day, service, usage_type, amount, currency, estimated) VALUES
          ('prod', 'workspaces', date_trunc('month', now())::date, 'Amazon WorkSpaces', 'EU-AutoStop-Standard', 10, 'USD', false),
          ('prod', 'all', '2026-11-01', 'Amazon WorkSpaces', 'EU-AutoStop-Standard', 5, 'USD', false),
          ('prod', 'all', '2026-11-02', 'Amazon WorkSpaces', 'EU-AutoStop-Standard', 6, 'USD', false),
          ('prod', 'all', '2026-11-03', 'Amazon WorkSpaces', 'EU-AutoStop-Standard', 7, 'USD', false),
          ('prod', 'all', '2026-11-04', 'Amazon WorkSpaces', 'EU-AutoStop-Standard', 8.125, 'USD', true);
        INSERT INTO audit_events (event_id, account, region, event_time, event_name, event_source, username, resources)
        VALUES ('e1', 'prod', 'eu-west-1', now() - interval '1 day', 'RebootWorkspaces', 'workspaces.amazonaws.com',
                'alice', '[{{"type": "AWS::WorkSpaces::Workspace", "name": "ws-a"}}]'),
               ('e2', 'prod', 'eu-west-1', now() - interval '20 days', 'TerminateWorkspaces', 'workspaces.amazonaws.com',
                'bob', '[]');
        "#
    ))
    .execute(&pool)
    .await
    .unwrap();

    // Unused for 30 days: ws-b never connected (known since October),
    // ws-c last seen 40 days ago; ws-a (3 days) and the deleted one are not.
    let rows = json_rows(&app, json!({"type": "unused", "format": "json"})).await;
    let found: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["workspace_id"].as_str().unwrap(),
                r["unused_bucket"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [("ws-c", "30-59 days"), ("ws-b", "never connected")]);
    assert_eq!(
        rows[0]["standby_of"], "us-west-2/ws-primary",
        "a standby is flagged with its primary"
    );
    assert_eq!(rows[1]["standby_of"], Value::Null);
    let b = &rows[1];
    assert_eq!(
        b["month_cost_attributed"], "5",
        "10 USD shared by two AutoStop Standard workspaces"
    );
    assert!(b["cost_basis"].as_str().unwrap().contains("EU-AutoStop-Standard"));
    assert_eq!(
        rows[0]["month_cost_attributed"],
        Value::Null,
        "no usage type names ALWAYS_ON VALUE"
    );
    let rows = json_rows(
        &app,
        json!({"type": "unused", "format": "json", "params": {"days": 45}}),
    )
    .await;
    assert_eq!(rows.len(), 1, "only ws-b is unused for 45 days");

    // Billing mode: ws-a by its hours, ws-b skipped by its tag, ws-c
    // skipped for want of usage data.
    let rows = json_rows(&app, json!({"type": "billing_mode", "format": "json"})).await;
    let by_id = |id: &str| rows.iter().find(|r| r["workspace_id"] == id).unwrap().clone();
    let a = by_id("ws-a");
    assert_eq!(a["connected_hours_mtd"], json!(n as f64));
    assert_eq!(a["sessions_mtd"], json!(i64::from(n > 0)));
    let billable = if n > 0 { n as f64 + 1.0 } else { 0.0 };
    assert_eq!(
        a["billable_hours_mtd"],
        json!(billable),
        "session + the 60-minute AutoStop tail"
    );
    assert_eq!(a["break_even_hours"], json!(85.0));
    assert_eq!(a["usage_type_cost_mtd"], "10");
    assert_eq!(a["workspaces_sharing_usage_type"], 2);
    let want = if billable >= 85.0 {
        "ToMonthly"
    } else {
        "No Change"
    };
    assert_eq!(a["recommendation"], want, "{a:?}");
    assert!(
        a["price_source"].as_str().unwrap().contains("STANDARD=0.3/h"),
        "{a:?}"
    );
    let b = by_id("ws-b");
    assert_eq!(
        (b["recommendation"].as_str(), b["reason"].as_str()),
        (Some("Skipped"), Some("tagged Skip_Convert"))
    );
    let c = by_id("ws-c");
    assert_eq!(c["recommendation"], "Skipped");
    assert!(c["reason"].as_str().unwrap().contains("run sync.usage"), "{c:?}");

    // Costs: two days, each with its month to date and the day two days before.
    let rows = json_rows(
        &app,
        json!({"type": "costs", "format": "json", "params": {"start": "2026-11-03", "end": "2026-11-05"}}),
    )
    .await;
    let got: Vec<(Value, Value, Value, Value, Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r["day"].clone(),
                r["cost"].clone(),
                r["month_to_date"].clone(),
                r["previous_period_day"].clone(),
                r["previous_period_cost"].clone(),
                r["estimated"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                json!("2026-11-03"),
                json!("7"),
                json!("18"),
                json!("2026-11-01"),
                json!("5"),
                json!("no")
            ),
            (
                json!("2026-11-04"),
                json!("8.125"),
                json!("26.125"),
                json!("2026-11-02"),
                json!("6"),
                json!("yes")
            ),
        ]
    );
    let (status, v) = app
        .post(
            "/api/v1/reports",
            json!({"type": "costs", "format": "csv", "params": {"start": "2026-11-05", "end": "2026-11-05"}}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (422, Some("params.end")),
        "{v}"
    );

    // CloudTrail events of the last 7 days; Hangar's own log for admins only.
    let rows = json_rows(&app, json!({"type": "audit", "format": "json"})).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["event_name"], "RebootWorkspaces");
    assert_eq!(rows[0]["resources"], "AWS::WorkSpaces::Workspace:ws-a");
    let operator = hangar_tests::client_with_token(&hangar_tests::token("olivia", "operator"));
    let r = operator
        .post(format!("{}/api/v1/reports", app.base))
        .json(&json!({"type": "audit_log", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = operator
        .post(format!("{}/api/v1/reports", app.base))
        .json(&json!({"type": "unused", "format": "csv", "params": {"days": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "params.days");
    let rows = json_rows(&app, json!({"type": "audit_log", "format": "json"})).await;
    assert!(
        rows.iter()
            .any(|r| r["action"].as_str().is_some_and(|a| a.contains("report"))),
        "the report requests above are in the log: {rows:?}"
    );
    pool.close().await;
    app.shutdown().await;
}

/// A webhook receiver: answers 503 to the first delivery, 200 after, and
/// keeps what it was sent.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let mut all = kept.lock().unwrap();
                all.push((headers, body));
                if all.len() == 1 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn a_report_that_asks_is_announced_at_the_webhook_signed_and_retried() {
    use hmac::Mac;
    let (url, seen) = receiver().await;
    let secret = "a-webhook-secret-of-32-bytes-xyz";
    let app = TestApp::builder()
        .env("HANGAR_REPORT_WEBHOOK_URL", &url)
        .env("HANGAR_REPORT_WEBHOOK_SECRET", secret)
        .env("HANGAR_PUBLIC_URL", "https://hangar.example.com/")
        .spawn()
        .await;
    let pool = seed(&app).await;
    let id = ask(
        &app,
        json!({"type": "unused", "format": "csv", "params": {"webhook": true}}),
    )
    .await;
    let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["result"]["webhook"]["delivered"], true, "{job}");
    assert_eq!(
        job["result"]["webhook"]["attempts"], 2,
        "the 503 was retried: {job}"
    );
    let (_, report) = app.get(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(
        report["params"],
        json!({"days": 30, "webhook": true}),
        "what was asked"
    );

    let deliveries = seen.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 2);
    let (headers, body) = &deliveries[1];
    let doc: Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["report_id"], id.as_str());
    assert_eq!(doc["type"], "unused");
    assert_eq!(doc["rows"], 2);
    assert_eq!(doc["sha256"], report["file"]["sha256"]);
    assert_eq!(
        doc["download_url"],
        format!("https://hangar.example.com/api/v1/reports/{id}/download")
    );
    assert_eq!(headers["x-hangar-delivery"], id.as_str());
    let timestamp = headers["x-hangar-timestamp"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(headers["x-hangar-signature"], format!("sha256={want}").as_str());

    // Without "webhook": nothing is sent.
    ask(&app, json!({"type": "unused", "format": "csv"})).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
    pool.close().await;
    app.shutdown().await;
}
