//! Faults lose nothing: a worker killed with -9, a job that aborts its worker
//! every time, a worker whose thread is blocked, a frozen worker that wakes up
//! late, and Redis restarting under a running worker.

use std::{
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::common::{OwnRedis, TestQueue, eventually, fast_options};
use apalis_core::{error::BoxDynError, task::data::Data};
use hangar_queue::{HangarBackend, JobContext, JobStatus, NewJob, Queue, WorkerOptions};
use serde_json::{Value, json};

const LEASE_MS: u64 = 1000;

fn fixture_worker(t: &TestQueue) -> Child {
    Command::new(env!("CARGO_BIN_EXE_queue-fixture-worker"))
        .env("FIXTURE_REDIS_URL", crate::common::redis_url())
        .env("FIXTURE_PREFIX", &t.prefix)
        .env("FIXTURE_QUEUE", t.queue.name().as_str())
        .env("FIXTURE_LEASE_MS", LEASE_MS.to_string())
        .spawn()
        .expect("fixture worker starts")
}

async fn runs_of(t: &TestQueue, id: &str) -> Vec<String> {
    fixture_log(t, "runs", id).await
}

async fn fixture_log(t: &TestQueue, log: &str, id: &str) -> Vec<String> {
    let mut conn = t.conn().await;
    redis::cmd("LRANGE")
        .arg(format!("{}:fixture:{log}:{id}", t.prefix))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn wait_status(q: &Queue, id: &str, status: JobStatus) -> hangar_queue::JobState {
    eventually(
        Duration::from_secs(20),
        &format!("job {id} reaches {status:?}"),
        || async { q.state(id).await.unwrap().filter(|s| s.status == status) },
    )
    .await
}

async fn report_worker(_: Value, job: JobContext) -> Result<Value, BoxDynError> {
    Ok(json!({"worker": job.worker().as_str()}))
}

async fn sleep_and_report(args: Value, job: JobContext) -> Result<Value, BoxDynError> {
    let ms = args["ms"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({"worker": job.worker().as_str()}))
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_with_sigkill_completes_on_another_once() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("fixture.sleep", json!({"ms": 60_000}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();

    let mut victim = fixture_worker(&t);
    let running = wait_status(&t.queue, &id, JobStatus::Running).await;
    let victim_identity = running.worker.clone().unwrap();
    assert!(
        victim_identity.contains(&format!(":{}:", victim.id())),
        "the fixture process holds it"
    );
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();

    let options = WorkerOptions {
        lease: Duration::from_millis(LEASE_MS),
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        report_worker
    );
    let done = wait_status(&t.queue, &id, JobStatus::Succeeded).await;
    let rescuer = w.handle.worker_id().as_str().to_owned();
    assert_eq!(done.result, Some(json!({"worker": rescuer})));
    assert_eq!(done.attempts, 1, "exactly one outcome recorded");
    assert_eq!((done.deliveries, done.crashes), (2, 1));
    assert!(
        done.errors[0].error.contains(&victim_identity),
        "{:?}",
        done.errors
    );
    assert_eq!(
        runs_of(&t, &id).await,
        vec![victim_identity],
        "the victim ran it once before dying"
    );
    assert_eq!(w.handle.stats().succeeded.load(Ordering::Relaxed), 1);
    w.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_that_aborts_its_worker_every_time_ends_in_dead() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("fixture.abort", json!({})).max_crashes(3);
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    for round in 1..=3u32 {
        let mut child = fixture_worker(&t);
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(!status.success(), "round {round}: the worker aborted");
        // The crashed delivery's lease expires; reaping puts it back (or in dead).
        let expect = if round < 3 {
            JobStatus::Queued
        } else {
            JobStatus::Dead
        };
        eventually(Duration::from_secs(10), "lease expiry handled", || async {
            t.queue.reap_expired().await.unwrap();
            t.queue.state(&id).await.unwrap().filter(|s| s.status == expect)
        })
        .await;
    }
    let state = t.queue.state(&id).await.unwrap().unwrap();
    assert_eq!(state.last_error.as_deref(), Some("crashed its worker 3 times"));
    assert_eq!((state.deliveries, state.crashes, state.attempts), (3, 3, 0));
    assert_eq!(runs_of(&t, &id).await.len(), 3);
    let dead = t.queue.dead(None, 10).await.unwrap();
    assert_eq!(dead.total, 1);
    assert_eq!(dead.jobs[0].id, id);
}

#[derive(Clone, Default)]
struct Overlap {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

/// Blocks its OS thread (no .await) for three lease lengths.
async fn blocks_its_thread(_: Value, o: Data<Overlap>) -> Result<(), BoxDynError> {
    let n = o.now.fetch_add(1, Ordering::SeqCst) + 1;
    o.max.fetch_max(n, Ordering::SeqCst);
    o.runs.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(3 * LEASE_MS));
    o.now.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn a_blocked_worker_thread_keeps_its_lease_and_no_one_else_runs_the_job() {
    let overlap = Overlap::default();
    let (t, id) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let t = TestQueue::new("sync").await;
        let job = NewJob::new("k", json!({}));
        let id = job.id.to_string();
        t.queue.enqueue(job).await.unwrap();
        (t, id)
    });
    let options = WorkerOptions {
        lease: Duration::from_millis(LEASE_MS),
        heartbeat: Duration::from_millis(200),
        ..fast_options()
    };
    // Two workers, each on a single-threaded runtime its handler can block.
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let (queue, options, overlap) = (t.queue.clone(), options.clone(), overlap.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let queue = queue.reconnect().await.unwrap();
                    let backend = HangarBackend::<Value>::new(queue, options).unwrap();
                    let worker = apalis_core::worker::builder::WorkerBuilder::new(format!("w{i}"))
                        .backend(backend)
                        .data(overlap)
                        .build(blocks_its_thread);
                    let _ = worker
                        .run_until(async {
                            tokio::time::sleep(Duration::from_millis(6 * LEASE_MS)).await;
                            Ok::<(), apalis_core::error::WorkerError>(())
                        })
                        .await;
                });
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(overlap.max.load(Ordering::SeqCst), 1, "never two at once");
    assert_eq!(
        overlap.runs.load(Ordering::SeqCst),
        1,
        "the lease never lapsed, so nobody ran it again"
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let queue = t.queue.reconnect().await.unwrap();
        let state = queue.state(&id).await.unwrap().unwrap();
        assert_eq!(state.status, JobStatus::Succeeded);
        assert_eq!((state.deliveries, state.crashes), (1, 0));
    });
}

#[tokio::test]
async fn a_frozen_worker_that_wakes_late_cannot_record_a_second_outcome() {
    let t = TestQueue::new("sync").await;
    let job = NewJob::new("fixture.sleep", json!({"ms": 2 * LEASE_MS}));
    let id = job.id.to_string();
    t.queue.enqueue(job).await.unwrap();
    let mut frozen = fixture_worker(&t);
    wait_status(&t.queue, &id, JobStatus::Running).await;
    let stop = |sig: &str, pid: u32| {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    stop("-STOP", frozen.id());

    let options = WorkerOptions {
        lease: Duration::from_millis(LEASE_MS),
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        sleep_and_report
    );
    let done = wait_status(&t.queue, &id, JobStatus::Succeeded).await;
    let rescuer = json!({"worker": w.handle.worker_id().as_str()});
    assert_eq!(done.result, Some(rescuer.clone()));

    // Thaw the first worker: its handler finishes and tries to record success.
    stop("-CONT", frozen.id());
    eventually(
        Duration::from_secs(10),
        "the thawed worker's handler returned",
        || async { (fixture_log(&t, "finished", &id).await.len() == 1).then_some(()) },
    )
    .await;
    // Its outcome goes to Redis right after the handler returns.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = t.queue.state(&id).await.unwrap().unwrap();
    assert_eq!(after.result, Some(rescuer), "the stale outcome was ignored");
    assert_eq!((after.attempts, after.deliveries), (1, 2));
    frozen.kill().unwrap();
    frozen.wait().unwrap();
    w.stop().await.unwrap();
}

#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

async fn count(_: Value, c: Data<Count>) -> Result<(), BoxDynError> {
    c.0.0.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(())
}

#[tokio::test]
async fn redis_restarting_mid_run_loses_no_job_and_the_worker_resumes() {
    let mut redis = OwnRedis::start();
    let t = TestQueue::on(&redis.url(), "sync").await;
    let first: Vec<NewJob> = (0..500).map(|_| NewJob::new("k", json!({}))).collect();
    let mut ids: Vec<String> = first.iter().map(|j| j.id.to_string()).collect();
    t.queue.enqueue_batch(first).await.unwrap();

    let counter = Count::default();
    let data = counter.clone();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(
            t.queue.clone(),
            WorkerOptions {
                concurrency: 2,
                ..fast_options()
            }
        )
        .unwrap(),
        count,
        .data(data)
    );

    eventually(Duration::from_secs(10), "some progress", || async {
        (counter.0.load(Ordering::SeqCst) > 20).then_some(())
    })
    .await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();

    // Enqueue more after the restart, through the same (reconnecting) client.
    let second: Vec<NewJob> = (0..200).map(|_| NewJob::new("k", json!({}))).collect();
    ids.extend(second.iter().map(|j| j.id.to_string()));
    eventually(Duration::from_secs(15), "enqueue after restart", || {
        let (q, jobs) = (t.queue.clone(), second.clone());
        async move { q.enqueue_batch(jobs).await.ok() }
    })
    .await;

    eventually(Duration::from_secs(30), "all 700 jobs succeeded", || async {
        let counts = t.queue.counts().await.ok()?;
        (counts.done == 700).then_some(())
    })
    .await;
    for id in &ids {
        let s = t.queue.state(id).await.unwrap().expect("no job lost");
        assert_eq!(s.status, JobStatus::Succeeded, "{id}");
    }
    assert!(
        w.handle.stats().redis_errors.load(Ordering::Relaxed) > 0,
        "the outage was seen and survived"
    );
    w.stop().await.unwrap();
}

#[tokio::test]
async fn past_its_outage_limit_a_worker_stops_with_an_error_instead_of_dying_silently() {
    let mut redis = OwnRedis::start();
    let t = TestQueue::on(&redis.url(), "sync").await;
    let options = WorkerOptions {
        outage_limit: Some(Duration::from_secs(1)),
        ..fast_options()
    };
    let w = spawn_worker!(
        HangarBackend::<Value>::new(t.queue.clone(), options).unwrap(),
        report_worker
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let result = tokio::time::timeout(Duration::from_secs(20), w.join)
        .await
        .expect("the worker gives up within the limit plus backoff")
        .expect("no panic");
    let err = result.expect_err("the worker reports why it stopped");
    assert!(err.to_string().contains("outage limit"), "{err}");
}
