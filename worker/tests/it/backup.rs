//! Disaster recovery, done for real: `scripts/backup`, then the database
//! dropped, Redis flushed and the report files deleted, then
//! `scripts/restore` and the processes started again. Nothing recorded
//! before the backup is lost: open jobs are dispatched again by the repair
//! loop and succeed, finished jobs keep their results and errors, API keys
//! work, the synced inventory and report files are back, and the schedule
//! resumes from its cursor under its catch-up policy. The times it prints
//! are the RPO/RTO figures in docs/operations.md.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use hangar_tests::{JobStatus, OwnRedis, TestApp, moto::Moto, spawn_api};
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");
const ACCOUNTS: &str = r#"[{"name":"main","regions":["us-east-1"]}]"#;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `scripts/<name> <arg>` with the app's database and report store.
fn run_script(app: &TestApp, name: &str, arg: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(script(name))
        .arg(arg)
        .env("HANGAR_DATABASE_URL", &app.db.url)
        .env("HANGAR_REPORTS_URL", &app.env["HANGAR_REPORTS_URL"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "scripts/{name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim_end());
    took
}

#[tokio::test]
async fn a_restored_backup_loses_no_job_key_schedule_inventory_or_report() {
    let moto = Moto::start().await;
    moto.post(
        "seed/workspaces",
        json!({"directories": 1, "workspaces": 30, "bundles": 1, "tags_per_workspace": 1}),
    )
    .await;
    let redis = OwnRedis::start();
    let scheduler_port = hangar_tests::free_port();
    let scheduler_bind = format!("127.0.0.1:{scheduler_port}");
    let mut app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .envs(&[
            ("HANGAR_AWS_ACCOUNTS", ACCOUNTS),
            ("HANGAR_SCHEDULER_METRICS_BIND", &scheduler_bind),
            // Ticks more than a second late count as missed (the catch-up
            // policy decides), not as on time.
            ("HANGAR_SCHEDULER_GRACE_SECS", "1"),
        ])
        .spawn()
        .await;
    // A dead job first, while no real worker could take it.
    let dead = app.enqueue(json!({"kind": "system.noop"})).await;
    hangar_tests::kill_jobs(&app, std::slice::from_ref(&dead)).await;
    let mut worker = app.worker_process(WORKER, "sync=2,reports=1", &moto.aws_env());

    // Finished jobs of every kind of ending, with what they produced.
    let (status, body) = app
        .post(
            "/api/v1/syncs/workspaces",
            json!({"account": "main", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let sync = body["jobs"][0]["job"]["id"].as_str().unwrap().to_owned();
    let synced = app
        .wait_state(&sync, JobStatus::Succeeded, Duration::from_secs(60))
        .await;
    let (_, inventory) = app.get("/api/v1/workspaces?limit=200").await;
    assert_eq!(
        inventory["workspaces"].as_array().map(Vec::len),
        Some(30),
        "{inventory}"
    );
    let (status, body) = app
        .post("/api/v1/reports", json!({"type": "inventory", "format": "csv"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let report = body["job"]["id"].as_str().unwrap().to_owned();
    app.wait_state(&report, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    let report_file = app
        .http
        .get(format!("{}/api/v1/reports/{report}/download", app.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(report_file.len() > 100, "a CSV of 30 workspaces");
    let cancelled = app
        .enqueue(json!({"kind": "system.noop", "run_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    let (status, _) = app
        .post(&format!("/api/v1/jobs/{cancelled}/cancel"), json!({}))
        .await;
    assert!(status < 300);

    // An API key, and a schedule firing every 2 s with fire_once catch-up.
    let (status, key) = app
        .post("/api/v1/api-keys", json!({"name": "ci", "role": "operator"}))
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["token"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "tick", "cron": "*/2 * * * * *", "kind": "system.noop",
                   "catch_up": "fire_once", "overlap": "allow"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (stop_scheduler, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(hangar_scheduler::run(app.config(), async move {
        let _ = stopped.await;
    }));
    hangar_tests::wait_metric(
        &scheduler_bind,
        "hangar_scheduler_fires_total{schedule=\"tick\",catch_up=\"false\"} 2",
        Duration::from_secs(30),
    )
    .await;
    let _ = stop_scheduler.send(());
    scheduler.await.unwrap().unwrap();

    // Open jobs the workers have not run yet: queued, and due in 3 s.
    // SIGTERM: the worker drains and exits.
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(worker.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        worker.wait().unwrap().success(),
        "the worker drained and exited 0"
    );
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.enqueue(json!({"kind": "system.noop"})).await);
    }
    let due_soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    open.push(
        app.enqueue(json!({"kind": "system.noop", "run_at": due_soon}))
            .await,
    );
    let (_, before) = app.get("/api/v1/jobs?limit=200").await;
    let before: Vec<Value> = before["jobs"].as_array().unwrap().clone();
    let pool = hangar_shared::db::pool(&app.config().database).unwrap();
    let (cursor,): (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT cursor FROM schedule_state WHERE name = 'tick'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;

    // Back up, then lose everything.
    let dir = std::env::temp_dir().join(format!("hangar-backup-{}", ulid::Ulid::new()));
    let backup_took = run_script(&app, "backup", &dir);
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).unwrap();
    assert!(
        manifest.contains("file=database.dump") && manifest.contains("file=reports.tar.gz"),
        "{manifest}"
    );
    app.api.take().unwrap().stop().await.unwrap();
    let admin = sqlx::PgPool::connect(&hangar_tests::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", app.db.name))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    redis.flush_all().await;
    let reports_dir = app.env["HANGAR_REPORTS_URL"]
        .trim_start_matches("file://")
        .to_owned();
    std::fs::remove_dir_all(&reports_dir).unwrap();
    // Ticks go by while nothing runs: fire_once makes them one catch-up.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Restore, and start everything again.
    let restore_took = run_script(&app, "restore", &dir);
    let recovering = Instant::now();
    let (base, api) = spawn_api(app.config()).await;
    app.base = base;
    app.api = Some(api);
    let _worker = app.worker_process(WORKER, "sync=2,reports=1", &moto.aws_env());
    let (stop_scheduler, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(hangar_scheduler::run(app.config(), async move {
        let _ = stopped.await;
    }));

    // Every open job is dispatched again (the repair loop) and runs once.
    for id in &open {
        let row = app.wait_record(id, JobStatus::Succeeded).await;
        assert_eq!(row.deliveries, 1, "{id} ran once");
    }
    let recovered_in = recovering.elapsed();
    // Finished jobs are as they were.
    let (_, after) = app.get("/api/v1/jobs?limit=200").await;
    for was in &before {
        let id = was["id"].as_str().unwrap();
        let now = after["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id);
        let now = now.unwrap_or_else(|| panic!("{id} is back"));
        let finished = ["succeeded", "dead", "cancelled"].contains(&was["state"].as_str().unwrap());
        if finished {
            assert_eq!(now["state"], was["state"], "{id}");
            assert_eq!(now["result"], was["result"], "{id}");
            assert_eq!(now["error"], was["error"], "{id}");
        }
    }
    let (_, job) = app.get(&format!("/api/v1/jobs/{sync}")).await;
    assert_eq!(job["result"], synced["result"]);
    let (_, job) = app.get(&format!("/api/v1/jobs/{dead}")).await;
    assert_eq!(job["state"], "dead");
    let (_, job) = app.get(&format!("/api/v1/jobs/{cancelled}")).await;
    assert_eq!(job["state"], "cancelled");
    // The inventory, the report file and the API key.
    let (_, again) = app.get("/api/v1/workspaces?limit=200").await;
    assert_eq!(again["workspaces"], inventory["workspaces"]);
    let file = app
        .http
        .get(format!("{}/api/v1/reports/{report}/download", app.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(file, report_file, "the report file is back, byte for byte");
    let with_key = hangar_tests::client_with_token(&key);
    let r = with_key
        .get(format!("{}/api/v1/queues", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the API key still works");

    // The schedule resumes from its cursor: of the ticks missed while down
    // (more than a second late), fire_once fires at most one, the newest,
    // and counts the others as dropped.
    hangar_tests::wait_metric(
        &scheduler_bind,
        "hangar_scheduler_dropped_ticks_total{schedule=\"tick\"}",
        Duration::from_secs(30),
    )
    .await;
    let restarted_ms = u64::try_from(
        (chrono::Utc::now() - chrono::Duration::from_std(recovering.elapsed()).unwrap()).timestamp_millis(),
    )
    .unwrap();
    // A tick's job id carries the tick's time: every job fired since the
    // restore is for a tick after the backup's cursor.
    let pool = hangar_shared::db::pool(&app.config().database).unwrap();
    let fired: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM job_runs WHERE requested_by = 'schedule:tick'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let new: Vec<u64> = fired
        .iter()
        .filter(|(id,)| !before.iter().any(|j| j["id"] == id.as_str()))
        .map(|(id,)| id.parse::<ulid::Ulid>().unwrap().timestamp_ms())
        .collect();
    let cursor_ms = u64::try_from(cursor.timestamp_millis()).unwrap();
    assert!(
        new.iter().all(|&tick| tick > cursor_ms),
        "no tick at or before the backup's cursor fired again: {new:?} vs {cursor_ms}"
    );
    let missed_and_fired = new.iter().filter(|&&tick| tick + 1000 < restarted_ms).count();
    assert!(
        missed_and_fired <= 1,
        "fire_once: at most one of the missed ticks fired: {new:?}"
    );
    // And it goes on firing on time.
    hangar_tests::wait_metric(
        &scheduler_bind,
        "hangar_scheduler_fires_total{schedule=\"tick\",catch_up=\"false\"}",
        Duration::from_secs(30),
    )
    .await;
    pool.close().await;

    eprintln!(
        "backup {backup_took:.1?}, restore {restore_took:.1?}, every open job done {recovered_in:.1?} after the restore"
    );
    let _ = stop_scheduler.send(());
    scheduler.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    app.shutdown().await;
}
