//! `report.costs`: Cost Explorer's daily costs by account, service and usage
//! type over a range (every service, or WorkSpaces only), each day with its
//! month-to-date running total and the same day of the previous period (the
//! range's length earlier) side by side.

use chrono::{DateTime, Duration, Utc};
use futures_util::TryStreamExt;
use hangar_shared::kinds::{CostsReport, REPORT_COSTS, SYNC_BILLING};
use sqlx::PgPool;

use crate::{
    spec::ReportSpec,
    table::{Cell, Column, ColumnType, TableWriter, col, text},
    usage::month_start,
};

/// The report's columns, in order.
pub const COLUMNS: &[Column] = &[
    text("account"),
    col("day", ColumnType::Date),
    text("service"),
    text("usage_type"),
    col("cost", ColumnType::Money),
    text("currency"),
    text("estimated"),
    col("month_to_date", ColumnType::Money),
    col("previous_period_day", ColumnType::Date),
    col("previous_period_cost", ColumnType::Money),
];

/// `report.costs`.
pub const SPEC: ReportSpec = ReportSpec {
    kind: REPORT_COSTS,
    title: "Costs",
    columns: COLUMNS,
    sources: &[SYNC_BILLING],
};

/// The range a report covers: its own, or this month so far.
pub fn range(p: &CostsReport, now: DateTime<Utc>) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let start = p.start.unwrap_or_else(|| month_start(now));
    let end = p.end.unwrap_or(now.date_naive() + Duration::days(1));
    (start, end)
}

/// Writes every day's cost in the range to `out`.
pub async fn write(
    pool: &PgPool,
    p: &CostsReport,
    now: DateTime<Utc>,
    out: &mut TableWriter,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let (start, end) = range(p, now);
    let length = (end - start).num_days() as i32;
    let view = if p.workspaces_only { "workspaces" } else { "all" };
    let mut rows = sqlx::query!(
        r#"WITH d AS (
               SELECT account, day, service, usage_type, amount, currency, estimated,
                      sum(amount) OVER (PARTITION BY account, service, usage_type, currency, date_trunc('month', day)
                                        ORDER BY day) AS mtd
               FROM cost_daily
               WHERE view = $1 AND ($2::text IS NULL OR account = $2)
                 AND day >= LEAST($3::date - $5::int, date_trunc('month', $3::date)::date) AND day < $4
           )
           SELECT cur.account, cur.day, cur.service, cur.usage_type, cur.amount, cur.currency, cur.estimated,
                  cur.mtd AS "mtd!", prev.amount AS "previous_amount?"
           FROM d cur
           LEFT JOIN d prev ON prev.account = cur.account AND prev.service = cur.service
                 AND prev.usage_type = cur.usage_type AND prev.currency = cur.currency
                 AND prev.day = cur.day - $5::int
           WHERE cur.day >= $3
           ORDER BY cur.account, cur.day, cur.service, cur.usage_type"#,
        view,
        p.account,
        start,
        end,
        length,
    )
    .fetch(pool);
    while let Some(r) = rows.try_next().await? {
        out.row(&[
            Cell::Text(r.account),
            Cell::Date(r.day),
            Cell::Text(r.service),
            Cell::Text(r.usage_type),
            Cell::Money(r.amount),
            Cell::Text(r.currency),
            Cell::Text(if r.estimated { "yes" } else { "no" }.to_owned()),
            Cell::Money(r.mtd),
            Cell::Date(r.day - Duration::days(i64::from(length))),
            r.previous_amount.into(),
        ])?;
        out.tick(&mut progress);
    }
    Ok(())
}
