//! Job handlers, dispatched by kind. One registration used by the worker
//! binary and the tests.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use apalis_core::{error::BoxDynError, task::data::Data};
use hangar_inference::{ChatFailure, ChatRunner};
use hangar_queue::{JobContext, defer, permanent};
use hangar_shared::kinds::{self, SleepPayload};
use hangar_sync::{SyncError, Syncer};
use serde_json::{Value, json};

use crate::metrics::WorkerMetrics;

/// Runs the job's kind. An unknown kind is a permanent failure: no retry can
/// make a handler appear.
pub async fn dispatch(
    payload: Value,
    job: JobContext,
    metrics: Data<Arc<WorkerMetrics>>,
    syncer: Data<Arc<Syncer>>,
    inference: Data<Arc<ChatRunner>>,
) -> Result<Value, BoxDynError> {
    metrics.started(job.kind());
    let start = Instant::now();
    let result = match job.kind() {
        kinds::SYSTEM_NOOP => Ok(json!({})),
        kinds::SYSTEM_SLEEP => sleep(&payload, &job).await,
        kinds::SYSTEM_RETENTION => retention(&payload, &job, &syncer.pool).await,
        kinds::SYNC_WORKSPACES => match decode(&payload) {
            Ok(p) => {
                sync_result(Box::pin(syncer.sync_workspaces(job.id(), job.deliveries(), &p, &job)).await)
            }
            Err(e) => Err(e),
        },
        kinds::SYNC_CLOUDTRAIL => match decode(&payload) {
            Ok(p) => {
                sync_result(Box::pin(syncer.sync_cloudtrail(job.id(), job.deliveries(), &p, &job)).await)
            }
            Err(e) => Err(e),
        },
        kinds::SYNC_BILLING => match decode(&payload) {
            Ok(p) => sync_result(Box::pin(syncer.sync_billing(job.id(), job.deliveries(), &p, &job)).await),
            Err(e) => Err(e),
        },
        kinds::INFERENCE_CHAT => match inference.run(&job, &payload).await {
            Ok(v) => Ok(v),
            Err(ChatFailure::Cancelled) => Err("cancelled while generating".into()),
            Err(ChatFailure::Deferred(m)) => Err(defer(m, hangar_inference::runner::DEFER_DELAY).into()),
            Err(ChatFailure::Permanent(m)) => {
                tracing::error!(error = %m, "inference failed");
                Err(permanent(m).into())
            }
        },
        other => Err(permanent(format!("this worker has no handler for kind {other:?}")).into()),
    };
    let label = match &result {
        Ok(_) => "ok",
        // Given back without running (its model is not ready): not a failure.
        Err(e) if e.downcast_ref::<hangar_queue::Deferred>().is_some() => "deferred",
        Err(_) => "error",
    };
    metrics.finished(job.kind(), label, start.elapsed());
    result
}

/// Decodes a payload; one that does not decode can never run (permanent).
fn decode<T: serde::de::DeserializeOwned>(payload: &Value) -> Result<T, BoxDynError> {
    kinds::decode(payload).map_err(|e| permanent(format!("payload.{}: {}", e.field, e.message)).into())
}

/// A sync's error as the queue sees it: permanent ones (refused
/// credentials, missing permissions, invalid requests, spent budget) go
/// dead at once with their explanation; the rest are retried.
fn sync_result(result: Result<Value, SyncError>) -> Result<Value, BoxDynError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) if e.is_permanent() => {
            tracing::error!(error = %e, "sync failed permanently");
            Err(permanent(e.to_string()).into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "sync attempt failed");
            Err(e.to_string().into())
        }
    }
}

/// Rows deleted per statement: big enough to be quick, small enough not to
/// hold locks or bloat one transaction.
const RETENTION_BATCH: i64 = 5_000;

/// `system.retention`: deletes finished job records and CloudTrail events
/// past their age, in batches, reporting progress, stopping when cancelled.
async fn retention(payload: &Value, job: &JobContext, pool: &sqlx::PgPool) -> Result<Value, BoxDynError> {
    let p: kinds::RetentionPayload = decode(payload)?;
    let job_days = p.job_runs_days as i32;
    let jobs_deleted = in_batches(job, "job_runs", || async move {
        sqlx::query!(
            "DELETE FROM job_runs WHERE id IN (
               SELECT id FROM job_runs
               WHERE state IN ('succeeded', 'cancelled', 'dead')
                 AND finished_at < now() - make_interval(days => $1)
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
/// batch comes back short or the job is cancelled; returns the total.
async fn in_batches<F, Fut>(job: &JobContext, step: &str, mut delete: F) -> Result<u64, BoxDynError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0u64;
    loop {
        let n = delete().await?;
        total += n;
        job.report_progress(json!({"step": step, "deleted": total})).await;
        if n < RETENTION_BATCH as u64 || job.cancel_requested() {
            return Ok(total);
        }
    }
}

/// `system.sleep`: sleeps `ms` in `steps`, reporting progress after each,
/// and stops early when cancelled.
async fn sleep(payload: &Value, job: &JobContext) -> Result<Value, BoxDynError> {
    let p: SleepPayload = decode(payload)?;
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
