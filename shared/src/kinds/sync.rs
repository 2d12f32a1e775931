//! The `sync.*` kinds: AWS data pulled into PostgreSQL, one open job per
//! (kind, account, region). Their handlers are in `hangar-worker`'s
//! `jobs::sync`, over `hangar-sync`.

use std::time::Duration;

use hangar_queue::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{
    job_kind::{JobKind, QUEUE_SYNC, Target, Window},
    payload::{PayloadError, invalid},
};

/// `sync.workspaces`: directories, workspaces, bundles, connection status and tags.
pub const SYNC_WORKSPACES: &str = "sync.workspaces";
/// `sync.cloudtrail`: WorkSpaces events from CloudTrail LookupEvents.
pub const SYNC_CLOUDTRAIL: &str = "sync.cloudtrail";
/// `sync.billing`: daily costs from Cost Explorer.
pub const SYNC_BILLING: &str = "sync.billing";
/// `sync.usage`: connected time per workspace from CloudWatch.
pub const SYNC_USAGE: &str = "sync.usage";
/// CloudWatch keeps 5-minute datapoints for 63 days.
pub const USAGE_MAX_DAYS: i64 = 63;
/// The region recorded for account-wide data (Cost Explorer is global).
pub const GLOBAL_REGION: &str = "global";

/// Throttling and 5xx are retried inside the job; a failed attempt means AWS
/// stayed unhappy for a while, so wait longer between attempts.
const SYNC_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    base: Duration::from_secs(15),
    cap: Duration::from_secs(600),
};

/// The key that allows one open sync per (kind, account, region).
/// The singleton key of a sync of `kind` for (`account`, `region`): one
/// open job per target, and how the console finds a target's jobs.
pub fn sync_singleton_key(kind: &str, account: &str, region: &str) -> String {
    format!("{kind}:{account}:{region}")
}

/// `sync.workspaces` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacesSync {
    /// Configured account name.
    pub account: String,
    /// Region.
    pub region: String,
}

impl JobKind for WorkspacesSync {
    const NAME: &'static str = SYNC_WORKSPACES;
    const QUEUE: &'static str = QUEUE_SYNC;
    const RETRY: RetryPolicy = SYNC_RETRY;
    const TARGET: Target = Target::Region;

    fn check(&self) -> Result<(), PayloadError> {
        check_account_region(&self.account, Some(&self.region))
    }

    fn singleton_key(&self) -> Option<String> {
        Some(self.target_key())
    }
}

impl WorkspacesSync {
    /// The (kind, account, region) key: the job's singleton key, and the
    /// sync's per-target lock in the worker.
    pub fn target_key(&self) -> String {
        sync_singleton_key(Self::NAME, &self.account, &self.region)
    }
}

/// `sync.cloudtrail` arguments. Without `start`, the sync resumes from its
/// cursor (minus the overlap); without `end`, it reads up to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailSync {
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

impl JobKind for CloudTrailSync {
    const NAME: &'static str = SYNC_CLOUDTRAIL;
    const QUEUE: &'static str = QUEUE_SYNC;
    const RETRY: RetryPolicy = SYNC_RETRY;
    const TARGET: Target = Target::Region;
    const WINDOW: Window = Window::Times;

    fn check(&self) -> Result<(), PayloadError> {
        check_account_region(&self.account, Some(&self.region))?;
        // LookupEvents only reaches 90 days back.
        check_time_window(
            self.start,
            self.end,
            90,
            "CloudTrail LookupEvents only covers the last 90 days",
        )
    }

    fn singleton_key(&self) -> Option<String> {
        Some(self.target_key())
    }
}

impl CloudTrailSync {
    /// The (kind, account, region) key: the job's singleton key, and the
    /// sync's per-target lock in the worker.
    pub fn target_key(&self) -> String {
        sync_singleton_key(Self::NAME, &self.account, &self.region)
    }
}

/// `sync.billing` arguments: days `start..end` (end exclusive, UTC). Without
/// them, the sync covers the days since its cursor, re-reading the last few.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSync {
    /// Configured account name.
    pub account: String,
    /// First day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::NaiveDate>,
    /// Day after the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::NaiveDate>,
}

impl JobKind for BillingSync {
    const NAME: &'static str = SYNC_BILLING;
    const QUEUE: &'static str = QUEUE_SYNC;
    const RETRY: RetryPolicy = SYNC_RETRY;
    const TARGET: Target = Target::Account;
    const WINDOW: Window = Window::Dates;

    fn check(&self) -> Result<(), PayloadError> {
        check_account_region(&self.account, None)?;
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if s >= e {
                return Err(invalid("end", "must be after start (end is exclusive)"));
            }
            if (e - s).num_days() > 366 {
                return Err(invalid("end", "a billing sync covers at most 366 days"));
            }
        }
        if let Some(e) = self.end
            && e > chrono::Utc::now().date_naive() + chrono::Duration::days(1)
        {
            return Err(invalid(
                "end",
                "must be at most tomorrow (end is exclusive): there are no future costs",
            ));
        }
        // Cost Explorer keeps 14 months of daily data.
        if let Some(s) = self.start
            && s < chrono::Utc::now().date_naive() - chrono::Duration::days(14 * 31)
        {
            return Err(invalid("start", "Cost Explorer only keeps the last 14 months"));
        }
        Ok(())
    }

    fn singleton_key(&self) -> Option<String> {
        Some(self.target_key())
    }
}

impl BillingSync {
    /// The (kind, account) key, in [`GLOBAL_REGION`]: the job's singleton
    /// key, and the sync's per-account lock in the worker.
    pub fn target_key(&self) -> String {
        sync_singleton_key(Self::NAME, &self.account, GLOBAL_REGION)
    }
}

/// `sync.usage` arguments: CloudWatch's `AWS/WorkSpaces` `UserConnected`
/// for every workspace of the account and region, from `start` (default:
/// the stored cursor minus an overlap, or the start of the previous month
/// on the first run) to `end` (default: now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSync {
    /// Configured account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// Earliest time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Latest time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
}

impl JobKind for UsageSync {
    const NAME: &'static str = SYNC_USAGE;
    const QUEUE: &'static str = QUEUE_SYNC;
    const RETRY: RetryPolicy = SYNC_RETRY;
    const TARGET: Target = Target::Region;
    const WINDOW: Window = Window::Times;

    fn check(&self) -> Result<(), PayloadError> {
        check_account_region(&self.account, Some(&self.region))?;
        check_time_window(
            self.start,
            self.end,
            USAGE_MAX_DAYS,
            &format!("CloudWatch keeps 5-minute datapoints for {USAGE_MAX_DAYS} days only"),
        )
    }

    fn singleton_key(&self) -> Option<String> {
        Some(self.target_key())
    }
}

impl UsageSync {
    /// The (kind, account, region) key: the job's singleton key, and the
    /// sync's per-target lock in the worker.
    pub fn target_key(&self) -> String {
        sync_singleton_key(Self::NAME, &self.account, &self.region)
    }
}

/// A sync's `start..end` window: in order, not in the future, and no older
/// than the `max_days` the AWS API keeps (`why` says so).
fn check_time_window(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
    max_days: i64,
    why: &str,
) -> Result<(), PayloadError> {
    let now = chrono::Utc::now();
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        return Err(invalid("end", "must be after start"));
    }
    if end.is_some_and(|e| e > now + chrono::Duration::hours(1)) {
        return Err(invalid("end", "must not be in the future"));
    }
    if start.is_some_and(|s| s < now - chrono::Duration::days(max_days)) {
        return Err(invalid("start", why));
    }
    Ok(())
}

pub(crate) fn check_account_region(account: &str, region: Option<&str>) -> Result<(), PayloadError> {
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
