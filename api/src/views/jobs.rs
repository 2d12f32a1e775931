//! What the job routes answer: a job as recorded, with its live state while
//! it is open, and pages of them. Serialized as they are and documented by
//! the same types.

use chrono::{DateTime, Utc};
use hangar_queue::{JobState, JobStatus};
use hangar_shared::db::JobRun;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A job, as recorded in PostgreSQL; while it is open, its live state
/// (state, attempts, progress, worker) comes from Redis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    /// Job id (ULID).
    #[schema(example = "01JD3Q6W8Y4N2M5K7P9R1T3V5X")]
    pub id: String,
    /// Job kind, e.g. `sync.workspaces`.
    #[schema(example = "sync.workspaces")]
    pub kind: String,
    /// Queue it runs on.
    #[schema(example = "sync")]
    pub queue: String,
    /// `scheduled`, `queued`, `running`, `retrying`, `succeeded`, `cancelled` or `dead`.
    #[schema(value_type = String, example = "queued")]
    pub state: JobStatus,
    /// Attempts that have ended (failed, or the one that finished it).
    pub attempts: i64,
    /// While it runs: the attempt under way (`attempts` + 1); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// Attempts allowed before it is dead.
    pub max_attempts: i64,
    /// Times a worker received it (more than attempts after a worker crash).
    pub deliveries: i64,
    /// The validated payload.
    pub payload: Value,
    /// Latest progress report (kind-specific), if any.
    pub progress: Option<Value>,
    /// The result, once succeeded.
    pub result: Option<Value>,
    /// Last error, if any.
    pub error: Option<String>,
    /// Who asked for it: `jwt:<sub>`, `key:<name>` or `schedule:<name>`.
    pub requested_by: Option<String>,
    /// The request that created it.
    pub request_id: Option<String>,
    /// The W3C traceparent its runs continue: its trace id is the second
    /// field (look the trace up in the tracing backend).
    pub traceparent: Option<String>,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
    /// When it is due, if delayed.
    pub run_at: Option<DateTime<Utc>>,
    /// Recorded at.
    pub created_at: DateTime<Utc>,
    /// First started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Record last changed at.
    pub updated_at: DateTime<Utc>,
    /// Where to poll it.
    #[schema(example = "/api/v1/jobs/01JD3Q6W8Y4N2M5K7P9R1T3V5X")]
    pub status_url: String,
    /// The worker running it (live state only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// A cancel was asked while running (live state only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
}

impl Job {
    /// The job as the API shows it: the record, and for unfinished jobs the
    /// live state from Redis (state, attempts, progress, worker) over it.
    pub fn new(run: &JobRun, live: Option<&JobState>) -> Self {
        let mut job = Self {
            id: run.id.clone(),
            kind: run.kind.clone(),
            queue: run.queue.clone(),
            state: run.state,
            attempts: i64::from(run.attempts),
            attempt: None,
            max_attempts: i64::from(run.max_attempts),
            deliveries: i64::from(run.deliveries),
            payload: run.payload.clone(),
            progress: run.progress.clone(),
            result: run.result.clone(),
            error: run.error.clone(),
            requested_by: run.requested_by.clone(),
            request_id: run.request_id.clone(),
            traceparent: run.traceparent.clone(),
            idempotency_key: run.idempotency_key.clone(),
            run_at: run.run_at,
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            updated_at: run.updated_at,
            status_url: format!("/api/v1/jobs/{}", run.id),
            worker: None,
            cancel_requested: None,
        };
        if let Some(live) = live {
            job.overlay(live);
        }
        job
    }

    fn overlay(&mut self, live: &JobState) {
        self.state = live.status;
        self.attempts = i64::from(live.attempts);
        // `attempts` counts attempts that ended; while one runs, say which
        // it is (a first run is attempt 1, not "0 attempts"). A delivery
        // given back unrun (deferred) does not use it up.
        if live.status == JobStatus::Running {
            self.attempt = Some(i64::from(live.attempts) + 1);
        }
        self.deliveries = self.deliveries.max(i64::from(live.deliveries));
        self.progress.clone_from(&live.progress);
        self.worker.clone_from(&live.worker);
        self.cancel_requested = Some(live.cancel_requested);
        let at = |ms: Option<u64>| ms.and_then(super::from_millis);
        if let Some(t) = at(live.started_at) {
            self.started_at = Some(t);
        }
        if live.status.is_terminal()
            && let Some(t) = at(live.finished_at)
        {
            self.finished_at = Some(t);
        }
        if live.last_error.is_some() {
            self.error.clone_from(&live.last_error);
        }
        if live.result.is_some() {
            self.result.clone_from(&live.result);
        }
    }
}

/// A job accepted (202) or an existing one returned (200).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobAccepted {
    /// True when the Idempotency-Key or the kind's singleton matched an existing job.
    pub duplicate: bool,
    /// The job.
    pub job: Job,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Outcome of a cancel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// The job.
    pub id: String,
    /// `cancelled`, or `running` when the worker was asked to stop.
    pub state: &'static str,
    /// True when the job was running and has been asked to stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    /// What happens next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

impl Cancelled {
    /// Cancelled before it ran: final.
    pub fn done(id: String) -> Self {
        Self {
            id,
            state: "cancelled",
            cancel_requested: None,
            message: None,
        }
    }

    /// Running: its worker was asked to stop.
    pub fn requested(id: String) -> Self {
        Self {
            id,
            state: "running",
            cancel_requested: Some(true),
            message: Some("the running job was asked to stop; poll its status"),
        }
    }
}

/// A job queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// The job.
    pub id: String,
    /// `queued`.
    pub state: &'static str,
    /// Where to poll it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
}

impl Requeued {
    /// `id` queued again; `with_status_url` when the answer points at it.
    pub fn new(id: String, with_status_url: bool) -> Self {
        let status_url = with_status_url.then(|| format!("/api/v1/jobs/{id}"));
        Self {
            id,
            state: "queued",
            status_url,
        }
    }
}

/// Dead jobs queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequeuedAll {
    /// How many.
    pub requeued: u64,
}

/// One (account, region) job of a sync request.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncJob {
    /// Account name.
    pub account: String,
    /// Region (`global` for billing).
    pub region: String,
    /// True when a sync of this key was already open and is returned instead.
    pub already: bool,
    /// The job.
    pub job: Job,
}

/// The jobs a sync request started or found open.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncAccepted {
    /// The job kind.
    pub kind: &'static str,
    /// One per (account, region).
    pub jobs: Vec<SyncJob>,
}

/// A job a schedule run started or found open.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRunJob {
    /// True when an open job was returned instead of a new one.
    pub already: bool,
    /// The job.
    pub job: Job,
}

/// The jobs of a manual schedule run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRun {
    /// Schedule name.
    pub schedule: String,
    /// One per target.
    pub jobs: Vec<ScheduleRunJob>,
}
