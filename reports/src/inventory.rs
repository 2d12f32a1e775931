//! `report.inventory`: every workspace with its directory, bundle, settings,
//! state and last known connection, filtered like `GET /api/v1/workspaces`,
//! in the order account, region, workspace id.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use hangar_shared::{
    inventory::{like_pattern, workspace_state},
    kinds::InventoryReport,
};
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    spec::ReportSpec,
    table::{Cell, Column, ColumnType, TableWriter, text},
};

/// `report.inventory`.
pub const SPEC: ReportSpec = ReportSpec {
    kind: hangar_shared::kinds::REPORT_INVENTORY,
    title: "Inventory",
    columns: COLUMNS,
    sources: &[hangar_shared::kinds::SYNC_WORKSPACES],
};

/// The report's columns, in order.
pub const COLUMNS: &[Column] = &[
    text("account"),
    text("region"),
    text("directory_id"),
    text("workspace_id"),
    text("user_name"),
    text("computer_name"),
    text("ip_address"),
    text("bundle_id"),
    text("bundle_name"),
    text("compute_type"),
    text("running_mode"),
    Column {
        name: "auto_stop_timeout_minutes",
        kind: ColumnType::Integer,
    },
    text("state"),
    Column {
        name: "first_seen_at",
        kind: ColumnType::Time,
    },
    Column {
        name: "deleted_at",
        kind: ColumnType::Time,
    },
    Column {
        name: "last_known_user_connection",
        kind: ColumnType::Time,
    },
    Column {
        name: "days_since_last_connection",
        kind: ColumnType::Integer,
    },
    text("tags"),
];

/// Tags as `key=value; …`, by key (bytewise), built in one string. (Joining
/// them in SQL instead cost PostgreSQL 130 ms more per 50,000 rows than
/// this costs here; bench/RESULTS.md.)
pub fn tags_text(tags: &Value) -> String {
    use std::fmt::Write as _;
    let Some(map) = tags.as_object() else {
        return String::new();
    };
    let mut pairs: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    pairs.sort_unstable_by_key(|&(k, _)| k);
    let mut out = String::with_capacity(pairs.len() * 24);
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(k);
        out.push('=');
        match v.as_str() {
            Some(s) => out.push_str(s),
            None => {
                let _ = write!(out, "{v}");
            }
        }
    }
    out
}

/// Whole days from `then` to `now`.
pub fn days_since(then: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    then.map(|t| (now - t).num_days())
}

/// Writes every matching workspace to `out`; `progress` is called every
/// 5,000 rows with the count so far.
pub async fn write(
    pool: &PgPool,
    p: &InventoryReport,
    now: DateTime<Utc>,
    out: &mut TableWriter,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let state = p.state.as_deref().and_then(workspace_state);
    let search = p.q.as_deref().filter(|s| !s.is_empty()).map(like_pattern);
    // The primary keys already hold the rows in the report's order: with
    // sorting off for this one query, PostgreSQL merge-joins the three
    // tables along them and the first row arrives at once, instead of
    // after a sort of every row that spills to disk at the default
    // work_mem (141 ms against 65-100 ms for 50,000 workspaces, EXPLAIN
    // ANALYZE; bench/RESULTS.md).
    let mut tx = pool.begin().await?;
    // And planned for this report's filters, not a generic plan of the
    // optional ones (see `hangar_shared::db::Planning`).
    for setting in [
        "SET LOCAL enable_sort = off",
        "SET LOCAL plan_cache_mode = force_custom_plan",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    let mut rows = sqlx::query!(
        r#"SELECT w.account, w.region, w.directory_id, w.workspace_id, w.user_name, w.computer_name,
                  w.ip_address, w.bundle_id, b.name AS "bundle_name?", w.compute_type, w.running_mode,
                  w.auto_stop_timeout_minutes, w.state, w.first_seen_at, w.deleted_at,
                  c.last_user_connection_at AS "last_user_connection_at?", w.tags
           FROM workspaces w
           LEFT JOIN workspace_connections c USING (account, region, workspace_id)
           LEFT JOIN bundles b ON b.account = w.account AND b.region = w.region AND b.bundle_id = w.bundle_id
           WHERE ($1::text IS NULL OR w.account = $1)
             AND ($2::text IS NULL OR w.region = $2)
             AND ($3::text IS NULL OR w.state = $3)
             AND ($4::text IS NULL OR w.directory_id = $4)
             AND ($5::text IS NULL OR lower(w.user_name) = lower($5))
             AND ($6::text IS NULL OR w.bundle_id = $6)
             AND ($7::text IS NULL OR w.workspace_id ILIKE $7 OR w.user_name ILIKE $7
                  OR w.computer_name ILIKE $7 OR w.ip_address ILIKE $7)
             AND ($8 OR w.deleted_at IS NULL)
           ORDER BY w.account, w.region, w.workspace_id"#,
        p.account,
        p.region,
        state,
        p.directory,
        p.user,
        p.bundle,
        search,
        p.include_deleted,
    )
    .fetch(&mut *tx);
    while let Some(r) = rows.try_next().await? {
        out.row(&[
            Cell::Text(r.account),
            Cell::Text(r.region),
            r.directory_id.into(),
            Cell::Text(r.workspace_id),
            r.user_name.into(),
            r.computer_name.into(),
            r.ip_address.into(),
            r.bundle_id.into(),
            r.bundle_name.into(),
            r.compute_type.into(),
            r.running_mode.into(),
            r.auto_stop_timeout_minutes.map(i64::from).into(),
            r.state.into(),
            Cell::Time(r.first_seen_at),
            r.deleted_at.into(),
            r.last_user_connection_at.into(),
            days_since(r.last_user_connection_at, now).into(),
            Cell::Text(tags_text(&r.tags)),
        ])?;
        out.tick(&mut progress);
    }
    drop(rows);
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_as_sorted_key_value_pairs() {
        let tags = serde_json::json!({"team": "ops", "CostCenter": "42", "n": 7});
        assert_eq!(tags_text(&tags), "CostCenter=42; n=7; team=ops");
        assert_eq!(tags_text(&serde_json::json!({})), "");
    }

    #[test]
    fn days_since_counts_whole_days() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .to_utc();
        let then = DateTime::parse_from_rfc3339("2026-11-29T13:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(days_since(Some(then), now), Some(1));
        assert_eq!(days_since(None, now), None);
    }
}
