//! Jobs run end to end through an apalis worker over the Hangar backend:
//! results, progress, wake-up pickup, retries and backoff, permanent errors,
//! undecodable payloads, panics, cancellation, concurrency, several queues.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::common::{TestQueue, eventually, fast_options};
use apalis_core::{
    error::{BoxDynError, RetryAfterError},
    task::data::Data,
};
use hangar_queue::{
    HangarBackend, JobContext, JobStatus, NewJob, Queue, RetryPolicies, RetryPolicy, WorkerOptions, defer,
    permanent,
};
use serde::Deserialize;
use serde_json::{Value, json};

async fn wait_status(q: &Queue, id: &str, status: JobStatus) -> hangar_queue::JobState {
    eventually(
        Duration::from_secs(15),
        &format!("job {id} reaches {status:?}"),
        || async { q.state(id).await.unwrap().filter(|s| s.status == status) },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

async fn add(args: Add, job: JobContext) -> Result<Value, BoxDynError> {
    job.set_progress(json!({"step": "adding"})).await?;
    Ok(json!({"sum": args.a + args.b, "attempt": job.attempt()}))
}

#[tokio::test]
async fn a_typed_handler_runs_and_its_result_and_progress_are_recorded() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("math.add", json!({"a": 2, "b": 40}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Add>::new(t.queue.clone(), fast_options()).unwrap(),
        add
    );
    let state = wait_status(&t.queue, &id, JobStatus::Succeeded).await;
    assert_eq!(state.result, Some(json!({"sum": 42, "attempt": 1})));
    assert_eq!(state.progress, Some(json!({"step": "adding"})));
    assert_eq!((state.attempts, state.deliveries, state.crashes), (1, 1, 0));
    assert_eq!(state.worker.as_deref(), Some(w.handle.worker_id().as_str()));
    assert!(state.finished_at >= state.started_at);
    assert_eq!(t.queue.counts().await.unwrap().running, 0, "lease released");
    w.stop().await.unwrap();
}

async fn noop(_: Value) -> Result<(), BoxDynError> {
    Ok(())
}

#[tokio::test]
async fn an_idle_worker_is_woken_by_an_enqueue_not_by_polling() {
    let t = TestQueue::new("sync").await;
    // With a 20 s idle wait, only the wake-up signal can explain a quick start.
    let options = WorkerOptions {
        idle_wait: Duration::from_secs(20),
        maintenance_interval: Duration::from_secs(20),
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        noop
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // let it go idle in BLPOP
    for _ in 0..3 {
        let job = NewJob::new("system.noop", json!({}));
        let id = job.id.to_string();
        let start = Instant::now();
        t.queue.enqueue(job).await.unwrap();
        wait_status(&t.queue, &id, JobStatus::Succeeded).await;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "picked up by wake-up, took {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.stop().await.unwrap();
}

#[derive(Clone, Default)]
struct Attempts(Arc<Mutex<Vec<Instant>>>);

async fn always_fails(_: Value, seen: Data<Attempts>) -> Result<(), BoxDynError> {
    seen.0.0.lock().unwrap().push(Instant::now());
    Err("upstream said 503".into())
}

#[tokio::test]
async fn retries_follow_the_kind_policy_then_the_job_goes_dead() {
    let policy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(200),
        cap: Duration::from_millis(500),
    };
    let t = TestQueue::new("sync").await;
    let queue = t
        .queue
        .clone()
        .with_policies(RetryPolicies::default().with("flaky", policy));
    let job = NewJob::new("flaky", json!({}));
    let id = job.id.to_string();
    queue.enqueue(job).await.unwrap();
    let seen = Attempts::default();
    let data = seen.clone();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(queue.clone(), fast_options()).unwrap(),
        always_fails,
        .data(data)
    );

    let state = wait_status(&queue, &id, JobStatus::Dead).await;
    assert_eq!(state.attempts, 4, "max_attempts honoured");
    assert_eq!(
        state.last_error.as_deref(),
        Some("failed after 4 attempts: upstream said 503")
    );
    assert_eq!(
        state.errors.len(),
        4,
        "each retry and the move to dead are recorded"
    );
    assert!(
        state
            .errors
            .iter()
            .all(|e| e.error.contains("upstream said 503") && e.at > 0)
    );
    let times = seen.0.lock().unwrap().clone();
    assert_eq!(times.len(), 4, "the handler ran exactly max_attempts times");
    // Full jitter: wait n is in [0, min(cap, base * 2^(n-1))]; allow the
    // maintenance interval (50 ms) plus scheduling slack on top.
    let slack = Duration::from_millis(250);
    for (n, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let ceiling = policy.ceiling(n as u32 + 1);
        assert!(
            gap <= ceiling + slack,
            "wait {} was {gap:?}, ceiling {ceiling:?}",
            n + 1
        );
    }
    assert_eq!(w.handle.stats().retried.load(Ordering::Relaxed), 3);
    assert_eq!(w.handle.stats().dead.load(Ordering::Relaxed), 1);
    w.stop().await.unwrap();
}

async fn bad_credentials(_: Value) -> Result<(), BoxDynError> {
    Err(permanent("AWS says: UnrecognizedClientException"))?
}

#[tokio::test]
async fn a_permanent_error_skips_retries() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("sync.workspaces", json!({})).max_attempts(5);
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        bad_credentials
    );
    let state = wait_status(&t.queue, &id, JobStatus::Dead).await;
    assert_eq!(state.attempts, 1);
    assert_eq!(
        state.last_error.as_deref(),
        Some("permanent failure: AWS says: UnrecognizedClientException")
    );
    w.stop().await.unwrap();
}

async fn retry_after(_: Value, job: JobContext) -> Result<(), BoxDynError> {
    if job.attempt() == 1 {
        return Err(RetryAfterError::new("rate limited", Duration::from_millis(300)).into());
    }
    Ok(())
}

async fn deferred_twice(_: Value, job: JobContext) -> Result<Value, BoxDynError> {
    if job.deliveries() <= 2 {
        return Err(defer("the model server is down", Duration::from_millis(200)).into());
    }
    Ok(json!({"attempt": job.attempt(), "deliveries": job.deliveries()}))
}

#[tokio::test]
async fn a_deferred_job_waits_without_using_an_attempt() {
    let t = TestQueue::new("inference").await;
    // One attempt only: a deferral that counted would kill it.
    let job = NewJob::new("inference.chat", json!({})).max_attempts(1);
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        deferred_twice
    );
    let waiting = wait_status(&t.queue, &id, JobStatus::Retrying).await;
    assert_eq!(waiting.attempts, 0, "not an attempt");
    assert!(
        waiting.errors.is_empty(),
        "no error history: {:?}",
        waiting.errors
    );
    assert_eq!(waiting.last_error.as_deref(), Some("the model server is down"));
    let done = wait_status(&t.queue, &id, JobStatus::Succeeded).await;
    assert_eq!(done.result, Some(json!({"attempt": 1, "deliveries": 3})));
    assert_eq!((done.attempts, done.deliveries), (1, 3));
    w.stop().await.unwrap();
}

#[tokio::test]
async fn a_closed_fetch_gate_leaves_jobs_queued_until_it_opens() {
    let t = TestQueue::new("inference").await;
    let (gate, rx) = tokio::sync::watch::channel(false);
    let options = WorkerOptions {
        gate: Some(rx),
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        noop
    );
    let job = NewJob::new("inference.chat", json!({}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = t.queue.state(&id).await.unwrap().unwrap();
    assert_eq!(
        (state.status, state.deliveries),
        (JobStatus::Queued, 0),
        "not leased while closed"
    );
    gate.send_replace(true);
    let done = wait_status(&t.queue, &id, JobStatus::Succeeded).await;
    assert_eq!(done.deliveries, 1);
    w.stop().await.unwrap();
}

#[tokio::test]
async fn a_retry_after_error_sets_the_wait() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("k", json!({}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        retry_after
    );
    let retrying = wait_status(&t.queue, &id, JobStatus::Retrying).await;
    let run_at = retrying.run_at.unwrap();
    let failed_at = retrying.errors[0].at;
    assert_eq!(run_at - failed_at, 300);
    let done = wait_status(&t.queue, &id, JobStatus::Succeeded).await;
    assert_eq!((done.attempts, done.deliveries), (2, 2));
    w.stop().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_payload_goes_to_dead_and_the_worker_carries_on() {
    let t = TestQueue::new("sync").await;
    let bad = NewJob::new("math.add", json!({"a": "two"}));
    let good = NewJob::new("math.add", json!({"a": 1, "b": 1}));
    let (bad_id, good_id) = (bad.id.to_string(), good.id.to_string());
    t.queue.enqueue_batch(vec![bad, good]).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Add>::new(t.queue.clone(), fast_options()).unwrap(),
        add
    );
    let dead = wait_status(&t.queue, &bad_id, JobStatus::Dead).await;
    assert!(dead.last_error.unwrap().contains("payload does not decode"));
    wait_status(&t.queue, &good_id, JobStatus::Succeeded).await;
    w.stop().await.unwrap();
}

async fn panics_once(_: Value, job: JobContext) -> Result<(), BoxDynError> {
    assert!(job.attempt() > 1, "first attempt blows up");
    Ok(())
}

#[tokio::test]
async fn a_panicking_handler_fails_the_attempt_not_the_worker() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("k", json!({}));
    let id = job.id.to_string();
    let queue = t.queue.clone().with_policies(RetryPolicies {
        default: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
        },
        ..RetryPolicies::default()
    });
    queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(queue.clone(), fast_options()).unwrap(),
        panics_once
    );
    let state = wait_status(&queue, &id, JobStatus::Succeeded).await;
    assert_eq!(state.attempts, 2);
    assert!(
        state.errors[0]
            .error
            .contains("handler panicked: first attempt blows up"),
        "{:?}",
        state.errors
    );
    assert_eq!(w.handle.stats().panics.load(Ordering::Relaxed), 1);
    w.stop().await.unwrap();
}

async fn until_cancelled(_: Value, job: JobContext) -> Result<(), BoxDynError> {
    tokio::select! {
        () = job.cancelled() => Err("stopped on request".into()),
        () = tokio::time::sleep(Duration::from_secs(30)) => Ok(()),
    }
}

#[tokio::test]
async fn a_running_job_observes_a_cancellation_request() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("k", json!({}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        until_cancelled
    );
    wait_status(&t.queue, &id, JobStatus::Running).await;
    assert_eq!(
        t.queue.cancel(&id).await.unwrap(),
        hangar_queue::CancelOutcome::CancelRequested
    );
    let state = wait_status(&t.queue, &id, JobStatus::Cancelled).await;
    assert!(state.cancel_requested);
    assert_eq!(state.attempts, 1);
    w.stop().await.unwrap();
}

#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

async fn measured(_: Value, g: Data<Gauge>) -> Result<(), BoxDynError> {
    let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(n, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    g.now.fetch_sub(1, Ordering::SeqCst);
    g.done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// A Monitor factory that hands out one prebuilt backend (Monitor calls the
/// factory again only to restart a worker, which these tests never ask for).
fn once(backend: HangarBackend<Value>) -> impl Fn() -> HangarBackend<Value> + Send + Sync + 'static {
    let slot = Mutex::new(Some(backend));
    move || {
        slot.lock()
            .unwrap()
            .take()
            .expect("worker restarted unexpectedly")
    }
}

#[tokio::test]
async fn one_process_serves_several_queues_each_with_its_own_concurrency() {
    let t = TestQueue::new("sync").await;
    let reports = t.sibling("reports").await;
    let jobs = |n| {
        (0..n)
            .map(|_| NewJob::new("system.noop", json!({})))
            .collect::<Vec<_>>()
    };
    t.queue.enqueue_batch(jobs(40)).await.unwrap();
    reports.enqueue_batch(jobs(40)).await.unwrap();
    let (g_sync, g_reports) = (Gauge::default(), Gauge::default());
    let sync_backend = once(
        HangarBackend::new(
            t.queue.clone(),
            WorkerOptions {
                concurrency: 3,
                ..fast_options()
            },
        )
        .unwrap(),
    );
    let reports_backend = once(
        HangarBackend::new(
            reports.clone(),
            WorkerOptions {
                concurrency: 7,
                ..fast_options()
            },
        )
        .unwrap(),
    );
    let (gs, gr) = (g_sync.clone(), g_reports.clone());
    let monitor = apalis_core::monitor::Monitor::new()
        .register(move |_| {
            apalis_core::worker::builder::WorkerBuilder::new("sync")
                .backend(sync_backend())
                .data(gs.clone())
                .build(measured)
        })
        .register(move |_| {
            apalis_core::worker::builder::WorkerBuilder::new("reports")
                .backend(reports_backend())
                .data(gr.clone())
                .build(measured)
        });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(monitor.run_with_signal(async move {
        let _ = rx.await;
        Ok(())
    }));
    eventually(Duration::from_secs(20), "80 jobs done", || async {
        (g_sync.done.load(Ordering::SeqCst) == 40 && g_reports.done.load(Ordering::SeqCst) == 40)
            .then_some(())
    })
    .await;
    assert_eq!(
        g_sync.max.load(Ordering::SeqCst),
        3,
        "sync ran at its concurrency, never above"
    );
    assert_eq!(
        g_reports.max.load(Ordering::SeqCst),
        7,
        "reports ran at its concurrency, never above"
    );
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

async fn echo_correlation(_: Value, job: JobContext) -> Result<Value, BoxDynError> {
    if job.attempt() == 1 {
        return Err("first attempt fails".into());
    }
    Ok(json!({"correlation": job.correlation_id()}))
}

#[tokio::test]
async fn recorded_outcomes_reach_the_sink_with_the_state_redis_recorded() {
    let t = TestQueue::new("sync").await;
    let queue = t.queue.clone().with_policies(RetryPolicies {
        default: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
        },
        ..RetryPolicies::default()
    });
    let job = NewJob::new("k", json!({})).correlation_id("req-123");
    let id = job.id.to_string();
    queue.enqueue(job).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let backend = HangarBackend::<Value>::new(queue.clone(), fast_options())
        .unwrap()
        .with_outcome_sink(tx);
    let w = spawn_worker!(backend, echo_correlation);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        seen.extend(batch);
    }
    assert_eq!(
        seen.iter()
            .map(|o| (o.status, o.attempt, o.deliveries))
            .collect::<Vec<_>>(),
        vec![(JobStatus::Retrying, 1, 1), (JobStatus::Succeeded, 2, 2)]
    );
    assert_eq!(seen[0].error.as_deref(), Some("first attempt fails"));
    assert_eq!(seen[1].result, Some(json!({"correlation": "req-123"})));
    assert!(
        seen.iter()
            .all(|o| o.id == id && o.started_at_ms > 0 && o.finished_at_ms >= o.started_at_ms)
    );
    assert_eq!(
        queue.state(&id).await.unwrap().unwrap().correlation_id.as_deref(),
        Some("req-123")
    );
    assert_eq!(
        queue.workers_alive(Duration::from_secs(10)).await.unwrap(),
        1,
        "the worker reported in"
    );
    w.stop().await.unwrap();
}
