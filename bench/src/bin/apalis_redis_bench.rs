//! The `throughput` phases of `hangar-bench`, over apalis-redis 1.0.0 with its
//! defaults (plus a concurrency layer and a fetch batch equal to it), so the
//! two engines are measured the same way on the same Redis.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "../redis_stats.rs"]
mod redis_stats;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    redis_url: String,
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// apalis-redis's heartbeat, which is also when an idle worker looks for
    /// new work (its default is 30 000 ms).
    #[arg(long, default_value_t = 30_000)]
    heartbeat_ms: u64,
    /// Give up on a phase that makes no progress for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {}

async fn noop(_: Noop, done: Data<Arc<AtomicU64>>) -> Result<(), BoxDynError> {
    done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Waits until `target` jobs are done; Err with the count if progress stalls.
async fn wait_done(done: &AtomicU64, target: u64, stall: Duration) -> Result<(), u64> {
    let mut last = (done.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = done.load(Ordering::Relaxed);
        if now >= target {
            return Ok(());
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(now);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // apalis reports worker errors through tracing: show them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (n, c) = (args.jobs, args.concurrency);
    let stall = Duration::from_secs(args.stall_secs);
    let conn = apalis_redis::connect(args.redis_url.as_str()).await?;
    let queue = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let config = Config::default()
        .queue(queue)
        .batch_size(c)
        .heartbeat_interval(Duration::from_millis(args.heartbeat_ms));
    let mut storage: RedisStorage<Noop> = RedisStorage::new(conn).with_config(config);
    let mut stats = redis_stats::Commands::connect(&args.redis_url).await?;

    let start = Instant::now();
    storage.push_bulk(vec![Noop {}; n]).await?;
    let enqueue_s = start.elapsed().as_secs_f64();

    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let worker = WorkerBuilder::new("apalis-redis-bench")
        .backend(storage.clone())
        .data(done.clone())
        .concurrency(c)
        .build(noop);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
        Ok::<(), WorkerError>(())
    }));
    if let Err(at) = wait_done(&done, n as u64, stall).await {
        println!(
            "RESULT system=apalis-redis c={c} heartbeat_ms={} stalled_in=drain done={at} of={n} stall_secs={}",
            args.heartbeat_ms, args.stall_secs
        );
        return Ok(());
    }
    let drain_s = start.elapsed().as_secs_f64();

    let before = stats.total().await?;
    let start = Instant::now();
    storage.push_bulk(vec![Noop {}; n]).await?;
    if let Err(at) = wait_done(&done, 2 * n as u64, stall).await {
        println!(
            "RESULT system=apalis-redis c={c} heartbeat_ms={} stalled_in=e2e done={} of={n} stall_secs={}",
            args.heartbeat_ms,
            at - n as u64,
            args.stall_secs
        );
        return Ok(());
    }
    let e2e_s = start.elapsed().as_secs_f64();
    let commands = stats.total().await? - before - stats.own_calls_per_read();
    let _ = tx.send(());
    println!(
        "RESULT system=apalis-redis c={c} heartbeat_ms={} enqueue_per_s={:.0} e2e_per_s={:.0} drain_per_s={:.0} redis_cmds_per_job={:.2}",
        args.heartbeat_ms,
        n as f64 / enqueue_s,
        n as f64 / e2e_s,
        n as f64 / drain_s,
        commands as f64 / n as f64,
    );
    stats.breakdown_since_start(n).await?;
    Ok(())
}
