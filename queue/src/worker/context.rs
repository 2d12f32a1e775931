//! [`JobContext`]: what a handler can ask about the job it runs.

use std::sync::{Arc, atomic::Ordering};

use apalis_core::task::{Task, data::MissingDataError, from_request::FromRequest};

use super::run::Run;
use crate::{error::Result, identity::WorkerId, queue::Queue};

/// Handler-side view of the running job. Take it as a handler argument:
///
/// ```ignore
/// async fn handle(args: serde_json::Value, job: JobContext) -> Result<(), BoxDynError> {
///     job.set_progress(serde_json::json!({"done": 1, "total": 10})).await?;
///     if job.is_cancelled() { return Ok(()); }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct JobContext {
    pub(crate) run: Arc<Run>,
    pub(crate) queue: Queue,
    pub(crate) worker: WorkerId,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id())
            .field("kind", &self.kind())
            .field("attempt", &self.attempt())
            .finish()
    }
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.run.claimed.id
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.run.claimed.kind
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        self.queue.name().as_str()
    }

    /// This attempt's number, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.run.attempt()
    }

    /// Attempts allowed.
    pub fn max_attempts(&self) -> u32 {
        self.run.claimed.max_attempts
    }

    /// How many times the job has been delivered, this time included.
    pub fn deliveries(&self) -> u32 {
        self.run.claimed.deliveries
    }

    /// The correlation id given at enqueue (the API's request id), if any.
    pub fn correlation_id(&self) -> Option<&str> {
        Some(self.run.claimed.correlation_id.as_str()).filter(|s| !s.is_empty())
    }

    /// The W3C traceparent given at enqueue, if any (the run's span
    /// already continues it; this is for work handed elsewhere).
    pub fn traceparent(&self) -> Option<&str> {
        Some(self.run.claimed.traceparent.as_str()).filter(|s| !s.is_empty())
    }

    /// This worker process's identity.
    pub fn worker(&self) -> &WorkerId {
        &self.worker
    }

    /// True once the job should stop: an operator asked to cancel it, or this
    /// worker lost its lease (another worker may be running it now).
    pub fn is_cancelled(&self) -> bool {
        self.run.cancel.is_cancelled()
    }

    /// True if an operator asked to cancel the job.
    pub fn cancel_requested(&self) -> bool {
        self.run.cancel_requested.load(Ordering::Relaxed)
    }

    /// Resolves when [`is_cancelled`](Self::is_cancelled) becomes true; use in `select!`.
    pub async fn cancelled(&self) {
        self.run.cancel.cancelled().await;
    }

    /// Publishes `progress`, best effort: a Redis hiccup loses this update
    /// (the next one or the final outcome replaces it), never the attempt.
    /// Handlers use this; [`set_progress`](Self::set_progress) is for callers
    /// that need to know.
    pub async fn report_progress(&self, progress: serde_json::Value) {
        if let Err(e) = self.set_progress(progress).await {
            tracing::debug!(error = %e, "progress not published (best effort)");
        }
    }

    /// Stores `progress` (small JSON) for anyone reading the job's state.
    /// Returns false if the lease was lost and nothing was written.
    pub async fn set_progress(&self, progress: serde_json::Value) -> Result<bool> {
        let stored = self
            .queue
            .set_progress(&self.run.claimed.id, &self.run.claimed.token, &progress)
            .await?;
        if let Ok(mut last) = self.run.progress.lock() {
            *last = Some(progress);
        }
        Ok(stored)
    }
}

impl<Args: Sync> FromRequest<Task<Args>> for JobContext {
    type Error = MissingDataError;

    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        task.data().get_checked::<JobContext>().cloned()
    }
}
