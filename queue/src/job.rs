//! What goes into the queue and what can be read back about a job.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::{QueueError, Result};

/// A job to enqueue. Carries ids and parameters, not whole records.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Chosen by the caller so it can be recorded elsewhere (PostgreSQL) first.
    pub id: Ulid,
    /// Stable kind name, e.g. `sync.workspaces`; selects handler and retry policy.
    pub kind: String,
    /// The handler's arguments.
    pub payload: serde_json::Value,
    /// Earliest start; `None` means now. Stored with millisecond precision.
    pub run_at: Option<SystemTime>,
    /// A second enqueue with the same key returns the first job's id.
    pub idempotency_key: Option<String>,
    /// Attempts in all; `None` takes the kind's retry policy.
    pub max_attempts: Option<u32>,
    /// Deliveries that may end without an outcome (worker killed, frozen,
    /// partitioned) before the job is quarantined in dead; `None` means 3.
    pub max_crashes: Option<u32>,
    /// An id that ties the job to what caused it (an HTTP request id); handed
    /// to the handler through `JobContext::correlation_id` for its logs.
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` of the span that enqueued it: the worker's
    /// span continues that trace (see [`crate::trace_context`]).
    pub traceparent: Option<String>,
}

impl NewJob {
    /// A job of `kind` with a fresh ULID.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            id: Ulid::new(),
            kind: kind.into(),
            payload,
            run_at: None,
            idempotency_key: None,
            max_attempts: None,
            max_crashes: None,
            correlation_id: None,
            traceparent: None,
        }
    }

    /// Continues the trace of `traceparent` (W3C) when the job runs.
    #[must_use]
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Ties the job to `id` (e.g. the request that created it).
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Uses `id` instead of a fresh one.
    #[must_use]
    pub fn with_id(mut self, id: Ulid) -> Self {
        self.id = id;
        self
    }

    /// Runs no earlier than `at`.
    #[must_use]
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Runs no earlier than `delay` from now.
    #[must_use]
    pub fn run_after(self, delay: Duration) -> Self {
        self.run_at(SystemTime::now() + delay)
    }

    /// Deduplicates on `key`.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Overrides the kind's max attempts.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Overrides how many crashed deliveries the job tolerates.
    #[must_use]
    pub fn max_crashes(mut self, n: u32) -> Self {
        self.max_crashes = Some(n);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(QueueError::InvalidJob(m));
        if self.kind.is_empty() || self.kind.len() > 128 {
            return bad(format!("kind must be 1-128 characters, got {}", self.kind.len()));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 256)
        {
            return bad("idempotency key must be 1-256 characters".into());
        }
        if self.max_attempts == Some(0) {
            return bad("max_attempts must be at least 1".into());
        }
        if let Some(t) = &self.traceparent
            && t.len() > 128
        {
            return bad(format!(
                "traceparent must be at most 128 characters, got {}",
                t.len()
            ));
        }
        if self.max_crashes == Some(0) {
            return bad("max_crashes must be at least 1".into());
        }
        Ok(())
    }
}

/// Result of an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id; for a duplicate, the id of the job enqueued first.
    pub id: String,
    /// True when the idempotency key (or id) was already known and nothing was added.
    pub duplicate: bool,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Ready for a worker.
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Failed; waiting for its next attempt.
    Retrying,
    /// Finished successfully.
    Succeeded,
    /// Cancelled before or while running.
    Cancelled,
    /// Out of attempts, failed permanently, or crashed its worker too often.
    Dead,
}

impl JobStatus {
    /// Parses the state name Redis stores.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "succeeded" => Self::Succeeded,
            "cancelled" => Self::Cancelled,
            "dead" => Self::Dead,
            _ => return None,
        })
    }

    /// The state's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Cancelled => "cancelled",
            Self::Dead => "dead",
        }
    }

    /// True once nothing more will happen to the job on its own.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Cancelled | Self::Dead)
    }

    /// True while the job can still leave its state: scheduled, queued,
    /// running or retrying (the states PostgreSQL's open-job and singleton
    /// indexes cover).
    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }
}

/// One failed attempt or crash in a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// Attempt number the error belongs to (0 when it crashed before any outcome).
    pub attempt: u32,
    /// The error text.
    pub error: String,
    /// When it was recorded, ms since the Unix epoch (Redis server time).
    pub at: u64,
}

/// Live state of one job as Redis has it, readable from any process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobState {
    /// The job's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Where it is.
    pub status: JobStatus,
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
    /// The handler's arguments.
    pub payload: serde_json::Value,
    /// Last progress the handler reported.
    pub progress: Option<serde_json::Value>,
    /// The handler's result, once succeeded.
    pub result: Option<serde_json::Value>,
    /// Text of the last error.
    pub last_error: Option<String>,
    /// Recent errors, oldest first (at most 20).
    pub errors: Vec<ErrorRecord>,
    /// Identity of the worker that holds or last held it.
    pub worker: Option<String>,
    /// A cancellation was requested while it ran.
    pub cancel_requested: bool,
    /// Idempotency key given at enqueue.
    pub idempotency_key: Option<String>,
    /// Correlation id given at enqueue.
    pub correlation_id: Option<String>,
    /// W3C traceparent given at enqueue.
    pub traceparent: Option<String>,
    /// Timestamps, ms since the Unix epoch (Redis server time).
    pub created_at: u64,
    /// When it may run (or runs next, when retrying).
    pub run_at: Option<u64>,
    /// When its latest delivery started.
    pub started_at: Option<u64>,
    /// When it reached a terminal state.
    pub finished_at: Option<u64>,
    /// Last change.
    pub updated_at: Option<u64>,
}

impl JobState {
    pub(crate) fn from_hash(mut h: HashMap<String, String>) -> Result<Self> {
        let mut take = |k: &str| h.remove(k).filter(|v| !v.is_empty());
        let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok());
        let json = |v: Option<String>| v.and_then(|s| serde_json::from_str(&s).ok());
        let status_text = take("state").unwrap_or_default();
        let status = JobStatus::parse(&status_text)
            .ok_or_else(|| QueueError::Protocol(format!("job has unknown state {status_text:?}")))?;
        Ok(Self {
            id: take("id").unwrap_or_default(),
            kind: take("kind").unwrap_or_default(),
            status,
            attempts: num(take("attempts")).unwrap_or(0) as u32,
            max_attempts: num(take("max_attempts")).unwrap_or(0) as u32,
            deliveries: num(take("deliveries")).unwrap_or(0) as u32,
            crashes: num(take("crashes")).unwrap_or(0) as u32,
            max_crashes: num(take("max_crashes")).unwrap_or(0) as u32,
            payload: json(take("payload")).unwrap_or(serde_json::Value::Null),
            progress: json(take("progress")),
            result: json(take("result")),
            last_error: take("last_error"),
            errors: take("errors")
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            worker: take("worker"),
            cancel_requested: take("cancel").as_deref() == Some("1"),
            idempotency_key: take("idem"),
            correlation_id: take("correlation"),
            traceparent: take("traceparent"),
            created_at: num(take("created_at")).unwrap_or(0),
            run_at: num(take("run_at")),
            started_at: num(take("started_at")),
            finished_at: num(take("finished_at")),
            updated_at: num(take("updated_at")),
        })
    }
}

/// Milliseconds since the Unix epoch for `t` (0 for times before it).
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sizes of a queue's parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Entries in the ready list (may include cancelled jobs not yet skipped).
    pub ready: u64,
    /// Delayed and retrying jobs.
    pub scheduled: u64,
    /// Jobs under a lease.
    pub running: u64,
    /// Succeeded and cancelled jobs kept for inspection.
    pub done: u64,
    /// Dead jobs.
    pub dead: u64,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It had not started; it never will.
    Cancelled,
    /// It is running; its handler was asked to stop.
    CancelRequested,
    /// It had already finished in this state.
    AlreadyFinished(JobStatus),
    /// No such job.
    NotFound,
}
