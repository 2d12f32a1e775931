//! Hangar's scheduler. Today it runs the repair loop ([`repair`]); cron
//! schedules with a leader lease come next. It only enqueues, never runs jobs.

pub mod repair;

use std::{collections::BTreeMap, future::Future};

use hangar_queue::Queue;
use hangar_shared::{Config, db, kinds};

/// Every queue, sharing one Redis connection.
pub async fn queues(config: &Config) -> anyhow::Result<BTreeMap<String, Queue>> {
    hangar_shared::open_queues(config, kinds::QUEUES.iter().copied()).await
}

/// Runs the repair loop every `repair_interval` until `shutdown` resolves.
/// A failed pass is logged and retried next period.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let pool = db::pool(&config.database)?;
    let queues = queues(&config).await?;
    tracing::info!(every = ?config.scheduler.repair_interval, "repair loop started");
    tokio::pin!(shutdown);
    loop {
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
        tokio::select! {
            () = tokio::time::sleep(config.scheduler.repair_interval) => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!("hangar-scheduler stopped");
    Ok(())
}
