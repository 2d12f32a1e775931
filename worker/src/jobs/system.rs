//! Handlers of the `system.*` kinds.

use std::time::Duration;

use apalis_core::error::BoxDynError;
use hangar_queue::JobContext;
use hangar_shared::kinds::{Noop, Retention, Sleep};
use serde_json::{Value, json};

use super::{Env, Run};

impl Run for Noop {
    async fn run(self, _job: &JobContext, _env: &Env) -> Result<Value, BoxDynError> {
        Ok(json!({}))
    }
}

impl Run for Sleep {
    async fn run(self, job: &JobContext, _env: &Env) -> Result<Value, BoxDynError> {
        sleep(&self, job).await
    }
}

impl Run for Retention {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        let mut result = retention(&self, job, &env.pool).await?;
        // Report files past their expiry (HANGAR_REPORTS_RETENTION_DAYS, fixed
        // when each was published), with their records.
        let reports = in_batches(job, "reports", || env.reports.remove_expired(RETENTION_BATCH)).await?;
        tracing::info!(reports, "expired reports removed");
        result["reports_deleted"] = json!(reports);
        Ok(result)
    }
}

/// Rows deleted per statement: big enough to be quick, small enough not to
/// hold locks or bloat one transaction.
const RETENTION_BATCH: i64 = 5_000;

/// `system.retention`: deletes finished job records and CloudTrail events
/// past their age, in batches, reporting progress, stopping when cancelled.
async fn retention(p: &Retention, job: &JobContext, pool: &sqlx::PgPool) -> Result<Value, BoxDynError> {
    let job_days = p.job_runs_days as i32;
    let jobs_deleted = in_batches(job, "job_runs", || async move {
        sqlx::query!(
            "DELETE FROM job_runs WHERE id IN (
               SELECT id FROM job_runs
               WHERE state IN ('succeeded', 'cancelled', 'dead')
                 AND finished_at < now() - make_interval(days => $1)
                 -- A report's job stays as long as its file is kept.
                 AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.id = job_runs.id AND r.expires_at > now())
               LIMIT $2)",
            job_days,
            RETENTION_BATCH
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .await?;
    let event_days = p.audit_events_days as i32;
    let events_deleted = in_batches(job, "audit_events", || async move {
        sqlx::query!(
            "DELETE FROM audit_events WHERE event_id IN (
               SELECT event_id FROM audit_events
               WHERE event_time < now() - make_interval(days => $1)
               LIMIT $2)",
            event_days,
            RETENTION_BATCH
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .await?;
    tracing::info!(
        job_runs = jobs_deleted,
        audit_events = events_deleted,
        "retention applied"
    );
    Ok(json!({"job_runs_deleted": jobs_deleted, "audit_events_deleted": events_deleted}))
}

/// Runs `delete` (one batch of at most [`RETENTION_BATCH`] rows) until a
/// batch comes back short; returns the total. A cancel stops it between
/// batches as an error, so the job is recorded cancelled (with what it
/// deleted so far in its progress), not succeeded, and the next step
/// does not start.
async fn in_batches<F, Fut, E>(job: &JobContext, step: &str, mut delete: F) -> Result<u64, BoxDynError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
    E: Into<BoxDynError>,
{
    let mut total = 0u64;
    loop {
        let n = delete().await.map_err(Into::into)?;
        total += n;
        job.report_progress(json!({"step": step, "deleted": total})).await;
        if n < RETENTION_BATCH as u64 {
            return Ok(total);
        }
        if job.cancel_requested() {
            return Err(format!("cancelled while deleting from {step} ({total} rows deleted)").into());
        }
    }
}

/// `system.sleep`: sleeps `ms` in `steps`, reporting progress after each,
/// and stops early when cancelled.
async fn sleep(p: &Sleep, job: &JobContext) -> Result<Value, BoxDynError> {
    let step = Duration::from_millis(p.ms) / p.steps;
    for done in 1..=p.steps {
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = job.cancelled() => return Err("cancelled while sleeping".into()),
        }
        job.report_progress(json!({"done": done, "total": p.steps})).await;
    }
    tracing::info!(ms = p.ms, "slept");
    Ok(json!({"slept_ms": p.ms}))
}
