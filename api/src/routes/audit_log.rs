//! `GET /api/v1/audit-log`: who changed what (admin only).

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;

use super::{next_cursor, page_limit, parse_time};
use crate::{audit::AuditRecord, error::ApiError, state::AppState, views::admin::AuditLogPage};

/// Filters of `GET /api/v1/audit-log`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Exact actor, e.g. `jwt:alice` or `key:ci-deploy`.
    actor: Option<String>,
    /// Exact action (operation id), e.g. `cancel_job`.
    action: Option<String>,
    /// Exact target (a job or key id).
    target: Option<String>,
    /// `allowed` (2xx, or a console form's 303), `denied` (401/403) or
    /// `failed` (any other status).
    outcome: Option<String>,
    /// From this time (RFC 3339 or date), inclusive.
    start: Option<String>,
    /// Before this time, exclusive.
    end: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Read the audit log
///
/// State-changing requests by authenticated callers (enqueues, cancels,
/// retries, schedule and key changes, and refused attempts), newest first,
/// keyset paged.
#[utoipa::path(get, path = "/api/v1/audit-log", operation_id = "list_audit_log", tag = "audit",
    params(AuditLogQuery),
    responses((status = 200, description = "A page of entries", body = AuditLogPage)),
    security(("bearer" = ["admin"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditLogQuery>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let start = parse_time("start", q.start.as_deref())?;
    let end = parse_time("end", q.end.as_deref())?;
    let outcome = q.outcome.as_deref();
    if outcome.is_some_and(|o| !["allowed", "denied", "failed"].contains(&o)) {
        return Err(ApiError::invalid("outcome", "must be allowed, denied or failed"));
    }
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor returned by this endpoint"))
        })
        .transpose()?;
    let rows = sqlx::query_as!(
        AuditRecord,
        r#"SELECT id, at, actor, role, auth, action, method, path, target, status, request_id, client_request_id, client_ip
           FROM audit_log
           WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
             AND ($3::text IS NULL OR target = $3)
             AND ($4::text IS NULL
                  OR ($4 = 'allowed' AND status BETWEEN 200 AND 399)
                  OR ($4 = 'denied' AND status IN (401, 403))
                  OR ($4 = 'failed' AND status NOT BETWEEN 200 AND 399 AND status NOT IN (401, 403)))
             AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)
             AND ($7::bigint IS NULL OR id < $7)
           ORDER BY id DESC
           LIMIT $8"#,
        q.actor,
        q.action,
        q.target,
        outcome,
        start,
        end,
        before,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let next = next_cursor(&rows, limit, |r| r.id.to_string());
    Ok(Json(AuditLogPage {
        entries: rows,
        next_cursor: next,
    }))
}
