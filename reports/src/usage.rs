//! Sessions and billable hours from the connected 5-minute periods that
//! `sync.usage` stores (`workspace_usage`: one 12-bit mask per workspace
//! and hour), by the rule AWS bills AUTO_STOP workspaces with:
//!
//! - a session runs from its first connected period to the end of its last;
//!   it ends once the workspace has seen `N` empty periods in a row, where
//!   `N` is the AutoStop timeout in 5-minute periods (ALWAYS_ON workspaces
//!   are judged with 60 minutes, what they would get as AUTO_STOP);
//! - a workspace stays powered on for the timeout after each session, so
//!   powered-on time = Σ (session time + timeout), capped by the time
//!   elapsed in the span looked at.
//!
//! The README's "Billable hours" section works one example through; the
//! tests below hold it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// Minutes in one CloudWatch period.
pub const PERIOD_MINUTES: i64 = 5;
/// The timeout ALWAYS_ON workspaces are judged with (minutes).
pub const ALWAYS_ON_TIMEOUT_MINUTES: i64 = 60;

/// One session, in periods since the span's start (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// First connected period.
    pub start: i64,
    /// Period after the last connected one.
    pub end: i64,
}

/// What one workspace's usage over a span comes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Connected periods × 5 minutes, in hours.
    pub connected_hours: f64,
    /// Sessions found.
    pub sessions: usize,
    /// Powered-on hours by the AUTO_STOP rule (what hourly billing charges).
    pub billable_hours: f64,
}

/// The first day of `now`'s month (UTC): where month-to-date figures start.
pub fn month_start(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive().with_day(1).unwrap_or(now.date_naive())
}

/// The timeout (minutes) a workspace's sessions are judged with: its
/// AutoStop timeout, or 60 minutes for ALWAYS_ON (and when unknown).
pub fn timeout_minutes(running_mode: Option<&str>, auto_stop_timeout: Option<i32>) -> i64 {
    match (running_mode, auto_stop_timeout) {
        (Some("AUTO_STOP"), Some(t)) if t > 0 => i64::from(t),
        _ => ALWAYS_ON_TIMEOUT_MINUTES,
    }
}

/// The connected periods (indices since `span_start`) of hourly masks.
pub fn periods_of(span_start: DateTime<Utc>, hours: &[(DateTime<Utc>, i32)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (hour, mask) in hours {
        let base = (*hour - span_start).num_minutes() / PERIOD_MINUTES;
        for bit in 0..12 {
            if mask & (1 << bit) != 0 {
                out.push(base + bit);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Sessions of sorted connected `periods`: a gap of `timeout` minutes or
/// more of empty periods ends one.
pub fn sessions(periods: &[i64], timeout_minutes: i64) -> Vec<Session> {
    let ends_after = (timeout_minutes / PERIOD_MINUTES).max(1);
    let mut out: Vec<Session> = Vec::new();
    for &p in periods {
        match out.last_mut() {
            Some(s) if p - s.end < ends_after => s.end = p + 1,
            _ => out.push(Session { start: p, end: p + 1 }),
        }
    }
    out
}

/// Connected, session and billable time of `periods` over a span of
/// `elapsed` so far, judged with `timeout_minutes`.
pub fn usage(periods: &[i64], timeout_minutes: i64, elapsed: Duration) -> Usage {
    let found = sessions(periods, timeout_minutes);
    let powered: i64 = found
        .iter()
        .map(|s| (s.end - s.start) * PERIOD_MINUTES + timeout_minutes)
        .sum();
    let powered = powered.min(elapsed.num_minutes().max(0));
    Usage {
        connected_hours: (periods.len() as i64 * PERIOD_MINUTES) as f64 / 60.0,
        sessions: found.len(),
        billable_hours: powered as f64 / 60.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// The README's worked example: AutoStop 60 minutes. Day 1: connected
    /// 09:00-10:30, away 10:30-11:00 (6 empty periods, fewer than 12: the
    /// same session), connected 11:00-12:00. Day 2: connected 14:00-14:20.
    #[test]
    fn the_readme_example() {
        let month = at("2026-11-01T00:00:00Z");
        let mask = |bits: std::ops::Range<i32>| bits.fold(0, |m, b| m | (1 << b));
        let hours = [
            (at("2026-11-02T09:00:00Z"), mask(0..12)),
            (at("2026-11-02T10:00:00Z"), mask(0..6)),
            (at("2026-11-02T11:00:00Z"), mask(0..12)),
            (at("2026-11-03T14:00:00Z"), mask(0..4)),
        ];
        let periods = periods_of(month, &hours);
        assert_eq!(periods.len(), 18 + 12 + 4);
        let found = sessions(&periods, 60);
        assert_eq!(found.len(), 2);
        // 09:00-12:00 is 36 periods; 14:00-14:20 is 4.
        assert_eq!(found[0].end - found[0].start, 36);
        assert_eq!(found[1].end - found[1].start, 4);
        let u = usage(&periods, 60, Duration::days(30));
        assert_eq!(u.sessions, 2);
        // Connected 2 h 50 min; billable (180 + 60) + (20 + 60) = 320 min.
        assert!((u.connected_hours - 170.0 / 60.0).abs() < 1e-9);
        assert!((u.billable_hours - 320.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn a_gap_as_long_as_the_timeout_ends_the_session() {
        // Timeout 10 min = 2 periods: a 1-period gap bridges, 2 do not.
        assert_eq!(sessions(&[0, 2], 10), [Session { start: 0, end: 3 }]);
        assert_eq!(
            sessions(&[0, 3], 10),
            [Session { start: 0, end: 1 }, Session { start: 3, end: 4 }]
        );
        assert!(sessions(&[], 60).is_empty());
    }

    #[test]
    fn billable_time_is_capped_by_the_time_elapsed() {
        // Connected all of the first hour; only 30 minutes have elapsed of
        // the span in this reading (impossible in practice, the cap holds).
        let periods: Vec<i64> = (0..12).collect();
        assert_eq!(usage(&periods, 60, Duration::minutes(90)).billable_hours, 1.5);
        assert_eq!(usage(&periods, 60, Duration::hours(5)).billable_hours, 2.0);
    }

    fn mask(bits: std::ops::Range<i32>) -> i32 {
        bits.fold(0, |m, b| m | (1 << b))
    }

    #[test]
    fn a_session_over_midnight_is_one_session() {
        let start = at("2026-11-01T00:00:00Z");
        let hours = [
            (at("2026-11-04T23:00:00Z"), mask(10..12)),
            (at("2026-11-05T00:00:00Z"), mask(0..2)),
        ];
        let periods = periods_of(start, &hours);
        assert_eq!(sessions(&periods, 60).len(), 1);
        // 20 connected minutes, + 60 = 80.
        assert!((usage(&periods, 60, Duration::days(10)).billable_hours - 80.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn a_session_over_month_end_counts_from_the_first_of_the_month() {
        // Connected 23:30 on the 30th to 00:30 on the 1st: December's
        // month-to-date reads from 00:00 (the query starts there), so 30
        // minutes plus the tail.
        let december = at("2026-12-01T00:00:00Z");
        let hours = [(at("2026-12-01T00:00:00Z"), mask(0..6))];
        let u = usage(&periods_of(december, &hours), 60, Duration::hours(5));
        assert_eq!((u.sessions, u.billable_hours), (1, 1.5));
    }

    #[test]
    fn brief_disconnects_and_one_or_four_hour_timeouts() {
        // Connected 09:00-10:00, away 10:00-11:30, back 11:30-12:00.
        let start = at("2026-11-02T00:00:00Z");
        let hours = [
            (at("2026-11-02T09:00:00Z"), mask(0..12)),
            (at("2026-11-02T11:00:00Z"), mask(6..12)),
        ];
        let periods = periods_of(start, &hours);
        // 1 hour: the 90-minute gap ends the session. (60+60) + (30+60).
        let one = usage(&periods, 60, Duration::days(5));
        assert_eq!((one.sessions, one.billable_hours), (2, 3.5));
        // 4 hours: one session 09:00-12:00, + 240.
        let four = usage(&periods, 240, Duration::days(5));
        assert_eq!((four.sessions, four.billable_hours), (1, 7.0));
        // A 10-minute disconnect never splits a session with a 1-hour timeout.
        let blip = periods_of(start, &[(at("2026-11-02T09:00:00Z"), mask(0..4) | mask(6..12))]);
        assert_eq!(sessions(&blip, 60).len(), 1);
    }

    #[test]
    fn a_workspace_created_mid_month_has_only_its_own_hours() {
        // Nothing before the 20th: the periods begin there; billable time is
        // its one session and tail, far under the hours elapsed.
        let start = at("2026-11-01T00:00:00Z");
        let hours = [(at("2026-11-20T10:00:00Z"), mask(0..12))];
        let u = usage(&periods_of(start, &hours), 60, Duration::days(25));
        assert_eq!((u.connected_hours, u.billable_hours), (1.0, 2.0));
    }

    #[test]
    fn always_on_is_judged_with_sixty_minutes() {
        assert_eq!(timeout_minutes(Some("ALWAYS_ON"), Some(0)), 60);
        assert_eq!(timeout_minutes(Some("AUTO_STOP"), Some(120)), 120);
        assert_eq!(timeout_minutes(None, None), 60);
    }
}
