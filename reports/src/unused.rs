//! `report.unused`: workspaces nobody has connected to in `days` days (by
//! the last known connection the workspace sync stores), or never connected
//! and known to Hangar for longer than that, bucketed 30/60/90+ days, with
//! their connected hours in the window (when `sync.usage` has data) and the
//! month's cost attributed to each where Cost Explorer's usage types allow,
//! and for a standby WorkSpace (unused by design until a failover) its
//! primary.
//! Report only: nothing is stopped or terminated.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use hangar_shared::kinds::{REPORT_UNUSED, SYNC_BILLING, SYNC_USAGE, SYNC_WORKSPACES, UnusedReport};
use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::{
    inventory::days_since,
    spec::ReportSpec,
    table::{Cell, Column, ColumnType, TableWriter, col, text},
    usage::month_start,
};

/// The report's columns, in order.
pub const COLUMNS: &[Column] = &[
    text("account"),
    text("region"),
    text("workspace_id"),
    text("user_name"),
    text("directory_id"),
    text("bundle_id"),
    text("compute_type"),
    text("running_mode"),
    text("state"),
    text("standby_of"),
    col("first_seen_at", ColumnType::Time),
    col("last_known_user_connection", ColumnType::Time),
    col("days_since_last_connection", ColumnType::Integer),
    text("unused_bucket"),
    col("connected_hours_in_window", ColumnType::Number),
    col("month_cost_attributed", ColumnType::Money),
    text("currency"),
    text("cost_basis"),
];

/// `report.unused`.
pub const SPEC: ReportSpec = ReportSpec {
    kind: REPORT_UNUSED,
    title: "Unused",
    columns: COLUMNS,
    sources: &[SYNC_WORKSPACES, SYNC_USAGE, SYNC_BILLING],
};

/// The bucket of a workspace idle `days` days (`None`: never connected).
pub fn bucket(days: Option<i64>) -> &'static str {
    match days {
        None => "never connected",
        Some(d) if d >= 90 => "90+ days",
        Some(d) if d >= 60 => "60-89 days",
        Some(d) if d >= 30 => "30-59 days",
        Some(_) => "under 30 days",
    }
}

/// Writes every unused workspace to `out`.
pub async fn write(
    pool: &PgPool,
    p: &UnusedReport,
    now: DateTime<Utc>,
    out: &mut TableWriter,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let cutoff = now - chrono::Duration::days(i64::from(p.days));
    let mut rows = sqlx::query!(
        r#"SELECT w.account, w.region, w.workspace_id, w.user_name, w.directory_id, w.bundle_id, w.compute_type,
                  w.running_mode, w.state, w.standby_of, w.first_seen_at,
                  c.last_user_connection_at AS "last_user_connection_at?",
                  (SELECT sum(u.connected_minutes)::bigint FROM workspace_usage u
                    WHERE u.account = w.account AND u.region = w.region AND u.workspace_id = w.workspace_id
                      AND u.hour >= $1) AS "connected_minutes?",
                  m.amount AS "amount?", m.currency AS "currency?", m.usage_types AS "usage_types?",
                  m.workspaces AS "sharing?"
           FROM workspaces w
           LEFT JOIN workspace_connections c USING (account, region, workspace_id)
           LEFT JOIN workspace_mode_costs m ON m.account = w.account AND m.running_mode = w.running_mode
                 AND m.compute_type = w.compute_type AND m.month = $2
           WHERE w.deleted_at IS NULL
             AND ($3::text IS NULL OR w.account = $3)
             AND ($4::text IS NULL OR w.region = $4)
             AND (c.last_user_connection_at < $1
                  OR (c.last_user_connection_at IS NULL AND w.first_seen_at < $1))
           ORDER BY w.account, w.region, w.workspace_id"#,
        cutoff,
        month_start(now),
        p.account,
        p.region,
    )
    .fetch(pool);
    while let Some(r) = rows.try_next().await? {
        let days = days_since(r.last_user_connection_at, now);
        let attributed = match (r.amount, r.sharing) {
            (Some(amount), Some(n)) if n > 0 => Some((amount / Decimal::from(n)).round_dp(2)),
            _ => None,
        };
        let basis = match (&r.usage_types, r.sharing) {
            (Some(types), Some(n)) => format!("{types} month to date / {n} workspaces of this mode and type"),
            _ => "no Cost Explorer usage type names this running mode and compute type".to_owned(),
        };
        out.row(&[
            Cell::Text(r.account),
            Cell::Text(r.region),
            Cell::Text(r.workspace_id),
            r.user_name.into(),
            r.directory_id.into(),
            r.bundle_id.into(),
            r.compute_type.into(),
            r.running_mode.into(),
            r.state.into(),
            r.standby_of.into(),
            Cell::Time(r.first_seen_at),
            r.last_user_connection_at.into(),
            days.into(),
            Cell::Text(bucket(days).to_owned()),
            r.connected_minutes.map(|m| m as f64 / 60.0).into(),
            attributed.into(),
            r.currency.into(),
            Cell::Text(basis),
        ])?;
        out.tick(&mut progress);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_30_60_90_and_never() {
        assert_eq!(bucket(None), "never connected");
        assert_eq!(bucket(Some(30)), "30-59 days");
        assert_eq!(bucket(Some(59)), "30-59 days");
        assert_eq!(bucket(Some(60)), "60-89 days");
        assert_eq!(bucket(Some(400)), "90+ days");
        assert_eq!(bucket(Some(12)), "under 30 days");
    }
}
