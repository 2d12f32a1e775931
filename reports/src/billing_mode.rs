//! `report.billing_mode`: for every workspace, its month-to-date connected
//! and billable hours (the AUTO_STOP rule in [`crate::usage`]) against the
//! break-even hours of its compute type, and what AWS's Cost Optimizer for
//! WorkSpaces would say: `ToMonthly`, `ToHourly`, `No Change` or `Skipped`,
//! with the reason and, when hourly rates are configured, the estimated
//! monthly saving. The account's Cost Explorer cost for the usage type that
//! matches the workspace's mode and compute type stands next to it.
//!
//! ALWAYS_ON → AUTO_STOP is only recommended on the month's last day: the
//! month is already paid. A workspace tagged `Skip_Convert` (any case) is
//! `Skipped`. Nothing is changed here; `workspaces.apply_billing_mode` does
//! that, on an admin's request.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::TryStreamExt;
use hangar_shared::kinds::{
    BillingModeReport, REPORT_BILLING_MODE, SYNC_BILLING, SYNC_USAGE, SYNC_WORKSPACES,
};
use rust_decimal::{Decimal, prelude::FromPrimitive};
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    spec::ReportSpec,
    table::{Cell, Column, ColumnType, TableWriter, col, text},
    usage::{month_start, periods_of, timeout_minutes, usage},
};

/// Break-even hours and hourly rates by compute type.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    /// Hours a month above which monthly billing is cheaper.
    pub break_even_hours: BTreeMap<String, f64>,
    /// Hourly usage rate, for saving estimates.
    pub hourly_rates: BTreeMap<String, f64>,
}

impl From<&hangar_shared::config::ReportsConfig> for Pricing {
    fn from(c: &hangar_shared::config::ReportsConfig) -> Self {
        Self {
            break_even_hours: c.break_even_hours.clone(),
            hourly_rates: c.hourly_rates.clone(),
        }
    }
}

/// The report's columns, in order.
pub const COLUMNS: &[Column] = &[
    text("account"),
    text("region"),
    text("workspace_id"),
    text("user_name"),
    text("compute_type"),
    text("running_mode"),
    col("auto_stop_timeout_minutes", ColumnType::Integer),
    col("connected_hours_mtd", ColumnType::Number),
    col("sessions_mtd", ColumnType::Integer),
    col("billable_hours_mtd", ColumnType::Number),
    col("projected_month_hours", ColumnType::Number),
    col("break_even_hours", ColumnType::Number),
    text("usage_types"),
    col("usage_type_cost_mtd", ColumnType::Money),
    col("workspaces_sharing_usage_type", ColumnType::Integer),
    text("recommendation"),
    text("reason"),
    col("estimated_monthly_saving", ColumnType::Money),
    text("price_source"),
    col("usage_synced_to", ColumnType::Time),
];

/// `report.billing_mode`.
pub const SPEC: ReportSpec = ReportSpec {
    kind: REPORT_BILLING_MODE,
    title: "Billing mode",
    columns: COLUMNS,
    sources: &[SYNC_WORKSPACES, SYNC_USAGE, SYNC_BILLING],
};

/// AWS's words.
pub const TO_MONTHLY: &str = "ToMonthly";
/// AWS's words.
pub const TO_HOURLY: &str = "ToHourly";
/// AWS's words.
pub const NO_CHANGE: &str = "No Change";
/// AWS's words.
pub const SKIPPED: &str = "Skipped";

/// What the recommendation is judged on.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// `AUTO_STOP` or `ALWAYS_ON` (anything else is skipped).
    pub running_mode: Option<&'a str>,
    /// The compute type.
    pub compute_type: Option<&'a str>,
    /// Tagged `Skip_Convert` (any case).
    pub skip_tag: bool,
    /// Whether `sync.usage` has read this account and region.
    pub has_usage: bool,
    /// Billable hours so far this month.
    pub billable_hours: f64,
    /// Those hours projected to the whole month.
    pub projected_hours: f64,
    /// Whether today is the month's last day (UTC).
    pub last_day: bool,
}

/// A recommendation, its reason and the saving it would bring.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// AWS's word.
    pub recommendation: &'static str,
    /// Why, in a sentence.
    pub reason: String,
    /// Estimated monthly saving, when an hourly rate is configured.
    pub saving: Option<f64>,
    /// Where the saving's price comes from.
    pub price_source: String,
}

/// Judges one workspace.
pub fn recommend(f: &Facts<'_>, pricing: &Pricing) -> Fit {
    let skipped = |reason: String| Fit {
        recommendation: SKIPPED,
        reason,
        saving: None,
        price_source: String::new(),
    };
    if f.skip_tag {
        return skipped("tagged Skip_Convert".into());
    }
    let Some(mode @ ("AUTO_STOP" | "ALWAYS_ON")) = f.running_mode else {
        return skipped(format!(
            "running mode {} is neither AUTO_STOP nor ALWAYS_ON",
            f.running_mode.unwrap_or("unknown")
        ));
    };
    let Some(compute) = f.compute_type else {
        return skipped("compute type unknown (run sync.workspaces)".into());
    };
    let Some(&threshold) = pricing.break_even_hours.get(compute) else {
        return skipped(format!(
            "no break-even hours for {compute}: set HANGAR_BILLING_BREAK_EVEN_HOURS={compute}=<hours>"
        ));
    };
    if !f.has_usage {
        return skipped("no usage data for this account and region yet: run sync.usage".into());
    }
    let rate = pricing.hourly_rates.get(compute).copied();
    let price_source = match rate {
        Some(r) => format!("HANGAR_WORKSPACES_HOURLY_RATES {compute}={r}/h × hours from the break-even"),
        None => format!(
            "no hourly rate configured for {compute} (HANGAR_WORKSPACES_HOURLY_RATES): saving not estimated"
        ),
    };
    let fit = |recommendation, reason: String, hours_saved: f64| Fit {
        recommendation,
        reason,
        saving: rate.map(|r| (hours_saved * r * 100.0).round() / 100.0),
        price_source: price_source.clone(),
    };
    let (billable, projected) = (f.billable_hours, f.projected_hours);
    match mode {
        "AUTO_STOP" if billable >= threshold => fit(
            TO_MONTHLY,
            format!(
                "{billable:.1} billable hours this month already reach the {compute} break-even of {threshold} h"
            ),
            projected - threshold,
        ),
        "AUTO_STOP" => fit(
            NO_CHANGE,
            format!(
                "{billable:.1} billable hours so far (projected {projected:.1}) are under the {compute} break-even of {threshold} h"
            ),
            0.0,
        ),
        _ if billable < threshold && f.last_day => fit(
            TO_HOURLY,
            format!(
                "{billable:.1} hours this month by the AUTO_STOP rule are under the {compute} break-even of {threshold} h"
            ),
            threshold - billable,
        ),
        _ if billable < threshold => fit(
            NO_CHANGE,
            format!(
                "{billable:.1} hours so far are under the {compute} break-even of {threshold} h, but this month is paid: judged again on its last day"
            ),
            0.0,
        ),
        _ => fit(
            NO_CHANGE,
            format!(
                "{billable:.1} hours by the AUTO_STOP rule reach the {compute} break-even of {threshold} h"
            ),
            0.0,
        ),
    }
}

/// Whether `tags` hold `Skip_Convert` (key, any case).
pub fn skip_tagged(tags: &Value) -> bool {
    tags.as_object()
        .is_some_and(|t| t.keys().any(|k| k.eq_ignore_ascii_case("skip_convert")))
}

/// Writes every workspace's fit to `out`.
pub async fn write(
    pool: &PgPool,
    pricing: &Pricing,
    p: &BillingModeReport,
    now: DateTime<Utc>,
    out: &mut TableWriter,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let month = month_start(now);
    let span_start = Utc.from_utc_datetime(&month.and_hms_opt(0, 0, 0).unwrap_or_default());
    let next_month = month.checked_add_months(chrono::Months::new(1)).unwrap_or(month);
    let month_days = (next_month - month).num_days() as f64;
    let last_day = now.date_naive() + Duration::days(1) == next_month;
    let elapsed = now - span_start;
    let elapsed_share = (elapsed.num_minutes() as f64 / (month_days * 1440.0)).clamp(1e-6, 1.0);
    let mut rows = sqlx::query!(
        r#"SELECT w.account, w.region, w.workspace_id, w.user_name, w.compute_type, w.running_mode,
                  w.auto_stop_timeout_minutes, w.tags,
                  u.hours AS "hours?: Vec<DateTime<Utc>>", u.masks AS "masks?: Vec<i32>",
                  s.position AS "usage_synced_to?",
                  m.amount AS "amount?", m.usage_types AS "usage_types?", m.workspaces AS "sharing?"
           FROM workspaces w
           LEFT JOIN LATERAL (
               SELECT array_agg(hour ORDER BY hour) AS hours, array_agg(periods ORDER BY hour) AS masks
               FROM workspace_usage u
               WHERE u.account = w.account AND u.region = w.region AND u.workspace_id = w.workspace_id
                 AND u.hour >= $1
           ) u ON true
           LEFT JOIN sync_cursors s ON s.account = w.account AND s.region = w.region AND s.kind = 'sync.usage'
           LEFT JOIN workspace_mode_costs m ON m.account = w.account AND m.running_mode = w.running_mode
                 AND m.compute_type = w.compute_type AND m.month = $2
           WHERE w.deleted_at IS NULL
             AND ($3::text IS NULL OR w.account = $3)
             AND ($4::text IS NULL OR w.region = $4)
           ORDER BY w.account, w.region, w.workspace_id"#,
        span_start,
        month,
        p.account,
        p.region,
    )
    .fetch(pool);
    while let Some(r) = rows.try_next().await? {
        let hours: Vec<(DateTime<Utc>, i32)> = r
            .hours
            .unwrap_or_default()
            .into_iter()
            .zip(r.masks.unwrap_or_default())
            .collect();
        let periods = periods_of(span_start, &hours);
        let timeout = timeout_minutes(r.running_mode.as_deref(), r.auto_stop_timeout_minutes);
        let used = usage(&periods, timeout, elapsed);
        let projected = used.billable_hours / elapsed_share;
        let threshold = r
            .compute_type
            .as_deref()
            .and_then(|c| pricing.break_even_hours.get(c).copied());
        let fit = recommend(
            &Facts {
                running_mode: r.running_mode.as_deref(),
                compute_type: r.compute_type.as_deref(),
                skip_tag: skip_tagged(&r.tags),
                has_usage: r.usage_synced_to.is_some(),
                billable_hours: used.billable_hours,
                projected_hours: projected,
                last_day,
            },
            pricing,
        );
        let round2 = |x: f64| (x * 100.0).round() / 100.0;
        out.row(&[
            Cell::Text(r.account),
            Cell::Text(r.region),
            Cell::Text(r.workspace_id),
            r.user_name.into(),
            r.compute_type.into(),
            r.running_mode.into(),
            r.auto_stop_timeout_minutes.map(i64::from).into(),
            Cell::Float(round2(used.connected_hours)),
            Cell::Int(used.sessions as i64),
            Cell::Float(round2(used.billable_hours)),
            Cell::Float(round2(projected)),
            threshold.into(),
            r.usage_types.into(),
            r.amount.map(|a| a.round_dp(2)).into(),
            r.sharing.into(),
            Cell::Text(fit.recommendation.to_owned()),
            Cell::Text(fit.reason),
            fit.saving
                .and_then(Decimal::from_f64)
                .map(|d| d.round_dp(2))
                .into(),
            Cell::Text(fit.price_source),
            r.usage_synced_to.into(),
        ])?;
        out.tick(&mut progress);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing() -> Pricing {
        Pricing {
            break_even_hours: [("STANDARD".to_owned(), 85.0)].into(),
            hourly_rates: [("STANDARD".to_owned(), 0.30)].into(),
        }
    }

    fn facts(mode: &str, billable: f64, last_day: bool) -> Facts<'_> {
        Facts {
            running_mode: Some(mode),
            compute_type: Some("STANDARD"),
            skip_tag: false,
            has_usage: true,
            billable_hours: billable,
            projected_hours: billable * 2.0,
            last_day,
        }
    }

    #[test]
    fn auto_stop_past_the_break_even_goes_monthly_with_the_saving() {
        let fit = recommend(&facts("AUTO_STOP", 90.0, false), &pricing());
        assert_eq!(fit.recommendation, TO_MONTHLY);
        // Projected 180 h: (180 - 85) h × 0.30.
        assert_eq!(fit.saving, Some(28.5));
        assert!(
            fit.price_source.contains("STANDARD=0.3/h"),
            "{}",
            fit.price_source
        );
        assert_eq!(
            recommend(&facts("AUTO_STOP", 40.0, false), &pricing()).recommendation,
            NO_CHANGE
        );
    }

    #[test]
    fn always_on_goes_hourly_only_on_the_last_day_of_the_month() {
        let early = recommend(&facts("ALWAYS_ON", 20.0, false), &pricing());
        assert_eq!(early.recommendation, NO_CHANGE);
        assert!(early.reason.contains("this month is paid"), "{}", early.reason);
        let last = recommend(&facts("ALWAYS_ON", 20.0, true), &pricing());
        assert_eq!(last.recommendation, TO_HOURLY);
        assert_eq!(last.saving, Some(19.5));
        assert_eq!(
            recommend(&facts("ALWAYS_ON", 100.0, true), &pricing()).recommendation,
            NO_CHANGE
        );
    }

    #[test]
    fn skip_convert_missing_data_and_unknown_types_are_skipped() {
        assert!(skip_tagged(&serde_json::json!({"SKIP_convert": ""})));
        assert!(!skip_tagged(&serde_json::json!({"team": "skip_convert"})));
        let mut f = facts("AUTO_STOP", 200.0, false);
        f.skip_tag = true;
        assert_eq!(recommend(&f, &pricing()).recommendation, SKIPPED);
        let mut f = facts("AUTO_STOP", 200.0, false);
        f.has_usage = false;
        assert!(recommend(&f, &pricing()).reason.contains("sync.usage"));
        let mut f = facts("AUTO_STOP", 200.0, false);
        f.compute_type = Some("GRAPHICSPRO");
        assert!(
            recommend(&f, &pricing())
                .reason
                .contains("HANGAR_BILLING_BREAK_EVEN_HOURS")
        );
        let no_rates = Pricing {
            hourly_rates: BTreeMap::new(),
            ..pricing()
        };
        let fit = recommend(&facts("AUTO_STOP", 90.0, false), &no_rates);
        assert_eq!((fit.recommendation, fit.saving), (TO_MONTHLY, None));
        assert!(fit.price_source.contains("not estimated"));
    }
}
