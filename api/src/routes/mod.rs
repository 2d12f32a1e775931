//! Route handlers, one module per resource, and the query parsing they share.

pub mod health;
pub mod inventory;
pub mod jobs;
pub mod queues;
pub mod schedules;
pub mod syncs;

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::ApiError;

/// `limit` of a paged list: `default` when absent, else 1..=`max`.
pub fn page_limit(value: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be a whole number from 1 to {max}"))),
    }
}

/// Years the API accepts in dates (PostgreSQL's range is wider; no AWS data
/// predates 2006).
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// An optional RFC 3339 time (a bare date means its midnight, UTC).
pub fn parse_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let t = parse_time_unchecked(field, value)?;
    if t.is_some_and(|t| !YEARS.contains(&chrono::Datelike::year(&t))) {
        return Err(ApiError::invalid(
            field,
            "must be between the years 1970 and 9999",
        ));
    }
    Ok(t)
}

fn parse_time_unchecked(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    v.parse::<NaiveDate>()
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| ApiError::invalid(field, "must be an RFC 3339 time (2026-11-22T06:00:00Z) or a date"))
}

/// An optional `YYYY-MM-DD` date.
pub fn parse_date(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    value
        .map(|v| {
            v.parse::<NaiveDate>()
                .ok()
                .filter(|d| YEARS.contains(&chrono::Datelike::year(d)))
                .ok_or_else(|| ApiError::invalid(field, "must be a date, YYYY-MM-DD, between 1970 and 9999"))
        })
        .transpose()
}

/// Splits an opaque keyset cursor made by [`make_cursor`] into `n` parts.
pub fn split_cursor(value: Option<&str>, n: usize) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    let parts: Vec<String> = v.split('~').map(str::to_owned).collect();
    if parts.len() != n || parts.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "cursor",
            "not a cursor returned by this endpoint",
        ));
    }
    Ok(Some(parts))
}

/// A keyset cursor from the last row's sort key.
pub fn make_cursor(parts: &[&str]) -> String {
    parts.join("~")
}

/// The cursor of the page after `rows`: the last row's sort key when the
/// page is full, `None` when it was the last page.
pub fn next_cursor<T>(rows: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    (rows.len() as i64 == limit)
        .then(|| rows.last().map(key))
        .flatten()
}
