//! Test fixture: a worker process the crash tests start, kill with -9 and
//! watch abort. Not an operator tool. Configured by environment:
//! `FIXTURE_REDIS_URL`, `FIXTURE_PREFIX`, `FIXTURE_QUEUE`, `FIXTURE_LEASE_MS`.
//!
//! Job kinds (payload `{"ms": N}` where relevant):
//! - `fixture.sleep`: records the run in `<prefix>:fixture:runs:<id>`, sleeps N ms,
//!   records `<prefix>:fixture:finished:<id>`, succeeds;
//! - `fixture.abort`: records the run, then aborts the whole process.

use std::time::Duration;

use apalis_core::{error::BoxDynError, worker::builder::WorkerBuilder};
use hangar_queue::{HangarBackend, JobContext, Queue, RedisSettings, WorkerOptions};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"))
}

async fn handle(args: serde_json::Value, job: JobContext) -> Result<serde_json::Value, BoxDynError> {
    let mut conn = RedisSettings::new(env("FIXTURE_REDIS_URL")).connect().await?;
    let key = format!("{}:fixture:runs:{}", env("FIXTURE_PREFIX"), job.id());
    redis::cmd("RPUSH")
        .arg(&key)
        .arg(job.worker().as_str())
        .query_async::<()>(&mut conn)
        .await?;
    match job.kind() {
        "fixture.abort" => std::process::abort(),
        _ => {
            let ms = args.get("ms").and_then(serde_json::Value::as_u64).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            redis::cmd("RPUSH")
                .arg(format!("{}:fixture:finished:{}", env("FIXTURE_PREFIX"), job.id()))
                .arg(job.worker().as_str())
                .query_async::<()>(&mut conn)
                .await?;
            Ok(serde_json::json!({ "worker": job.worker().as_str() }))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxDynError> {
    let lease = Duration::from_millis(env("FIXTURE_LEASE_MS").parse()?);
    let settings = RedisSettings::new(env("FIXTURE_REDIS_URL"));
    let queue = Queue::connect(&settings, &env("FIXTURE_PREFIX"), &env("FIXTURE_QUEUE")).await?;
    let options = WorkerOptions {
        concurrency: 1,
        lease,
        heartbeat: lease / 4,
        maintenance_interval: Duration::from_millis(100),
        ..WorkerOptions::default()
    };
    let backend = HangarBackend::<serde_json::Value>::new(queue, options)?;
    WorkerBuilder::new("fixture")
        .backend(backend)
        .build(handle)
        .run()
        .await?;
    Ok(())
}
