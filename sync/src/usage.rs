//! `sync.usage`: CloudWatch's `AWS/WorkSpaces` `UserConnected` metric
//! (Maximum over 5-minute periods) for every workspace of an account and
//! region, from the stored cursor (minus an overlap: CloudWatch publishes
//! some datapoints late) to now, read with `GetMetricData` 500 workspaces
//! per call and stored per workspace and hour as a 12-bit mask of connected
//! periods (`workspace_usage`). A re-read ORs its bits in, so overlaps and
//! redeliveries change nothing twice. The cursor moves only once every
//! workspace's window has committed.
//!
//! GetMetricData is paced per account and region through the Redis rate
//! limiter shared by all workers (AWS allows 50 calls per second per region
//! by default), and AWS bills it per metric requested: each workspace read
//! is one metric, counted in the result as `metrics_requested`.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};
use hangar_shared::kinds::{SYNC_USAGE, USAGE_MAX_DAYS, UsageSync};
use serde_json::{Value, json};

use crate::{LockGuard, Progress, RunStats, SyncError, Syncer, cloudtrail::smithy};

/// Workspaces per GetMetricData call (the API's maximum of queries).
pub const QUERIES_PER_CALL: usize = 500;
/// The metric's period: WorkSpaces publishes UserConnected every 5 minutes.
pub const PERIOD_SECS: i32 = 300;
/// Rows per upsert statement.
const ROWS_PER_WRITE: usize = 5_000;

/// The start of the calendar month before `now`'s (UTC): the first sync
/// reads enough for month-to-date and "last 30 days" reports.
pub fn previous_month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .with_day(1)
        .and_then(|d| d.checked_sub_months(chrono::Months::new(1)))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now, |d| d.and_utc())
}

/// `t` rounded down to a 5-minute boundary.
fn period_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::seconds(i64::from(PERIOD_SECS)))
        .unwrap_or(t)
}

/// The hour a datapoint falls in and its bit (period of the hour).
fn hour_and_bit(t: DateTime<Utc>) -> (DateTime<Utc>, u32) {
    let hour = t.duration_trunc(Duration::hours(1)).unwrap_or(t);
    (hour, t.minute() / 5)
}

impl Syncer {
    /// Runs `sync.usage` for one account and region.
    pub async fn sync_usage(
        &self,
        job_id: &str,
        delivery: u32,
        p: &UsageSync,
        progress: &impl Progress,
    ) -> Result<Value, SyncError> {
        let singleton = p.target_key();
        self.exclusive(&singleton, job_id, delivery, |guard| {
            self.usage_inner(p, progress, guard)
        })
        .await
    }

    async fn usage_inner(
        &self,
        p: &UsageSync,
        progress: &impl Progress,
        _guard: LockGuard,
    ) -> Result<Value, SyncError> {
        let started = std::time::Instant::now();
        let account = self.account(&p.account).await?;
        let (acct, region) = (p.account.as_str(), p.region.as_str());
        let cw = self.clients.get(&account, region).await.cloudwatch;
        let mut stats = RunStats::default();

        let cursor = self.cursor(acct, region, SYNC_USAGE).await?;
        let now = Utc::now();
        let overlap = Duration::from_std(self.config.usage_overlap).unwrap_or_default();
        let oldest = now - Duration::days(USAGE_MAX_DAYS) + Duration::hours(1);
        let start = period_floor(
            p.start
                .or(cursor.map(|c| c - overlap))
                .unwrap_or_else(|| previous_month_start(now))
                .max(oldest),
        );
        let end = period_floor(p.end.unwrap_or(now));
        if start >= end {
            return Err(SyncError::Invalid(format!(
                "nothing to read: start {start} is not before end {end} (5-minute periods)"
            )));
        }

        // Every workspace that existed during the window.
        let ids = sqlx::query_scalar!(
            "SELECT workspace_id FROM workspaces
             WHERE account = $1 AND region = $2 AND (deleted_at IS NULL OR deleted_at > $3)
             ORDER BY workspace_id",
            acct,
            region,
            start
        )
        .fetch_all(&self.pool)
        .await?;

        let site = self.site(acct, region, "cloudwatch", "GetMetricData");
        let mut datapoints = 0u64;
        let mut connected_periods = 0u64;
        let mut hours_written = 0u64;
        for (batch_no, batch) in ids.chunks(QUERIES_PER_CALL).enumerate() {
            let queries: Vec<MetricDataQuery> =
                batch.iter().enumerate().map(|(i, id)| query(i, id)).collect();
            // (workspace index in the batch, hour) -> connected periods.
            let mut masks: BTreeMap<(usize, DateTime<Utc>), i32> = BTreeMap::new();
            let mut token: Option<String> = None;
            loop {
                if progress.cancelled() {
                    return Err(SyncError::Cancelled(format!(
                        "stopped after {} pages; the cursor did not move",
                        stats.pages
                    )));
                }
                let out = self
                    .caller
                    .call(&site, &mut stats, || {
                        let request = cw
                            .get_metric_data()
                            .set_metric_data_queries(Some(queries.clone()))
                            .start_time(smithy(start))
                            .end_time(smithy(end))
                            .scan_by(ScanBy::TimestampAscending)
                            .set_next_token(token.clone());
                        request.send()
                    })
                    .await?;
                for result in out.metric_data_results() {
                    let Some(index) = result
                        .id()
                        .and_then(|id| id.strip_prefix('w')?.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    for (t, v) in result.timestamps().iter().zip(result.values()) {
                        datapoints += 1;
                        let Some(t) = DateTime::from_timestamp(t.secs(), 0) else {
                            continue;
                        };
                        if *v >= 1.0 {
                            connected_periods += 1;
                            let (hour, bit) = hour_and_bit(t);
                            *masks.entry((index, hour)).or_default() |= 1 << bit;
                        }
                    }
                }
                token = out.next_token().map(str::to_owned);
                self.metrics.page(SYNC_USAGE);
                stats.pages += 1;
                progress
                    .report(json!({
                        "step": "metrics",
                        "workspaces_done": batch_no * QUERIES_PER_CALL,
                        "workspaces": ids.len(),
                        "pages": stats.pages,
                        "datapoints": datapoints,
                        "rate_limit_wait_ms": stats.rate_limit_wait_ms,
                    }))
                    .await;
                if token.is_none() {
                    break;
                }
            }
            let rows: Vec<(&str, DateTime<Utc>, i32)> = masks
                .into_iter()
                .map(|((i, hour), mask)| (batch[i].as_str(), hour, mask))
                .collect();
            for chunk in rows.chunks(ROWS_PER_WRITE) {
                hours_written += self.upsert_usage(acct, region, chunk, &mut stats).await?;
            }
        }
        stats.rows_written += hours_written;
        self.metrics.rows(SYNC_USAGE, "workspace_usage", hours_written);

        // Every batch is in: the next sync resumes from `end` (minus the
        // overlap), unless this window started after the cursor and so left
        // a gap the next sync must still read.
        let contiguous = cursor.is_none_or(|c| start <= c);
        if contiguous {
            self.advance_cursor(acct, region, SYNC_USAGE, end, &mut stats)
                .await?;
        }
        tracing::info!(
            account = acct,
            region,
            workspaces = ids.len(),
            datapoints,
            hours_written,
            pages = stats.pages,
            "usage synced"
        );
        Ok(json!({
            "account": acct,
            "region": region,
            "window": {"start": start, "end": end},
            "workspaces": ids.len(),
            "metrics_requested": ids.len(),
            "datapoints": datapoints,
            "connected_periods": connected_periods,
            "hours_written": hours_written,
            "cursor": if contiguous { Some(end.max(cursor.unwrap_or(end))) } else { cursor },
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "stats": stats,
        }))
    }

    /// ORs one batch of (workspace, hour, mask) into `workspace_usage`;
    /// returns the rows inserted or changed.
    async fn upsert_usage(
        &self,
        acct: &str,
        region: &str,
        rows: &[(&str, DateTime<Utc>, i32)],
        stats: &mut RunStats,
    ) -> Result<u64, SyncError> {
        let ids: Vec<String> = rows.iter().map(|r| r.0.to_owned()).collect();
        let hours: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1).collect();
        let masks: Vec<i32> = rows.iter().map(|r| r.2).collect();
        let done = self
            .write(
                SYNC_USAGE,
                stats,
                sqlx::query!(
                    "INSERT INTO workspace_usage AS t (account, region, workspace_id, hour, periods)
                     SELECT $1, $2, u.id, u.hour, u.mask
                     FROM UNNEST($3::text[], $4::timestamptz[], $5::int[]) AS u(id, hour, mask)
                     ON CONFLICT (account, region, workspace_id, hour) DO UPDATE
                       SET periods = t.periods | EXCLUDED.periods, updated_at = now()
                       WHERE t.periods | EXCLUDED.periods <> t.periods",
                    acct,
                    region,
                    &ids,
                    &hours,
                    &masks
                )
                .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected())
    }
}

/// The query for workspace `id`, the `index`-th of its call.
fn query(index: usize, id: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(format!("w{index}"))
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/WorkSpaces")
                        .metric_name("UserConnected")
                        .dimensions(Dimension::builder().name("WorkspaceId").value(id).build())
                        .build(),
                )
                .period(PERIOD_SECS)
                .stat("Maximum")
                .build(),
        )
        .return_data(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn the_first_sync_starts_at_the_previous_month() {
        assert_eq!(
            previous_month_start(at("2026-12-05T10:00:00Z")),
            at("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            previous_month_start(at("2026-01-31T23:59:00Z")),
            at("2025-12-01T00:00:00Z")
        );
    }

    #[test]
    fn a_datapoint_sets_its_period_bit_in_its_hour() {
        assert_eq!(
            hour_and_bit(at("2026-12-01T09:00:00Z")),
            (at("2026-12-01T09:00:00Z"), 0)
        );
        assert_eq!(
            hour_and_bit(at("2026-12-01T09:55:00Z")),
            (at("2026-12-01T09:00:00Z"), 11)
        );
        assert_eq!(
            period_floor(at("2026-12-01T09:58:59Z")),
            at("2026-12-01T09:55:00Z")
        );
    }
}
