//! Faults lose nothing: Redis losing its data, PostgreSQL going away.

use std::time::Duration;

use hangar_tests::JobStatus;
use hangar_tests::{OwnPostgres, OwnRedis, TestApp, TestDb, config, spawn_api, spawn_worker, test_env};
use serde_json::{Value, json};

#[tokio::test]
async fn after_redis_loses_its_data_the_repair_loop_dispatches_the_job_and_it_runs_once() {
    let redis = OwnRedis::start();
    let mut app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .spawn()
        .await;
    let id = app.enqueue(json!({"kind": "system.noop"})).await;

    redis.flush_all().await;
    let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["state"], "queued", "the record survives: {job}");

    let cfg = app.config();
    let pool = hangar_shared::db::pool(&cfg.database).unwrap();
    let queues = hangar_scheduler::queues(&cfg).await.unwrap();
    let report = hangar_scheduler::repair::repair_once(&pool, &queues, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.scanned, report.redispatched), (1, 1));
    let again = hangar_scheduler::repair::repair_once(&pool, &queues, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        again.redispatched, 0,
        "a second pass (or replica) does not dispatch it twice"
    );

    app.worker = Some(spawn_worker(cfg));
    app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(15))
        .await;
    let row = app.wait_record(&id, JobStatus::Succeeded).await;
    assert_eq!((row.attempts, row.deliveries), (1, 1), "it ran once");
    app.shutdown().await;
}

#[tokio::test]
async fn with_postgres_down_readiness_and_enqueue_answer_503_and_recover() {
    let pg = OwnPostgres::start();
    let db = TestDb::create(&pg.admin_url()).await;
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let env = test_env(&db.url, &hangar_tests::redis_url(), &prefix);
    let (base, api) = spawn_api(config(&env)).await;
    let http = hangar_tests::client_with_token(&hangar_tests::token("ops", "admin"));
    let ready = || http.get(format!("{base}/health/ready")).send();
    let post = || {
        http.post(format!("{base}/api/v1/jobs"))
            .json(&json!({"kind": "system.noop"}))
            .send()
    };
    let mut ok = false;
    for _ in 0..100 {
        if ready().await.map(|r| r.status() == 200).unwrap_or(false) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "ready with postgres up");
    assert_eq!(post().await.unwrap().status(), 202);

    pg.stop();
    let r = ready().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["failed"], json!(["postgres"]), "{body}");
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unavailable", "{e}");
    assert_eq!(e["error"]["message"], "postgres is unavailable; retry later");
    assert!(e["error"]["request_id"].is_string());

    pg.restart();
    let mut recovered = false;
    for _ in 0..100 {
        if post().await.map(|r| r.status() == 202).unwrap_or(false) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "enqueue works again once postgres is back");
    assert_eq!(ready().await.unwrap().status(), 200);
    api.stop().await.unwrap();
    drop(db);
    hangar_tests::redis_cleanup(&hangar_tests::redis_url(), &prefix)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_scheduler_loop_repairs_on_its_own() {
    let redis = OwnRedis::start();
    let mut app = TestApp::builder().redis(&redis.url()).spawn().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let metrics_port = hangar_tests::free_port();
    let mut env = app.env.clone();
    env.insert(
        "HANGAR_SCHEDULER_METRICS_BIND".into(),
        format!("127.0.0.1:{metrics_port}"),
    );
    let scheduler = tokio::spawn(hangar_scheduler::run(config(&env), async move {
        let _ = rx.await;
    }));
    // Stop the worker so the job sits in Redis, then lose Redis's data.
    if let Some(w) = app.worker.take() {
        w.stop().await.unwrap();
    }
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    redis.flush_all().await;
    app.worker = Some(spawn_worker(app.config()));
    // HANGAR_REPAIR_INTERVAL_SECS=1 in tests: the loop finds and re-dispatches it.
    let row = app.wait_record(&id, JobStatus::Succeeded).await;
    assert_eq!(row.deliveries, 1);
    // The scheduler counted the re-dispatch (what the repair alert watches).
    let text = hangar_tests::scrape(&format!("127.0.0.1:{metrics_port}")).await;
    assert!(
        text.lines()
            .any(|l| l == "hangar_scheduler_repair_redispatched_total 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "hangar_scheduler_repair_failures_total 0"),
        "{text}"
    );
    let _ = tx.send(());
    scheduler.await.unwrap().unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_names_unapplied_migrations() {
    let db = TestDb::create_empty(&hangar_tests::postgres_admin_url()).await;
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let env = test_env(&db.url, &hangar_tests::redis_url(), &prefix);
    let (base, api) = spawn_api(config(&env)).await;
    let r = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["failed"], json!(["postgres"]), "{body}");
    let why = body["checks"]["postgres"]["error"].as_str().unwrap();
    assert!(
        why.contains("migration") && why.contains("hangar-api migrate"),
        "{why}"
    );
    api.stop().await.unwrap();
}

/// Issue 13, 14: a progress write that Redis did not answer in time failed
/// the whole attempt of a `system.sleep` job (so it ran again).
#[tokio::test]
async fn a_progress_write_redis_does_not_answer_never_fails_the_attempt() {
    let redis = OwnRedis::start();
    let app = TestApp::builder()
        .redis(&redis.url())
        .envs(&[("HANGAR_REDIS_RESPONSE_TIMEOUT_MS", "200")])
        .spawn()
        .await;
    let id = app
        .enqueue(json!({"kind": "system.sleep", "payload": {"ms": 3000, "steps": 30}}))
        .await;
    let running = app
        .wait_state(&id, JobStatus::Running, Duration::from_secs(10))
        .await;
    // No attempt has ended; the first is under way.
    assert_eq!(
        (&running["attempts"], &running["attempt"]),
        (&json!(0), &json!(1)),
        "{running}"
    );
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Writes (every script, progress included) wait 500 ms: longer than the
    // worker's reply timeout, shorter than its lease.
    for _ in 0..3 {
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(500)
            .arg("WRITE")
            .query_async(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(job["attempts"], 1, "progress is best effort: {job}");
    assert_eq!(job["deliveries"], 1, "{job}");
    app.shutdown().await;
}
