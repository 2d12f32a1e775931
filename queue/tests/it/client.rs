//! The client API against a real Redis: enqueue, idempotency, scheduling,
//! live state, cancellation and validation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::TestQueue;
use hangar_queue::{CancelOutcome, JobStatus, NewJob, QueueError};
use serde_json::json;

#[tokio::test]
async fn enqueue_records_the_job_and_its_state_reads_back() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("system.noop", json!({"n": 1})).max_attempts(3);
    let id = job.id.to_string();
    let out = t.queue.enqueue(job).await.unwrap();
    assert_eq!(out.id, id);
    assert!(!out.duplicate);

    let state = t.queue.state(&id).await.unwrap().expect("job exists");
    assert_eq!(state.status, JobStatus::Queued);
    assert_eq!(state.kind, "system.noop");
    assert_eq!(state.payload, json!({"n": 1}));
    assert_eq!((state.attempts, state.max_attempts, state.deliveries), (0, 3, 0));
    assert!(state.created_at > 0);
    assert_eq!(t.queue.counts().await.unwrap().ready, 1);
    assert!(t.queue.state("01NOPE").await.unwrap().is_none());
}

#[tokio::test]
async fn a_duplicate_idempotency_key_returns_the_first_job() {
    let t = TestQueue::new("sync").await;
    let first = t
        .queue
        .enqueue(NewJob::new("system.noop", json!({})).idempotency_key("sync-now-42"))
        .await
        .unwrap();
    let second = t
        .queue
        .enqueue(NewJob::new("system.noop", json!({})).idempotency_key("sync-now-42"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        second.duplicate,
        "second enqueue with the same key is reported as a duplicate"
    );
    assert_eq!(second.id, first.id);
    assert_eq!(t.queue.counts().await.unwrap().ready, 1, "nothing was added");

    // Same id twice is a duplicate too, and never overwrites the first job.
    let job = NewJob::new("system.noop", json!({"v": 1}));
    let again = NewJob::new("system.noop", json!({"v": 2})).with_id(job.id);
    t.queue.enqueue(job.clone()).await.unwrap();
    assert!(t.queue.enqueue(again).await.unwrap().duplicate);
    let state = t.queue.state(&job.id.to_string()).await.unwrap().unwrap();
    assert_eq!(state.payload, json!({"v": 1}));
}

#[tokio::test]
async fn a_batch_is_enqueued_in_order_with_duplicates_flagged() {
    let t = TestQueue::new("reports").await;
    let mut jobs: Vec<NewJob> = (0..1200)
        .map(|i| NewJob::new("system.noop", json!({"i": i})))
        .collect();
    jobs.push(NewJob::new("system.noop", json!({})).idempotency_key("k"));
    jobs.push(NewJob::new("system.noop", json!({})).idempotency_key("k"));
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    let out = t.queue.enqueue_batch(jobs).await.unwrap();
    assert_eq!(out.len(), 1202);
    for (o, id) in out.iter().zip(&ids).take(1201) {
        assert_eq!(&o.id, id);
        assert!(!o.duplicate);
    }
    assert!(out[1201].duplicate);
    assert_eq!(out[1201].id, ids[1200]);
    assert_eq!(t.queue.counts().await.unwrap().ready, 1201);
}

#[tokio::test]
async fn run_at_is_kept_to_the_millisecond_and_the_job_waits_until_due() {
    let t = TestQueue::new("sync").await;
    let at = SystemTime::now() + Duration::from_millis(400);
    let at_ms = at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let job = NewJob::new("system.noop", json!({})).run_at(at);
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let state = t.queue.state(&id).await.unwrap().unwrap();
    assert_eq!(state.status, JobStatus::Scheduled);
    assert_eq!(state.run_at, Some(at_ms));

    assert_eq!(t.queue.promote_due().await.unwrap().0, 0, "not due yet");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(t.queue.promote_due().await.unwrap().0, 1);
    assert_eq!(
        t.queue.state(&id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
}

#[tokio::test]
async fn cancelling_a_waiting_job_is_immediate_and_final() {
    let t = TestQueue::new("sync").await;
    let queued = NewJob::new("system.noop", json!({}));
    let later = NewJob::new("system.noop", json!({})).run_after(Duration::from_secs(60));
    let (qid, lid) = (queued.id.to_string(), later.id.to_string());
    t.queue.enqueue_batch(vec![queued, later]).await.unwrap();

    assert_eq!(t.queue.cancel(&qid).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(t.queue.cancel(&lid).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(
        t.queue.cancel(&qid).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobStatus::Cancelled)
    );
    assert_eq!(
        t.queue.cancel("01UNKNOWN").await.unwrap(),
        CancelOutcome::NotFound
    );
    let counts = t.queue.counts().await.unwrap();
    assert_eq!((counts.scheduled, counts.done), (0, 2));
    let state = t.queue.state(&qid).await.unwrap().unwrap();
    assert_eq!(state.status, JobStatus::Cancelled);
    assert!(state.finished_at.is_some());
}

#[tokio::test]
async fn invalid_jobs_and_queue_names_are_refused_with_the_reason() {
    let t = TestQueue::new("sync").await;
    let err = t.queue.enqueue(NewJob::new("", json!({}))).await.unwrap_err();
    assert!(
        matches!(err, QueueError::InvalidJob(ref m) if m.contains("kind")),
        "{err}"
    );
    let err = t
        .queue
        .enqueue(NewJob::new("k", json!({})).max_attempts(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_attempts"), "{err}");
    let err = hangar_queue::Queue::connect(
        &hangar_queue::RedisSettings::new(crate::common::redis_url()),
        "hangar",
        "Bad Name",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("Bad Name"), "{err}");
    assert_eq!(t.queue.counts().await.unwrap().ready, 0, "nothing was written");
}

#[tokio::test]
async fn redis_settings_that_can_lose_jobs_are_reported() {
    let redis =
        crate::common::OwnRedis::start_with(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let t = TestQueue::on(&redis.url(), "sync").await;
    let warnings = t.queue.server_warnings().await.unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("allkeys-lru") && warnings[0].contains("noeviction"));
    assert!(warnings[1].contains("appendonly yes"));
    let mut conn = t.conn().await;
    for (name, value) in [("maxmemory-policy", "noeviction"), ("appendonly", "yes")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert!(t.queue.server_warnings().await.unwrap().is_empty());
}
