//! The `system.*` kinds: diagnostics (`noop`, `sleep`) and housekeeping
//! (`retention`). Their handlers are in `hangar-worker`'s `jobs::system`.

use std::time::Duration;

use hangar_queue::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{
    job_kind::{JobKind, QUEUE_CONTROL, QUEUE_SYNC},
    payload::{PayloadError, invalid},
};
use crate::role::Role;

/// `system.noop`: does nothing; for diagnostics and benchmarks.
pub const SYSTEM_NOOP: &str = "system.noop";
/// `system.sleep`: sleeps, reporting progress.
pub const SYSTEM_SLEEP: &str = "system.sleep";
/// `system.retention`: deletes old finished job records and CloudTrail events.
pub const SYSTEM_RETENTION: &str = "system.retention";

/// Housekeeping jobs are quick and local: a few retries, close together.
const SYSTEM_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

/// `system.noop` takes no arguments. It stays open to operators: it does
/// nothing, and is the smoke test and the benchmarks' kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noop {}

impl JobKind for Noop {
    const NAME: &'static str = SYSTEM_NOOP;
    const QUEUE: &'static str = QUEUE_SYNC;
    const RETRY: RetryPolicy = SYSTEM_RETRY;
}

/// `system.sleep` arguments. Admin only: a sleep holds a worker slot for
/// up to ten minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sleep {
    /// How long to sleep, 0..=600,000 ms.
    pub ms: u64,
    /// Progress reports while sleeping (1..=100, default 10).
    #[serde(default = "default_steps")]
    pub steps: u32,
}

fn default_steps() -> u32 {
    10
}

impl JobKind for Sleep {
    const NAME: &'static str = SYSTEM_SLEEP;
    const QUEUE: &'static str = QUEUE_SYNC;
    const ROLE: Role = Role::Admin;
    const RETRY: RetryPolicy = SYSTEM_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        if self.ms > 600_000 {
            return Err(invalid("ms", "must be at most 600000"));
        }
        if !(1..=100).contains(&self.steps) {
            return Err(invalid("steps", "must be between 1 and 100"));
        }
        Ok(())
    }
}

/// Least `job_runs_days` a retention job may ask for: a week of job history
/// is what on-call needs to answer "what happened last weekend".
pub const MIN_JOB_RUNS_DAYS: u32 = 7;
/// Least `audit_events_days`: CloudTrail's LookupEvents keeps 90 days, so
/// events deleted younger than that could never be synced back.
pub const MIN_AUDIT_EVENTS_DAYS: u32 = 90;

/// `system.retention` arguments. Admin only: it deletes data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Finished jobs (succeeded, cancelled, dead) older than this many days
    /// are deleted from `job_runs` (7-3650, default 30): a week of records at
    /// a time, once every record created that week is past it, so a record
    /// stays between this many days and a week more.
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

impl JobKind for Retention {
    const NAME: &'static str = SYSTEM_RETENTION;
    const QUEUE: &'static str = QUEUE_SYNC;
    const ROLE: Role = Role::Admin;
    const RETRY: RetryPolicy = SYSTEM_RETRY;

    /// One at a time: a second would only race the first over the same
    /// rows. Asking again while one is open answers that one.
    fn singleton_key(&self) -> Option<String> {
        Some(SYSTEM_RETENTION.to_owned())
    }

    fn check(&self) -> Result<(), PayloadError> {
        for (field, days, least) in [
            ("job_runs_days", self.job_runs_days, MIN_JOB_RUNS_DAYS),
            ("audit_events_days", self.audit_events_days, MIN_AUDIT_EVENTS_DAYS),
        ] {
            if !(least..=3650).contains(&days) {
                return Err(invalid(field, format!("must be between {least} and 3650 days")));
            }
        }
        Ok(())
    }
}

/// `system.bulk_jobs`: cancels or retries many jobs at once.
pub const SYSTEM_BULK_JOBS: &str = "system.bulk_jobs";

/// Jobs one bulk action may name one by one.
pub const MAX_BULK_IDS: usize = 1000;
/// Most jobs one bulk action acts on.
pub const MAX_BULK_JOBS: u64 = 1_000_000;

/// What a bulk action does to each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Cancel each open job (a waiting one at once, a running one at its
    /// next checkpoint).
    Cancel,
    /// Run each dead job again with a fresh attempt budget.
    Retry,
}

/// Which jobs a bulk action walks: the jobs list's filter
/// (`GET /api/v1/jobs`), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only jobs asked for by this caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Only jobs whose payload contains this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
    /// Only jobs created at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only jobs created before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// `system.bulk_jobs` arguments: an action on jobs chosen one by one
/// (`ids`) or on every job matching `filter`, at most `max_jobs` of them.
/// Admin only, as cancelling and retrying one job is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkJobs {
    /// `cancel` or `retry`.
    pub action: BulkAction,
    /// Jobs chosen one by one (1-1000); empty to act on `filter`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Which jobs, when `ids` is empty. Retry acts on dead jobs only and
    /// cancel on open ones, whatever `filter.state` says.
    #[serde(default)]
    pub filter: BulkFilter,
    /// Most jobs to act on (1-1000000): the count the caller previewed and
    /// confirmed, so jobs arriving meanwhile do not widen the action much.
    pub max_jobs: u64,
}

impl JobKind for BulkJobs {
    const NAME: &'static str = SYSTEM_BULK_JOBS;
    const QUEUE: &'static str = QUEUE_CONTROL;
    const ROLE: Role = Role::Admin;
    const RETRY: RetryPolicy = SYSTEM_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        if self.ids.len() > MAX_BULK_IDS {
            return Err(invalid(
                "ids",
                format!("at most {MAX_BULK_IDS} ids; act on a filter instead"),
            ));
        }
        if let Some(bad) = self.ids.iter().find(|id| id.parse::<ulid::Ulid>().is_err()) {
            return Err(invalid("ids", format!("{bad:?} is not a job id")));
        }
        if !(1..=MAX_BULK_JOBS).contains(&self.max_jobs) {
            return Err(invalid(
                "max_jobs",
                format!("must be between 1 and {MAX_BULK_JOBS}"),
            ));
        }
        // An unknown `filter.kind` matches no job (the jobs list, where the
        // filter is made, refuses it); checking it here would make this
        // module depend on the registry that lists it.
        let f = &self.filter;
        if let Some(s) = &f.state {
            let Some(state) = hangar_queue::JobStatus::parse(s) else {
                return Err(invalid("filter.state", "must be a job state"));
            };
            let fits = match self.action {
                BulkAction::Retry => state == hangar_queue::JobStatus::Dead,
                BulkAction::Cancel => state.is_open(),
            };
            if !fits {
                return Err(invalid(
                    "filter.state",
                    match self.action {
                        BulkAction::Retry => {
                            "retry acts on dead jobs only: leave the state out or make it dead"
                        }
                        BulkAction::Cancel => {
                            "cancel acts on open jobs only: leave the state out or pick an open one"
                        }
                    },
                ));
            }
        }
        if let (Some(a), Some(b)) = (f.created_after, f.created_before)
            && a >= b
        {
            return Err(invalid("filter.created_before", "must be after created_after"));
        }
        Ok(())
    }
}
