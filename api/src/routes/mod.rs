//! Route handlers, one module per resource, and the query parsing they share.

pub mod api_keys;
pub mod audit_log;
pub mod explain;
pub mod health;
pub mod inference;
pub mod inventory;
pub mod jobs;
pub mod models;
pub mod queues;
pub mod reports;
pub mod schedules;
pub mod syncs;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::{auth::Principal, error::ApiError, state::AppState};

/// A `state` filter: one of the job states, or 422 naming `state`.
pub fn job_state_filter(value: Option<&str>) -> Result<Option<hangar_queue::JobStatus>, ApiError> {
    value
        .map(|s| {
            hangar_queue::JobStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    "must be one of scheduled, queued, running, retrying, succeeded, cancelled, dead",
                )
            })
        })
        .transpose()
}

/// A job-id keyset `cursor` in canonical (upper-case) form, since ids
/// compare as text in PostgreSQL; 422 naming `cursor` for anything else.
pub fn job_id_cursor(value: Option<&str>) -> Result<Option<String>, ApiError> {
    value
        .map(|c| {
            c.parse::<ulid::Ulid>()
                .map(|id| id.to_string())
                .map_err(|_| ApiError::invalid("cursor", "not a cursor returned by this endpoint"))
        })
        .transpose()
}

/// Refuses (403) a caller whose role is below what `kind` needs. Every
/// route that submits or defines a job of a caller-chosen kind calls this:
/// the jobs API, schedule creation and changes, and run-now.
pub fn may_submit(caller: &Principal, kind: &hangar_shared::kinds::KindSpec) -> Result<(), ApiError> {
    if caller.role >= kind.role {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "{} jobs need the {} role; your credentials carry {}",
        kind.name, kind.role, caller.role
    )))
}

/// Deepest nesting of arrays and objects in `body`, counted without parsing
/// (strings and their escapes skipped), so a hostile body is refused
/// before serde recurses into it.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses a JSON request body within the configured nesting limit.
pub fn parse_json(state: &AppState, body: &[u8]) -> Result<Value, ApiError> {
    let max = state.config.api.security.json_max_depth;
    if json_depth(body) > max {
        return Err(ApiError::BadRequest {
            code: crate::error::ErrorCode::JsonTooDeep,
            message: format!("the JSON body nests deeper than {max} levels (HANGAR_JSON_MAX_DEPTH)"),
            field: None,
        });
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        code: crate::error::ErrorCode::InvalidJson,
        message: format!("request body is not JSON: {e}"),
        field: None,
    })
}

/// A JSON object body with only `fields` (an empty body is `{}`).
pub fn json_object(state: &AppState, body: &[u8], fields: &[&str]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let Value::Object(map) = parse_json(state, body)? else {
        return Err(ApiError::invalid("", "request body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown field; expected {}", fields.join(", ")),
        ));
    }
    Ok(map)
}

/// A `true`/`false` query parameter (absent: false).
pub fn flag(field: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid(field, "must be true or false")),
    }
}

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

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(br#"{"a": [1, {"b": 2}]}"#), 3);
        assert_eq!(json_depth(br#"{"a": "[[[[{{{{\"[[["}"#), 1);
        assert_eq!(json_depth(&b"[".repeat(10_000)), 10_000);
    }
}
