//! What the sync jobs brought in: workspaces, directories, CloudTrail
//! events and daily costs. Every list is keyset-paged (`limit`, `cursor`,
//! `next_cursor`), so pages stay fast and stable while syncs write.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use chrono::{DateTime, Utc};
use hangar_shared::inventory::{self, MAX_SEARCH_CHARS, like_pattern};
use serde::Deserialize;

use super::{flag, make_cursor, next_cursor, page_limit, parse_date, parse_time, split_cursor};
use crate::{
    error::ApiError,
    schema,
    state::AppState,
    views::inventory::{
        AuditEventPage, AuditRow, CostGroup, CostReport, DirectoryPage, DirectoryRow, WorkspaceBundle,
        WorkspaceConnection, WorkspaceDetail, WorkspaceDirectory, WorkspacePage, WorkspaceProperties,
        WorkspaceRow,
    },
};

/// The parts of an optional `id~account~region` keyset cursor, as query
/// parameters (all `None` on the first page).
fn cursor_parts(cursor: &Option<Vec<String>>) -> [Option<&str>; 3] {
    let part = |i: usize| cursor.as_ref().and_then(|c| c.get(i)).map(String::as_str);
    [part(0), part(1), part(2)]
}

/// A `state` filter in the WorkSpaces API's spelling (any case), or 422:
/// a misspelt state would otherwise answer an empty page.
fn workspace_state(text: &str) -> Result<&'static str, ApiError> {
    inventory::workspace_state(text).ok_or_else(|| {
        ApiError::invalid(
            "state",
            format!(
                "{text:?} is not a WorkSpaces state; one of {}",
                inventory::WORKSPACE_STATES.join(", ")
            ),
        )
    })
}

/// Query of `GET /api/v1/workspaces`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceQuery {
    account: Option<String>,
    region: Option<String>,
    /// A WorkSpaces state (`AVAILABLE`, `STOPPED`, …; any case); another word is 422.
    state: Option<String>,
    directory: Option<String>,
    user: Option<String>,
    bundle: Option<String>,
    /// Free text (at most 200 characters): matches workspace id, user name,
    /// computer name or IP address.
    #[param(max_length = 200)]
    q: Option<String>,
    /// `true` to include rows deleted in AWS.
    #[param(value_type = Option<bool>)]
    include_deleted: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List workspaces
///
/// Synced workspaces by id, filtered, with their last connection state.
#[utoipa::path(get, path = "/api/v1/workspaces", operation_id = "list_workspaces", tag = "inventory",
    params(WorkspaceQuery),
    responses((status = 200, description = "A page of workspaces", body = schema::WorkspacePage)),
    security(("bearer" = ["viewer"])))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    Query(q): Query<WorkspaceQuery>,
) -> Result<Json<WorkspacePage>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let include_deleted = flag("include_deleted", q.include_deleted.as_deref())?;
    let cursor = split_cursor(q.cursor.as_deref(), 3)?;
    let [after_id, after_account, after_region] = cursor_parts(&cursor);
    let state_filter = q.state.as_deref().map(workspace_state).transpose()?;
    if q.q.as_ref().is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
        return Err(ApiError::invalid(
            "q",
            format!("at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    let search = q.q.as_deref().filter(|s| !s.is_empty()).map(like_pattern);
    let rows = sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.account, w.region, w.workspace_id, w.directory_id, w.user_name, w.ip_address, w.state,
                  w.bundle_id, w.computer_name, w.running_mode, w.compute_type, w.tags,
                  c.connection_state AS "connection_state?", c.last_user_connection_at AS "last_user_connection_at?",
                  w.first_seen_at, w.updated_at, w.deleted_at
           FROM workspaces w
           LEFT JOIN workspace_connections c USING (account, region, workspace_id)
           WHERE ($1::text IS NULL OR w.account = $1)
             AND ($2::text IS NULL OR w.region = $2)
             AND ($3::text IS NULL OR w.state = $3)
             AND ($4::text IS NULL OR w.directory_id = $4)
             AND ($5::text IS NULL OR lower(w.user_name) = lower($5))
             AND ($6::text IS NULL OR w.bundle_id = $6)
             AND ($7::text IS NULL OR w.workspace_id ILIKE $7 OR w.user_name ILIKE $7
                  OR w.computer_name ILIKE $7 OR w.ip_address ILIKE $7)
             AND ($8 OR w.deleted_at IS NULL)
             AND ($9::text IS NULL OR (w.workspace_id, w.account, w.region) > ($9, $10, $11))
           ORDER BY w.workspace_id, w.account, w.region
           LIMIT $12"#,
        q.account,
        q.region,
        state_filter,
        q.directory,
        q.user,
        q.bundle,
        search,
        include_deleted,
        after_id,
        after_account,
        after_region,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let next = next_cursor(&rows, limit, |r| {
        make_cursor(&[&r.workspace_id, &r.account, &r.region])
    });
    Ok(Json(WorkspacePage {
        workspaces: rows,
        next_cursor: next,
    }))
}

/// Query of `GET /api/v1/workspaces/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OneWorkspaceQuery {
    /// The account, when the id is synced from several.
    pub account: Option<String>,
}

/// Get a workspace
///
/// One workspace with its last connection, tags, directory and bundle.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}", operation_id = "get_workspace", tag = "inventory",
    params(("id" = String, Path, description = "Workspace id, e.g. ws-0123456789"), OneWorkspaceQuery),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceDetail),
        (status = 404, description = "Not synced", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn get_workspace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<OneWorkspaceQuery>,
) -> Result<Json<WorkspaceDetail>, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::invalid(
            "id",
            "must be a workspace id such as ws-0123456789",
        ));
    }
    let row = sqlx::query!(
        r#"SELECT w.account, w.region, w.workspace_id, w.directory_id, w.user_name, w.ip_address, w.state,
                  w.bundle_id, w.subnet_id, w.computer_name, w.running_mode, w.auto_stop_timeout_minutes,
                  w.root_volume_gib, w.user_volume_gib, w.compute_type, w.tags,
                  w.first_seen_at, w.updated_at, w.deleted_at,
                  c.connection_state AS "connection_state?", c.state_checked_at AS "state_checked_at?",
                  c.last_user_connection_at AS "last_user_connection_at?",
                  d.alias AS "directory_alias?", d.directory_name AS "directory_name?",
                  b.name AS "bundle_name?", b.compute_type AS "bundle_compute_type?"
           FROM workspaces w
           LEFT JOIN workspace_connections c USING (account, region, workspace_id)
           LEFT JOIN directories d ON d.account = w.account AND d.region = w.region
                                   AND d.directory_id = w.directory_id
           LEFT JOIN bundles b ON b.account = w.account AND b.region = w.region AND b.bundle_id = w.bundle_id
           WHERE w.workspace_id = $1 AND ($2::text IS NULL OR w.account = $2)
           ORDER BY w.account, w.region
           LIMIT 1"#,
        id,
        q.account,
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no workspace {id} has been synced")))?;
    Ok(Json(WorkspaceDetail {
        account: row.account,
        region: row.region,
        workspace_id: row.workspace_id,
        directory: WorkspaceDirectory {
            id: row.directory_id,
            alias: row.directory_alias,
            name: row.directory_name,
        },
        bundle: WorkspaceBundle {
            id: row.bundle_id,
            name: row.bundle_name,
            compute_type: row.bundle_compute_type,
        },
        user_name: row.user_name,
        ip_address: row.ip_address,
        state: row.state,
        subnet_id: row.subnet_id,
        computer_name: row.computer_name,
        properties: WorkspaceProperties {
            running_mode: row.running_mode,
            auto_stop_timeout_minutes: row.auto_stop_timeout_minutes,
            root_volume_gib: row.root_volume_gib,
            user_volume_gib: row.user_volume_gib,
            compute_type: row.compute_type,
        },
        tags: row.tags,
        last_connection: WorkspaceConnection {
            state: row.connection_state,
            checked_at: row.state_checked_at,
            last_user_connection_at: row.last_user_connection_at,
        },
        first_seen_at: row.first_seen_at,
        updated_at: row.updated_at,
        deleted_at: row.deleted_at,
    }))
}

/// Query of `GET /api/v1/directories`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    account: Option<String>,
    region: Option<String>,
    /// `true` to include rows deleted in AWS.
    #[param(value_type = Option<bool>)]
    include_deleted: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List directories
///
/// Synced directories with the number of (not deleted) workspaces in each.
#[utoipa::path(get, path = "/api/v1/directories", operation_id = "list_directories", tag = "inventory",
    params(DirectoryQuery),
    responses((status = 200, description = "A page of directories", body = schema::DirectoryPage)),
    security(("bearer" = ["viewer"])))]
pub async fn list_directories(
    State(state): State<AppState>,
    Query(q): Query<DirectoryQuery>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let include_deleted = flag("include_deleted", q.include_deleted.as_deref())?;
    let cursor = split_cursor(q.cursor.as_deref(), 3)?;
    let [after_id, after_account, after_region] = cursor_parts(&cursor);
    let rows = sqlx::query_as!(
        DirectoryRow,
        r#"SELECT d.account, d.region, d.directory_id, d.alias, d.directory_name, d.directory_type, d.state,
                  d.registration_code, d.subnet_ids, d.dns_ip_addresses,
                  (SELECT count(*) FROM workspaces w WHERE w.account = d.account AND w.region = d.region
                     AND w.directory_id = d.directory_id AND w.deleted_at IS NULL) AS "workspaces!",
                  d.first_seen_at, d.updated_at, d.deleted_at
           FROM directories d
           WHERE ($1::text IS NULL OR d.account = $1) AND ($2::text IS NULL OR d.region = $2)
             AND ($3 OR d.deleted_at IS NULL)
             AND ($4::text IS NULL OR (d.directory_id, d.account, d.region) > ($4, $5, $6))
           ORDER BY d.directory_id, d.account, d.region
           LIMIT $7"#,
        q.account,
        q.region,
        include_deleted,
        after_id,
        after_account,
        after_region,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let next = next_cursor(&rows, limit, |r| {
        make_cursor(&[&r.directory_id, &r.account, &r.region])
    });
    Ok(Json(DirectoryPage {
        directories: rows,
        next_cursor: next,
    }))
}

/// Query of `GET /api/v1/audit-events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    account: Option<String>,
    region: Option<String>,
    start: Option<String>,
    end: Option<String>,
    event_name: Option<String>,
    user: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List CloudTrail events
///
/// WorkSpaces events from CloudTrail, newest first.
#[utoipa::path(get, path = "/api/v1/audit-events", operation_id = "list_audit_events", tag = "inventory",
    params(AuditQuery),
    responses((status = 200, description = "A page of events", body = schema::AuditEventPage)),
    security(("bearer" = ["viewer"])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditEventPage>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let start = parse_time("start", q.start.as_deref())?;
    let end = parse_time("end", q.end.as_deref())?;
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        return Err(ApiError::invalid("end", "must be after start"));
    }
    let cursor = split_cursor(q.cursor.as_deref(), 2)?;
    let (before_time, before_id) = match &cursor {
        Some(c) => (
            Some(
                DateTime::parse_from_rfc3339(&c[0])
                    .map_err(|_| ApiError::invalid("cursor", "not a cursor returned by this endpoint"))?
                    .with_timezone(&Utc),
            ),
            Some(c[1].as_str()),
        ),
        None => (None, None),
    };
    let rows = sqlx::query_as!(
        AuditRow,
        r#"SELECT event_id, account, region, event_time, event_name, event_source, username, read_only,
                  access_key_id, resources, cloudtrail_event
           FROM audit_events
           WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR region = $2)
             AND ($3::timestamptz IS NULL OR event_time >= $3) AND ($4::timestamptz IS NULL OR event_time < $4)
             AND ($5::text IS NULL OR event_name = $5) AND ($6::text IS NULL OR username = $6)
             AND ($7::timestamptz IS NULL OR (event_time, event_id) < ($7, $8))
           ORDER BY event_time DESC, event_id DESC
           LIMIT $9"#,
        q.account,
        q.region,
        start,
        end,
        q.event_name,
        q.user,
        before_time,
        before_id,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let next = next_cursor(&rows, limit, |r| {
        make_cursor(&[
            &r.event_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &r.event_id,
        ])
    });
    Ok(Json(AuditEventPage {
        events: rows,
        next_cursor: next,
    }))
}

/// Query of `GET /api/v1/costs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostQuery {
    account: Option<String>,
    start: Option<String>,
    end: Option<String>,
    group_by: Option<String>,
    view: Option<String>,
    service: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Costs
///
/// Exact sums (decimal strings) of Cost Explorer's daily costs per service,
/// usage type or day, in key order, with the total per currency.
#[utoipa::path(get, path = "/api/v1/costs", operation_id = "list_costs", tag = "inventory",
    params(CostQuery),
    responses((status = 200, description = "Grouped costs", body = CostReport)),
    security(("bearer" = ["viewer"])))]
pub async fn list_costs(
    State(state): State<AppState>,
    Query(q): Query<CostQuery>,
) -> Result<Json<CostReport>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let today = Utc::now().date_naive();
    let start = parse_date("start", q.start.as_deref())?.unwrap_or(today - chrono::Duration::days(14));
    let end = parse_date("end", q.end.as_deref())?.unwrap_or(today + chrono::Duration::days(1));
    if start >= end {
        return Err(ApiError::invalid("end", "must be after start (end is exclusive)"));
    }
    let group_by = q.group_by.as_deref().unwrap_or("service");
    if !["service", "usage_type", "day"].contains(&group_by) {
        return Err(ApiError::invalid(
            "group_by",
            "must be service, usage_type or day",
        ));
    }
    let view = q.view.as_deref().unwrap_or("all");
    if !["all", "workspaces"].contains(&view) {
        return Err(ApiError::invalid("view", "must be all or workspaces"));
    }
    let cursor = split_cursor(q.cursor.as_deref(), 2)?;
    let (after_key, after_currency) = match &cursor {
        Some(c) => (Some(c[0].as_str()), Some(c[1].as_str())),
        None => (None, None),
    };
    let groups = sqlx::query_as!(
        CostGroup,
        r#"SELECT key AS "key!", currency AS "currency!", amount AS "amount!", estimated AS "estimated!" FROM (
             SELECT CASE $1::text WHEN 'service' THEN service WHEN 'usage_type' THEN usage_type
                                  ELSE to_char(day, 'YYYY-MM-DD') END AS key,
                    currency, sum(amount) AS amount, bool_or(estimated) AS estimated
             FROM cost_daily
             WHERE view = $2 AND day >= $3 AND day < $4
               AND ($5::text IS NULL OR account = $5) AND ($6::text IS NULL OR service = $6)
             GROUP BY 1, 2
           ) g
           WHERE ($7::text IS NULL OR (key, currency) > ($7, $8))
           ORDER BY key, currency
           LIMIT $9"#,
        group_by,
        view,
        start,
        end,
        q.account,
        q.service,
        after_key,
        after_currency,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let totals = sqlx::query!(
        r#"SELECT currency, sum(amount) AS "amount!" FROM cost_daily
           WHERE view = $1 AND day >= $2 AND day < $3
             AND ($4::text IS NULL OR account = $4) AND ($5::text IS NULL OR service = $5)
           GROUP BY currency ORDER BY currency"#,
        view,
        start,
        end,
        q.account,
        q.service,
    )
    .fetch_all(&state.pool)
    .await?;
    let total = totals.into_iter().map(|t| (t.currency, t.amount)).collect();
    let next = next_cursor(&groups, limit, |g| make_cursor(&[&g.key, &g.currency]));
    Ok(Json(CostReport {
        view: view.to_owned(),
        group_by: group_by.to_owned(),
        start,
        end,
        groups,
        total,
        next_cursor: next,
    }))
}
