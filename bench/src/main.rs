//! `hangar-bench`: measures Hangar's queue engine against a real Redis.
//!
//! - `throughput`: enqueue rate, end-to-end rate (enqueue while a worker pool
//!   runs), drain rate (a pre-filled backlog), and Redis commands per job
//!   (from `INFO commandstats`, which counts commands run inside scripts).
//! - `pickup`: how long an idle worker takes to start a newly enqueued job.
//! - `memory`: Redis memory per job waiting, and per finished job kept for
//!   inspection (what sizing Redis for a backlog or a day of history needs).
//!
//! Each prints one `RESULT ...` line. Run against a Redis nobody else uses,
//! or the command count includes their traffic (`bench/run.sh` starts one).
#![allow(clippy::print_stdout)]

mod redis_stats;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use apalis_core::{error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder};
use clap::{Parser, Subcommand};
use hangar_queue::{BackendHandle, HangarBackend, JobContext, NewJob, Queue, RedisSettings, WorkerOptions};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "hangar-bench", about = "Benchmarks for Hangar's queue engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue, end-to-end and drain rates, and Redis commands per job.
    Throughput {
        /// Redis to measure against (a dedicated one: commands are counted server-wide).
        #[arg(long, env = "HANGAR_REDIS_URL")]
        redis_url: String,
        /// Jobs per phase.
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        /// Worker concurrency.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Jobs per enqueue call (one round trip each).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Redis memory per waiting job and per finished job kept.
    Memory {
        /// A dedicated Redis (memory is read server-wide, `INFO memory`).
        #[arg(long, env = "HANGAR_REDIS_URL")]
        redis_url: String,
        /// Jobs to enqueue, then run.
        #[arg(long, default_value_t = 200_000)]
        jobs: usize,
        /// Each job carries a W3C traceparent, as when the API traces or
        /// its caller sends one.
        #[arg(long)]
        traceparent: bool,
    },
    /// Latency from enqueue to handler start for an idle worker.
    Pickup {
        #[arg(long, env = "HANGAR_REDIS_URL")]
        redis_url: String,
        /// Jobs enqueued one at a time, each after the previous one started.
        #[arg(long, default_value_t = 500)]
        samples: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Throughput {
            redis_url,
            jobs,
            concurrency,
            batch,
        } => throughput(&redis_url, jobs, concurrency, batch).await,
        Command::Pickup { redis_url, samples } => pickup(&redis_url, samples).await,
        Command::Memory {
            redis_url,
            jobs,
            traceparent,
        } => memory(&redis_url, jobs, traceparent).await,
    }
}

async fn open(redis_url: &str) -> anyhow::Result<Queue> {
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    Queue::connect(&RedisSettings::new(redis_url), &prefix, "bench")
        .await
        .context("connecting to redis")
}

fn noop_jobs(n: usize) -> Vec<NewJob> {
    (0..n).map(|_| NewJob::new("system.noop", json!({}))).collect()
}

async fn noop(_: Value) -> Result<(), BoxDynError> {
    Ok(())
}

/// Starts a worker pool; returns its handle and a stop sender.
fn start_pool(
    queue: &Queue,
    concurrency: usize,
) -> anyhow::Result<(BackendHandle, tokio::sync::oneshot::Sender<()>)> {
    let options = WorkerOptions {
        concurrency,
        fetch_batch: concurrency,
        ..WorkerOptions::default()
    };
    let backend = HangarBackend::<Value>::new(queue.clone(), options)?;
    let handle = backend.handle();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new("bench").backend(backend).build(noop);
    tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
        Ok::<(), apalis_core::error::WorkerError>(())
    }));
    Ok((handle, tx))
}

async fn wait_succeeded(handle: &BackendHandle, target: u64) {
    while handle.stats().succeeded.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn enqueue_all(queue: &Queue, n: usize, batch: usize) -> anyhow::Result<()> {
    for chunk in noop_jobs(n).chunks(batch) {
        queue.enqueue_batch(chunk.to_vec()).await?;
    }
    Ok(())
}

async fn throughput(redis_url: &str, n: usize, concurrency: usize, batch: usize) -> anyhow::Result<()> {
    let queue = open(redis_url).await?;
    let mut stats = redis_stats::Commands::connect(redis_url).await?;

    // 1. Enqueue rate: N jobs into an idle queue, `batch` per round trip.
    let start = Instant::now();
    enqueue_all(&queue, n, batch).await?;
    let enqueue_s = start.elapsed().as_secs_f64();

    // 2. Drain: a pool works through the N-job backlog.
    let start = Instant::now();
    let (handle, stop) = start_pool(&queue, concurrency)?;
    wait_succeeded(&handle, n as u64).await;
    let drain_s = start.elapsed().as_secs_f64();

    // 3. End to end: N more jobs enqueued while the pool runs; commands
    //    counted over this phase only (enqueue + fetch + ack + maintenance).
    let before = stats.total().await?;
    let start = Instant::now();
    enqueue_all(&queue, n, batch).await?;
    wait_succeeded(&handle, 2 * n as u64).await;
    let e2e_s = start.elapsed().as_secs_f64();
    let commands = stats.total().await? - before - stats.own_calls_per_read();
    let _ = stop.send(());

    println!(
        "RESULT system=hangar c={concurrency} enqueue_per_s={:.0} e2e_per_s={:.0} drain_per_s={:.0} redis_cmds_per_job={:.2}",
        n as f64 / enqueue_s,
        n as f64 / e2e_s,
        n as f64 / drain_s,
        commands as f64 / n as f64,
    );
    stats.breakdown_since_start(n).await?;
    Ok(())
}

/// `used_memory` of the server at `url`, bytes.
async fn used_memory(url: &str) -> anyhow::Result<u64> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(&mut conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// Jobs as the API enqueues a sync: the payload it validated, the request
/// id as correlation id, and an idempotency key (as automation sends).
fn api_like_jobs(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            NewJob::new(
                "sync.workspaces",
                json!({"account": format!("acct-{:02}", i % 20), "region": "us-east-1"}),
            )
            .correlation_id(ulid::Ulid::new().to_string())
            .idempotency_key(format!("key:ci-deploy:{}", ulid::Ulid::new()))
        })
        .collect()
}

async fn memory(redis_url: &str, n: usize, traceparent: bool) -> anyhow::Result<()> {
    let queue = open(redis_url).await?;
    let empty = used_memory(redis_url).await?;
    let jobs: Vec<NewJob> = api_like_jobs(n)
        .into_iter()
        .map(|job| match traceparent {
            true => {
                let (trace, span) = (ulid::Ulid::new().0, ulid::Ulid::new().0 as u64);
                job.traceparent(format!("00-{trace:032x}-{span:016x}-01"))
            }
            false => job,
        })
        .collect();
    for chunk in jobs.chunks(1000) {
        queue.enqueue_batch(chunk.to_vec()).await?;
    }
    let waiting = used_memory(redis_url).await?;
    let (handle, stop) = start_pool(&queue, 50)?;
    wait_succeeded(&handle, n as u64).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let finished = used_memory(redis_url).await?;
    let per = |bytes: u64| bytes as f64 / n as f64;
    println!(
        "RESULT system=hangar memory_jobs={n} traceparent={traceparent} waiting_bytes_per_job={:.0} finished_kept_bytes_per_job={:.0} \
         waiting_mb_per_million={:.0} finished_kept_mb_per_million={:.0}",
        per(waiting.saturating_sub(empty)),
        per(finished.saturating_sub(empty)),
        per(waiting.saturating_sub(empty)) * 1e6 / 1048576.0,
        per(finished.saturating_sub(empty)) * 1e6 / 1048576.0,
    );
    Ok(())
}

#[derive(Clone, Default)]
struct Started(Arc<Mutex<Option<Instant>>>);

async fn mark_started(_: Value, started: Data<Started>, _job: JobContext) -> Result<(), BoxDynError> {
    *started.0.0.lock().expect("not poisoned") = Some(Instant::now());
    Ok(())
}

async fn pickup(redis_url: &str, samples: usize) -> anyhow::Result<()> {
    let queue = open(redis_url).await?;
    let started = Started::default();
    let backend = HangarBackend::<Value>::new(queue.clone(), WorkerOptions::default())?;
    let handle = backend.handle();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new("pickup")
        .backend(backend)
        .data(started.clone())
        .build(mark_started);
    tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
        Ok::<(), apalis_core::error::WorkerError>(())
    }));
    let done = AtomicU64::new(0);
    let mut latencies = Vec::with_capacity(samples);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..samples {
        *started.0.lock().expect("not poisoned") = None;
        // Let the worker go idle (blocked in BLPOP) before the next job.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        queue.enqueue(NewJob::new("system.noop", json!({}))).await?;
        let t_start = loop {
            if let Some(t) = *started.0.lock().expect("not poisoned") {
                break t;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(t_start.saturating_duration_since(t0));
        done.fetch_add(1, Ordering::Relaxed);
        wait_succeeded(&handle, done.load(Ordering::Relaxed)).await;
    }
    let _ = tx.send(());
    latencies.sort();
    let q = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "RESULT system=hangar pickup_samples={samples} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        ms(q(0.50)),
        ms(q(0.99)),
        ms(latencies[latencies.len() - 1]),
    );
    Ok(())
}
