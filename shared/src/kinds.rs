//! Job kinds: their stable names, the queue each runs on, and payload
//! validation. The API validates before anything is recorded; the worker's
//! handlers decode the same types.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::Role;

/// The sync queue (AWS syncs and diagnostics).
pub const QUEUE_SYNC: &str = "sync";
/// The reports queue.
pub const QUEUE_REPORTS: &str = "reports";
/// The inference queue.
pub const QUEUE_INFERENCE: &str = "inference";
/// Every queue Hangar knows.
pub const QUEUES: &[&str] = &[QUEUE_SYNC, QUEUE_REPORTS, QUEUE_INFERENCE];

/// `system.noop`: does nothing; for diagnostics and benchmarks.
pub const SYSTEM_NOOP: &str = "system.noop";
/// `system.sleep`: sleeps, reporting progress.
pub const SYSTEM_SLEEP: &str = "system.sleep";

/// `system.retention`: deletes old finished job records and CloudTrail events.
pub const SYSTEM_RETENTION: &str = "system.retention";
/// `sync.workspaces`: directories, workspaces, bundles, connection status and tags.
pub const SYNC_WORKSPACES: &str = "sync.workspaces";
/// `sync.cloudtrail`: WorkSpaces events from CloudTrail LookupEvents.
pub const SYNC_CLOUDTRAIL: &str = "sync.cloudtrail";
/// `sync.billing`: daily costs from Cost Explorer.
pub const SYNC_BILLING: &str = "sync.billing";
/// `inference.chat`: a chat completion on a configured model server.
pub const INFERENCE_CHAT: &str = "inference.chat";
/// The region recorded for account-wide data (Cost Explorer is global).
pub const GLOBAL_REGION: &str = "global";

/// A new job id: a ULID, monotonic within this process so that jobs created
/// in the same millisecond still list in creation order (newest first).
pub fn new_job_id() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a plain ULID.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// A payload the kind refuses, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// Dotted path of the field (e.g. `ms`), or empty for the payload as a whole.
    pub field: String,
    /// What is wrong, for the caller.
    pub message: String,
}

impl PayloadError {
    /// The same error with its field seen from the enclosing document: a
    /// payload's `ms` is the request's `payload.ms`, the payload as a whole
    /// is `payload`.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// `system.noop` takes no arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {}

/// `system.sleep` arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepPayload {
    /// How long to sleep, 0..=600,000 ms.
    pub ms: u64,
    /// Progress reports while sleeping (1..=100, default 10).
    #[serde(default = "default_steps")]
    pub steps: u32,
}

fn default_steps() -> u32 {
    10
}

/// Least `job_runs_days` a retention job may ask for: a week of job history
/// is what on-call needs to answer "what happened last weekend".
pub const MIN_JOB_RUNS_DAYS: u32 = 7;
/// Least `audit_events_days`: CloudTrail's LookupEvents keeps 90 days, so
/// events deleted younger than that could never be synced back.
pub const MIN_AUDIT_EVENTS_DAYS: u32 = 90;

/// `system.retention` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPayload {
    /// Finished jobs (succeeded, cancelled, dead) older than this many days
    /// are deleted from `job_runs` (7-3650, default 30).
    #[serde(default = "default_job_days")]
    pub job_runs_days: u32,
    /// CloudTrail events older than this many days are deleted from
    /// `audit_events` (90-3650, default 400).
    #[serde(default = "default_event_days")]
    pub audit_events_days: u32,
}

fn default_job_days() -> u32 {
    30
}
fn default_event_days() -> u32 {
    400
}

/// `sync.workspaces` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacesSyncPayload {
    /// Configured account name.
    pub account: String,
    /// Region.
    pub region: String,
}

/// `sync.cloudtrail` arguments. Without `start`, the sync resumes from its
/// cursor (minus the overlap); without `end`, it reads up to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailSyncPayload {
    /// Configured account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// Earliest event time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Latest event time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
}

/// `sync.billing` arguments: days `start..end` (end exclusive, UTC). Without
/// them, the sync covers the days since its cursor, re-reading the last few.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSyncPayload {
    /// Configured account name.
    pub account: String,
    /// First day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::NaiveDate>,
    /// Day after the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::NaiveDate>,
}

/// The key that allows one open sync per (kind, account, region).
pub fn sync_singleton_key(kind: &str, account: &str, region: &str) -> String {
    format!("{kind}:{account}:{region}")
}

/// Whether `kind` targets one (account, region): a schedule of it without an
/// account fans out to every configured one when it fires.
pub fn targets_accounts(kind: &str) -> bool {
    matches!(kind, SYNC_WORKSPACES | SYNC_CLOUDTRAIL | SYNC_BILLING)
}

/// The (account, region) pairs a job of account-targeting `kind` covers:
/// every configured account's regions, narrowed to `account` and `region`
/// when given; an account-wide kind (billing) once per account, in
/// [`GLOBAL_REGION`]. "Sync now" and fan-out schedules both ask this.
pub fn targets(
    aws: &crate::config::AwsConfig,
    kind: &str,
    account: Option<&str>,
    region: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (a, r) in aws.targets() {
        if account.is_some_and(|n| n != a.name) || region.is_some_and(|want| want != r) {
            continue;
        }
        let r = if kind == SYNC_BILLING { GLOBAL_REGION } else { r };
        if !out.iter().any(|(x, y)| *x == a.name && y == r) {
            out.push((a.name.clone(), r.to_owned()));
        }
    }
    out
}

/// The payload of an account-targeting kind for one (account, region):
/// `payload` plus the account, and the region unless the kind is
/// account-wide (billing).
pub fn with_target(kind: &str, payload: &Value, account: &str, region: &str) -> Value {
    let mut p = payload.as_object().cloned().unwrap_or_default();
    p.insert("account".into(), Value::String(account.to_owned()));
    if kind != SYNC_BILLING {
        p.insert("region".into(), Value::String(region.to_owned()));
    }
    Value::Object(p)
}

/// The singleton key of a job with a validated `payload`, for kinds that
/// allow one open job at a time (the syncs), whichever route creates it.
pub fn singleton_key(kind: &str, payload: &Value) -> Option<String> {
    let account = payload.get("account")?.as_str()?;
    match kind {
        SYNC_WORKSPACES | SYNC_CLOUDTRAIL => Some(sync_singleton_key(
            kind,
            account,
            payload.get("region")?.as_str()?,
        )),
        SYNC_BILLING => Some(sync_singleton_key(kind, account, GLOBAL_REGION)),
        _ => None,
    }
}

/// A job kind Hangar accepts.
pub struct KindSpec {
    /// Stable name, e.g. `system.sleep`.
    pub name: &'static str,
    /// Queue it runs on.
    pub queue: &'static str,
    /// The least role that may submit it, on every path that does (the
    /// jobs API, schedule creation and changes, run-now). Kinds that delete
    /// data or can hold worker slots for minutes need `admin`.
    pub role: Role,
    validate: fn(&Value) -> Result<Value, PayloadError>,
}

impl KindSpec {
    /// Checks `payload`; returns it normalised (defaults filled in).
    pub fn validate(&self, payload: &Value) -> Result<Value, PayloadError> {
        (self.validate)(payload)
    }
}

/// Every kind, in the order the API documents them.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        name: SYSTEM_NOOP,
        queue: QUEUE_SYNC,
        role: Role::Operator,
        validate: validate_noop,
    },
    KindSpec {
        name: SYSTEM_SLEEP,
        queue: QUEUE_SYNC,
        role: Role::Admin,
        validate: validate_sleep,
    },
    KindSpec {
        name: SYSTEM_RETENTION,
        queue: QUEUE_SYNC,
        role: Role::Admin,
        validate: validate_retention,
    },
    KindSpec {
        name: SYNC_WORKSPACES,
        queue: QUEUE_SYNC,
        role: Role::Operator,
        validate: validate_workspaces_sync,
    },
    KindSpec {
        name: SYNC_CLOUDTRAIL,
        queue: QUEUE_SYNC,
        role: Role::Operator,
        validate: validate_cloudtrail_sync,
    },
    KindSpec {
        name: SYNC_BILLING,
        queue: QUEUE_SYNC,
        role: Role::Operator,
        validate: validate_billing_sync,
    },
    KindSpec {
        name: INFERENCE_CHAT,
        queue: QUEUE_INFERENCE,
        role: Role::Operator,
        validate: crate::chat::validate_shape,
    },
];

/// Validates `payload` for `spec` completely: its shape, then what depends
/// on the deployment (an inference job's model must be configured, and its
/// `max_tokens` within that model's cap; defaults are filled in).
pub fn validate_for(
    spec: &KindSpec,
    payload: &Value,
    models: &crate::models::ModelRegistry,
) -> Result<Value, PayloadError> {
    let payload = spec.validate(payload)?;
    match spec.name {
        INFERENCE_CHAT => crate::chat::validate_for_model(&payload, models),
        _ => Ok(payload),
    }
}

/// Retry policies by kind, used by the API (max attempts recorded with each
/// job) and the worker (backoff between attempts). Built once.
pub fn retry_policies() -> &'static hangar_queue::RetryPolicies {
    static POLICIES: std::sync::LazyLock<hangar_queue::RetryPolicies> = std::sync::LazyLock::new(|| {
        let system = hangar_queue::RetryPolicy {
            max_attempts: 3,
            base: std::time::Duration::from_secs(1),
            cap: std::time::Duration::from_secs(30),
        };
        // Throttling and 5xx are retried inside the job; a failed attempt
        // means AWS stayed unhappy for a while, so wait longer between them.
        let sync = hangar_queue::RetryPolicy {
            max_attempts: 5,
            base: std::time::Duration::from_secs(15),
            cap: std::time::Duration::from_secs(600),
        };
        hangar_queue::RetryPolicies::default()
            .with(SYSTEM_NOOP, system)
            .with(SYSTEM_SLEEP, system)
            .with(SYSTEM_RETENTION, system)
            .with(SYNC_WORKSPACES, sync)
            .with(SYNC_CLOUDTRAIL, sync)
            .with(SYNC_BILLING, sync)
            // Transient model-server failures are retried inside the
            // attempt (with backoff); a failed attempt has exhausted them,
            // and a worker whose model is down stops leasing anyway.
            .with(
                INFERENCE_CHAT,
                hangar_queue::RetryPolicy {
                    max_attempts: 1,
                    base: std::time::Duration::from_secs(2),
                    cap: std::time::Duration::from_secs(30),
                },
            )
    });
    &POLICIES
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static KindSpec> {
    KINDS.iter().find(|k| k.name == name)
}

/// Decodes `payload` as `T`, naming the field of the first error.
pub fn decode<T: DeserializeOwned>(payload: &Value) -> Result<T, PayloadError> {
    // serde would fill a struct from an array by position: accept objects only.
    if !payload.is_object() {
        return Err(PayloadError {
            field: String::new(),
            message: "payload must be a JSON object".into(),
        });
    }
    // Plain serde enforces `deny_unknown_fields`; the path tracker (which
    // does not, for every shape) only locates the field.
    let message = match serde_json::from_value::<T>(payload.clone()) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    let path = match serde_path_to_error::deserialize::<_, T>(payload) {
        Err(e) => e.path().to_string(),
        Ok(_) => ".".to_owned(),
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|r| r.split_once('`'))
            .map(|(name, _)| name.to_owned())
    };
    let field = match named("unknown field `").or_else(|| named("missing field `")) {
        Some(name) if path == "." => name,
        Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
        Some(name) => format!("{path}.{name}"),
        None if path == "." => String::new(),
        None => path,
    };
    Err(PayloadError { field, message })
}

/// A decoded payload back as JSON, defaults filled in. Cannot fail for
/// the payload types (plain structs), but if one ever did, the job is
/// refused rather than recorded with a `null` payload.
pub(crate) fn normalised<T: Serialize>(v: &T) -> Result<Value, PayloadError> {
    serde_json::to_value(v).map_err(|e| invalid("", format!("the payload could not be normalised: {e}")))
}

fn validate_noop(payload: &Value) -> Result<Value, PayloadError> {
    let p: NoopPayload = decode(payload)?;
    normalised(&p)
}

fn validate_sleep(payload: &Value) -> Result<Value, PayloadError> {
    let p: SleepPayload = decode(payload)?;
    if p.ms > 600_000 {
        return Err(PayloadError {
            field: "ms".into(),
            message: "must be at most 600000".into(),
        });
    }
    if !(1..=100).contains(&p.steps) {
        return Err(PayloadError {
            field: "steps".into(),
            message: "must be between 1 and 100".into(),
        });
    }
    normalised(&p)
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> PayloadError {
    PayloadError {
        field: field.into(),
        message: message.into(),
    }
}

fn check_account_region(account: &str, region: Option<&str>) -> Result<(), PayloadError> {
    if account.is_empty() || account.len() > 64 {
        return Err(invalid(
            "account",
            "must be a configured account name (1-64 characters)",
        ));
    }
    if let Some(r) = region
        && !crate::config::is_region_name(r)
    {
        return Err(invalid(
            "region",
            format!("{r:?} is not an AWS region name like us-east-1"),
        ));
    }
    Ok(())
}

fn validate_retention(payload: &Value) -> Result<Value, PayloadError> {
    let p: RetentionPayload = decode(payload)?;
    for (field, days, least) in [
        ("job_runs_days", p.job_runs_days, MIN_JOB_RUNS_DAYS),
        ("audit_events_days", p.audit_events_days, MIN_AUDIT_EVENTS_DAYS),
    ] {
        if !(least..=3650).contains(&days) {
            return Err(invalid(field, format!("must be between {least} and 3650 days")));
        }
    }
    normalised(&p)
}

fn validate_workspaces_sync(payload: &Value) -> Result<Value, PayloadError> {
    let p: WorkspacesSyncPayload = decode(payload)?;
    check_account_region(&p.account, Some(&p.region))?;
    normalised(&p)
}

fn validate_cloudtrail_sync(payload: &Value) -> Result<Value, PayloadError> {
    let p: CloudTrailSyncPayload = decode(payload)?;
    check_account_region(&p.account, Some(&p.region))?;
    if let (Some(s), Some(e)) = (p.start, p.end)
        && s >= e
    {
        return Err(invalid("end", "must be after start"));
    }
    if let Some(e) = p.end
        && e > chrono::Utc::now() + chrono::Duration::hours(1)
    {
        return Err(invalid("end", "must not be in the future"));
    }
    // LookupEvents only reaches 90 days back.
    if let Some(s) = p.start
        && s < chrono::Utc::now() - chrono::Duration::days(90)
    {
        return Err(invalid(
            "start",
            "CloudTrail LookupEvents only covers the last 90 days",
        ));
    }
    normalised(&p)
}

fn validate_billing_sync(payload: &Value) -> Result<Value, PayloadError> {
    let p: BillingSyncPayload = decode(payload)?;
    check_account_region(&p.account, None)?;
    if let (Some(s), Some(e)) = (p.start, p.end) {
        if s >= e {
            return Err(invalid("end", "must be after start (end is exclusive)"));
        }
        if (e - s).num_days() > 366 {
            return Err(invalid("end", "a billing sync covers at most 366 days"));
        }
    }
    if let Some(e) = p.end
        && e > chrono::Utc::now().date_naive() + chrono::Duration::days(1)
    {
        return Err(invalid(
            "end",
            "must be at most tomorrow (end is exclusive): there are no future costs",
        ));
    }
    // Cost Explorer keeps 14 months of daily data.
    if let Some(s) = p.start
        && s < chrono::Utc::now().date_naive() - chrono::Duration::days(14 * 31)
    {
        return Err(invalid("start", "Cost Explorer only keeps the last 14 months"));
    }
    normalised(&p)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sleep_payloads_are_validated_naming_the_field() {
        let k = kind(SYSTEM_SLEEP).unwrap();
        assert_eq!(
            k.validate(&json!({"ms": 5})).unwrap(),
            json!({"ms": 5, "steps": 10})
        );
        assert_eq!(k.validate(&json!({"ms": "five"})).unwrap_err().field, "ms");
        assert_eq!(k.validate(&json!({})).unwrap_err().field, "ms");
        assert_eq!(
            k.validate(&json!({"ms": 1, "extra": 1})).unwrap_err().field,
            "extra"
        );
        assert_eq!(k.validate(&json!({"ms": 700_000})).unwrap_err().field, "ms");
        assert_eq!(
            k.validate(&json!({"ms": 1, "steps": 0})).unwrap_err().field,
            "steps"
        );
        assert_eq!(k.validate(&json!([1])).unwrap_err().field, "");
    }

    #[test]
    fn sync_payloads_name_the_bad_field() {
        let ws = kind(SYNC_WORKSPACES).unwrap();
        assert!(
            ws.validate(&json!({"account": "prod", "region": "us-east-1"}))
                .is_ok()
        );
        assert_eq!(
            ws.validate(&json!({"account": "prod"})).unwrap_err().field,
            "region"
        );
        assert_eq!(
            ws.validate(&json!({"account": "prod", "region": "moon"}))
                .unwrap_err()
                .field,
            "region"
        );
        let ct = kind(SYNC_CLOUDTRAIL).unwrap();
        let bad = ct
            .validate(&json!({"account": "a", "region": "us-east-1", "start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"}))
            .unwrap_err();
        assert_eq!(bad.field, "end");
        assert_eq!(
            ct.validate(&json!({"account": "a", "region": "us-east-1", "start": "yesterday"}))
                .unwrap_err()
                .field,
            "start"
        );
        let billing = kind(SYNC_BILLING).unwrap();
        assert_eq!(
            billing
                .validate(&json!({"account": "a", "start": "2026-11-10", "end": "2026-11-10"}))
                .unwrap_err()
                .field,
            "end"
        );
        assert_eq!(
            billing
                .validate(&json!({"account": "a", "region": "x"}))
                .unwrap_err()
                .field,
            "region"
        );
    }

    #[test]
    fn retention_cannot_go_below_its_minimum_ages() {
        let k = kind(SYSTEM_RETENTION).unwrap();
        assert_eq!(k.role, Role::Admin);
        let bad = k
            .validate(&json!({"job_runs_days": 1, "audit_events_days": 400}))
            .unwrap_err();
        assert_eq!(bad.field, "job_runs_days");
        assert!(bad.message.contains("between 7 and 3650"), "{}", bad.message);
        let bad = k.validate(&json!({"audit_events_days": 89})).unwrap_err();
        assert_eq!(bad.field, "audit_events_days");
        assert!(
            k.validate(&json!({"job_runs_days": 7, "audit_events_days": 90}))
                .is_ok()
        );
    }

    #[test]
    fn kinds_that_delete_data_or_hold_slots_need_admin() {
        let admin_only: Vec<&str> = KINDS
            .iter()
            .filter(|k| k.role == Role::Admin)
            .map(|k| k.name)
            .collect();
        assert_eq!(admin_only, [SYSTEM_SLEEP, SYSTEM_RETENTION]);
        assert!(KINDS.iter().all(|k| k.role >= Role::Operator));
    }

    #[test]
    fn job_ids_are_monotonic_within_a_millisecond() {
        let ids: Vec<ulid::Ulid> = (0..1000).map(|_| new_job_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn noop_takes_nothing_and_unknown_kinds_are_unknown() {
        let k = kind(SYSTEM_NOOP).unwrap();
        assert_eq!(k.validate(&json!({})).unwrap(), json!({}));
        assert_eq!(k.validate(&json!({"x": 1})).unwrap_err().field, "x");
        assert!(kind("system.nope").is_none());
        assert!(KINDS.iter().all(|k| QUEUES.contains(&k.queue)));
    }
}
