//! The `report.*` kinds: files built from the synced tables on the `reports`
//! queue, kept in the report store (`hangar-reports`). Their handlers are in
//! `hangar-worker`'s `jobs::report`.

use std::time::Duration;

use hangar_queue::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{
    job_kind::{JobKind, QUEUE_REPORTS},
    payload::{PayloadError, invalid},
};
use crate::{
    inventory::{MAX_SEARCH_CHARS, WORKSPACE_STATES, workspace_state},
    role::Role,
};

/// `report.inventory`: every workspace, filtered like `GET /api/v1/workspaces`.
pub const REPORT_INVENTORY: &str = "report.inventory";
/// `report.unused`: workspaces nobody connected to for N days.
pub const REPORT_UNUSED: &str = "report.unused";
/// `report.billing_mode`: AUTO_STOP or ALWAYS_ON, per workspace, by its usage.
pub const REPORT_BILLING_MODE: &str = "report.billing_mode";
/// `report.costs`: daily costs by service and usage type.
pub const REPORT_COSTS: &str = "report.costs";
/// `report.audit`: CloudTrail's WorkSpaces events.
pub const REPORT_AUDIT: &str = "report.audit";
/// `report.audit_log`: Hangar's own audit log (admins only).
pub const REPORT_AUDIT_LOG: &str = "report.audit_log";
/// `workspaces.apply_billing_mode`: changes running modes (admins only).
pub const WORKSPACES_APPLY_BILLING_MODE: &str = "workspaces.apply_billing_mode";

/// A report reads PostgreSQL and writes one file: a few retries, spaced out
/// (the usual cause is the store or the database being briefly away).
const REPORT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base: Duration::from_secs(5),
    cap: Duration::from_secs(60),
};

/// The file a report is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// RFC 4180, UTF-8, a header row.
    Csv,
    /// One object: `columns`, `rows`, `generated_at`, `params`, `freshness`.
    Json,
    /// A spreadsheet: the data sheet and an "About" sheet.
    Xlsx,
}

impl ReportFormat {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Xlsx => "xlsx",
        }
    }

    /// The `Content-Type` it is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// `report.inventory` arguments: the format, and the filters of
/// `GET /api/v1/workspaces` (each optional; all of them together narrow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Announce the published report at `HANGAR_REPORT_WEBHOOK_URL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// Only this configured account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only this WorkSpaces state (any case; stored upper-case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only this directory id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Only this user name (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this bundle id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Free text in the id, user, computer name or IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Also workspaces gone from AWS.
    #[serde(default)]
    pub include_deleted: bool,
}

impl JobKind for InventoryReport {
    const NAME: &'static str = REPORT_INVENTORY;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        for (field, value) in [
            ("account", &self.account),
            ("region", &self.region),
            ("directory", &self.directory),
            ("user", &self.user),
            ("bundle", &self.bundle),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.chars().count() > 256)
            {
                return Err(invalid(field, "must be 1-256 characters"));
            }
        }
        if let Some(s) = &self.state
            && workspace_state(s).is_none()
        {
            return Err(invalid(
                "state",
                format!(
                    "{s:?} is not a WorkSpaces state; one of {}",
                    WORKSPACE_STATES.join(", ")
                ),
            ));
        }
        if self
            .q
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(invalid("q", format!("at most {MAX_SEARCH_CHARS} characters")));
        }
        Ok(())
    }
}

/// An optional account or region filter: 1-256 characters.
fn check_names(fields: &[(&str, &Option<String>)]) -> Result<(), PayloadError> {
    for (field, value) in fields {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.chars().count() > 256)
        {
            return Err(invalid(field, "must be 1-256 characters"));
        }
    }
    Ok(())
}

fn default_unused_days() -> u32 {
    30
}

/// `report.unused` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusedReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Announce the published report at `HANGAR_REPORT_WEBHOOK_URL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// No connection in this many days (1-365; default 30). Never-connected
    /// workspaces count once Hangar has known them this long.
    #[serde(default = "default_unused_days")]
    pub days: u32,
    /// Only this configured account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl JobKind for UnusedReport {
    const NAME: &'static str = REPORT_UNUSED;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        check_names(&[("account", &self.account), ("region", &self.region)])?;
        if !(1..=365).contains(&self.days) {
            return Err(invalid("days", "must be 1-365"));
        }
        Ok(())
    }
}

/// `report.billing_mode` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingModeReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Announce the published report at `HANGAR_REPORT_WEBHOOK_URL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// Only this configured account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl JobKind for BillingModeReport {
    const NAME: &'static str = REPORT_BILLING_MODE;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        check_names(&[("account", &self.account), ("region", &self.region)])
    }
}

/// `report.costs` arguments: days `start..end` (end exclusive); by default
/// the current month so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Announce the published report at `HANGAR_REPORT_WEBHOOK_URL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// First day (default: the first of this month, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::NaiveDate>,
    /// Day after the last (default: tomorrow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::NaiveDate>,
    /// Only this configured account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only Amazon WorkSpaces (default: every service).
    #[serde(default)]
    pub workspaces_only: bool,
}

impl JobKind for CostsReport {
    const NAME: &'static str = REPORT_COSTS;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        check_names(&[("account", &self.account)])?;
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if s >= e {
                return Err(invalid("end", "must be after start (end is exclusive)"));
            }
            if (e - s).num_days() > 366 {
                return Err(invalid("end", "a costs report covers at most 366 days"));
            }
        }
        Ok(())
    }
}

/// `report.audit` arguments: CloudTrail's WorkSpaces events in
/// `start..end` (default: the last 7 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Announce the published report at `HANGAR_REPORT_WEBHOOK_URL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// Earliest event time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Latest event time, exclusive (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this configured account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only this event name (e.g. `TerminateWorkspaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// Only this user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

fn check_range(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), PayloadError> {
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        return Err(invalid("end", "must be after start"));
    }
    Ok(())
}

impl JobKind for AuditReport {
    const NAME: &'static str = REPORT_AUDIT;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        check_names(&[
            ("account", &self.account),
            ("region", &self.region),
            ("event_name", &self.event_name),
            ("user", &self.user),
        ])?;
        check_range(self.start, self.end)
    }
}

/// `report.audit_log` arguments: Hangar's own audit log in `start..end`
/// (default: the last 7 days). Admins only: it names every caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditLogReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Announce the published report at `HANGAR_REPORT_WEBHOOK_URL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook: bool,
    /// Earliest entry (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Latest entry, exclusive (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only this action (e.g. `jobs.create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl JobKind for AuditLogReport {
    const NAME: &'static str = REPORT_AUDIT_LOG;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const ROLE: Role = Role::Admin;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        check_names(&[("actor", &self.actor), ("action", &self.action)])?;
        check_range(self.start, self.end)
    }
}

/// A running mode `workspaces.apply_billing_mode` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunningMode {
    /// Billed by the hour, stopped after the AutoStop timeout.
    AutoStop,
    /// Billed by the month.
    AlwaysOn,
}

impl RunningMode {
    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AutoStop => "AUTO_STOP",
            Self::AlwaysOn => "ALWAYS_ON",
        }
    }
}

/// One change: a workspace and the running mode it should have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    /// The workspace id (`ws-…`).
    pub workspace_id: String,
    /// `AUTO_STOP` or `ALWAYS_ON`.
    pub running_mode: RunningMode,
}

fn yes() -> bool {
    true
}

/// Most changes one job makes.
pub const MAX_MODE_CHANGES: usize = 500;

/// `workspaces.apply_billing_mode` arguments: the changes (usually a
/// `report.billing_mode`'s `ToMonthly`/`ToHourly` rows) for one account and
/// region. A dry run (the default) checks each against the synced inventory
/// and says what it would do, changing nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBillingMode {
    /// Configured account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// 1-500 changes.
    pub changes: Vec<ModeChange>,
    /// Only say what would change (default true).
    #[serde(default = "yes")]
    pub dry_run: bool,
}

impl JobKind for ApplyBillingMode {
    const NAME: &'static str = WORKSPACES_APPLY_BILLING_MODE;
    const QUEUE: &'static str = super::job_kind::QUEUE_SYNC;
    const ROLE: Role = Role::Admin;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        super::sync::check_account_region(&self.account, Some(&self.region))?;
        if self.changes.is_empty() || self.changes.len() > MAX_MODE_CHANGES {
            return Err(invalid(
                "changes",
                format!("must hold 1-{MAX_MODE_CHANGES} changes"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.changes.iter().enumerate() {
            let ok = c.workspace_id.starts_with("ws-")
                && c.workspace_id.len() <= 64
                && c.workspace_id[3..].chars().all(|ch| ch.is_ascii_alphanumeric());
            if !ok {
                return Err(invalid(
                    &format!("changes[{i}].workspace_id"),
                    format!("{:?} is not a WorkSpaces id like ws-abc123", c.workspace_id),
                ));
            }
            if !seen.insert(&c.workspace_id) {
                return Err(invalid(
                    &format!("changes[{i}].workspace_id"),
                    format!("{} is listed twice", c.workspace_id),
                ));
            }
        }
        Ok(())
    }

    fn singleton_key(&self) -> Option<String> {
        Some(format!("{}:{}:{}", Self::NAME, self.account, self.region))
    }
}

/// What every report kind's payload says about its file.
pub trait ReportJob {
    /// The file format.
    fn format(&self) -> ReportFormat;
    /// Whether to announce it at the webhook once published.
    fn webhook(&self) -> bool;
}

macro_rules! report_job {
    ($($kind:ty),*) => {$(
        impl ReportJob for $kind {
            fn format(&self) -> ReportFormat {
                self.format
            }
            fn webhook(&self) -> bool {
                self.webhook
            }
        }
    )*};
}

report_job!(
    InventoryReport,
    UnusedReport,
    BillingModeReport,
    CostsReport,
    AuditReport,
    AuditLogReport
);
