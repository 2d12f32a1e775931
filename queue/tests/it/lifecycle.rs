//! Bursts, the dead set, retention and graceful shutdown.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::common::{TestQueue, eventually, fast_options};
use apalis_core::{error::BoxDynError, task::data::Data};
use hangar_queue::{HangarBackend, JobContext, JobStatus, NewJob, Retention, WorkerOptions, permanent};
use serde_json::{Value, json};

async fn noop(_: Value) -> Result<(), BoxDynError> {
    Ok(())
}

#[tokio::test]
async fn one_hundred_thousand_jobs_due_at_once_drain_without_error() {
    let t = TestQueue::new("sync").await;
    let due = std::time::SystemTime::now() + Duration::from_secs(6);
    for chunk in 0..20 {
        let jobs: Vec<NewJob> = (0..5000)
            .map(|i| NewJob::new("system.noop", json!({"i": chunk * 5000 + i})).run_at(due))
            .collect();
        t.queue.enqueue_batch(jobs).await.unwrap();
    }
    assert_eq!(t.queue.counts().await.unwrap().scheduled, 100_000);
    let until_due = due
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until_due + Duration::from_millis(100)).await;

    let options = WorkerOptions {
        concurrency: 100,
        fetch_batch: 100,
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        noop
    );
    eventually(Duration::from_secs(120), "100k jobs done", || async {
        let c = t.queue.counts().await.unwrap();
        (c.done == 100_000).then_some(())
    })
    .await;
    let c = t.queue.counts().await.unwrap();
    assert_eq!((c.ready, c.scheduled, c.running, c.dead), (0, 0, 0, 0));
    assert_eq!(w.handle.stats().succeeded.load(Ordering::Relaxed), 100_000);
    assert_eq!(w.handle.stats().redis_errors.load(Ordering::Relaxed), 0);
    w.stop().await.unwrap();
}

async fn fail_permanently(_: Value) -> Result<(), BoxDynError> {
    Err(permanent("invalid directory id"))?
}

#[tokio::test]
async fn dead_jobs_can_be_listed_inspected_requeued_and_deleted() {
    let t = TestQueue::new("sync").await;
    let jobs: Vec<NewJob> = (0..5).map(|i| NewJob::new("k", json!({"i": i}))).collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    t.queue.enqueue_batch(jobs).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        fail_permanently
    );
    eventually(Duration::from_secs(10), "5 dead", || async {
        (t.queue.counts().await.unwrap().dead == 5).then_some(())
    })
    .await;
    w.stop().await.unwrap();

    let page1 = t.queue.dead(None, 2).await.unwrap();
    let page2 = t.queue.dead(page1.next.as_ref(), 2).await.unwrap();
    let page3 = t.queue.dead(page2.next.as_ref(), 2).await.unwrap();
    assert_eq!((page1.total, page1.jobs.len(), page3.jobs.len()), (5, 2, 1));
    assert!(page3.next.is_none(), "the last page has no next cursor");
    // Keyset pages cover every dead job once, newest first.
    let mut seen: Vec<String> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.id.clone()))
        .collect();
    let finished: Vec<u64> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.finished_at.unwrap_or(0)))
        .collect();
    assert!(finished.windows(2).all(|w| w[0] >= w[1]), "{finished:?}");
    seen.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(seen, all);
    assert!(page1.jobs.iter().all(|j| j.status == JobStatus::Dead
        && j.last_error.as_deref() == Some("permanent failure: invalid directory id")));

    assert!(t.queue.requeue_dead(&ids[0]).await.unwrap());
    assert!(!t.queue.requeue_dead(&ids[0]).await.unwrap(), "no longer dead");
    let requeued = t.queue.state(&ids[0]).await.unwrap().unwrap();
    assert_eq!((requeued.status, requeued.attempts), (JobStatus::Queued, 0));
    assert_eq!(requeued.errors.len(), 1, "history is kept across a requeue");

    assert!(t.queue.delete_dead(&ids[1]).await.unwrap());
    assert!(t.queue.state(&ids[1]).await.unwrap().is_none());
    assert!(
        !t.queue.delete_dead(&ids[0]).await.unwrap(),
        "only dead jobs can be deleted"
    );

    assert_eq!(t.queue.requeue_all_dead().await.unwrap(), 3);
    let c = t.queue.counts().await.unwrap();
    assert_eq!((c.dead, c.ready), (0, 4));

    // They run again, now successfully.
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        noop
    );
    eventually(Duration::from_secs(10), "requeued jobs succeed", || async {
        (t.queue.counts().await.unwrap().done == 4).then_some(())
    })
    .await;
    w.stop().await.unwrap();
}

#[tokio::test]
async fn retention_trims_finished_jobs_by_count_and_age_in_bounded_steps() {
    let t = TestQueue::new("sync").await;
    let jobs: Vec<NewJob> = (0..2500).map(|_| NewJob::new("k", json!({}))).collect();
    let first = jobs[0].id.to_string();
    t.queue.enqueue_batch(jobs).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(
            t.queue.clone(),
            WorkerOptions {
                concurrency: 50,
                ..fast_options()
            }
        )
        .unwrap(),
        noop
    );
    eventually(Duration::from_secs(20), "2500 done", || async {
        (t.queue.counts().await.unwrap().done == 2500).then_some(())
    })
    .await;
    w.stop().await.unwrap();

    let by_count = Retention {
        done_max_count: 1000,
        min_age: Duration::ZERO,
        ..Retention::default()
    };
    let protected = Retention {
        done_max_count: 1000,
        ..Retention::default()
    };
    assert_eq!(
        t.queue.trim(&protected).await.unwrap(),
        0,
        "count limits spare jobs younger than min_age"
    );
    assert_eq!(t.queue.trim(&by_count).await.unwrap(), 1500, "two bounded steps");
    assert_eq!(t.queue.counts().await.unwrap().done, 1000);
    assert!(
        t.queue.state(&first).await.unwrap().is_none(),
        "oldest trimmed first"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let by_age = Retention {
        done_max_age: Duration::from_millis(10),
        ..Retention::default()
    };
    assert_eq!(t.queue.trim(&by_age).await.unwrap(), 1000);
    let mut conn = t.conn().await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*:job:*", t.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "no job record left behind: {}", left.len());
}

#[tokio::test]
async fn workers_apply_retention_on_their_own() {
    let t = TestQueue::new("sync").await;
    t.queue
        .enqueue_batch((0..30).map(|_| NewJob::new("k", json!({}))).collect())
        .await
        .unwrap();
    let options = WorkerOptions {
        retention: Retention {
            done_max_count: 10,
            min_age: Duration::ZERO,
            every: Duration::from_millis(100),
            ..Retention::default()
        },
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        noop
    );
    // Settled: all 30 ran, retention kept the newest 10 and deleted 20.
    eventually(Duration::from_secs(10), "done trimmed to 10", || async {
        let c = t.queue.counts().await.unwrap();
        let trimmed = w.handle.stats().trimmed.load(Ordering::Relaxed);
        (c.done == 10 && c.ready == 0 && c.running == 0 && trimmed == 20).then_some(())
    })
    .await;
    assert_eq!(w.handle.stats().succeeded.load(Ordering::Relaxed), 30);
    w.stop().await.unwrap();
}

#[derive(Clone, Default)]
struct Started(Arc<AtomicUsize>);

async fn slow(_: Value, s: Data<Started>) -> Result<(), BoxDynError> {
    s.0.0.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_finishes_running_jobs_and_returns_unstarted_ones() {
    let t = TestQueue::new("sync").await;
    let jobs: Vec<NewJob> = (0..10).map(|_| NewJob::new("k", json!({}))).collect();
    t.queue.enqueue_batch(jobs).await.unwrap();
    let started = Started::default();
    // The backend claims 4 at a time, but a user concurrency layer of 1 lets
    // only one start: the other three are fetched but unstarted.
    let data = started.clone();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(
            t.queue.clone(),
            WorkerOptions {
                concurrency: 4,
                ..fast_options()
            }
        )
        .unwrap(),
        slow,
        .data(data).layer(tower::limit::ConcurrencyLimitLayer::new(1))
    );
    let handle = w.handle.clone();
    eventually(Duration::from_secs(5), "one started and four held", || async {
        (started.0.load(Ordering::SeqCst) == 1 && handle.held() == 4).then_some(())
    })
    .await;
    w.stop().await.unwrap();

    let c = t.queue.counts().await.unwrap();
    assert_eq!(
        started.0.load(Ordering::SeqCst),
        1,
        "no new job started after the stop"
    );
    assert_eq!(
        (c.done, c.running, c.ready),
        (1, 0, 9),
        "the running job finished; the rest wait"
    );
    assert_eq!(handle.held(), 0);
    // Unstarted jobs were given back without counting a delivery.
    let mut conn = t.conn().await;
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(t.queue.keys().part("ready"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in ids {
        let s = t.queue.state(&id).await.unwrap().unwrap();
        assert_eq!((s.status, s.deliveries), (JobStatus::Queued, 0), "{id}");
    }
}

async fn forever(_: Value, job: JobContext) -> Result<(), BoxDynError> {
    job.cancelled().await;
    Err("interrupted by shutdown".into())
}

#[tokio::test]
async fn past_the_drain_deadline_held_jobs_are_released_for_other_workers() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("k", json!({}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), fast_options()).unwrap(),
        forever
    );
    eventually(Duration::from_secs(5), "running", || async {
        t.queue
            .state(&id)
            .await
            .unwrap()
            .filter(|s| s.status == JobStatus::Running)
    })
    .await;
    // Stop: the worker stops fetching and waits for its running job...
    let mut w = w;
    let _ = w.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...the supervisor's drain deadline passes: give the job back now
    // instead of letting its lease expire, and tell the handler to stop.
    assert_eq!(w.handle.release_held().await.unwrap(), 1);
    let s = t.queue.state(&id).await.unwrap().unwrap();
    assert_eq!((s.status, s.deliveries, s.crashes), (JobStatus::Queued, 1, 0));
    tokio::time::timeout(Duration::from_secs(10), w.join)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The interrupted handler's late outcome is stale and changes nothing.
    let s = t.queue.state(&id).await.unwrap().unwrap();
    assert_eq!((s.status, s.attempts), (JobStatus::Queued, 0));
    assert_eq!(w.handle.stats().stale_outcomes.load(Ordering::Relaxed), 1);
}
