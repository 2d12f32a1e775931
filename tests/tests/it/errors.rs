//! Error reports (SENTRY_DSN) from the API and from a panic, to a fake
//! ingest endpoint that decodes the envelopes.

use std::time::Duration;

use hangar_tests::{OwnPostgres, TestDb, config, fake_sentry::FakeSentry, spawn_api, test_env};
use serde_json::{Value, json};

#[tokio::test]
async fn a_5xx_answer_is_reported_with_its_route_status_and_request_id() {
    let sentry = FakeSentry::start().await;
    let pg = OwnPostgres::start();
    let db = TestDb::create(&pg.admin_url()).await;
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut env = test_env(&db.url, &hangar_tests::redis_url(), &prefix);
    env.insert("SENTRY_DSN".into(), sentry.dsn.clone());
    let (base, api) = spawn_api(config(&env)).await;
    let http = hangar_tests::client_with_token(&hangar_tests::token("ops", "admin"));
    pg.stop();
    let r = http
        .post(format!("{base}/api/v1/jobs"))
        .json(&json!({"kind": "system.noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let request_id = body["error"]["request_id"].as_str().unwrap().to_owned();
    let got = sentry
        .wait_for("5xx", Duration::from_secs(20), |e| {
            e["tags"]["request_id"] == request_id.as_str()
        })
        .await;
    let e = &got.event;
    assert_eq!(e["tags"]["component"], "api");
    assert_eq!(e["tags"]["http.route"], "/api/v1/jobs");
    assert_eq!(e["tags"]["http.method"], "POST");
    assert_eq!(e["tags"]["http.status_code"], "503");
    assert_eq!(e["level"], "warning", "a dependency outage, not a bug");
    assert_eq!(e["environment"], "production");
    assert!(e["release"].as_str().unwrap().starts_with("hangar@"));
    // No bearer token, database URL or DSN key in what was sent.
    assert!(
        !got.raw.contains("hangarpublickey") && !got.raw.contains("Bearer"),
        "{}",
        got.raw
    );
    pg.restart();
    api.stop().await.unwrap();
    drop(db);
    hangar_tests::redis_cleanup(&hangar_tests::redis_url(), &prefix)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_panic_is_reported_with_its_stack_and_scrubbed_message() {
    let sentry = FakeSentry::start().await;
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut env = test_env(
        "postgres://postgres@127.0.0.1:5432/unused",
        &hangar_tests::redis_url(),
        &prefix,
    );
    env.insert("SENTRY_DSN".into(), sentry.dsn.clone());
    let reports = hangar_shared::error_reports::init(&config(&env).errors, "worker");
    assert!(reports.enabled());
    let panicked =
        std::thread::spawn(|| panic!("cannot reach postgres://hangar:s3cret@db:5432/hangar")).join();
    assert!(panicked.is_err());
    let got = sentry
        .wait_for("panic", Duration::from_secs(20), |e| {
            e["exception"]["values"][0]["mechanism"]["type"] == "panic"
        })
        .await;
    let exception = &got.event["exception"]["values"][0];
    assert_eq!(
        exception["value"], "cannot reach postgres://hangar:[redacted]@db:5432/hangar",
        "{exception:#}"
    );
    assert!(
        exception["stacktrace"]["frames"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{exception:#}"
    );
    assert_eq!(got.event["tags"]["component"], "worker");
    assert!(!got.raw.contains("s3cret"));
    drop(reports);
}
