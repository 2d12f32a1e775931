//! Writes attempt outcomes to `job_runs`, in batches, after Redis recorded
//! them. A failed write is retried with backoff; while PostgreSQL is down the
//! bounded channel fills and slows the recording of outcomes: nothing is
//! dropped, and the jobs' leases stay renewed meanwhile.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use hangar_queue::RecordedOutcome;
use hangar_shared::db::{self, OutcomeRow};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::metrics::WorkerMetrics;

/// Most outcomes per UPDATE.
const BATCH: usize = 500;

fn at(ms: u64) -> Option<DateTime<Utc>> {
    (ms > 0)
        .then(|| DateTime::<Utc>::from_timestamp_millis(ms as i64))
        .flatten()
}

fn row(o: &RecordedOutcome) -> OutcomeRow {
    OutcomeRow {
        id: o.id.clone(),
        state: o.status.as_str().to_owned(),
        attempts: o.attempt as i32,
        deliveries: o.deliveries as i32,
        result: o.result.clone(),
        error: o.error.clone(),
        progress: o.progress.clone(),
        started_at: at(o.started_at_ms),
        finished_at: if o.status.is_terminal() {
            at(o.finished_at_ms)
        } else {
            None
        },
    }
}

/// Runs until every sender is gone and the last batch is written.
pub async fn run(pool: PgPool, mut rx: mpsc::Receiver<Vec<RecordedOutcome>>, metrics: Arc<WorkerMetrics>) {
    let mut pending: Vec<RecordedOutcome> = Vec::new();
    while let Some(batch) = rx.recv().await {
        pending.extend(batch);
        while pending.len() < BATCH {
            match rx.try_recv() {
                Ok(more) => pending.extend(more),
                Err(_) => break,
            }
        }
        for o in &pending {
            metrics.outcome(&o.kind, o.status.as_str());
        }
        let rows: Vec<OutcomeRow> = pending.iter().map(row).collect();
        let mut delay = Duration::from_millis(100);
        loop {
            match db::record_outcomes(&pool, &rows).await {
                Ok(_) => break,
                Err(e) => {
                    metrics.persist_error();
                    tracing::warn!(error = %e, outcomes = rows.len(), retry_in = ?delay,
                        "could not record outcomes in postgres; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        pending.clear();
    }
}
