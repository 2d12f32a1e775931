//! Response and request shapes as the OpenAPI document describes them.
//! Handlers build their JSON directly; these types exist to document it,
//! and `api/tests/security.rs` (the served document is valid OpenAPI 3.1
//! and describes every operation) plus the schemathesis run
//! (`scripts/fuzz-api`) check that what the handlers send matches.

#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use utoipa::ToSchema;

pub use crate::views::{
    inventory::{AuditEventPage, DirectoryPage, WorkspacePage},
    jobs::{Job, JobAccepted, JobPage},
};
use crate::{audit::AuditRecord, auth::api_keys::ApiKey};

/// Every error: `{"error": {...}}`.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_field", "message": "unknown kind \"x\"", "field": "kind", "request_id": "01JD3Q6W8Y4N2M5K7P9R1T3V5X"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable; one of a closed set.
    pub code: crate::error::ErrorCode,
    /// For people: what to change.
    pub message: String,
    /// The field, query parameter or header at fault, when there is one.
    pub field: Option<String>,
    /// The request's id (also in the `X-Request-Id` header and the logs).
    pub request_id: String,
}

/// Liveness.
#[derive(ToSchema)]
pub struct Live {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// One dependency's readiness.
#[derive(ToSchema)]
pub struct Check {
    /// Whether it answered.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Readiness of the dependencies.
#[derive(ToSchema)]
pub struct ReadyChecks {
    /// PostgreSQL reachable with every migration applied.
    pub postgres: Check,
    /// Redis reachable.
    pub redis: Check,
}

/// Readiness.
#[derive(ToSchema)]
pub struct Ready {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    pub status: String,
    /// The dependencies that failed.
    pub failed: Vec<String>,
    /// Each dependency.
    pub checks: ReadyChecks,
}

/// `POST /api/v1/jobs` body.
#[derive(ToSchema)]
#[schema(example = json!({"kind": "system.sleep", "payload": {"ms": 500}}))]
pub struct CreateJob {
    /// A registered kind: system.noop, system.sleep, system.retention,
    /// sync.workspaces, sync.cloudtrail, sync.billing, inference.chat (an
    /// unknown kind's 422 lists them all, from the registry).
    pub kind: String,
    /// The kind's payload (validated; unknown fields are refused).
    pub payload: Option<Value>,
    /// Run no earlier than this (RFC 3339).
    pub run_at: Option<DateTime<Utc>>,
}

/// Outcome of a cancel.
#[derive(ToSchema)]
pub struct Cancelled {
    /// The job.
    pub id: String,
    /// `cancelled`, or `running` when the worker was asked to stop.
    pub state: String,
    /// True when the job was running and has been asked to stop.
    pub cancel_requested: Option<bool>,
    /// What happens next.
    pub message: Option<String>,
}

/// A job queued again.
#[derive(ToSchema)]
pub struct Requeued {
    /// The job.
    pub id: String,
    /// `queued`.
    pub state: String,
    /// Where to poll it.
    pub status_url: Option<String>,
}

/// Dead jobs queued again.
#[derive(ToSchema)]
pub struct RequeuedAll {
    /// How many.
    pub requeued: u64,
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

/// One (account, region) job of a sync request.
#[derive(ToSchema)]
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
#[derive(ToSchema)]
pub struct SyncAccepted {
    /// The job kind.
    pub kind: String,
    /// One per (account, region).
    pub jobs: Vec<SyncJob>,
}

/// Directory of a workspace.
#[derive(ToSchema)]
pub struct WorkspaceDirectory {
    /// Directory id.
    pub id: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// Bundle of a workspace.
#[derive(ToSchema)]
pub struct WorkspaceBundle {
    /// Bundle id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Compute type.
    pub compute_type: Option<String>,
}

/// Workspace properties.
#[derive(ToSchema)]
pub struct WorkspaceProperties {
    /// ALWAYS_ON or AUTO_STOP.
    pub running_mode: Option<String>,
    /// Minutes before an AUTO_STOP workspace stops.
    pub auto_stop_timeout_minutes: Option<i32>,
    /// Root volume size.
    pub root_volume_gib: Option<i32>,
    /// User volume size.
    pub user_volume_gib: Option<i32>,
    /// Compute type.
    pub compute_type: Option<String>,
}

/// Last connection of a workspace.
#[derive(ToSchema)]
pub struct WorkspaceConnection {
    /// CONNECTED, DISCONNECTED or UNKNOWN.
    pub state: Option<String>,
    /// When AWS checked it.
    pub checked_at: Option<DateTime<Utc>>,
    /// When a user last connected.
    pub last_user_connection_at: Option<DateTime<Utc>>,
}

/// One workspace with its directory, bundle and last connection.
#[derive(ToSchema)]
pub struct WorkspaceDetail {
    /// Account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// Workspace id.
    pub workspace_id: String,
    /// Directory.
    pub directory: WorkspaceDirectory,
    /// Bundle.
    pub bundle: WorkspaceBundle,
    /// User.
    pub user_name: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
    /// AWS state.
    pub state: Option<String>,
    /// Subnet.
    pub subnet_id: Option<String>,
    /// Computer name.
    pub computer_name: Option<String>,
    /// Properties.
    pub properties: WorkspaceProperties,
    /// Tags, key to value.
    pub tags: Value,
    /// Last connection.
    pub last_connection: WorkspaceConnection,
    /// First synced at.
    pub first_seen_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// Gone from AWS since.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Costs grouped, with the total per currency.
#[derive(ToSchema)]
pub struct CostReport {
    /// `all` or `workspaces`.
    pub view: String,
    /// `service`, `usage_type` or `day`.
    pub group_by: String,
    /// First day.
    pub start: NaiveDate,
    /// Day after the last.
    pub end: NaiveDate,
    /// Sums per group, in key order.
    pub groups: Vec<crate::views::inventory::CostGroup>,
    /// Total per currency (decimal strings).
    #[schema(example = json!({"USD": "1234.5600000000"}))]
    pub total: std::collections::HashMap<String, String>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}

/// A schedule's last run.
#[derive(ToSchema)]
pub struct LastRun {
    /// The last job fired.
    pub job_id: Option<String>,
    /// Its state.
    pub state: Option<String>,
    /// The tick it fired for.
    pub tick: Option<DateTime<Utc>>,
    /// How far the scheduler has accounted for ticks.
    pub accounted_up_to: DateTime<Utc>,
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

/// A schedule with where it comes from, its next fire times and last run.
#[derive(ToSchema)]
pub struct ScheduleView {
    /// Unique name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// IANA time zone.
    pub timezone: String,
    /// Job kind.
    pub kind: String,
    /// Job payload.
    pub payload: Value,
    /// Queue override.
    pub queue: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// Catch-up policy.
    pub catch_up: String,
    /// Most ticks `fire_all` replays.
    pub catch_up_cap: u32,
    /// Overlap policy.
    pub overlap: String,
    /// Random delay per tick, seconds.
    pub jitter_secs: u32,
    /// `file` (read-only) or `api`.
    pub source: String,
    /// Whether it fires one job per configured (account, region).
    pub fans_out: bool,
    /// The next 5 fire times (empty when disabled).
    pub next: Vec<DateTime<Utc>>,
    /// The last run, if any.
    pub last_run: Option<LastRun>,
}

/// Every schedule.
#[derive(ToSchema)]
pub struct ScheduleList {
    /// File schedules first, then API ones by name.
    pub schedules: Vec<ScheduleView>,
}

/// A job a schedule run started or found open.
#[derive(ToSchema)]
pub struct ScheduleRunJob {
    /// True when an open job was returned instead of a new one.
    pub already: bool,
    /// The job.
    pub job: Job,
}

/// The jobs of a manual schedule run.
#[derive(ToSchema)]
pub struct ScheduleRun {
    /// Schedule name.
    pub schedule: String,
    /// One per target.
    pub jobs: Vec<ScheduleRunJob>,
}

/// One queue's counts.
#[derive(Debug, serde::Serialize, ToSchema)]
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
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct QueueList {
    /// By name.
    pub queues: Vec<QueueStats>,
}

/// A page of a queue's dead jobs (their live state in Redis).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeadPage {
    /// Dead jobs in all.
    pub total: u64,
    /// Newest first (by when they died); times in RFC 3339.
    pub jobs: Vec<Value>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
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

/// A new key and its token, shown this once.
#[derive(ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    pub api_key: ApiKey,
    /// `hangar_<prefix>_<secret>`: send as `Authorization: Bearer <token>`. Not retrievable later.
    pub token: String,
}

/// API keys.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Newest first.
    pub api_keys: Vec<ApiKey>,
}

/// A page of the audit log.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct AuditLogPage {
    /// Newest first.
    pub entries: Vec<AuditRecord>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
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

/// A chat job accepted.
#[derive(ToSchema)]
pub struct ChatAccepted {
    /// The job.
    pub job: Job,
    /// The conversation this job adds to (its own id for a new one).
    pub conversation_id: String,
    /// Server-sent events of the job's tokens.
    pub stream_url: String,
}

/// A conversation.
#[derive(ToSchema)]
pub struct Conversation {
    /// Its id (the job that started it).
    pub id: String,
    /// The model it started on.
    pub model: String,
    /// Who started it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last turn.
    pub updated_at: DateTime<Utc>,
    /// Every turn, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// A stored turn.
#[derive(ToSchema)]
pub struct StoredMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
    /// Its tokens by the conversation's model, when counted (reused to fit later turns).
    pub tokens: Option<i32>,
    /// The job that added it.
    pub job_id: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A configured model.
#[derive(ToSchema)]
pub struct Model {
    /// Its name in jobs.
    pub name: String,
    /// The server.
    pub base_url: String,
    /// The model id sent upstream.
    pub upstream_model: String,
    /// Cached health.
    pub health: hangar_inference::ModelHealth,
    /// Context size, caps, timeouts and default generation parameters.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Requests in flight across every worker (null if Redis is unreachable).
    pub in_flight: Option<u32>,
    /// Queued and running jobs, and last hour's outcomes and success rate.
    #[schema(value_type = Object)]
    pub jobs: serde_json::Value,
}

/// Every configured model.
#[derive(ToSchema)]
pub struct ModelList {
    /// In name order.
    pub items: Vec<Model>,
}
