//! Request bodies as the OpenAPI document describes them, and the
//! vocabulary the route annotations name (`schema::X`): every response type
//! is a view that handlers return ([`crate::views`]), re-exported here.
//!
//! The request types are documentation only, and that is deliberate: the
//! handlers read a body field by field so that a refusal is a 422 naming the
//! field (and the kind registry validates payloads), which a derived
//! `Deserialize` cannot say as precisely. `api/tests` checks that the served
//! document describes every operation, and the schemathesis run
//! (`scripts/fuzz-api`) sends bodies generated from these types.

#![allow(
    dead_code,
    reason = "request bodies are read field by field by their handlers; these types document them"
)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;

pub use crate::{
    error::{ErrorBody, ErrorDetail},
    views::{
        admin::{ApiKeyList, AuditLogPage, CreatedApiKey},
        health::{Live, Ready},
        inference::{ChatAccepted, Conversation, Model, ModelList},
        inventory::{AuditEventPage, CostReport, DirectoryPage, WorkspaceDetail, WorkspacePage},
        jobs::{Cancelled, Job, JobAccepted, JobPage, Requeued, RequeuedAll, ScheduleRun, SyncAccepted},
        queues::{DeadPage, QueueList},
        reports::{Report, ReportPage},
        schedules::{ScheduleList, ScheduleView},
    },
};

/// `POST /api/v1/jobs` body.
#[derive(ToSchema)]
#[schema(example = json!({"kind": "system.sleep", "payload": {"ms": 500}}))]
pub struct CreateJob {
    /// A registered kind: system.noop, system.sleep, system.retention,
    /// system.bulk_jobs (admin: `{"action": "cancel"|"retry", "ids": [...]}`
    /// or `{"action", "filter": {the jobs list's filters}, "max_jobs"}`),
    /// sync.workspaces, sync.cloudtrail, sync.billing, sync.usage,
    /// inference.chat, report.inventory, report.unused, report.billing_mode,
    /// report.costs, report.audit, report.audit_log (admin),
    /// workspaces.apply_billing_mode (admin) (an unknown kind's 422 lists
    /// them all, from the registry).
    pub kind: String,
    /// The kind's payload (validated; unknown fields are refused).
    pub payload: Option<Value>,
    /// Run no earlier than this (RFC 3339).
    pub run_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/syncs/{kind}` body; every field optional.
#[derive(ToSchema)]
#[schema(example = json!({"account": "prod", "region": "eu-west-1"}))]
pub struct SyncRequest {
    /// A configured account name; all accounts when absent.
    pub account: Option<String>,
    /// One of the account's regions; all when absent (billing takes none).
    pub region: Option<String>,
    /// CloudTrail: RFC 3339 time; billing: date (YYYY-MM-DD).
    pub start: Option<String>,
    /// CloudTrail: RFC 3339 time; billing: date (exclusive).
    pub end: Option<String>,
}

/// A schedule definition (create: every required field; PATCH: any subset).
#[derive(ToSchema)]
#[schema(example = json!({"name": "nightly-noop", "cron": "0 3 * * *", "timezone": "Europe/Paris", "kind": "system.noop", "payload": {}}))]
pub struct ScheduleInput {
    /// Unique name (a-z0-9-_.).
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone (default UTC).
    pub timezone: Option<String>,
    /// Job kind.
    pub kind: String,
    /// Job payload (validated like `POST /api/v1/jobs`).
    pub payload: Option<Value>,
    /// Queue override.
    pub queue: Option<String>,
    /// Disabled schedules keep their place but fire nothing (default true).
    pub enabled: Option<bool>,
    /// Missed ticks after downtime: `skip`, `fire_once` (default) or `fire_all`.
    pub catch_up: Option<String>,
    /// Most ticks `fire_all` replays.
    pub catch_up_cap: Option<u32>,
    /// `allow` or `skip_if_running` (default).
    pub overlap: Option<String>,
    /// Random delay per tick, seconds.
    pub jitter_secs: Option<u32>,
}

/// `POST /api/v1/api-keys` body.
#[derive(ToSchema)]
#[schema(example = json!({"name": "ci-deploy", "role": "operator", "expires_at": "2027-06-01T00:00:00Z"}))]
pub struct CreateApiKey {
    /// Unique among keys in use: 1-64 of a-z, A-Z, 0-9, `-`, `_`, `.`.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: crate::auth::Role,
    /// Refused after this (RFC 3339, in the future); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A chat message.
#[derive(ToSchema)]
pub struct ChatMessage {
    /// `system` (first only), `user` or `assistant`.
    #[schema(example = "user")]
    pub role: String,
    /// What was said (1-100,000 characters).
    pub content: String,
}

/// An `inference.chat` request: `messages` for a new conversation, or
/// `conversation_id` with `message` to continue one. Unknown fields are refused.
#[derive(ToSchema)]
pub struct ChatRequest {
    /// A configured model (see `/api/models`).
    #[schema(example = "phi3")]
    pub model: String,
    /// The conversation so far, ending with the user's message (1-256).
    pub messages: Option<Vec<ChatMessage>>,
    /// A conversation to continue.
    pub conversation_id: Option<String>,
    /// The user's next message in `conversation_id`.
    pub message: Option<String>,
    /// 0-2; the model's default when absent.
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// (0, 1]; the model's default when absent.
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// 1 to the model's `max_tokens_cap`.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Up to 4 strings (1-64 characters) that end generation.
    pub stop: Option<Vec<String>>,
    /// Sampling seed (0-4294967295), for repeatable output.
    pub seed: Option<u32>,
}

/// `POST /api/v1/reports` body.
#[derive(ToSchema)]
#[schema(example = json!({"type": "inventory", "format": "csv", "params": {"account": "prod", "state": "AVAILABLE"}}))]
pub struct CreateReport {
    /// Report type: `inventory`, `unused`, `billing_mode`, `costs`, `audit`
    /// or `audit_log` (admin) (the registered `report.<type>` kinds).
    pub r#type: String,
    /// `csv`, `json` or `xlsx`.
    pub format: String,
    /// The type's parameters. `inventory`: `account`, `region`, `state`,
    /// `directory`, `user`, `bundle`, `q`, `include_deleted` (as
    /// `GET /api/v1/workspaces`). `unused`: `days` (default 30), `account`,
    /// `region`. `billing_mode`: `account`, `region`. `costs`: `start`,
    /// `end` (days, end exclusive; default this month), `account`,
    /// `workspaces_only`. `audit`: `start`, `end` (RFC 3339; default the
    /// last 7 days), `account`, `region`, `event_name`, `user`.
    /// `audit_log`: `start`, `end`, `actor`, `action`.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}
