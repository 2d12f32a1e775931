//! Job kinds. Each kind is a payload type implementing [`JobKind`] (its
//! name, queue, least role, retry policy, target, singleton key and
//! validation), in one module per family ([`system`], [`sync`],
//! [`inference`]), and is registered once, in [`register_kinds!`]. The API's
//! validation, the kinds table, the retry policies, the scheduler's checks
//! and the worker's dispatch (whose handlers live in `hangar-worker`'s
//! `jobs`, which must not be linked into the API) all come from that list.
//! `docs/adding-a-job-kind.md` walks through adding one.

pub mod inference;
mod job_kind;
pub mod payload;
pub mod report;
pub mod sync;
pub mod system;

use std::sync::LazyLock;

use hangar_queue::{RetryPolicies, RetryPolicy};
use serde_json::Value;

pub use self::{
    inference::{Chat, INFERENCE_CHAT},
    job_kind::{
        Deployment, JobKind, QUEUE_CONTROL, QUEUE_INFERENCE, QUEUE_REPORTS, QUEUE_SYNC, QUEUES, Target,
        Window,
    },
    payload::{PayloadError, decode, invalid, normalised},
    report::{
        ApplyBillingMode, AuditLogReport, AuditReport, BillingModeReport, CostsReport, InventoryReport,
        MAX_MODE_CHANGES, ModeChange, REPORT_AUDIT, REPORT_AUDIT_LOG, REPORT_BILLING_MODE, REPORT_COSTS,
        REPORT_INVENTORY, REPORT_UNUSED, ReportFormat, ReportJob, RunningMode, UnusedReport,
        WORKSPACES_APPLY_BILLING_MODE,
    },
    sync::{
        BillingSync, CloudTrailSync, GLOBAL_REGION, SYNC_BILLING, SYNC_CLOUDTRAIL, SYNC_USAGE,
        SYNC_WORKSPACES, USAGE_MAX_DAYS, UsageSync, WorkspacesSync, sync_singleton_key,
    },
    system::{
        BulkAction, BulkFilter, BulkJobs, MAX_BULK_IDS, MAX_BULK_JOBS, MIN_AUDIT_EVENTS_DAYS,
        MIN_JOB_RUNS_DAYS, Noop, Retention, SYSTEM_BULK_JOBS, SYSTEM_NOOP, SYSTEM_RETENTION, SYSTEM_SLEEP,
        Sleep,
    },
};
use crate::{models::ModelRegistry, role::Role};

/// Every kind, in the order the API documents them: the one list. It calls
/// `add::<Kind>()` on whatever registry it is given, so each consumer can
/// ask more of a kind than this crate can (the worker's registry needs a
/// handler, `hangar_worker::jobs::Run`); a kind registered without one does
/// not compile.
#[macro_export]
macro_rules! register_kinds {
    ($registry:expr) => {
        $registry
            .add::<$crate::kinds::system::Noop>()
            .add::<$crate::kinds::system::Sleep>()
            .add::<$crate::kinds::system::Retention>()
            .add::<$crate::kinds::system::BulkJobs>()
            .add::<$crate::kinds::sync::WorkspacesSync>()
            .add::<$crate::kinds::sync::CloudTrailSync>()
            .add::<$crate::kinds::sync::BillingSync>()
            .add::<$crate::kinds::sync::UsageSync>()
            .add::<$crate::kinds::inference::Chat>()
            .add::<$crate::kinds::report::InventoryReport>()
            .add::<$crate::kinds::report::UnusedReport>()
            .add::<$crate::kinds::report::BillingModeReport>()
            .add::<$crate::kinds::report::CostsReport>()
            .add::<$crate::kinds::report::AuditReport>()
            .add::<$crate::kinds::report::AuditLogReport>()
            .add::<$crate::kinds::report::ApplyBillingMode>()
    };
}

/// A registered kind, type-erased: what the API, the scheduler and the
/// database layer look kinds up by name for.
pub struct KindSpec {
    /// Stable name, e.g. `system.sleep`.
    pub name: &'static str,
    /// Queue it runs on.
    pub queue: &'static str,
    /// The least role that may submit it (see [`JobKind::ROLE`]).
    pub role: Role,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// What a job is aimed at.
    pub target: Target,
    /// The `start`/`end` window its payload may carry.
    pub window: Window,
    validate: fn(&Value, Option<&Deployment<'_>>) -> Result<Value, PayloadError>,
    singleton_key: fn(&Value) -> Option<String>,
}

impl KindSpec {
    fn of<K: JobKind>() -> Self {
        Self {
            name: K::NAME,
            queue: K::QUEUE,
            role: K::ROLE,
            retry: K::RETRY,
            target: K::TARGET,
            window: K::WINDOW,
            validate: validate_as::<K>,
            singleton_key: |payload| decode::<K>(payload).ok()?.singleton_key(),
        }
    }

    /// Checks `payload`'s shape and values; returns it normalised (defaults
    /// filled in). What depends on the deployment is [`validate_for`]'s.
    pub fn validate(&self, payload: &Value) -> Result<Value, PayloadError> {
        (self.validate)(payload, None)
    }

    /// The singleton key of a valid `payload` of this kind, if it has one.
    pub fn singleton_key(&self, payload: &Value) -> Option<String> {
        (self.singleton_key)(payload)
    }

    /// Whether a job of this kind targets one account (and region): a
    /// schedule of it without an account fans out to every configured one.
    pub fn targets_accounts(&self) -> bool {
        self.target != Target::None
    }
}

fn validate_as<K: JobKind>(
    payload: &Value,
    deployment: Option<&Deployment<'_>>,
) -> Result<Value, PayloadError> {
    let mut p: K = decode(payload)?;
    p.check()?;
    if let Some(d) = deployment {
        p.fit_to(d)?;
    }
    normalised(&p)
}

/// The registered kinds, built from [`register_kinds!`].
#[derive(Default)]
pub struct Registry {
    kinds: Vec<KindSpec>,
    policies: RetryPolicies,
}

impl Registry {
    /// Registers `K`. Names are unique: registering one twice is a bug
    /// caught by the tests, not at run time.
    #[must_use]
    pub fn add<K: JobKind>(mut self) -> Self {
        debug_assert!(
            QUEUES.contains(&K::QUEUE),
            "{} on unknown queue {}",
            K::NAME,
            K::QUEUE
        );
        self.policies = self.policies.with(K::NAME, K::RETRY);
        self.kinds.push(KindSpec::of::<K>());
        self
    }
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| register_kinds!(Registry::default()));

/// Every kind, in the order the API documents them.
pub fn all() -> &'static [KindSpec] {
    &REGISTRY.kinds
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static KindSpec> {
    all().iter().find(|k| k.name == name)
}

/// Every registered kind named `<family>.<name>`, with its `<name>` (the
/// routes that start one family by name: "sync now", reports).
pub fn family(family: &'static str) -> impl Iterator<Item = (&'static str, &'static KindSpec)> {
    all().iter().filter_map(move |k| {
        let name = k.name.strip_prefix(family)?.strip_prefix('.')?;
        Some((name, k))
    })
}

/// The sync kinds "sync now" starts (`POST /api/v1/syncs/{name}`): every
/// registered `sync.<name>` kind that targets accounts, with its `<name>`.
pub fn syncs() -> impl Iterator<Item = (&'static str, &'static KindSpec)> {
    family("sync").filter(|(_, k)| k.targets_accounts())
}

/// The registered spec of `K`.
///
/// # Panics
/// If `K` is not in [`register_kinds!`], which is a bug.
pub fn spec<K: JobKind>() -> &'static KindSpec {
    kind(K::NAME).unwrap_or_else(|| panic!("{} is not registered in register_kinds!", K::NAME))
}

/// Retry policies by kind, used by the API (max attempts recorded with each
/// job) and the worker (backoff between attempts).
pub fn retry_policies() -> &'static RetryPolicies {
    &REGISTRY.policies
}

/// Validates `payload` for `spec` completely: its shape, then what depends
/// on the deployment (an inference job's model must be configured, and its
/// `max_tokens` within that model's cap; defaults are filled in).
pub fn validate_for(spec: &KindSpec, payload: &Value, models: &ModelRegistry) -> Result<Value, PayloadError> {
    (spec.validate)(payload, Some(&Deployment { models }))
}

/// A new job id: a ULID, monotonic within this process so that jobs created
/// in the same millisecond still list in creation order (newest first).
pub fn new_job_id() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a plain ULID.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// The (account, region) pairs a job of account-targeting `kind` covers:
/// every configured account's regions, narrowed to `account` and `region`
/// when given; an account-wide kind (billing) once per account, in
/// [`GLOBAL_REGION`]. "Sync now" and fan-out schedules both ask this.
pub fn targets(
    aws: &crate::config::AwsConfig,
    kind: &KindSpec,
    account: Option<&str>,
    region: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (a, r) in aws.targets() {
        if account.is_some_and(|n| n != a.name) || region.is_some_and(|want| want != r) {
            continue;
        }
        let r = if kind.target == Target::Account {
            GLOBAL_REGION
        } else {
            r.as_str()
        };
        if !out.iter().any(|(x, y)| *x == a.name && y == r) {
            out.push((a.name.clone(), r.to_owned()));
        }
    }
    out
}

/// The payload of an account-targeting kind for one (account, region):
/// `payload` plus the account, and the region unless the kind is
/// account-wide (billing).
pub fn with_target(kind: &KindSpec, payload: &Value, account: &str, region: &str) -> Value {
    let mut p = payload.as_object().cloned().unwrap_or_default();
    p.insert("account".into(), Value::String(account.to_owned()));
    if kind.target == Target::Region {
        p.insert("region".into(), Value::String(region.to_owned()));
    }
    Value::Object(p)
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
    fn kinds_that_delete_data_hold_slots_change_aws_or_name_every_caller_need_admin() {
        let admin_only: Vec<&str> = all()
            .iter()
            .filter(|k| k.role == Role::Admin)
            .map(|k| k.name)
            .collect();
        assert_eq!(
            admin_only,
            [
                SYSTEM_SLEEP,
                SYSTEM_RETENTION,
                SYSTEM_BULK_JOBS,
                REPORT_AUDIT_LOG,
                WORKSPACES_APPLY_BILLING_MODE
            ]
        );
        assert!(all().iter().all(|k| k.role >= Role::Operator));
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
        assert!(all().iter().all(|k| QUEUES.contains(&k.queue)));
    }

    #[test]
    fn the_registry_holds_each_kind_once_with_its_policy_and_key() {
        let mut names: Vec<&str> = all().iter().map(|k| k.name).collect();
        let registered = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), registered, "a kind is registered twice");
        for k in all() {
            assert_eq!(*retry_policies().for_kind(k.name), k.retry, "{}", k.name);
        }
        assert_eq!(retry_policies().for_kind(SYNC_WORKSPACES).max_attempts, 5);
        assert_eq!(retry_policies().for_kind(INFERENCE_CHAT).max_attempts, 1);
        let ws = spec::<WorkspacesSync>();
        assert_eq!(
            ws.singleton_key(&json!({"account": "prod", "region": "eu-west-1"})),
            Some("sync.workspaces:prod:eu-west-1".to_owned())
        );
        assert_eq!(
            spec::<BillingSync>().singleton_key(&json!({"account": "prod"})),
            Some("sync.billing:prod:global".to_owned())
        );
        assert_eq!(spec::<Noop>().singleton_key(&json!({})), None);
        assert_eq!(
            spec::<Retention>().singleton_key(&json!({"job_runs_days": 30, "audit_events_days": 400})),
            Some(SYSTEM_RETENTION.to_owned())
        );
        let targeting: Vec<&str> = all()
            .iter()
            .filter(|k| k.targets_accounts())
            .map(|k| k.name)
            .collect();
        assert_eq!(
            targeting,
            [SYNC_WORKSPACES, SYNC_CLOUDTRAIL, SYNC_BILLING, SYNC_USAGE]
        );
        let payload = with_target(
            spec::<BillingSync>(),
            &json!({"start": "2026-11-01"}),
            "prod",
            GLOBAL_REGION,
        );
        assert_eq!(payload, json!({"start": "2026-11-01", "account": "prod"}));
    }
}
