//! `GET /api/v1/jobs/{id}/explain`, one test per situation, each created for
//! real: workers busy or absent, a model down, a sync target's lock held,
//! AWS calls paced, Redis losing the job, a job failing for good.

use std::time::{Duration, Instant};

use chrono::Timelike;

use hangar_tests::{
    JobStatus, OwnRedis, TestApp,
    fake_model::{FakeModel, Script},
    llama::models_file,
    moto::Moto,
};
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");

async fn explain(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/jobs/{id}/explain")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asks until the explanation's reason is `reason` (the situation takes a
/// moment to arise), then returns it.
async fn explain_until(app: &TestApp, id: &str, reason: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let body = explain(app, id).await;
        if body["reason"] == reason {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "no {reason} within {within:?}; last: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_job_is_explained_behind_others_then_running_then_succeeded() {
    let app = TestApp::builder().without_worker().spawn().await;
    let _worker = app.worker_process(WORKER, "sync=1", &[]);
    // Some jobs finish first, so the queue has a pace to estimate from.
    for _ in 0..4 {
        let id = app.enqueue(json!({"kind": "system.noop"})).await;
        app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(30))
            .await;
    }
    let sleeper = app
        .enqueue(json!({"kind": "system.sleep", "payload": {"ms": 6000, "steps": 6}}))
        .await;
    app.wait_state(&sleeper, JobStatus::Running, Duration::from_secs(30))
        .await;
    let first = app.enqueue(json!({"kind": "system.noop"})).await;
    let second = app.enqueue(json!({"kind": "system.noop"})).await;

    let e = explain(&app, &second).await;
    assert_eq!(e["reason"], "queued_behind", "{e:#}");
    assert_eq!(e["state"], "queued");
    assert_eq!(e["facts"]["position"], 1, "{first} is ahead: {e:#}");
    assert_eq!(e["facts"]["workers_alive"], 1);
    let pace = e["facts"]["drain_per_minute"].as_f64().unwrap();
    assert!(
        (0.7..=1.0).contains(&pace),
        "4 jobs in the 5-minute window: {pace}"
    );
    assert!(e["facts"]["estimated_start"].is_string(), "{e:#}");
    let sentence = e["explanation"].as_str().unwrap();
    assert!(
        sentence.starts_with("Queued behind 1 job(s) on sync with 1 worker(s)"),
        "{sentence}"
    );
    assert!(
        sentence.contains("finished 4 jobs in the last 5 minutes"),
        "{sentence}"
    );

    let e = explain_until(&app, &sleeper, "running", Duration::from_secs(5)).await;
    assert_eq!(e["facts"]["attempt"], 1);
    assert!(
        e["facts"]["worker"].is_string() && e["facts"]["started_at"].is_string(),
        "{e:#}"
    );
    assert!(
        e["explanation"].as_str().unwrap().contains("(attempt 1 of"),
        "{e:#}"
    );

    app.wait_state(&second, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    let e = explain(&app, &second).await;
    assert_eq!(e["reason"], "succeeded", "{e:#}");
    assert!(e["facts"]["finished_at"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn with_no_worker_for_its_queue_the_explanation_says_so_and_what_to_start() {
    let app = TestApp::builder().without_worker().spawn().await;
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    let e = explain(&app, &id).await;
    assert_eq!(e["reason"], "no_worker", "{e:#}");
    assert_eq!(e["facts"]["workers_alive"], 0);
    assert!(
        e["facts"].get("last_worker_seen_at").is_none(),
        "none ever reported: {e:#}"
    );
    let sentence = e["explanation"].as_str().unwrap();
    assert!(sentence.contains("no worker has ever reported in"), "{sentence}");
    assert!(sentence.contains("HANGAR_QUEUES includes sync"), "{sentence}");

    // A worker reported in two minutes ago, then nothing: since when.
    let two_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(2);
    let mut conn = redis::Client::open(app.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{}:{{sync}}:workers", app.prefix))
        .arg(two_minutes_ago.timestamp_millis())
        .arg("worker-gone")
        .query_async(&mut conn)
        .await
        .unwrap();
    let e = explain(&app, &id).await;
    assert_eq!(e["reason"], "no_worker", "{e:#}");
    let seen: chrono::DateTime<chrono::Utc> = e["facts"]["last_worker_seen_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(seen.timestamp_millis(), two_minutes_ago.timestamp_millis());
    assert!(
        e["explanation"]
            .as_str()
            .unwrap()
            .contains("none has reported in since"),
        "{e:#}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_scheduled_job_says_when_and_a_cancelled_one_says_so() {
    let app = TestApp::builder().without_worker().spawn().await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .with_nanosecond(0)
        .unwrap();
    let id = app
        .enqueue(json!({"kind": "system.noop", "run_at": at.to_rfc3339()}))
        .await;
    let e = explain(&app, &id).await;
    assert_eq!(e["reason"], "scheduled", "{e:#}");
    let run_at: chrono::DateTime<chrono::Utc> = e["facts"]["run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(run_at, at);
    assert!(
        e["explanation"].as_str().unwrap().contains(&at.to_rfc3339()),
        "{e:#}"
    );

    let (status, body) = app.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await;
    assert!(status < 300, "{status} {body}");
    let e = explain(&app, &id).await;
    assert_eq!(e["reason"], "cancelled", "{e:#}");
    assert_eq!(e["state"], "cancelled");
    app.shutdown().await;
}

#[tokio::test]
async fn a_dead_job_says_why_and_how_to_retry() {
    let app = TestApp::builder().without_worker().spawn().await;
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    hangar_tests::kill_jobs(&app, std::slice::from_ref(&id)).await;
    let e = explain(&app, &id).await;
    assert_eq!(e["reason"], "dead", "{e:#}");
    let sentence = e["explanation"].as_str().unwrap();
    assert!(sentence.contains("failed permanently"), "{sentence}");
    assert!(sentence.contains("simulated bad credentials"), "{sentence}");
    assert!(
        sentence.contains(&format!("POST /api/v1/jobs/{id}/retry")),
        "{sentence}"
    );
    assert!(
        e["facts"]["last_error"]
            .as_str()
            .unwrap()
            .contains("simulated bad credentials"),
        "{e:#}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_job_redis_lost_is_explained_with_when_the_repair_loop_dispatches_it() {
    let redis = OwnRedis::start();
    let app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .env("HANGAR_REPAIR_INTERVAL_SECS", "60")
        .env("HANGAR_REPAIR_MIN_AGE_SECS", "30")
        .spawn()
        .await;
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    redis.flush_all().await;
    let e = explain(&app, &id).await;
    assert_eq!(e["reason"], "not_in_redis", "{e:#}");
    assert_eq!(e["facts"]["recorded_state"], "queued");
    // Under 30 s old: the loop takes it once it is 30 s old, at its next pass.
    let within = e["facts"]["repair_within_seconds"].as_u64().unwrap();
    assert!((60..=90).contains(&within), "{within}");
    assert!(e["explanation"].as_str().unwrap().contains("repair loop"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_sync_backing_off_names_its_error_and_one_behind_its_targets_lock_names_the_holder() {
    let moto = Moto::start().await;
    let app = super::sync::app_with(&[]).await;
    let _worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    moto.fault(
        json!({"operation": "DescribeWorkspaceDirectories", "times": 1000, "status": 503,
                      "code": "ServiceUnavailable", "message": "try later"}),
    )
    .await;
    let id = super::sync::start_sync(
        &app,
        "workspaces",
        json!({"account": "main", "region": "us-east-1"}),
    )
    .await;
    let e = explain_until(&app, &id, "retry_backoff", Duration::from_secs(60)).await;
    assert_eq!(e["state"], "retrying");
    assert_eq!(
        (
            e["facts"]["attempt"].as_u64(),
            e["facts"]["max_attempts"].as_u64()
        ),
        (Some(1), Some(5))
    );
    assert!(e["facts"]["run_at"].is_string());
    let sentence = e["explanation"].as_str().unwrap();
    assert!(
        sentence.starts_with("Attempt 1 of 5 failed; the next starts at"),
        "{sentence}"
    );
    assert!(
        sentence.contains("ServiceUnavailable"),
        "the last error: {sentence}"
    );

    // Another job (a stalled delivery, say) holds the target's lock when
    // the next attempt comes: the job waits for it.
    moto.clear_faults().await;
    let cfg = app.config();
    let holder = ulid::Ulid::new().to_string();
    let lock = hangar_queue::LeaseLock::new(
        cfg.redis_settings().connect().await.unwrap(),
        &app.prefix,
        "sync.workspaces:main:us-east-1",
        &holder,
        1,
        Duration::from_secs(120),
    );
    assert_eq!(
        lock.try_acquire().await.unwrap(),
        hangar_queue::LockOutcome::Acquired
    );
    // The second attempt (15 s backoff) finds the lock taken.
    let e = explain_until(&app, &id, "singleton_busy", Duration::from_secs(60)).await;
    assert_eq!(e["facts"]["holder_job_id"], holder.as_str(), "{e:#}");
    assert_eq!(e["facts"]["lock"], "sync.workspaces:main:us-east-1");
    assert!(
        e["explanation"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Waiting for job {holder}"))
    );
    lock.release().await.unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn a_sync_paced_by_the_aws_rate_limiter_is_explained_as_rate_limited() {
    let moto = Moto::start().await;
    moto.post(
        "seed/workspaces",
        json!({"directories": 1, "workspaces": 200, "bundles": 1, "tags_per_workspace": 1}),
    )
    .await;
    let app = super::sync::app_with(&[]).await;
    let mut env = moto.aws_env();
    env.push(("HANGAR_AWS_RATES".into(), "workspaces=2/s burst 1".into()));
    let _worker = app.worker_process(WORKER, "sync=1", &env);
    let id = super::sync::start_sync(
        &app,
        "workspaces",
        json!({"account": "main", "region": "us-east-1"}),
    )
    .await;
    let e = explain_until(&app, &id, "rate_limited", Duration::from_secs(60)).await;
    assert_eq!(e["state"], "running");
    assert!(
        e["facts"]["rate_limit_wait_ms"].as_f64().unwrap() > 500.0,
        "{e:#}"
    );
    assert!(e["explanation"].as_str().unwrap().contains("HANGAR_AWS_RATES"));
    let (status, body) = app.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await;
    assert!(status < 300, "{status} {body}");
    app.wait_state(&id, JobStatus::Cancelled, Duration::from_secs(60))
        .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_inference_job_waits_for_its_model_and_then_for_a_free_slot() {
    // One model whose server is down, one that answers slowly with one slot.
    let slow = FakeModel::start(Script::Stream {
        tokens: 40,
        delay: Duration::from_millis(100),
    })
    .await;
    let file = models_file(&[
        ("down", "http://127.0.0.1:9", "context_size = 512"),
        (
            "single",
            &slow.url,
            "context_size = 512\nmax_in_flight = 1\nmax_tokens_cap = 64",
        ),
    ]);
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_MODELS_FILE", file.to_str().unwrap()),
            ("HANGAR_MODEL_PROBE_SECS", "1"),
        ])
        .spawn()
        .await;
    let _worker = app.worker_process(WORKER, "inference=2", &[]);
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40});

    let (status, body) = app.post("/api/v1/inference/chat", chat("down")).await;
    assert_eq!(status, 202, "{body}");
    let waiting = body["job"]["id"].as_str().unwrap().to_owned();
    let e = explain_until(&app, &waiting, "waiting_for_model", Duration::from_secs(30)).await;
    assert_eq!(e["facts"]["model"], "down");
    assert_eq!(e["facts"]["model_health"]["ready"], false, "{e:#}");
    assert!(
        e["explanation"].as_str().unwrap().contains("for model down"),
        "{e:#}"
    );

    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = app.post("/api/v1/inference/chat", chat("single")).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["job"]["id"].as_str().unwrap().to_owned());
    }
    // One of the two holds the only slot; the other waits for it.
    let started = Instant::now();
    let e = loop {
        let mut found = None;
        for id in &ids {
            let e = explain(&app, id).await;
            if e["reason"] == "waiting_for_slot" {
                found = Some(e);
            }
        }
        if let Some(e) = found {
            break e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no job waited for a slot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(e["state"], "running");
    assert_eq!(e["facts"]["model"], "single");
    assert!(
        e["explanation"]
            .as_str()
            .unwrap()
            .contains("waiting for a free slot")
    );
    for id in &ids {
        app.wait_state(id, JobStatus::Succeeded, Duration::from_secs(60))
            .await;
    }
    app.shutdown().await;
}
