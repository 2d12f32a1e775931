//! Hangar's scheduler: fires periodic schedules ([`beat`]) on the replica
//! that holds the leader lease, and runs the repair loop ([`repair`]) on
//! every replica. It only enqueues, never runs jobs.

pub mod beat;
pub mod repair;

use std::{collections::BTreeMap, future::Future, sync::Arc};

use hangar_queue::Queue;
use hangar_shared::{Config, db, kinds, schedule};

/// Every queue, sharing one Redis connection.
pub async fn queues(config: &Config) -> anyhow::Result<BTreeMap<String, Queue>> {
    hangar_shared::open_queues(config, kinds::QUEUES.iter().copied()).await
}

/// The configured schedules (`HANGAR_SCHEDULES_FILE`), validated.
pub fn load_schedules(config: &Config) -> anyhow::Result<Vec<schedule::Schedule>> {
    let Some(path) = &config.scheduler.schedules_file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("HANGAR_SCHEDULES_FILE {path}: cannot read it: {e}"))?;
    schedule::parse_file(&text).map_err(|e| anyhow::anyhow!("HANGAR_SCHEDULES_FILE {path}: {e}"))
}

/// Runs the beat (every tick interval) and the repair loop (every repair
/// interval) until `shutdown` resolves, then resigns the leader lease so
/// another replica takes over at once.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let pool = db::pool(&config.database)?;
    let queues = Arc::new(queues(&config).await?);
    let schedules = load_schedules(&config)?;
    let replica = format!("scheduler-{}-{}", std::process::id(), ulid::Ulid::new());
    tracing::info!(schedules = schedules.len(), replica = %replica, "scheduler starting");
    let beat = beat::Beat::new(
        pool.clone(),
        queues.clone(),
        config.redis_settings().connect().await?,
        &config.redis.prefix,
        &replica,
        schedules,
        config.scheduler.leader_lease,
        config.scheduler.grace,
        Arc::new(beat::SystemClock),
    );
    tracing::info!(every = ?config.scheduler.repair_interval, "repair loop started");
    tokio::pin!(shutdown);
    let mut next_repair = tokio::time::Instant::now();
    loop {
        match beat.pass().await {
            Ok(r) if r.fired + r.caught_up + r.skipped_overlap + r.dropped > 0 => tracing::info!(
                fired = r.fired,
                caught_up = r.caught_up,
                skipped_overlap = r.skipped_overlap,
                dropped = r.dropped,
                "scheduler pass"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler pass failed; retrying next tick"),
        }
        if tokio::time::Instant::now() >= next_repair {
            next_repair += config.scheduler.repair_interval;
            match repair::repair_once(&pool, &queues, config.scheduler.repair_min_age).await {
                Ok(r) if r.redispatched > 0 || r.reconciled > 0 => {
                    tracing::info!(
                        scanned = r.scanned,
                        redispatched = r.redispatched,
                        reconciled = r.reconciled,
                        "repair pass"
                    );
                }
                Ok(r) => tracing::debug!(scanned = r.scanned, "repair pass: nothing to do"),
                Err(e) => tracing::warn!(error = %e, "repair pass failed; retrying next period"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.scheduler.tick_interval) => {}
            () = &mut shutdown => break,
        }
    }
    beat.resign().await;
    tracing::info!("hangar-scheduler stopped");
    Ok(())
}
