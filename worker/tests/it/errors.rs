//! Error reports (SENTRY_DSN) from a real `hangar-worker` process: a job
//! that dies is reported once, tagged for searching, with its payload and
//! without secrets, to a fake ingest endpoint that decodes the envelopes.

use std::time::Duration;

use hangar_tests::{JobStatus, TestApp, fake_sentry::FakeSentry, moto::Moto};
use serde_json::json;

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");

/// An account whose role AWS refuses: its sync dies at its first attempt.
const LOCKED: &str = r#"[{"name":"locked","role_arn":"arn:aws:iam::222222222222:role/hangar-refused","regions":["eu-west-1"]}]"#;

/// An app and a `hangar-worker` process with `worker_env`, and a sync of
/// the locked account run until it is dead: its id and record.
async fn a_dead_sync(
    moto: &Moto,
    worker_env: &[(String, String)],
) -> (TestApp, hangar_tests::WorkerProcess, String, serde_json::Value) {
    let app = TestApp::builder()
        .without_worker()
        .envs(&[("HANGAR_AWS_ACCOUNTS", LOCKED)])
        .spawn()
        .await;
    let mut env = moto.aws_env();
    env.extend_from_slice(worker_env);
    let worker = app.worker_process(WORKER, "sync=1", &env);
    moto.fault(json!({"operation": "AssumeRole", "match": "hangar-refused", "status": 403,
                      "code": "AccessDenied", "message": "User is not authorized to perform: sts:AssumeRole"}))
        .await;
    let (status, body) = app
        .post("/api/v1/syncs/workspaces", json!({"account": "locked"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["job"]["id"].as_str().unwrap().to_owned();
    let job = app
        .wait_state(&id, JobStatus::Dead, Duration::from_secs(60))
        .await;
    (app, worker, id, job)
}

#[tokio::test]
async fn a_job_that_dies_is_reported_with_its_tags_and_payload_and_no_secret() {
    let sentry = FakeSentry::start().await;
    let moto = Moto::start().await;
    let (app, mut worker, id, job) = a_dead_sync(
        &moto,
        &[
            ("SENTRY_DSN".to_owned(), sentry.dsn.clone()),
            ("SENTRY_ENVIRONMENT".to_owned(), "ci".to_owned()),
            ("SENTRY_RELEASE".to_owned(), "hangar@test".to_owned()),
        ],
    )
    .await;

    let got = sentry
        .wait_for("dead job", Duration::from_secs(20), |e| {
            e["tags"]["job.id"] == id.as_str()
        })
        .await;
    let e = &got.event;
    // Error is the protocol's default level: absent means error.
    assert_eq!(e["level"].as_str().unwrap_or("error"), "error", "{e:#}");
    assert_eq!(e["release"], "hangar@test");
    assert_eq!(e["environment"], "ci");
    let tags = &e["tags"];
    assert_eq!(tags["component"], "worker");
    assert_eq!(tags["job.kind"], "sync.workspaces");
    assert_eq!(tags["queue"], "sync");
    assert_eq!(tags["attempt"], "1");
    assert_eq!(
        tags["request_id"], job["request_id"],
        "the API request that created it"
    );
    assert_eq!(
        e["extra"]["payload"],
        json!({"account": "locked", "region": "eu-west-1"})
    );
    assert_eq!(e["fingerprint"], json!(["hangar-job-dead", "sync.workspaces"]));
    let message = e["message"]["formatted"]
        .as_str()
        .or(e["message"].as_str())
        .unwrap_or_default();
    assert!(message.contains("AccessDenied") && message.contains(&id), "{e:#}");
    // The DSN's key travels in the auth header only; no AWS secret anywhere.
    assert!(got.auth.contains("sentry_key=hangarpublickey"), "{}", got.auth);
    assert!(
        !got.raw.contains("hangarpublickey") && !got.raw.contains("testing"),
        "{}",
        got.raw
    );
    // Reported once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reports = sentry
        .events()
        .iter()
        .filter(|r| r.event["tags"]["job.id"] == id.as_str())
        .count();
    assert_eq!(reports, 1);
    worker.kill().unwrap();
    worker.wait().unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn with_sentry_unreachable_the_job_still_ends_and_the_lost_report_is_counted() {
    let moto = Moto::start().await;
    // A DSN whose port nobody listens on.
    let closed = hangar_tests::free_port();
    let metrics = format!("127.0.0.1:{}", hangar_tests::free_port());
    let (app, mut worker, _, _) = a_dead_sync(
        &moto,
        &[
            (
                "SENTRY_DSN".to_owned(),
                format!("http://hangarpublickey@127.0.0.1:{closed}/42"),
            ),
            ("HANGAR_WORKER_METRICS_BIND".to_owned(), metrics.clone()),
        ],
    )
    .await;
    // The report could not be sent: counted, and the job's end is unchanged.
    hangar_tests::wait_metric(
        &metrics,
        "hangar_error_reports_dropped_total 1",
        Duration::from_secs(20),
    )
    .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    app.shutdown().await;
}
