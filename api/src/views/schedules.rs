//! What the schedule routes answer: each schedule's definition with where it
//! comes from, its next fire times and its last run.

use chrono::{DateTime, Utc};
use hangar_shared::schedule::{CatchUp, Overlap, Schedule};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A schedule's last run.
#[derive(Debug, Serialize, ToSchema)]
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

/// A schedule with where it comes from, its next fire times and last run.
#[derive(Debug, Serialize, ToSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// Catch-up policy.
    #[schema(value_type = String)]
    pub catch_up: CatchUp,
    /// Most ticks `fire_all` replays.
    pub catch_up_cap: u32,
    /// Overlap policy.
    #[schema(value_type = String)]
    pub overlap: Overlap,
    /// Random delay per tick, seconds.
    pub jitter_secs: u32,
    /// `file` (read-only) or `api`.
    pub source: &'static str,
    /// Whether it fires one job per configured (account, region).
    pub fans_out: bool,
    /// The next 5 fire times (empty when disabled).
    pub next: Vec<DateTime<Utc>>,
    /// The last run, if any.
    pub last_run: Option<LastRun>,
}

impl ScheduleView {
    /// How many fire times a view lists.
    const UPCOMING: usize = 5;

    /// `schedule` from `source` as of `now`, with its last run if it has one.
    pub fn new(
        schedule: &Schedule,
        source: &'static str,
        now: DateTime<Utc>,
        last_run: Option<LastRun>,
    ) -> Self {
        let spec = schedule.spec.clone();
        let next = if spec.enabled {
            schedule.upcoming(now, Self::UPCOMING)
        } else {
            Vec::new()
        };
        Self {
            name: spec.name,
            cron: spec.cron,
            timezone: spec.timezone,
            kind: spec.kind,
            payload: spec.payload,
            queue: spec.queue,
            enabled: spec.enabled,
            catch_up: spec.catch_up,
            catch_up_cap: spec.catch_up_cap,
            overlap: spec.overlap,
            jitter_secs: spec.jitter_secs,
            source,
            fans_out: schedule.fans_out(),
            next,
            last_run,
        }
    }
}

/// Every schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// File schedules first, then API ones by name.
    pub schedules: Vec<ScheduleView>,
}
