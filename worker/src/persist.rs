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
        state: o.status,
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

/// Writes `rows`, retrying while PostgreSQL is unreachable. A batch it
/// rejects is written row by row, and a row it rejects is logged and
/// skipped (its outcome stays in Redis, where the repair loop reads it),
/// so one bad value never blocks every later outcome.
async fn write_with_retry(pool: &PgPool, rows: &[OutcomeRow], metrics: &WorkerMetrics) {
    let mut delay = Duration::from_millis(100);
    loop {
        match db::record_outcomes(pool, rows).await {
            Ok(_) => return,
            Err(e) if db::is_transient(&e) => {
                metrics.persist_error();
                tracing::warn!(error = %e, outcomes = rows.len(), retry_in = ?delay,
                    "could not record outcomes in postgres; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) if rows.len() > 1 => {
                metrics.persist_error();
                tracing::error!(error = %e, outcomes = rows.len(), "postgres rejected a batch of outcomes; writing them one by one");
                for r in rows {
                    Box::pin(write_with_retry(pool, std::slice::from_ref(r), metrics)).await;
                }
                return;
            }
            Err(e) => {
                metrics.persist_error();
                tracing::error!(error = %e, job.id = %rows[0].id, "postgres rejected this outcome; skipped (redis has it)");
                return;
            }
        }
    }
}

/// Reports a job that died to Sentry (when `SENTRY_DSN` is set).
fn report_dead(o: &RecordedOutcome) {
    let queue = hangar_shared::kinds::kind(&o.kind).map_or("?", |k| k.queue);
    hangar_shared::error_reports::job_died(&hangar_shared::error_reports::DeadJob {
        id: &o.id,
        kind: &o.kind,
        queue,
        attempt: o.attempt,
        request_id: o.died.as_ref().and_then(|d| d.correlation_id.as_deref()),
        error: o.error.as_deref().unwrap_or("no error recorded"),
        payload: o.died.as_ref().and_then(|d| d.payload.as_ref()),
    });
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
            if o.status == hangar_queue::JobStatus::Dead {
                report_dead(o);
            }
        }
        let rows: Vec<OutcomeRow> = pending.iter().map(row).collect();
        write_with_retry(&pool, &rows, &metrics).await;
        pending.clear();
    }
}
