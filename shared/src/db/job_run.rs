//! A `job_runs` row as every layer reads it: a leaf both the insert path
//! and the queries use. Its state is the queue's [`JobStatus`], stored as
//! the same text Redis holds (a query selects it as
//! `state AS "state: hangar_queue::JobStatus"`).

use chrono::{DateTime, Utc};
use hangar_queue::JobStatus;
use serde::Serialize;

/// One row of `job_runs`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct JobRun {
    /// ULID.
    pub id: String,
    /// Kind name.
    pub kind: String,
    /// Queue name.
    pub queue: String,
    /// Validated arguments.
    pub payload: serde_json::Value,
    /// Last known state (live state of running jobs comes from Redis).
    pub state: JobStatus,
    /// Attempts with a recorded outcome.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Times a worker claimed it.
    pub deliveries: i32,
    /// Last progress.
    pub progress: Option<serde_json::Value>,
    /// Result, once succeeded.
    pub result: Option<serde_json::Value>,
    /// Last error.
    pub error: Option<String>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// The request that created it.
    pub request_id: Option<String>,
    /// Idempotency key, if one was given.
    pub idempotency_key: Option<String>,
    /// Earliest start, if delayed.
    pub run_at: Option<DateTime<Utc>>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// At most one open job per key (e.g. `sync.workspaces:prod:us-east-1`).
    pub singleton_key: Option<String>,
    /// Whose idempotency key it is (`key:<id>`, `jwt:<sub>`): keys are
    /// scoped to the caller, so one caller's key never answers another's.
    pub idempotency_scope: Option<String>,
    /// SHA-256 of the request (kind, payload, run_at) that created it: a
    /// repeated idempotency key with a different request is refused.
    pub request_fingerprint: Option<String>,
    /// The W3C traceparent its runs continue (see `hangar_queue::trace_context`).
    pub traceparent: Option<String>,
}
