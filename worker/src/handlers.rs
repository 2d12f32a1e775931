//! Job handlers, dispatched by kind. One registration used by the worker
//! binary and the tests.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use apalis_core::{error::BoxDynError, task::data::Data};
use hangar_queue::{JobContext, permanent};
use hangar_shared::kinds::{self, SleepPayload};
use serde_json::{Value, json};

use crate::metrics::WorkerMetrics;

/// Runs the job's kind. An unknown kind is a permanent failure: no retry can
/// make a handler appear.
pub async fn dispatch(
    payload: Value,
    job: JobContext,
    metrics: Data<Arc<WorkerMetrics>>,
) -> Result<Value, BoxDynError> {
    metrics.started(job.kind());
    let start = Instant::now();
    let result = match job.kind() {
        kinds::SYSTEM_NOOP => Ok(json!({})),
        kinds::SYSTEM_SLEEP => sleep(&payload, &job).await,
        other => Err(permanent(format!("this worker has no handler for kind {other:?}")).into()),
    };
    metrics.finished(job.kind(), result.is_ok(), start.elapsed());
    result
}

/// `system.sleep`: sleeps `ms` in `steps`, reporting progress after each,
/// and stops early when cancelled.
async fn sleep(payload: &Value, job: &JobContext) -> Result<Value, BoxDynError> {
    let p: SleepPayload =
        kinds::decode(payload).map_err(|e| permanent(format!("payload.{}: {}", e.field, e.message)))?;
    let step = Duration::from_millis(p.ms) / p.steps;
    for done in 1..=p.steps {
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = job.cancelled() => return Err("cancelled while sleeping".into()),
        }
        job.set_progress(json!({"done": done, "total": p.steps})).await?;
    }
    tracing::info!(ms = p.ms, "slept");
    Ok(json!({"slept_ms": p.ms}))
}
