//! `/api/v1/reports`: ask for a report (a `report.<type>` job on the
//! `reports` queue), follow it, and download its file once published, with
//! `Range`, `ETag` and `If-None-Match` (the file never changes once
//! published).

use axum::{
    Extension, Json,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use hangar_queue::JobStatus;
use hangar_shared::{db::NewJobRun, kinds};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{next_cursor, page_limit};
use crate::{
    audit::PendingAudit,
    auth::Principal,
    error::ApiError,
    request_id::current_request_id,
    schema,
    state::AppState,
    views::reports::{Report, ReportFile, ReportPage},
};

/// The report type `name`: the registered `report.<name>` kind.
fn report_kind(name: &str) -> Result<&'static kinds::KindSpec, ApiError> {
    kinds::family("report")
        .find(|(t, _)| *t == name)
        .map(|(_, k)| k)
        .ok_or_else(|| {
            let known: Vec<&str> = kinds::family("report").map(|(t, _)| t).collect();
            ApiError::invalid(
                "type",
                format!("unknown report type {name:?}; known: {}", known.join(", ")),
            )
        })
}

/// Ask for a report
///
/// Starts a `report.<type>` job on the `reports` queue (202 with the job).
/// `params` are the type's (see the body's schema: for `inventory`, the
/// filters of `GET /api/v1/workspaces`); an invalid one is a 422 naming it
/// (`params.<name>`). `audit_log` (Hangar's own audit log) needs the admin
/// role. Follow the report at `GET /api/v1/reports/{id}`.
#[utoipa::path(post, path = "/api/v1/reports", operation_id = "create_report", tag = "reports",
    request_body = schema::CreateReport,
    responses(
        (status = 202, description = "Recorded and queued", body = schema::JobAccepted),
        (status = 403, description = "The type needs a higher role (`audit_log`: admin)", body = schema::ErrorBody),
        (status = 422, description = "Invalid `type`, `format` or `params.*`", body = schema::ErrorBody)),
    security(("bearer" = ["operator"])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    audit: Option<Extension<PendingAudit>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let obj = super::json_object(&state, &body, &["type", "format", "params"])?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) => report_kind(t)?,
        Some(_) => return Err(ApiError::invalid("type", "must be a string")),
        None => return Err(ApiError::invalid("type", "missing")),
    };
    super::may_submit(&caller, kind)?;
    let mut payload = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::invalid("params", "must be an object")),
    };
    if payload.contains_key("format") {
        return Err(ApiError::invalid(
            "params.format",
            "give the format beside params, not in them",
        ));
    }
    match obj.get("format") {
        Some(f @ Value::String(_)) => payload.insert("format".into(), f.clone()),
        Some(_) => return Err(ApiError::invalid("format", "must be a string: csv, json or xlsx")),
        None => return Err(ApiError::invalid("format", "missing: csv, json or xlsx")),
    };
    let payload = kinds::validate_for(kind, &Value::Object(payload), &state.config.inference.models)
        .map_err(|e| match e.field.as_str() {
            "format" => ApiError::invalid("format", e.message),
            _ => ApiError::from(e.within("params")),
        })?;
    let new = NewJobRun::new(kind, payload)
        .requested_by(caller.actor.clone())
        .request_id(current_request_id());
    super::jobs::accept(&state, new, audit).await
}

/// One report as PostgreSQL has it.
struct Row {
    id: String,
    kind: String,
    payload: Value,
    state: JobStatus,
    requested_by: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
    progress: Option<Value>,
    object_key: Option<String>,
    content_type: Option<String>,
    row_count: Option<i64>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
    freshness: Option<Value>,
    generated_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl Row {
    fn view(self) -> Report {
        let mut params = self.payload;
        let format = params
            .as_object_mut()
            .and_then(|p| p.remove("format"))
            .and_then(|f| f.as_str().map(str::to_owned))
            .unwrap_or_default();
        let file = match (self.row_count, self.size_bytes, self.sha256, self.content_type) {
            (Some(rows), Some(size_bytes), Some(sha256), Some(content_type)) => Some(ReportFile {
                rows,
                size_bytes,
                sha256,
                content_type,
                freshness: self.freshness.unwrap_or_default(),
                generated_at: self.generated_at.unwrap_or(self.created_at),
                expires_at: self.expires_at.unwrap_or(self.created_at),
                download_url: format!("/api/v1/reports/{}/download", self.id),
            }),
            _ => None,
        };
        Report {
            r#type: self.kind.strip_prefix("report.").unwrap_or(&self.kind).to_owned(),
            format,
            params,
            state: self.state,
            requested_by: self.requested_by,
            created_at: self.created_at,
            finished_at: self.finished_at,
            error: self.error,
            progress: self.progress,
            file,
            status_url: format!("/api/v1/reports/{}", self.id),
            id: self.id,
        }
    }
}

async fn row(state: &AppState, id: &str) -> Result<Row, ApiError> {
    let mut row = sqlx::query_as!(
        Row,
        r#"SELECT j.id, j.kind, j.payload, j.state AS "state: JobStatus", j.requested_by, j.created_at,
                  j.finished_at, j.error, j.progress,
                  r.object_key AS "object_key?", r.content_type AS "content_type?", r.row_count AS "row_count?",
                  r.size_bytes AS "size_bytes?", r.sha256 AS "sha256?", r.freshness AS "freshness?",
                  r.generated_at AS "generated_at?", r.expires_at AS "expires_at?"
           FROM job_runs j LEFT JOIN reports r ON r.id = j.id
           WHERE j.id = $1 AND j.kind LIKE 'report.%'"#,
        id
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no report {id}")))?;
    // While it is open, Redis has the live state and progress.
    if row.state.is_open()
        && let Some(q) = state.queue(kinds::QUEUE_REPORTS)
        && let Ok(Some(live)) = q.state(id).await
    {
        row.state = live.status;
        row.progress = live.progress.or(row.progress);
    }
    Ok(row)
}

/// Get a report
///
/// Its state, parameters and, once published, its file: rows, size,
/// SHA-256, data freshness, expiry and download URL.
#[utoipa::path(get, path = "/api/v1/reports/{id}", operation_id = "get_report", tag = "reports",
    params(("id" = String, Path, description = "Report id (its job's id)")),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 404, description = "No such report", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Report>, ApiError> {
    Ok(Json(row(&state, &id).await?.view()))
}

/// Query of `GET /api/v1/reports`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this report type, e.g. `inventory`.
    r#type: Option<String>,
    /// Only this state: scheduled, queued, running, retrying, succeeded, cancelled, dead.
    state: Option<String>,
    /// Only reports asked for by this caller (`key:<name>`, `jwt:<sub>`, `schedule:<name>`).
    requested_by: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List reports
///
/// Newest first, keyset-paged, by type, state and requester.
#[utoipa::path(get, path = "/api/v1/reports", operation_id = "list_reports", tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "A page of reports", body = ReportPage)),
    security(("bearer" = ["viewer"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<ReportPage>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 50, 200)?;
    let kind = q.r#type.as_deref().map(report_kind).transpose()?.map(|k| k.name);
    let state_filter = super::job_state_filter(q.state.as_deref())?;
    let cursor = super::job_id_cursor(q.cursor.as_deref())?;
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT j.id, j.kind, j.payload, j.state AS "state: JobStatus", j.requested_by, j.created_at,
                  j.finished_at, j.error, j.progress,
                  r.object_key AS "object_key?", r.content_type AS "content_type?", r.row_count AS "row_count?",
                  r.size_bytes AS "size_bytes?", r.sha256 AS "sha256?", r.freshness AS "freshness?",
                  r.generated_at AS "generated_at?", r.expires_at AS "expires_at?"
           FROM job_runs j LEFT JOIN reports r ON r.id = j.id
           WHERE j.kind LIKE 'report.%'
             AND ($1::text IS NULL OR j.kind = $1)
             AND ($2::text IS NULL OR j.state = $2)
             AND ($3::text IS NULL OR j.requested_by = $3)
             AND ($4::text IS NULL OR j.id < $4)
           ORDER BY j.id DESC LIMIT $5"#,
        kind,
        state_filter.map(JobStatus::as_str),
        q.requested_by,
        cursor,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let next = next_cursor(&rows, limit, |r| r.id.clone());
    Ok(Json(ReportPage {
        reports: rows.into_iter().map(Row::view).collect(),
        next_cursor: next,
    }))
}

/// A single `bytes=` range of a file of `size` bytes: `Ok(None)` for none
/// (or one this server does not honour, such as several ranges: the whole
/// file is then sent, as RFC 9110 allows); an error when it is outside.
fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ApiError> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (first.trim().is_empty(), parse(first), parse(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 => size.saturating_sub(n)..size,
        (false, Some(a), None) if last.trim().is_empty() => a..size,
        (false, Some(a), Some(b)) if a <= b => a..(b + 1).min(size),
        _ => return Ok(None),
    };
    if range.start >= size || range.is_empty() {
        return Err(ApiError::RangeNotSatisfiable { size });
    }
    Ok(Some(range))
}

/// Download a report
///
/// The file, once published: `Content-Type`, `Content-Disposition`,
/// `Content-Length`, `ETag` (its SHA-256); one `Range` of bytes (206);
/// `If-None-Match` (304). 409 while the report is not ready (or its job
/// ended without a file); 410 once it has expired (and after retention
/// removed it).
#[utoipa::path(get, path = "/api/v1/reports/{id}/download", operation_id = "download_report", tag = "reports",
    params(("id" = String, Path, description = "Report id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such report", body = schema::ErrorBody),
        (status = 409, description = "Not ready, or ended without a file", body = schema::ErrorBody),
        (status = 410, description = "Expired", body = schema::ErrorBody),
        (status = 416, description = "The range is outside the file", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = row(&state, &id).await?;
    let (Some(key), Some(sha256), Some(content_type), Some(expires_at)) =
        (&row.object_key, &row.sha256, &row.content_type, row.expires_at)
    else {
        return Err(match row.state {
            // A succeeded report published its file before it succeeded:
            // no record now means retention removed it.
            JobStatus::Succeeded => {
                ApiError::Gone(format!("report {id} expired and was removed; ask for a new one"))
            }
            s if s.is_open() => ApiError::Conflict(format!(
                "report {id} is not ready ({}); poll GET /api/v1/reports/{id}",
                s.as_str()
            )),
            s => ApiError::Conflict(format!("report {id} ended {} without a file", s.as_str())),
        });
    };
    if expires_at <= Utc::now() {
        return Err(ApiError::Gone(format!(
            "report {id} expired at {expires_at}; ask for a new one"
        )));
    }
    let etag = format!("\"{sha256}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let size = row.size_bytes.unwrap_or_default() as u64;
    let range = byte_range(&headers, size)?;
    let stream = state
        .reports
        .read(key, range.clone())
        .await
        .map_err(|e| match e {
            hangar_reports::StoreError::NotFound(_) => ApiError::Gone(format!(
                "report {id}'s file is no longer in the store; ask for a new one"
            )),
            other => ApiError::Internal(other.into()),
        })?;
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    let name = format!(
        "{}-{id}.{}",
        row.kind.replace('.', "-"),
        key.rsplit('.').next().unwrap_or("bin")
    );
    let mut response = Response::new(body);
    let h = response.headers_mut();
    let value = |s: String| HeaderValue::from_str(&s).map_err(|e| ApiError::Internal(e.into()));
    h.insert(header::CONTENT_TYPE, value(content_type.clone())?);
    h.insert(
        header::CONTENT_DISPOSITION,
        value(format!("attachment; filename=\"{name}\""))?,
    );
    h.insert(header::ETAG, value(etag)?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match range {
        Some(r) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = response.headers_mut();
            h.insert(header::CONTENT_LENGTH, value((r.end - r.start).to_string())?);
            h.insert(
                header::CONTENT_RANGE,
                value(format!("bytes {}-{}/{size}", r.start, r.end - 1))?,
            );
        }
        None => {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, value(size.to_string())?);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, u64> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        byte_range(&h, size).map_err(|e| match e {
            ApiError::RangeNotSatisfiable { size } => size,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(
            range("bytes=95-200", 100),
            Ok(Some(95..100)),
            "clipped to the end"
        );
        assert_eq!(range("bytes=-500", 100), Ok(Some(0..100)));
        assert_eq!(range("bytes=100-", 100), Err(100), "starts past the end");
        assert_eq!(
            range("bytes=0-1,5-6", 100),
            Ok(None),
            "several ranges: the whole file"
        );
        assert_eq!(range("bytes=9-1", 100), Ok(None), "malformed: ignored");
        assert_eq!(range("items=0-1", 100), Ok(None));
        assert_eq!(byte_range(&HeaderMap::new(), 100).unwrap(), None);
    }
}
