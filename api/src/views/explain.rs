//! `GET /api/v1/jobs/{id}/explain`: why a job is where it is, in one
//! sentence and as facts a script can act on.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Why the job is in its state (one per situation Hangar can hold a job in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Ready, behind `position` other jobs; workers are alive.
    QueuedBehind,
    /// Ready or due, but no worker serving its queue has reported in for 30 s.
    NoWorker,
    /// Waits for a later start it was given (`run_at`).
    Scheduled,
    /// Failed attempt `attempt`; the next starts at `run_at`.
    RetryBackoff,
    /// An inference job whose model is not ready (`model_health`).
    WaitingForModel,
    /// Another job of the same sync target holds its lock (`holder_job_id`).
    SingletonBusy,
    /// Running.
    Running,
    /// Running, but most of its time goes to waiting for its turn in the
    /// shared AWS rate limiter (`HANGAR_AWS_RATES`).
    RateLimited,
    /// Running, waiting for a free slot on its model server (the in-flight cap).
    WaitingForSlot,
    /// Recorded as open in PostgreSQL but unknown to Redis; the repair loop
    /// dispatches it again.
    NotInRedis,
    /// Finished successfully.
    Succeeded,
    /// Cancelled.
    Cancelled,
    /// Out of attempts, failed permanently, or crashed its worker too often.
    Dead,
}

/// The facts behind the sentence; only those that apply are present.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Facts {
    /// Jobs ahead of it in the ready list (0: next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Jobs the queue finished per minute over the last 5 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_per_minute: Option<f64>,
    /// When it should start at that pace (absent when nothing drained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_start: Option<DateTime<Utc>>,
    /// Worker processes serving its queue that reported in within 30 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers_alive: Option<u64>,
    /// When a worker serving its queue last reported in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_worker_seen_at: Option<DateTime<Utc>>,
    /// When it may start (scheduled) or starts its next attempt (retrying).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts with an outcome so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Attempts allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Deliveries that ended without an outcome (worker killed or frozen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crashes: Option<u32>,
    /// Crashes tolerated before dead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_crashes: Option<u32>,
    /// The model an inference job needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// That model's health, as this API process last probed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_health: Option<hangar_inference::ModelHealth>,
    /// The sync target's lock (its singleton key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// The job holding that lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_job_id: Option<String>,
    /// The worker running it (or that ran it last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When its current (or last) delivery started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Time its AWS calls waited for their turn in the shared rate limiter so far, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_wait_ms: Option<f64>,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The state PostgreSQL records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_state: Option<String>,
    /// The repair loop dispatches it within this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_within_seconds: Option<u64>,
}

/// Why a job is where it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// The job's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its state (Redis's while Redis knows the job, else the record's).
    #[schema(example = "queued")]
    pub state: String,
    /// The situation, as a stable code.
    pub reason: Reason,
    /// The situation in one sentence, with what happens next.
    #[schema(
        example = "Queued behind 12 jobs on sync; the queue finished 30 jobs in the last 5 minutes, so it should start in about 2 minutes."
    )]
    pub explanation: String,
    /// The facts the sentence is made of.
    pub facts: Facts,
}
