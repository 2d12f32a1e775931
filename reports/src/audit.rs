//! `report.audit` (CloudTrail's WorkSpaces events, as `sync.cloudtrail`
//! stored them) and `report.audit_log` (Hangar's own audit log: every
//! state-changing request, admins only), over a time range (default: the
//! last 7 days), oldest first.

use chrono::{DateTime, Duration, Utc};
use futures_util::TryStreamExt;
use hangar_shared::kinds::{AuditLogReport, AuditReport, REPORT_AUDIT, REPORT_AUDIT_LOG, SYNC_CLOUDTRAIL};
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    spec::ReportSpec,
    table::{Cell, Column, ColumnType, TableWriter, col, text},
};

/// `report.audit`'s columns.
pub const EVENT_COLUMNS: &[Column] = &[
    col("event_time", ColumnType::Time),
    text("account"),
    text("region"),
    text("event_name"),
    text("username"),
    text("read_only"),
    text("access_key_id"),
    text("resources"),
    text("event_id"),
];

/// `report.audit`.
pub const EVENTS: ReportSpec = ReportSpec {
    kind: REPORT_AUDIT,
    title: "CloudTrail events",
    columns: EVENT_COLUMNS,
    sources: &[SYNC_CLOUDTRAIL],
};

/// `report.audit_log`'s columns.
pub const LOG_COLUMNS: &[Column] = &[
    col("id", ColumnType::Integer),
    col("at", ColumnType::Time),
    text("actor"),
    text("role"),
    text("auth"),
    text("action"),
    text("method"),
    text("path"),
    text("target"),
    col("status", ColumnType::Integer),
    text("request_id"),
    text("client_ip"),
];

/// `report.audit_log` (no sync: the log is Hangar's own).
pub const LOG: ReportSpec = ReportSpec {
    kind: REPORT_AUDIT_LOG,
    title: "Hangar audit log",
    columns: LOG_COLUMNS,
    sources: &[],
};

/// `start..end`, by default the 7 days to `now`.
fn window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = end.unwrap_or(now);
    (start.unwrap_or(end - Duration::days(7)), end)
}

/// An event's resources as `type:name; …`.
fn resources_text(resources: &Value) -> String {
    resources
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    format!(
                        "{}:{}",
                        r["type"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Writes the CloudTrail events of the window to `out`.
pub async fn write_events(
    pool: &PgPool,
    p: &AuditReport,
    now: DateTime<Utc>,
    out: &mut TableWriter,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let (start, end) = window(p.start, p.end, now);
    let mut rows = sqlx::query!(
        "SELECT event_time, account, region, event_name, username, read_only, access_key_id, resources, event_id
         FROM audit_events
         WHERE event_time >= $1 AND event_time < $2
           AND ($3::text IS NULL OR account = $3) AND ($4::text IS NULL OR region = $4)
           AND ($5::text IS NULL OR event_name = $5) AND ($6::text IS NULL OR username = $6)
         ORDER BY event_time, event_id",
        start,
        end,
        p.account,
        p.region,
        p.event_name,
        p.user,
    )
    .fetch(pool);
    while let Some(r) = rows.try_next().await? {
        out.row(&[
            Cell::Time(r.event_time),
            Cell::Text(r.account),
            Cell::Text(r.region),
            Cell::Text(r.event_name),
            r.username.into(),
            r.read_only.map(|b| b.to_string()).into(),
            r.access_key_id.into(),
            Cell::Text(resources_text(&r.resources)),
            Cell::Text(r.event_id),
        ])?;
        out.tick(&mut progress);
    }
    Ok(())
}

/// Writes Hangar's audit log entries of the window to `out`.
pub async fn write_log(
    pool: &PgPool,
    p: &AuditLogReport,
    now: DateTime<Utc>,
    out: &mut TableWriter,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let (start, end) = window(p.start, p.end, now);
    let mut rows = sqlx::query!(
        "SELECT id, at, actor, role, auth, action, method, path, target, status, request_id, client_ip
         FROM audit_log
         WHERE at >= $1 AND at < $2 AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
         ORDER BY id",
        start,
        end,
        p.actor,
        p.action,
    )
    .fetch(pool);
    while let Some(r) = rows.try_next().await? {
        out.row(&[
            Cell::Int(r.id),
            Cell::Time(r.at),
            Cell::Text(r.actor),
            Cell::Text(r.role),
            Cell::Text(r.auth),
            Cell::Text(r.action),
            Cell::Text(r.method),
            Cell::Text(r.path),
            r.target.into(),
            Cell::Int(i64::from(r.status)),
            Cell::Text(r.request_id),
            r.client_ip.into(),
        ])?;
        out.tick(&mut progress);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_read_as_type_and_name() {
        let r = serde_json::json!([{"type": "AWS::WorkSpaces::Workspace", "name": "ws-1"}, {"type": "x", "name": null}]);
        assert_eq!(resources_text(&r), "AWS::WorkSpaces::Workspace:ws-1; x:");
    }
}
