//! `job_runs` stays true to what happened: requeued dead jobs, several
//! outcomes of one job in a batch, stale views of finished jobs.

use std::sync::Arc;

use apalis_core::{error::BoxDynError, worker::builder::WorkerBuilder};
use hangar_queue::{HangarBackend, JobState, JobStatus, Queue, permanent};
use hangar_shared::db::{self, NewJobRun, OutcomeRow};
use hangar_tests::{TestApp, TestDb};
use serde_json::{Value, json};

async fn always_fails(_: Value) -> Result<(), BoxDynError> {
    Err(permanent("simulated bad credentials"))?
}

#[tokio::test]
async fn requeue_all_reopens_the_records_and_the_new_outcomes_land() {
    let mut app = TestApp::spawn_with(&hangar_tests::redis_url(), false).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(app.enqueue(json!({"kind": "system.noop"})).await);
    }
    // A worker whose handler fails permanently, persisting outcomes like hangar-worker does.
    let cfg = app.config();
    let queue = Queue::connect(&cfg.redis_settings(), &cfg.redis.prefix, "sync")
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let pool = db::pool(&cfg.database).unwrap();
    let persister = tokio::spawn(hangar_worker::persist::run(pool, rx, Arc::default()));
    let backend = HangarBackend::<Value>::new(queue, hangar_worker::queue_options(&cfg, 2))
        .unwrap()
        .with_outcome_sink(tx);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let failing = tokio::spawn(
        WorkerBuilder::new("failing")
            .backend(backend)
            .build(always_fails)
            .run_until(async move {
                let _ = stop_rx.await;
                Ok::<(), apalis_core::error::WorkerError>(())
            }),
    );
    for id in &ids {
        let row = app.wait_record(id, "dead").await;
        assert_eq!(row.attempts, 1);
    }
    let _ = stop_tx.send(());
    failing.await.unwrap().unwrap();
    persister.await.unwrap();

    let r = app
        .http
        .post(format!("{}/api/v1/queues/sync/dead/requeue-all", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["requeued"], 2);
    for id in &ids {
        assert_eq!(
            app.record(id).await.state,
            "queued",
            "reopened before redis requeued it"
        );
    }
    app.worker = Some(hangar_tests::spawn_worker(cfg));
    for id in &ids {
        let row = app.wait_record(id, "succeeded").await;
        assert_eq!(
            (row.attempts, row.deliveries),
            (1, 2),
            "fresh attempt budget, second delivery"
        );
    }
    app.shutdown().await;
}

fn outcome(id: &str, state: &str, attempts: i32, deliveries: i32) -> OutcomeRow {
    OutcomeRow {
        id: id.into(),
        state: state.into(),
        attempts,
        deliveries,
        result: None,
        error: None,
        progress: None,
        started_at: None,
        finished_at: None,
    }
}

#[tokio::test]
async fn records_keep_the_latest_outcome_and_never_reopen_on_a_stale_view() {
    let test_db = TestDb::create(&hangar_tests::postgres_admin_url()).await;
    let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
    let id = ulid::Ulid::new().to_string();
    let job = NewJobRun {
        id: id.clone(),
        kind: "system.noop".into(),
        queue: "sync".into(),
        payload: json!({}),
        max_attempts: 3,
        requested_by: None,
        request_id: None,
        idempotency_key: None,
        run_at: None,
        singleton_key: None,
        idempotency_scope: None,
        request_fingerprint: None,
    };
    db::insert_jobs(&pool, &[job]).await.unwrap();
    // A retry and its later success in one batch, newest first.
    let batch = [outcome(&id, "succeeded", 2, 2), outcome(&id, "retrying", 1, 1)];
    db::record_outcomes(&pool, &batch).await.unwrap();
    let row = db::get_job(&pool, &id).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("succeeded", 2));
    // A late outcome of an earlier delivery changes nothing.
    db::record_outcomes(&pool, &[outcome(&id, "retrying", 1, 1)])
        .await
        .unwrap();
    assert_eq!(db::get_job(&pool, &id).await.unwrap().unwrap().state, "succeeded");
    // Neither does a stale live view from Redis.
    let stale = JobState {
        id: id.clone(),
        kind: "system.noop".into(),
        status: JobStatus::Running,
        attempts: 1,
        max_attempts: 3,
        deliveries: 2,
        crashes: 0,
        max_crashes: 3,
        payload: json!({}),
        progress: None,
        result: None,
        last_error: None,
        errors: Vec::new(),
        worker: None,
        cancel_requested: false,
        idempotency_key: None,
        correlation_id: None,
        created_at: 0,
        run_at: None,
        started_at: None,
        finished_at: None,
        updated_at: None,
    };
    assert!(!db::sync_from_queue(&pool, &id, &stale).await.unwrap());
    assert_eq!(db::get_job(&pool, &id).await.unwrap().unwrap().state, "succeeded");
    pool.close().await;
}
