//! What the queue routes answer: each queue's depth and workers, and pages
//! of its dead jobs as Redis holds them (with the API's RFC 3339 times in
//! place of the queue's milliseconds since the epoch).

use chrono::{DateTime, Utc};
use hangar_queue::{ErrorRecord, JobState};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::from_millis;

/// One queue's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Ready to run.
    pub queued: u64,
    /// Waiting for their time (delayed or backing off).
    pub delayed: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Out of attempts.
    pub dead: u64,
    /// Finished jobs still kept in Redis.
    pub finished_kept: u64,
    /// Workers that reported in within 30 s.
    pub workers_alive: u64,
}

/// Every queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// By name.
    pub queues: Vec<QueueStats>,
}

/// One failed attempt or crash in a dead job's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptError {
    /// The attempt it ended (0 when the worker crashed before any outcome).
    pub attempt: u32,
    /// The error.
    pub error: String,
    /// When it was recorded.
    pub at: Option<DateTime<Utc>>,
}

/// A dead job as Redis holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJob {
    /// Job id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// `dead`.
    #[schema(value_type = String, example = "dead")]
    pub status: hangar_queue::JobStatus,
    /// Attempts with a recorded outcome.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Times a worker claimed it.
    pub deliveries: u32,
    /// Deliveries that ended without an outcome (lease expired).
    pub crashes: u32,
    /// Crashes tolerated before dead.
    pub max_crashes: u32,
    /// The payload.
    pub payload: Value,
    /// Last progress reported.
    pub progress: Option<Value>,
    /// The result, if any.
    pub result: Option<Value>,
    /// The last error.
    pub last_error: Option<String>,
    /// Recent errors, oldest first (at most 20).
    pub errors: Vec<AttemptError>,
    /// The worker that last held it.
    pub worker: Option<String>,
    /// A cancel was asked while it ran.
    pub cancel_requested: bool,
    /// Its `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// The request that created it.
    pub correlation_id: Option<String>,
    /// Queued at.
    pub created_at: Option<DateTime<Utc>>,
    /// When it was due.
    pub run_at: Option<DateTime<Utc>>,
    /// Its last delivery started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Died at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<JobState> for DeadJob {
    fn from(job: JobState) -> Self {
        Self {
            id: job.id,
            kind: job.kind,
            status: job.status,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            deliveries: job.deliveries,
            crashes: job.crashes,
            max_crashes: job.max_crashes,
            payload: job.payload,
            progress: job.progress,
            result: job.result,
            last_error: job.last_error,
            errors: job.errors.into_iter().map(AttemptError::from).collect(),
            worker: job.worker,
            cancel_requested: job.cancel_requested,
            idempotency_key: job.idempotency_key,
            correlation_id: job.correlation_id,
            created_at: from_millis(job.created_at),
            run_at: job.run_at.and_then(from_millis),
            started_at: job.started_at.and_then(from_millis),
            finished_at: job.finished_at.and_then(from_millis),
            updated_at: job.updated_at.and_then(from_millis),
        }
    }
}

impl From<ErrorRecord> for AttemptError {
    fn from(e: ErrorRecord) -> Self {
        Self {
            attempt: e.attempt,
            error: e.error,
            at: from_millis(e.at),
        }
    }
}

/// A page of a queue's dead jobs (their live state in Redis).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadPage {
    /// Dead jobs in all.
    pub total: u64,
    /// Newest first (by when they died).
    pub jobs: Vec<DeadJob>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}
