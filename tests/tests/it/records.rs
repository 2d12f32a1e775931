//! `job_runs` stays true to what happened: requeued dead jobs, several
//! outcomes of one job in a batch, stale views of finished jobs.

use hangar_queue::{JobState, JobStatus};
use hangar_shared::db::{self, Inserted, NewJobRun, OutcomeRow};
use hangar_tests::{TestApp, TestDb};
use serde_json::{Value, json};

#[tokio::test]
async fn requeue_all_reopens_the_records_and_the_new_outcomes_land() {
    let mut app = TestApp::builder().without_worker().spawn().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(app.enqueue(json!({"kind": "system.noop"})).await);
    }
    // A worker whose handler fails permanently, persisting outcomes like hangar-worker does.
    hangar_tests::kill_jobs(&app, &ids).await;
    for id in &ids {
        assert_eq!(app.record(id).await.attempts, 1);
    }

    // The dead list pages by keyset and shows RFC 3339 times, like every list.
    let (status, first) = app.get("/api/v1/queues/sync/dead?limit=1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["total"], 2);
    let job = &first["jobs"][0];
    for time in [&job["created_at"], &job["finished_at"], &job["errors"][0]["at"]] {
        let text = time.as_str().unwrap_or_else(|| panic!("not a string: {job}"));
        chrono::DateTime::parse_from_rfc3339(text).unwrap();
    }
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, second) = app
        .get(&format!("/api/v1/queues/sync/dead?limit=1&cursor={cursor}"))
        .await;
    assert!(second["next_cursor"].is_null(), "{second}");
    let mut listed = vec![
        first["jobs"][0]["id"].as_str().unwrap().to_owned(),
        second["jobs"][0]["id"].as_str().unwrap().to_owned(),
    ];
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let (status, refused) = app.get("/api/v1/queues/sync/dead?offset=1").await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (422, Some("offset"))
    );

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
            JobStatus::Queued,
            "reopened before redis requeued it"
        );
    }
    app.worker = Some(hangar_tests::spawn_worker(app.config()));
    for id in &ids {
        let row = app.wait_record(id, JobStatus::Succeeded).await;
        assert_eq!(
            (row.attempts, row.deliveries),
            (1, 2),
            "fresh attempt budget, second delivery"
        );
    }
    app.shutdown().await;
}

fn outcome(id: &str, state: JobStatus, attempts: i32, deliveries: i32) -> OutcomeRow {
    OutcomeRow {
        id: id.into(),
        state,
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
    let noop = hangar_shared::kinds::kind("system.noop").unwrap();
    let job = NewJobRun::new(noop, json!({})).id(id.clone());
    db::insert_jobs(&pool, &[job]).await.unwrap();
    // A retry and its later success in one batch, newest first.
    let batch = [
        outcome(&id, JobStatus::Succeeded, 2, 2),
        outcome(&id, JobStatus::Retrying, 1, 1),
    ];
    db::record_outcomes(&pool, &batch).await.unwrap();
    let row = db::get_job(&pool, &id).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("succeeded", 2));
    // A late outcome of an earlier delivery changes nothing.
    db::record_outcomes(&pool, &[outcome(&id, JobStatus::Retrying, 1, 1)])
        .await
        .unwrap();
    assert_eq!(
        db::get_job(&pool, &id).await.unwrap().unwrap().state,
        JobStatus::Succeeded
    );
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
        traceparent: None,
        created_at: 0,
        run_at: None,
        started_at: None,
        finished_at: None,
        updated_at: None,
    };
    assert!(!db::sync_from_queue(&pool, &id, &stale).await.unwrap());
    assert_eq!(
        db::get_job(&pool, &id).await.unwrap().unwrap().state,
        JobStatus::Succeeded
    );
    pool.close().await;
}

fn sync_job(run_at: Option<chrono::DateTime<chrono::Utc>>, idempotency_key: Option<&str>) -> NewJobRun {
    let kind = hangar_shared::kinds::kind("sync.workspaces").unwrap();
    let job = NewJobRun::new(kind, json!({"account": "prod", "region": "us-east-1"})).run_at(run_at);
    assert_eq!(
        job.singleton_key.as_deref(),
        Some("sync.workspaces:prod:us-east-1")
    );
    match idempotency_key {
        Some(key) => job.idempotency(None, key),
        None => job,
    }
}

/// Issue 13, 3, as the scheduler meets it: a job recorded for a later time
/// holds the one-open-sync slot only until a job wanted sooner arrives (a
/// tick with its jitter, a "sync now"), which takes it.
#[tokio::test]
async fn a_job_wanted_sooner_takes_the_sync_slot_from_one_wanted_later() {
    let test_db = TestDb::create(&hangar_tests::postgres_admin_url()).await;
    let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
    let now = chrono::Utc::now();
    let far = sync_job(Some(now + chrono::Duration::days(20)), None);
    let Inserted::New(far_row) = db::insert_jobs(&pool, &[far]).await.unwrap().remove(0) else {
        panic!("the first job is new");
    };
    // A scheduler tick with 30 s of jitter: sooner, so it takes the slot.
    let tick = sync_job(
        Some(now + chrono::Duration::seconds(30)),
        Some("schedule:hourly:1"),
    );
    let Inserted::New(tick_row) = db::insert_jobs(&pool, &[tick]).await.unwrap().remove(0) else {
        panic!("the tick was skipped for a job 20 days away");
    };
    let far_now = db::get_job(&pool, &far_row.id).await.unwrap().unwrap();
    assert_eq!(
        (far_now.state.as_str(), far_now.singleton_key),
        ("scheduled", None)
    );
    // A later job does not take it back; one wanted now does.
    let later = sync_job(Some(now + chrono::Duration::days(1)), None);
    match db::insert_jobs(&pool, &[later]).await.unwrap().remove(0) {
        Inserted::Existing(r) => assert_eq!(r.id, tick_row.id),
        other => panic!("{other:?}"),
    }
    let wanted_now = sync_job(None, None);
    assert!(matches!(
        db::insert_jobs(&pool, &[wanted_now]).await.unwrap().remove(0),
        Inserted::New(_)
    ));
    // In one batch, the sooner job wins whatever its place.
    let (a, b) = (
        sync_job(Some(now + chrono::Duration::days(2)), None),
        sync_job(Some(now - chrono::Duration::seconds(1)), None),
    );
    let sql = "UPDATE job_runs SET state = 'succeeded' WHERE singleton_key IS NOT NULL";
    sqlx::query(sql).execute(&pool).await.unwrap();
    let results = db::insert_jobs(&pool, &[a, b.clone()]).await.unwrap();
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM job_runs WHERE singleton_key IS NOT NULL AND state IN ('scheduled', 'queued')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(open, std::slice::from_ref(&b.id), "{results:?}");
    pool.close().await;
}

/// The API's sessions plan each statement for its parameters: the lists'
/// optional filters (`$n IS NULL OR column = $n`) would otherwise get a
/// generic plan after five executions, a whole-table scan (bench/console.sh
/// measured 1.4 ms becoming 200-410 ms on 1,000,000 jobs). The other pools
/// keep PostgreSQL's default: the worker's batched updates are planned once.
#[tokio::test]
async fn api_sessions_plan_each_statement_for_its_parameters_and_other_pools_do_not() {
    use hangar_shared::db::{Planning, pool_with};
    let app = TestApp::builder().without_worker().spawn().await;
    for (planning, want) in [
        (Planning::ForEachExecution, "force_custom_plan"),
        (Planning::Cached, "auto"),
    ] {
        let pool = pool_with(&app.config().database, planning).unwrap();
        for _ in 0..3 {
            let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(mode, want, "{planning:?}");
        }
        pool.close().await;
    }
    app.shutdown().await;
}
