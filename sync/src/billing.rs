//! `sync.billing`: Cost Explorer GetCostAndUsage, DAILY, grouped by service
//! and usage type, twice: for the whole account and for Amazon WorkSpaces
//! alone. Every page is one upsert with exact decimal amounts. A day's rows
//! that Cost Explorer no longer reports (a charge settled to nothing) are
//! removed once a view's listing is complete.
//!
//! Without a date range the sync reads from its cursor, always re-reading
//! the last few days because costs settle late, or the last 14 days the
//! first time. Every Cost Explorer request is paid ($0.01): each is counted
//! against the account's monthly budget in PostgreSQL before it is sent.

use std::str::FromStr;

use aws_sdk_costexplorer::types::{
    DateInterval, Dimension, DimensionValues, Expression, Granularity, GroupDefinition, GroupDefinitionType,
    ResultByTime,
};
use chrono::{Datelike, NaiveDate, Utc};
use hangar_shared::kinds::{BillingSync, GLOBAL_REGION, SYNC_BILLING};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::{LockGuard, Progress, RunStats, SyncError, Syncer, clients::COST_EXPLORER_REGION};

/// The metric synced.
pub const METRIC: &str = "UnblendedCost";
/// Stands in for a group key Cost Explorer left out.
const NO_KEY: &str = "(none)";
/// Cost Explorer's name for WorkSpaces.
pub const WORKSPACES_SERVICE: &str = "Amazon WorkSpaces";

/// One day's cost of one usage type.
#[derive(Debug, Clone, PartialEq)]
struct CostRow {
    day: NaiveDate,
    service: String,
    usage_type: String,
    amount: Decimal,
    currency: String,
    estimated: bool,
}

/// Parses one result page into rows, refusing amounts that are not exact decimals.
fn rows_of(results: &[ResultByTime]) -> Result<Vec<CostRow>, SyncError> {
    let mut rows = Vec::new();
    for r in results {
        let Some(period) = r.time_period() else { continue };
        let day = NaiveDate::parse_from_str(period.start(), "%Y-%m-%d")
            .map_err(|e| SyncError::Invalid(format!("Cost Explorer sent day {:?}: {e}", period.start())))?;
        for g in r.groups() {
            let keys = g.keys();
            let Some(metric) = g.metrics().and_then(|m| m.get(METRIC)) else {
                continue;
            };
            let text = metric.amount().unwrap_or("0");
            let amount = Decimal::from_str(text)
                .or_else(|_| Decimal::from_scientific(text))
                .map_err(|e| SyncError::Invalid(format!("Cost Explorer sent amount {text:?}: {e}")))?;
            rows.push(CostRow {
                day,
                service: keys.first().cloned().unwrap_or_else(|| NO_KEY.to_owned()),
                usage_type: keys.get(1).cloned().unwrap_or_else(|| NO_KEY.to_owned()),
                amount,
                currency: metric.unit().unwrap_or("USD").to_owned(),
                estimated: r.estimated(),
            });
        }
    }
    Ok(rows)
}

/// The days a sync without an explicit range covers: from the cursor but
/// never fewer than the last `resettle` days, or the last `first` days.
pub fn default_window(
    today: NaiveDate,
    cursor: Option<NaiveDate>,
    first: u32,
    resettle: u32,
) -> (NaiveDate, NaiveDate) {
    let end = today + chrono::Duration::days(1);
    let start = match cursor {
        Some(c) => c.min(today - chrono::Duration::days(i64::from(resettle))),
        None => today - chrono::Duration::days(i64::from(first)),
    };
    (start, end)
}

impl Syncer {
    /// Runs `sync.billing` for one account.
    pub async fn sync_billing(
        &self,
        job_id: &str,
        delivery: u32,
        p: &BillingSync,
        progress: &impl Progress,
    ) -> Result<Value, SyncError> {
        let singleton = p.target_key();
        self.exclusive(&singleton, job_id, delivery, |guard| {
            self.billing_inner(p, progress, guard)
        })
        .await
    }

    async fn billing_inner(
        &self,
        p: &BillingSync,
        progress: &impl Progress,
        guard: LockGuard,
    ) -> Result<Value, SyncError> {
        let started = std::time::Instant::now();
        let account = self.account(&p.account).await?;
        let acct = p.account.as_str();
        let region = account
            .regions
            .first()
            .map_or(COST_EXPLORER_REGION, String::as_str);
        let ce = self.clients.get(&account, region).await.cost_explorer;
        let mut stats = RunStats::default();

        let cursor = self.cursor(acct, GLOBAL_REGION, SYNC_BILLING).await?;
        let today = Utc::now().date_naive();
        let (auto_start, auto_end) = default_window(
            today,
            cursor.map(|c| c.date_naive()),
            self.config.billing_days,
            self.config.billing_resettle_days,
        );
        let (start, end) = (p.start.unwrap_or(auto_start), p.end.unwrap_or(auto_end));
        if start >= end {
            return Err(SyncError::Invalid(format!(
                "nothing to read: start {start} is not before end {end} (end is exclusive)"
            )));
        }

        let site = self.site(acct, GLOBAL_REGION, "ce", "GetCostAndUsage");
        let interval = DateInterval::builder()
            .start(start.to_string())
            .end(end.to_string())
            .build()
            .map_err(|e| SyncError::Invalid(format!("date range: {e}")))?;
        let group = |key: &str| {
            GroupDefinition::builder()
                .r#type(GroupDefinitionType::Dimension)
                .key(key)
                .build()
        };
        let workspaces_only = Expression::builder()
            .dimensions(
                DimensionValues::builder()
                    .key(Dimension::Service)
                    .values(WORKSPACES_SERVICE)
                    .build(),
            )
            .build();
        let mut summary = serde_json::Map::new();
        for (view, filter) in [("all", None), ("workspaces", Some(workspaces_only))] {
            let mut token: Option<String> = None;
            let mut seen: Vec<(NaiveDate, String, String)> = Vec::new();
            let mut written = 0u64;
            let mut total = Decimal::ZERO;
            loop {
                if progress.cancelled() {
                    return Err(SyncError::Cancelled(format!(
                        "stopped after {} pages",
                        stats.pages
                    )));
                }
                self.spend_budget(acct, &mut stats).await?;
                let requests_before = stats.aws_requests;
                let out = self
                    .caller
                    .call(&site, &mut stats, || {
                        ce.get_cost_and_usage()
                            .time_period(interval.clone())
                            .granularity(Granularity::Daily)
                            .metrics(METRIC)
                            .group_by(group("SERVICE"))
                            .group_by(group("USAGE_TYPE"))
                            .set_filter(filter.clone())
                            .set_next_page_token(token.clone())
                            .send()
                    })
                    .await?;
                // Retried attempts may be billed too: count them against the budget.
                let extra = stats.aws_requests.saturating_sub(requests_before + 1);
                if extra > 0 {
                    self.charge_extra(acct, extra, &mut stats).await?;
                }
                token = out.next_page_token().map(str::to_owned);
                let rows = rows_of(out.results_by_time())?;
                total += rows.iter().map(|r| r.amount).sum::<Decimal>();
                seen.extend(
                    rows.iter()
                        .map(|r| (r.day, r.service.clone(), r.usage_type.clone())),
                );
                written += self.upsert_costs(acct, view, &rows, &mut stats).await?;
                self.metrics.page(SYNC_BILLING);
                stats.pages += 1;
                progress
                    .report(
                        json!({"step": format!("costs:{view}"), "pages": stats.pages, "rows": seen.len(),
                            "rate_limit_wait_ms": stats.rate_limit_wait_ms}),
                    )
                    .await;
                if token.is_none() {
                    break;
                }
            }
            // Deleting is only for the current holder of the sync's lock.
            guard.confirm().await?;
            let removed = self
                .remove_settled(acct, view, start, end, &seen, &mut stats)
                .await?;
            stats.rows_written += written + removed;
            self.metrics.rows(SYNC_BILLING, "cost_daily", written + removed);
            summary.insert(
                view.to_owned(),
                json!({"rows": seen.len(), "written": written, "removed": removed, "total": total.to_string()}),
            );
        }
        // Every view committed: the next sync resumes from here, unless this
        // window left a gap after the cursor (an explicit later start), which
        // the next sync must still cover. Never beyond tomorrow.
        let contiguous = cursor.is_none_or(|c| start <= c.date_naive());
        let resume = end.min(today + chrono::Duration::days(1));
        if let Some(position) = resume
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .filter(|_| contiguous)
        {
            self.advance_cursor(acct, GLOBAL_REGION, SYNC_BILLING, position, &mut stats)
                .await?;
        }
        tracing::info!(account = acct, %start, %end, pages = stats.pages, "billing synced");
        Ok(json!({
            "account": acct,
            "window": {"start": start, "end": end},
            "views": summary,
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "stats": stats,
        }))
    }

    /// Counts one Cost Explorer request against this month's budget, or
    /// refuses it (permanently: retrying cannot help until next month).
    async fn spend_budget(&self, acct: &str, stats: &mut RunStats) -> Result<(), SyncError> {
        let today = Utc::now().date_naive();
        let month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
        let budget = self.config.ce_monthly_budget;
        let used = self
            .write(
                SYNC_BILLING,
                stats,
                sqlx::query_scalar!(
                    "INSERT INTO aws_request_budget (month, account, api, used)
                     SELECT $1, $2, 'ce', 1 WHERE $3::int > 0
                     ON CONFLICT (month, account, api) DO UPDATE SET used = aws_request_budget.used + 1
                       WHERE aws_request_budget.used < $3
                     RETURNING used",
                    month,
                    acct,
                    budget as i32
                )
                .fetch_optional(&self.pool),
            )
            .await?;
        if used.is_some() {
            return Ok(());
        }
        self.metrics.budget_refused(acct);
        let used = sqlx::query_scalar!(
            "SELECT used FROM aws_request_budget WHERE month = $1 AND account = $2 AND api = 'ce'",
            month,
            acct
        )
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0);
        Err(SyncError::BudgetExhausted {
            account: acct.to_owned(),
            month: month.format("%Y-%m").to_string(),
            used: i64::from(used),
            budget,
        })
    }

    /// Counts `extra` more requests (retried attempts) against this month's budget.
    async fn charge_extra(&self, acct: &str, extra: u64, stats: &mut RunStats) -> Result<(), SyncError> {
        let today = Utc::now().date_naive();
        let month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
        self.write(
            SYNC_BILLING,
            stats,
            sqlx::query!(
                "UPDATE aws_request_budget SET used = used + $3 WHERE month = $1 AND account = $2 AND api = 'ce'",
                month,
                acct,
                extra.min(i32::MAX as u64) as i32
            )
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn upsert_costs(
        &self,
        acct: &str,
        view: &str,
        rows: &[CostRow],
        stats: &mut RunStats,
    ) -> Result<u64, SyncError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let n = self
            .write(
                SYNC_BILLING,
                stats,
                sqlx::query_scalar!(
                    r#"WITH c AS (
                        INSERT INTO cost_daily AS t (account, view, day, service, usage_type, amount, currency,
                            estimated)
                        SELECT $1::text, $2::text, * FROM UNNEST($3::date[], $4::text[], $5::text[],
                            $6::numeric[], $7::text[], $8::bool[])
                        ON CONFLICT (account, view, day, service, usage_type) DO UPDATE SET
                            amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                            estimated = EXCLUDED.estimated, updated_at = now()
                        WHERE (t.amount, t.currency, t.estimated)
                              IS DISTINCT FROM (EXCLUDED.amount, EXCLUDED.currency, EXCLUDED.estimated)
                        RETURNING 1
                    ) SELECT count(*) AS "n!" FROM c"#,
                    acct,
                    view,
                    &rows.iter().map(|r| r.day).collect::<Vec<_>>(),
                    &rows.iter().map(|r| r.service.clone()).collect::<Vec<_>>(),
                    &rows.iter().map(|r| r.usage_type.clone()).collect::<Vec<_>>(),
                    &rows.iter().map(|r| r.amount).collect::<Vec<_>>(),
                    &rows.iter().map(|r| r.currency.clone()).collect::<Vec<_>>(),
                    &rows.iter().map(|r| r.estimated).collect::<Vec<_>>(),
                )
                .fetch_one(&self.pool),
            )
            .await?;
        Ok(n as u64)
    }

    /// Deletes rows of days `start..end` that the complete listing no longer has.
    async fn remove_settled(
        &self,
        acct: &str,
        view: &str,
        start: NaiveDate,
        end: NaiveDate,
        seen: &[(NaiveDate, String, String)],
        stats: &mut RunStats,
    ) -> Result<u64, SyncError> {
        let n = self
            .write(
                SYNC_BILLING,
                stats,
                sqlx::query!(
                    "DELETE FROM cost_daily c
                     WHERE c.account = $1 AND c.view = $2 AND c.day >= $3 AND c.day < $4
                       AND NOT EXISTS (
                         SELECT 1 FROM UNNEST($5::date[], $6::text[], $7::text[]) AS s(day, service, usage_type)
                         WHERE s.day = c.day AND s.service = c.service AND s.usage_type = c.usage_type)",
                    acct,
                    view,
                    start,
                    end,
                    &seen.iter().map(|s| s.0).collect::<Vec<_>>(),
                    &seen.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
                    &seen.iter().map(|s| s.2.clone()).collect::<Vec<_>>(),
                )
                .execute(&self.pool),
            )
            .await?;
        Ok(n.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_window_rereads_settling_days_and_starts_with_two_weeks() {
        let today = d("2026-11-22");
        assert_eq!(
            default_window(today, None, 14, 3),
            (d("2026-11-08"), d("2026-11-23"))
        );
        // Synced up to today yesterday: re-read the last 3 days.
        assert_eq!(
            default_window(today, Some(d("2026-11-22")), 14, 3),
            (d("2026-11-19"), d("2026-11-23"))
        );
        // Down for a month: resume from the cursor.
        assert_eq!(
            default_window(today, Some(d("2026-10-20")), 14, 3),
            (d("2026-10-20"), d("2026-11-23"))
        );
    }
}
