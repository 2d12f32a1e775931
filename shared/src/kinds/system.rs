//! The `system.*` kinds: diagnostics (`noop`, `sleep`) and housekeeping
//! (`retention`). Their handlers are in `hangar-worker`'s `jobs::system`.

use std::time::Duration;

use hangar_queue::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{
    job_kind::{JobKind, QUEUE_SYNC},
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
