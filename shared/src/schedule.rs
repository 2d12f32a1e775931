//! Periodic schedules: their definition (from the deployment's TOML file or
//! the `schedules` table), validation naming the field at fault, and the
//! arithmetic the scheduler and the API share: when a schedule fires next,
//! which ticks a downtime missed, what its catch-up policy fires for them,
//! and the job id each tick gets.
//!
//! Times are evaluated in the schedule's IANA time zone with Vixie cron's
//! rules across daylight-saving changes (croner implements them): a time
//! that happens twice fires once (the first time), a time that does not
//! happen fires right after the clock jumps, and expressions that fire every
//! hour or more often keep firing every real hour.
//!
//! Every function takes `now` from the caller: tests run days of ticks in
//! microseconds, and two replicas computing the same tick agree on its id.
//!
//! Long (about 520 lines without its tests) because cron parsing, the
//! catch-up rule and the tick ids must agree exactly; they are read together.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kinds::{self, PayloadError, invalid};

/// What a downtime's missed ticks turn into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed ticks are dropped; the schedule resumes with its next tick.
    Skip,
    /// Missed ticks become one run (unless a tick is due on time anyway).
    #[default]
    FireOnce,
    /// Every missed tick runs, up to `catch_up_cap` of the most recent.
    FireAll,
}

/// What a tick does while the schedule's previous job is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Enqueue anyway.
    Allow,
    /// Skip the tick (counted in metrics).
    #[default]
    SkipIfRunning,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_payload() -> Value {
    Value::Object(Default::default())
}
fn default_true() -> bool {
    true
}
fn default_cap() -> u32 {
    10
}

/// A schedule as written in TOML or sent to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique name, 1-64 of `a-z 0-9 - _ .`.
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Job kind to enqueue.
    pub kind: String,
    /// Its payload (validated like an API request).
    #[serde(default = "default_payload")]
    pub payload: Value,
    /// Queue; defaults to the kind's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Disabled schedules never fire.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Missed ticks after downtime.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Most missed ticks `fire_all` runs (1-1000).
    #[serde(default = "default_cap")]
    pub catch_up_cap: u32,
    /// A tick while the previous job is open.
    #[serde(default)]
    pub overlap: Overlap,
    /// Each tick's job is delayed by up to this many seconds (the same delay
    /// for a given tick on every replica), to spread load.
    #[serde(default)]
    pub jitter_secs: u32,
}

/// A validated schedule, ready to compute fire times.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The definition (queue filled in).
    pub spec: ScheduleSpec,
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

/// Names the cron field whose number is out of its range, with the range
/// (croner would only say "Number out of bounds"). Names (`MON`, `JAN`),
/// `*`, `?`, `L` and `#` parts are left to croner.
fn check_cron_ranges(cron: &str) -> Result<(), PayloadError> {
    const FIVE: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    let parts: Vec<&str> = cron.split_whitespace().collect();
    let fields: Vec<(&str, u32, u32)> = if parts.len() == 6 {
        std::iter::once(("second", 0, 59)).chain(FIVE).collect()
    } else {
        FIVE.to_vec()
    };
    for (part, (name, low, high)) in parts.iter().zip(fields) {
        for piece in part.split(',') {
            // `a-b/step`: the step is not a value of the field.
            let values = piece.split('/').next().unwrap_or(piece);
            for value in values.split('-').filter_map(|v| v.parse::<u32>().ok()) {
                if !(low..=high).contains(&value) {
                    return Err(invalid(
                        "cron",
                        format!("the {name} field has {value}; it must be {low}-{high} (in {cron:?})"),
                    ));
                }
            }
        }
    }
    Ok(())
}

impl Schedule {
    /// Validates `spec`, naming the field at fault (`cron`, `timezone`,
    /// `payload.ms`, ...).
    pub fn new(mut spec: ScheduleSpec) -> Result<Self, PayloadError> {
        if !crate::names::is_lowercase_name(&spec.name) {
            return Err(invalid("name", "must be 1-64 of a-z, 0-9, '-', '_', '.'"));
        }
        let fields = spec.cron.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(invalid(
                "cron",
                format!(
                    "has {fields} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)"
                ),
            ));
        }
        check_cron_ranges(&spec.cron)?;
        let cron = croner::Cron::from_str(&spec.cron).map_err(|e| invalid("cron", format!("{e}")))?;
        let tz = chrono_tz::Tz::from_str(&spec.timezone).map_err(|_| {
            invalid(
                "timezone",
                format!(
                    "{:?} is not an IANA time zone such as Europe/Berlin",
                    spec.timezone
                ),
            )
        })?;
        let kind = kinds::kind(&spec.kind).ok_or_else(|| {
            let known: Vec<&str> = kinds::all().iter().map(|k| k.name).collect();
            invalid(
                "kind",
                format!("unknown kind {:?}; known: {}", spec.kind, known.join(", ")),
            )
        })?;
        let payload_error = |e: PayloadError| e.within("payload");
        if s_fans_out(&spec) {
            // Checked as it will be sent (with a target), kept without one.
            let probe = kinds::with_target(kind, &spec.payload, "probe", "us-east-1");
            kind.validate(&probe).map_err(payload_error)?;
        } else {
            spec.payload = kind.validate(&spec.payload).map_err(payload_error)?;
        }
        match &spec.queue {
            None => spec.queue = Some(kind.queue.to_owned()),
            Some(q) if kinds::QUEUES.contains(&q.as_str()) => {}
            Some(q) => {
                return Err(invalid(
                    "queue",
                    format!("unknown queue {q:?}; known: {}", kinds::QUEUES.join(", ")),
                ));
            }
        }
        if !(1..=1000).contains(&spec.catch_up_cap) {
            return Err(invalid("catch_up_cap", "must be between 1 and 1000"));
        }
        if spec.jitter_secs > 3600 {
            return Err(invalid("jitter_secs", "must be at most 3600"));
        }
        if kind.targets_accounts()
            && spec.payload.get("account").is_none()
            && spec.payload.get("region").is_some()
        {
            return Err(invalid(
                "payload.region",
                "name the account too, or leave both out to run for every configured account and region",
            ));
        }
        if spec.catch_up == CatchUp::FireAll && spec.overlap == Overlap::SkipIfRunning {
            // Every missed tick would find the first one's job still open.
            return Err(invalid(
                "overlap",
                "catch_up = fire_all runs every missed tick, which needs overlap = allow",
            ));
        }
        // An expression that never matches (e.g. 30 February) would make a
        // schedule that silently never fires.
        let probe = Schedule { spec, cron, tz };
        let upcoming = probe.upcoming(Utc::now(), 6);
        if upcoming.is_empty() {
            return Err(invalid("cron", "never matches a real date"));
        }
        // A delayed job is still open at the next tick if the jitter reaches
        // it: with skip_if_running every other tick would be skipped.
        let shortest = upcoming.windows(2).map(|w| w[1] - w[0]).min();
        if let Some(gap) = shortest
            && i64::from(probe.spec.jitter_secs) * 1000 >= gap.num_milliseconds()
        {
            return Err(invalid(
                "jitter_secs",
                format!(
                    "must be shorter than the time between ticks ({} s)",
                    gap.num_seconds()
                ),
            ));
        }
        Ok(probe)
    }

    /// Whether each tick becomes one job per configured (account, region):
    /// an account-targeting kind whose payload names no account.
    pub fn fans_out(&self) -> bool {
        s_fans_out(&self.spec)
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The next `n` ticks after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// The longest gap between consecutive ticks in the `within` after `t`
    /// (at most [`MAX_GAP_TICKS`] ticks; `None` with fewer than two). A
    /// freshness alert's "twice the schedule" must use the longest gap, or
    /// a weekday-only schedule would page every weekend and a business-hours
    /// one every night; `within` of 8 days shows both patterns.
    pub fn longest_interval(&self, t: DateTime<Utc>, within: Duration) -> Option<Duration> {
        let until = t + chrono::Duration::from_std(within).ok()?;
        let mut longest: Option<Duration> = None;
        let mut prev = self.next_after(t)?;
        for _ in 0..MAX_GAP_TICKS {
            let Some(next) = self.next_after(prev).filter(|n| *n <= until) else {
                break;
            };
            let gap = (next - prev).to_std().unwrap_or_default();
            longest = Some(longest.map_or(gap, |l| l.max(gap)));
            prev = next;
        }
        longest
    }

    /// Ticks in `(after, until]`, the most recent `keep` of them, and how many
    /// there were in all (counting stops at `MAX_SCAN`).
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let mut recent = std::collections::VecDeque::with_capacity(keep.min(1024));
        let mut total = 0usize;
        let mut at = after;
        let mut jumped = false;
        while let Some(next) = self.next_after(at).filter(|n| *n <= until) {
            total += 1;
            if keep > 0 {
                if recent.len() == keep {
                    recent.pop_front();
                }
                recent.push_back(next);
            }
            let spacing = next - at;
            at = next;
            if total >= MAX_SCAN && !jumped {
                // A frequent schedule after a long downtime: jump to the last
                // stretch (room for `keep` ticks at the spacing seen) instead
                // of walking every tick; the total becomes a lower bound.
                jumped = true;
                let stretch = spacing.max(chrono::Duration::seconds(1)) * (keep as i32 + 2);
                let from = until - stretch;
                if from > at {
                    recent.clear();
                    total += ((from - at).num_milliseconds() / spacing.num_milliseconds().max(1)) as usize;
                    at = from;
                }
            }
        }
        (recent.into_iter().collect(), total)
    }
    /// The delay within `jitter_secs` of the job `key` (the schedule's name,
    /// or its fan-out target) creates at `tick`: derived from both, so every
    /// replica picks the same one and fan-out targets spread out.
    pub fn jitter_for(&self, key: &str, tick: DateTime<Utc>) -> Duration {
        if self.spec.jitter_secs == 0 {
            return Duration::ZERO;
        }
        let h = stable_hash(&format!("{key}@{}", tick.timestamp_millis()));
        Duration::from_millis(h % (u64::from(self.spec.jitter_secs) * 1000))
    }
}

/// The job a fire of `s` records for one target (`key`, `payload` from
/// [`job_targets`]), whether a tick or run-now fires it: the schedule's
/// kind and queue, asked for by `schedule:<name>`, and at most one open job
/// per target when ticks are skipped while one runs (a kind with its own
/// rule, one sync per account and region, keeps it).
pub fn job_for(s: &Schedule, key: &str, payload: &Value) -> Result<crate::db::NewJobRun, PayloadError> {
    let spec = &s.spec;
    let kind =
        kinds::kind(&spec.kind).ok_or_else(|| invalid("kind", format!("unknown kind {:?}", spec.kind)))?;
    let mut job = crate::db::NewJobRun::new(kind, payload.clone())
        .requested_by(format!("schedule:{}", spec.name))
        .singleton_or((spec.overlap == Overlap::SkipIfRunning).then(|| format!("schedule:{key}")));
    if let Some(queue) = &spec.queue {
        job = job.queue(queue.clone());
    }
    Ok(job)
}

/// The (key, payload) of each job a tick of `s` creates: one (keyed by the
/// schedule's name), or for a fan-out schedule one per configured (account,
/// region), keyed `name/account/region` (billing: one per account).
pub fn job_targets(s: &Schedule, aws: &crate::config::AwsConfig) -> Vec<(String, Value)> {
    let spec = &s.spec;
    let Some(kind) = kinds::kind(&spec.kind).filter(|_| s.fans_out()) else {
        return vec![(spec.name.clone(), spec.payload.clone())];
    };
    kinds::targets(aws, kind, None, None)
        .into_iter()
        .map(|(account, region)| {
            (
                format!("{}/{account}/{region}", spec.name),
                kinds::with_target(kind, &spec.payload, &account, &region),
            )
        })
        .collect()
}

/// The schedules of `HANGAR_SCHEDULES_FILE`: the shipped ones
/// (`deploy/schedules.toml`) when it is empty, none when it is `none`.
pub fn load_file(config: &crate::Config) -> Result<Vec<Schedule>, String> {
    let Some(path) = &config.scheduler.schedules_file else {
        return parse_file(SHIPPED).map_err(|e| format!("shipped schedules: {e}"));
    };
    if path == "none" {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("HANGAR_SCHEDULES_FILE {path}: cannot read it: {e}"))?;
    parse_file(&text).map_err(|e| format!("HANGAR_SCHEDULES_FILE {path}: {e}"))
}

fn s_fans_out(spec: &ScheduleSpec) -> bool {
    kinds::kind(&spec.kind).is_some_and(kinds::KindSpec::targets_accounts)
        && spec.payload.get("account").is_none()
}

/// The scheduler's leader lease ([`hangar_queue::LeaseLock`]) under the
/// Redis prefix: the replica holding it fires ticks; the API reads it to
/// export whether any replica leads.
pub const LEADER_LOCK: &str = "scheduler-leader";

/// Ticks [`Schedule::longest_interval`] looks at, at most (a schedule firing
/// every second has 691,200 in 8 days; their gaps are all the same).
pub const MAX_GAP_TICKS: usize = 2_000;

/// The schedules Hangar ships with (`deploy/schedules.toml`), used when
/// `HANGAR_SCHEDULES_FILE` is empty.
pub const SHIPPED: &str = include_str!("../../deploy/schedules.toml");

/// Ticks walked one by one before [`Schedule::ticks_between`] jumps ahead.
const MAX_SCAN: usize = 100_000;

/// FNV-1a, 64 bits: stable across processes and versions (std's hasher is
/// not), which job ids and jitter need.
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The job id of `name`'s tick at `tick`: a ULID whose time is the tick and
/// whose random part is derived from the name, so every replica firing the
/// same tick produces the same id (and the database keeps one job).
pub fn tick_job_id(name: &str, tick: DateTime<Utc>) -> ulid::Ulid {
    let hi = u128::from(stable_hash(name));
    let lo = u128::from(stable_hash(&format!("{name}#")));
    let random = ((hi << 64) | lo) & ((1u128 << 80) - 1);
    ulid::Ulid::from_parts(tick.timestamp_millis().max(0) as u64, random)
}

/// The idempotency key of `name`'s tick at `tick`.
pub fn tick_idempotency_key(name: &str, tick: DateTime<Utc>) -> String {
    format!("schedule:{name}:{}", tick.timestamp_millis())
}

/// A schedules file: `[[schedule]]` tables, each a [`ScheduleSpec`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    #[serde(default)]
    schedule: Vec<ScheduleSpec>,
}

/// Parses and validates a schedules file; every problem names the schedule
/// and the field.
pub fn parse_file(text: &str) -> Result<Vec<Schedule>, String> {
    let file: ScheduleFile = toml::from_str(text).map_err(|e| format!("not a schedules file: {e}"))?;
    let mut names = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    let mut schedules = Vec::new();
    for (i, spec) in file.schedule.into_iter().enumerate() {
        let label = format!("schedule #{} ({:?})", i + 1, spec.name);
        if !names.insert(spec.name.clone()) {
            problems.push(format!("{label}: the name is used twice"));
            continue;
        }
        match Schedule::new(spec) {
            Ok(s) => schedules.push(s),
            Err(e) => problems.push(format!("{label}: {}: {}", e.field, e.message)),
        }
    }
    if problems.is_empty() {
        Ok(schedules)
    } else {
        Err(problems.join("; "))
    }
}

/// One tick to enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// The scheduled time.
    pub at: DateTime<Utc>,
    /// Fired late, by the catch-up policy.
    pub catch_up: bool,
}

/// What a scheduler pass does for one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Ticks to enqueue, oldest first.
    pub fires: Vec<Fire>,
    /// Missed ticks the policy dropped.
    pub dropped: usize,
    /// How far this pass looked (`now`): the next pass starts after it, so a
    /// schedule changed or re-enabled later has no stale past to catch up.
    pub cursor: DateTime<Utc>,
}

/// Decides what to fire at `now` for a schedule whose ticks up to `cursor`
/// are accounted for. Ticks within `grace` of `now` are on time; older ones
/// were missed (downtime, a leader change) and go by the catch-up policy.
/// A schedule seen for the first time (`cursor` is `None`) starts at `now`:
/// it has no past to catch up on.
pub fn plan(schedule: &Schedule, cursor: Option<DateTime<Utc>>, now: DateTime<Utc>, grace: Duration) -> Plan {
    let Some(cursor) = cursor else {
        return Plan {
            fires: Vec::new(),
            dropped: 0,
            cursor: now,
        };
    };
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    let keep = schedule.spec.catch_up_cap as usize + 64;
    let (ticks, total) = schedule.ticks_between(cursor, now, keep);
    let Some(&newest) = ticks.last() else {
        return Plan {
            fires: Vec::new(),
            dropped: 0,
            cursor: now.max(cursor),
        };
    };
    let (on_time, missed): (Vec<_>, Vec<_>) = ticks.into_iter().partition(|t| now - *t <= grace);
    let missed_total = total - on_time.len();
    let mut fires: Vec<Fire> = Vec::new();
    match schedule.spec.catch_up {
        CatchUp::Skip => {}
        CatchUp::FireOnce => {
            if on_time.is_empty()
                && let Some(&last) = missed.last()
            {
                fires.push(Fire {
                    at: last,
                    catch_up: true,
                });
            }
        }
        CatchUp::FireAll => {
            let cap = schedule.spec.catch_up_cap as usize;
            let from = missed.len().saturating_sub(cap);
            fires.extend(missed[from..].iter().map(|&at| Fire { at, catch_up: true }));
        }
    }
    let caught_up = fires.len();
    fires.extend(on_time.iter().map(|&at| Fire { at, catch_up: false }));
    Plan {
        dropped: missed_total - caught_up,
        fires,
        cursor: now.max(newest),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(cron: &str, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            name: "s".into(),
            cron: cron.into(),
            timezone: tz.into(),
            kind: "system.noop".into(),
            payload: json!({}),
            queue: None,
            enabled: true,
            catch_up: CatchUp::FireOnce,
            catch_up_cap: 10,
            overlap: Overlap::SkipIfRunning,
            jitter_secs: 0,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn hhmm(ts: &[DateTime<Utc>]) -> Vec<String> {
        ts.iter().map(|t| t.format("%m-%d %H:%M").to_string()).collect()
    }

    #[test]
    fn the_longest_interval_spans_weekends_and_nights() {
        const WEEK_AND_A_DAY: Duration = Duration::from_secs(8 * 86_400);
        let at = |cron: &str| Schedule::new(spec(cron, "UTC")).unwrap();
        // Thursday 2026-12-03, noon.
        let thursday = utc("2026-12-03T12:00:00Z");
        assert_eq!(
            at("0 * * * *").longest_interval(thursday, WEEK_AND_A_DAY),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            at("0 6 * * 1-5").longest_interval(thursday, WEEK_AND_A_DAY),
            Some(Duration::from_secs(3 * 86_400)),
            "Friday 06:00 to Monday 06:00"
        );
        assert_eq!(
            at("0 9-17 * * *").longest_interval(thursday, WEEK_AND_A_DAY),
            Some(Duration::from_secs(16 * 3600)),
            "17:00 to 09:00"
        );
        assert_eq!(
            at("* * * * * *").longest_interval(thursday, WEEK_AND_A_DAY),
            Some(Duration::from_secs(1)),
            "stops after MAX_GAP_TICKS"
        );
        assert_eq!(at("0 0 1 1 *").longest_interval(thursday, WEEK_AND_A_DAY), None);
    }

    #[test]
    fn a_number_out_of_range_names_its_cron_field_and_range() {
        let message = |cron: &str| {
            Schedule::new(ScheduleSpec {
                cron: cron.into(),
                ..spec("", "UTC")
            })
            .unwrap_err()
            .message
        };
        assert!(message("61 * * * *").contains("minute field has 61; it must be 0-59"));
        assert!(message("0 24 * * *").contains("hour field has 24; it must be 0-23"));
        assert!(message("0 0 0 * *").contains("day of month field has 0; it must be 1-31"));
        assert!(message("0 0 1 1-13 *").contains("month field has 13; it must be 1-12"));
        assert!(message("0 0 * * 8").contains("day of week field has 8; it must be 0-7"));
        assert!(message("60 0 0 * * *").contains("second field has 60"));
        // Steps are not values; names are croner's to check.
        assert!(check_cron_ranges("*/90 * * * *").is_ok());
        assert!(check_cron_ranges("0 9 * JAN MON-FRI").is_ok());
    }

    #[test]
    fn invalid_definitions_name_the_field() {
        let cases = [
            (
                ScheduleSpec {
                    cron: "61 * * * *".into(),
                    ..spec("", "UTC")
                },
                "cron",
            ),
            (spec("* * *", "UTC"), "cron"),
            (spec("0 0 30 2 *", "UTC"), "cron"),
            (spec("0 * * * *", "Mars/Olympus"), "timezone"),
            (
                ScheduleSpec {
                    name: "Bad Name".into(),
                    ..spec("0 * * * *", "UTC")
                },
                "name",
            ),
            (
                ScheduleSpec {
                    kind: "nope".into(),
                    ..spec("0 * * * *", "UTC")
                },
                "kind",
            ),
            (
                ScheduleSpec {
                    kind: "system.sleep".into(),
                    payload: json!({"ms": "x"}),
                    ..spec("0 * * * *", "UTC")
                },
                "payload.ms",
            ),
            (
                ScheduleSpec {
                    queue: Some("nope".into()),
                    ..spec("0 * * * *", "UTC")
                },
                "queue",
            ),
            (
                ScheduleSpec {
                    catch_up_cap: 0,
                    ..spec("0 * * * *", "UTC")
                },
                "catch_up_cap",
            ),
            (
                ScheduleSpec {
                    catch_up: CatchUp::FireAll,
                    ..spec("0 * * * *", "UTC")
                },
                "overlap",
            ),
            (
                ScheduleSpec {
                    jitter_secs: 60,
                    ..spec("* * * * *", "UTC")
                },
                "jitter_secs",
            ),
            (
                ScheduleSpec {
                    kind: "sync.workspaces".into(),
                    payload: json!({"region": "us-east-1"}),
                    ..spec("0 * * * *", "UTC")
                },
                "payload.region",
            ),
        ];
        for (s, field) in cases {
            let cron = s.cron.clone();
            assert_eq!(Schedule::new(s).unwrap_err().field, field, "{cron}");
        }
        let ok = Schedule::new(spec("*/10 * * * * *", "Europe/Berlin")).unwrap();
        assert_eq!(ok.spec.queue.as_deref(), Some("sync"), "the kind's queue");
    }

    #[test]
    fn daylight_saving_fires_neither_twice_nor_at_the_wrong_time() {
        // Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
        let daily = Schedule::new(spec("30 2 * * *", "Europe/Berlin")).unwrap();
        assert_eq!(
            hhmm(&daily.upcoming(utc("2026-03-27T12:00:00Z"), 4)),
            // 02:30 CET; 02:30 does not exist on the 29th: right after the jump (03:00 CEST); then 02:30 CEST.
            ["03-28 01:30", "03-29 01:00", "03-30 00:30", "03-31 00:30"]
        );
        assert_eq!(
            hhmm(&daily.upcoming(utc("2026-10-23T12:00:00Z"), 4)),
            // 02:30 happens twice on the 25th: it fires once, the first time (CEST).
            ["10-24 00:30", "10-25 00:30", "10-26 01:30", "10-27 01:30"]
        );
        // Hourly keeps firing every real hour through both changes.
        let hourly = Schedule::new(spec("0 * * * *", "Europe/Berlin")).unwrap();
        let (ticks, n) = hourly.ticks_between(utc("2026-03-28T22:00:00Z"), utc("2026-03-29T04:00:00Z"), 100);
        assert_eq!(n, 6);
        assert_eq!(
            hhmm(&ticks),
            [
                "03-28 23:00",
                "03-29 00:00",
                "03-29 01:00",
                "03-29 02:00",
                "03-29 03:00",
                "03-29 04:00"
            ]
        );
        let (_, n) = hourly.ticks_between(utc("2026-10-24T22:00:00Z"), utc("2026-10-25T04:00:00Z"), 100);
        assert_eq!(n, 6, "the repeated hour is a real hour too");
    }

    #[test]
    fn a_schedules_file_is_parsed_and_every_problem_named() {
        let ok = parse_file(
            r#"
            [[schedule]]
            name = "noop-every-minute"
            cron = "* * * * *"
            kind = "system.noop"

            [[schedule]]
            name = "sleep-nightly"
            cron = "0 3 * * *"
            timezone = "Europe/Berlin"
            kind = "system.sleep"
            payload = { ms = 10 }
            catch_up = "fire_all"
            catch_up_cap = 3
            overlap = "allow"
            "#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].spec.payload, json!({"ms": 10, "steps": 10}));
        assert_eq!(ok[1].spec.catch_up, CatchUp::FireAll);
        let err = parse_file(
            r#"
            [[schedule]]
            name = "a"
            cron = "* * * * *"
            kind = "system.noop"
            [[schedule]]
            name = "a"
            cron = "* * * * *"
            kind = "system.noop"
            [[schedule]]
            name = "b"
            cron = "0 * * * *"
            timezone = "Nowhere/Land"
            kind = "system.noop"
            "#,
        )
        .unwrap_err();
        assert!(
            err.contains("schedule #2 (\"a\"): the name is used twice"),
            "{err}"
        );
        assert!(err.contains("schedule #3 (\"b\"): timezone:"), "{err}");
        assert!(
            parse_file("[[schedule]]\nname = 1")
                .unwrap_err()
                .starts_with("not a schedules file")
        );
    }

    #[test]
    fn the_shipped_schedules_are_valid_and_fan_out_over_accounts() {
        let shipped = parse_file(SHIPPED).unwrap();
        let names: Vec<&str> = shipped.iter().map(|s| s.spec.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "workspaces-sync",
                "usage-sync",
                "cloudtrail-sync",
                "billing-sync",
                "retention",
                "unused-report",
                "billing-mode-report"
            ]
        );
        // The report schedules ship off, each turned on by one line.
        assert!(shipped[..5].iter().all(|s| s.spec.enabled));
        assert!(shipped[5..].iter().all(|s| !s.spec.enabled && !s.fans_out()));
        assert!(shipped[..4].iter().all(Schedule::fans_out));
        assert!(!shipped[4].fans_out());
        let billing = &shipped[3];
        assert_eq!(
            hhmm(&billing.upcoming(utc("2026-11-22T07:00:00Z"), 2)),
            ["11-23 06:00", "11-24 06:00"],
            "daily at 06:00 UTC"
        );
        // A fan-out payload is still checked (as it will be sent).
        let bad = Schedule::new(ScheduleSpec {
            kind: "sync.cloudtrail".into(),
            payload: json!({"start": "yesterday"}),
            ..spec("0 * * * *", "UTC")
        });
        assert_eq!(bad.unwrap_err().field, "payload.start");
    }

    #[test]
    fn tick_ids_are_the_same_on_every_replica_and_differ_between_ticks_and_schedules() {
        let t = utc("2026-11-22T06:00:00Z");
        assert_eq!(tick_job_id("hourly", t), tick_job_id("hourly", t));
        assert_ne!(tick_job_id("hourly", t), tick_job_id("daily", t));
        assert_ne!(
            tick_job_id("hourly", t),
            tick_job_id("hourly", t + chrono::Duration::hours(1))
        );
        assert_eq!(
            tick_job_id("hourly", t).timestamp_ms(),
            t.timestamp_millis() as u64
        );
        assert_eq!(tick_idempotency_key("hourly", t), "schedule:hourly:1795327200000");
        let jittery = Schedule::new(ScheduleSpec {
            jitter_secs: 60,
            ..spec("0 * * * *", "UTC")
        })
        .unwrap();
        let j = jittery.jitter_for("s", t);
        assert!(j < Duration::from_secs(60));
        assert_eq!(j, jittery.jitter_for("s", t));
        let targets: std::collections::BTreeSet<Duration> = (0..10)
            .map(|i| jittery.jitter_for(&format!("s/acct{i}/us-east-1"), t))
            .collect();
        assert!(targets.len() > 1, "fan-out targets spread out");
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        let grace = Duration::from_secs(30);
        let every_15 = |catch_up| {
            Schedule::new(ScheduleSpec {
                catch_up,
                catch_up_cap: 3,
                overlap: Overlap::Allow,
                ..spec("*/15 * * * *", "UTC")
            })
            .unwrap()
        };
        let last = utc("2026-11-22T01:00:00Z");
        // Down from 01:00 to 02:20: 02:15 is 5 min late, 01:15..02:15 missed (5 ticks).
        let now = utc("2026-11-22T02:20:00Z");
        let skip = plan(&every_15(CatchUp::Skip), Some(last), now, grace);
        assert!(skip.fires.is_empty());
        assert_eq!(skip.dropped, 5);
        assert_eq!(skip.cursor, now, "looked up to now");
        let once = plan(&every_15(CatchUp::FireOnce), Some(last), now, grace);
        assert_eq!(
            once.fires,
            vec![Fire {
                at: utc("2026-11-22T02:15:00Z"),
                catch_up: true
            }]
        );
        assert_eq!(once.dropped, 4);
        let all = plan(&every_15(CatchUp::FireAll), Some(last), now, grace);
        assert_eq!(
            hhmm(&all.fires.iter().map(|f| f.at).collect::<Vec<_>>()),
            ["11-22 01:45", "11-22 02:00", "11-22 02:15"]
        );
        assert!(all.fires.iter().all(|f| f.catch_up));
        assert_eq!(all.dropped, 2, "capped at 3");

        // Running normally: the tick just passed is on time, whatever the policy.
        let now = utc("2026-11-22T01:15:02Z");
        for policy in [CatchUp::Skip, CatchUp::FireOnce, CatchUp::FireAll] {
            let p = plan(&every_15(policy), Some(last), now, grace);
            assert_eq!(
                p.fires,
                vec![Fire {
                    at: utc("2026-11-22T01:15:00Z"),
                    catch_up: false
                }],
                "{policy:?}"
            );
            assert_eq!(p.dropped, 0);
        }
        // Nothing due: nothing fires; the cursor still moves to now.
        let idle = plan(
            &every_15(CatchUp::FireAll),
            Some(last),
            utc("2026-11-22T01:10:00Z"),
            grace,
        );
        assert!(idle.fires.is_empty());
        assert_eq!(idle.cursor, utc("2026-11-22T01:10:00Z"));
        // A new schedule has no past.
        let fresh = plan(&every_15(CatchUp::FireAll), None, now, grace);
        assert!(fresh.fires.is_empty());
        assert_eq!(fresh.cursor, now);
    }

    #[test]
    fn a_per_second_schedule_after_a_day_of_downtime_is_counted_without_walking_every_tick() {
        let s = Schedule::new(ScheduleSpec {
            catch_up: CatchUp::FireAll,
            catch_up_cap: 5,
            overlap: Overlap::Allow,
            ..spec("* * * * * *", "UTC")
        })
        .unwrap();
        // An hour down: exact counts.
        let now = utc("2026-11-22T00:00:00Z");
        let p = plan(
            &s,
            Some(now - chrono::Duration::hours(1)),
            now,
            Duration::from_secs(0),
        );
        assert_eq!(p.fires.len(), 6);
        assert_eq!(p.dropped, 3600 - 1 - 5);
        // Two days down (172,800 ticks): past MAX_SCAN the walk jumps to the end.
        let p = plan(
            &s,
            Some(now - chrono::Duration::days(2)),
            now,
            Duration::from_secs(0),
        );
        // The 5 most recent missed ticks, then the one due exactly now.
        assert_eq!(p.fires.len(), 6);
        assert_eq!(p.fires.iter().filter(|f| f.catch_up).count(), 5);
        assert_eq!(p.fires[4].at, now - chrono::Duration::seconds(1));
        assert_eq!(
            p.fires[5],
            Fire {
                at: now,
                catch_up: false
            }
        );
        assert_eq!(p.cursor, now);
        assert!(p.dropped >= MAX_SCAN - 5, "{}", p.dropped);
        // Every 5 s for a week (120,960 ticks): the jump keeps the newest ones.
        let five = Schedule::new(ScheduleSpec {
            catch_up: CatchUp::FireAll,
            catch_up_cap: 3,
            overlap: Overlap::Allow,
            ..spec("*/5 * * * * *", "UTC")
        })
        .unwrap();
        let p = plan(
            &five,
            Some(now - chrono::Duration::days(7)),
            now,
            Duration::from_secs(0),
        );
        let ats: Vec<DateTime<Utc>> = p.fires.iter().map(|f| f.at).collect();
        let s = |secs| now - chrono::Duration::seconds(secs);
        assert_eq!(
            ats,
            [s(15), s(10), s(5), now],
            "the most recent missed ticks, then now"
        );
        assert!(p.dropped > 120_000, "{}", p.dropped);
    }
}
