//! The real `hangar-worker` binary: killed with -9 mid-job, draining on SIGTERM.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use hangar_tests::JobStatus;
use hangar_tests::TestApp;
use serde_json::{Value, json};

fn worker_process(app: &TestApp) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hangar-worker"))
        .env_clear()
        .envs(app.env.iter())
        .arg("--queues")
        .arg("sync=2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hangar-worker starts")
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_with_sigkill_completes_once_and_shows_the_extra_delivery() {
    let mut app = TestApp::builder().without_worker().spawn().await;
    let mut victim = worker_process(&app);
    let id = app
        .enqueue(json!({"kind": "system.sleep", "payload": {"ms": 3000, "steps": 30}}))
        .await;
    // Kill it once the job has visibly started (progress reported).
    let start = std::time::Instant::now();
    loop {
        let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
        if job["progress"]["done"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "job never started: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.kill().unwrap();
    victim.wait().unwrap();

    let mut rescuer = worker_process(&app);
    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(job["result"], json!({"slept_ms": 3000}));
    let row = app.wait_record(&id, JobStatus::Succeeded).await;
    assert_eq!(row.attempts, 1, "one recorded outcome");
    assert_eq!(row.deliveries, 2, "the record shows the extra delivery");

    // SIGTERM drains and exits 0.
    let pid = rescuer.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || rescuer.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "drained and exited cleanly: {status}");
    app.worker = None;
    app.shutdown().await;
}

#[tokio::test]
async fn when_redis_stays_unreachable_the_worker_exits_non_zero_for_its_orchestrator() {
    let redis = hangar_tests::OwnRedis::start();
    let mut app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .spawn()
        .await;
    app.env
        .insert("HANGAR_REDIS_OUTAGE_LIMIT_SECS".into(), "1".into());
    let mut worker = worker_process(&app);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(redis); // killed
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || worker.wait().unwrap()),
    )
    .await
    .expect("the worker gives up within its outage limit plus backoff")
    .unwrap();
    assert!(!status.success(), "non-zero exit: {status}");
    app.worker = None;
    if let Some(api) = app.api.take() {
        api.stop().await.unwrap();
    }
}

#[test]
fn worker_check_config_reports_problems_and_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_hangar-worker"))
        .env_clear()
        .env("HANGAR_QUEUES", "sync=0")
        .arg("check-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("HANGAR_DATABASE_URL: missing"), "{text}");
    assert!(text.contains("HANGAR_QUEUES:"), "{text}");
}

#[tokio::test]
async fn the_request_id_follows_the_job_into_the_worker_json_logs() {
    let mut app = TestApp::builder().without_worker().spawn().await;
    let worker = app.logged_worker(env!("CARGO_BIN_EXE_hangar-worker"), &[], &[]);
    let r = app
        .http
        .post(format!("{}/api/v1/jobs", app.base))
        .header("x-request-id", "trace-me-77")
        .json(&json!({"kind": "system.sleep", "payload": {"ms": 10, "steps": 1}}))
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let id = r.json::<Value>().await.unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(15))
        .await;
    let log = worker.stop_and_read_log().await;
    let line = log
        .lines()
        .find(|l| l.contains("\"slept\""))
        .unwrap_or_else(|| panic!("the handler's log line is missing:\n{log}"));
    let v: Value = serde_json::from_str(line).expect("JSON log line");
    let span = &v["span"];
    assert_eq!(span["request_id"], rid.as_str(), "{line}");
    assert_eq!(span["job.id"], id.as_str(), "{line}");
    assert_eq!(span["job.kind"], "system.sleep", "{line}");
    app.worker = None;
    app.shutdown().await;
}

#[tokio::test]
async fn the_worker_serves_job_metrics() {
    let mut app = TestApp::builder().without_worker().spawn().await;
    let port = hangar_tests::free_port();
    app.env
        .insert("HANGAR_WORKER_METRICS_BIND".into(), format!("127.0.0.1:{port}"));
    let mut worker = worker_process(&app);
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    app.wait_record(&id, JobStatus::Succeeded).await;
    let text = app
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "hangar_jobs_started_total{kind=\"system.noop\"} 1",
        "hangar_job_handler_results_total{kind=\"system.noop\",result=\"ok\"} 1",
        "hangar_jobs_finished_total{kind=\"system.noop\",state=\"succeeded\"} 1",
        "hangar_job_duration_seconds_count{kind=\"system.noop\"} 1",
        "hangar_job_record_errors_total 0",
        "hangar_queue_engine_events_total{queue=\"sync\",event=\"succeeded\"} 1",
        "hangar_queue_engine_events_total{queue=\"sync\",event=\"redis_errors\"} 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    app.worker = None;
    app.shutdown().await;
}
