//! The billing page: Cost Explorer's daily cost as a chart stacked by
//! service, the range's totals, all services or the WorkSpaces-only view,
//! a range picker, and month to date against the same days of the previous
//! month. Figures are sums of what sync.billing stored (`cost_daily`).

use std::collections::BTreeMap;

use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use chrono::{Datelike, Months, NaiveDate, Utc};
use maud::{Markup, html};
use rust_decimal::{Decimal, prelude::ToPrimitive};

use super::{ApiRefusal, Filters, base, charts, pages, session::Session};
use crate::{error::ApiError, routes::parse_date, state::AppState};

/// Services drawn as their own colour; the rest are summed as "other".
const SERIES: usize = 7;
/// The longest range the chart draws (a bar per day).
const MAX_DAYS: i64 = 366;

/// What the page shows, checked like the API's `GET /api/v1/costs`.
struct Range {
    start: NaiveDate,
    end: NaiveDate,
    view: String,
    account: Option<String>,
}

fn range(filters: &Filters, today: NaiveDate) -> Result<Range, ApiError> {
    let given = |name: &str| Some(filters.get(name)).filter(|v| !v.is_empty());
    let end = parse_date("end", given("end"))?.unwrap_or(today + chrono::Duration::days(1));
    let start = parse_date("start", given("start"))?.unwrap_or(end - chrono::Duration::days(30));
    if start >= end {
        return Err(ApiError::invalid("end", "must be after start (end is exclusive)"));
    }
    if (end - start).num_days() > MAX_DAYS {
        return Err(ApiError::invalid(
            "start",
            format!("the range is at most {MAX_DAYS} days"),
        ));
    }
    let view = given("view").unwrap_or("all");
    if !["all", "workspaces"].contains(&view) {
        return Err(ApiError::invalid("view", "must be all or workspaces"));
    }
    Ok(Range {
        start,
        end,
        view: view.to_owned(),
        account: given("account").map(str::to_owned),
    })
}

/// `GET /ui/billing?start=&end=&view=&account=`.
pub(super) async fn page(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = base(&state);
    let filters = Filters::parse(raw.as_deref());
    let today = Utc::now().date_naive();
    let range = match range(&filters, today) {
        Ok(r) => r,
        Err(e) => {
            let r = ApiRefusal::of(e).await;
            return pages::error_page(&base, r.status, &r.text());
        }
    };
    match figures(&state, &range, today).await {
        Ok(f) => Html(render(&base, &session, &range, &f).into_string()).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "console: billing unavailable");
            pages::error_page(
                &base,
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer, so the costs cannot be shown; try again.",
            )
        }
    }
}

/// The page's figures.
struct Figures {
    /// The currency charted (the range's largest).
    currency: Option<String>,
    /// Series names: the largest services, then "other".
    series: Vec<String>,
    days: Vec<charts::Bar>,
    /// Per service in the charted currency, largest first.
    by_service: Vec<(String, Decimal)>,
    /// Per currency over the range.
    totals: BTreeMap<String, Decimal>,
    /// Month to date, the same days of the previous month, and the whole
    /// previous month, per currency.
    month_to_date: BTreeMap<String, (Decimal, Decimal, Decimal)>,
    estimated: bool,
}

async fn figures(state: &AppState, r: &Range, today: NaiveDate) -> sqlx::Result<Figures> {
    let rows = sqlx::query!(
        r#"SELECT day AS "day!", service AS "service!", currency AS "currency!",
                  sum(amount) AS "amount!", bool_or(estimated) AS "estimated!"
           FROM cost_daily
           WHERE view = $1 AND day >= $2 AND day < $3 AND ($4::text IS NULL OR account = $4)
           GROUP BY 1, 2, 3 ORDER BY 1"#,
        r.view,
        r.start,
        r.end,
        r.account,
    )
    .fetch_all(&state.pool)
    .await?;
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in &rows {
        *totals.entry(row.currency.clone()).or_default() += row.amount;
    }
    let currency = totals.iter().max_by_key(|(_, v)| **v).map(|(c, _)| c.clone());
    let mut services: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in rows.iter().filter(|row| Some(&row.currency) == currency.as_ref()) {
        *services.entry(row.service.clone()).or_default() += row.amount;
    }
    let mut by_service: Vec<(String, Decimal)> = services.into_iter().collect();
    by_service.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut series: Vec<String> = by_service.iter().take(SERIES).map(|(s, _)| s.clone()).collect();
    if by_service.len() > SERIES {
        series.push("other".to_owned());
    }
    let days = r
        .start
        .iter_days()
        .take_while(|d| *d < r.end)
        .map(|day| {
            let mut values = vec![0.0; series.len()];
            for row in rows
                .iter()
                .filter(|row| row.day == day && Some(&row.currency) == currency.as_ref())
            {
                let i = series.iter().position(|s| *s == row.service).unwrap_or(SERIES);
                values[i.min(series.len() - 1)] += row.amount.to_f64().unwrap_or(0.0);
            }
            charts::Bar::day(day, values)
        })
        .collect();
    let month_start = today.with_day(1).unwrap_or(today);
    let previous_start = month_start - Months::new(1);
    let previous_same = previous_start + chrono::Duration::days((today - month_start).num_days() + 1);
    let months = sqlx::query!(
        r#"SELECT currency AS "currency!",
                  COALESCE(sum(amount) FILTER (WHERE day >= $2), 0) AS "this_month!",
                  COALESCE(sum(amount) FILTER (WHERE day < $3), 0) AS "previous_same!",
                  COALESCE(sum(amount) FILTER (WHERE day < $2), 0) AS "previous_whole!"
           FROM cost_daily
           WHERE view = $1 AND day >= $4 AND day <= $5 AND ($6::text IS NULL OR account = $6)
           GROUP BY 1 ORDER BY 1"#,
        r.view,
        month_start,
        previous_same.min(month_start),
        previous_start,
        today,
        r.account,
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Figures {
        currency,
        series,
        days,
        by_service,
        totals,
        month_to_date: months
            .into_iter()
            .map(|m| (m.currency, (m.this_month, m.previous_same, m.previous_whole)))
            .collect(),
        estimated: rows.iter().any(|row| row.estimated),
    })
}

fn money(v: Decimal) -> String {
    format!("{:.2}", v.round_dp(2))
}

/// The month-to-date change as text, e.g. "+12.5 %".
fn change(now: Decimal, before: Decimal) -> String {
    if before.is_zero() {
        return "no cost in the same days last month".to_owned();
    }
    let pct = ((now - before) / before * Decimal::from(100)).round_dp(1);
    format!(
        "{}{pct} % against the same days last month",
        if pct > Decimal::ZERO { "+" } else { "" }
    )
}

fn render(base: &str, session: &Session, r: &Range, f: &Figures) -> Markup {
    let link = |start: NaiveDate, end: NaiveDate| {
        let mut pairs = vec![
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("view", r.view.clone()),
        ];
        if let Some(a) = &r.account {
            pairs.push(("account", a.clone()));
        }
        format!(
            "{base}/billing?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    let tomorrow = Utc::now().date_naive() + chrono::Duration::days(1);
    let currency = f.currency.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action={ (base) "/billing" } {
            label for="start" { "From" }
            input id="start" name="start" type="date" value=(r.start) required;
            label for="end" { "Until (exclusive)" }
            input id="end" name="end" type="date" value=(r.end) required;
            label for="view" { "Services" }
            select id="view" name="view" {
                option value="all" selected[r.view == "all"] { "all" }
                option value="workspaces" selected[r.view == "workspaces"] { "WorkSpaces only" }
            }
            label for="account" { "Account" }
            input id="account" name="account" value=(r.account.as_deref().unwrap_or("")) placeholder="all" size="14";
            button type="submit" { "Show" }
            span.presets {
                @for days in [7, 30, 90] {
                    a href=(link(tomorrow - chrono::Duration::days(days), tomorrow)) { "last " (days) " days" }
                }
            }
        }
        section aria-labelledby="mtd" {
            h2 id="mtd" { "Month to date" }
            @if f.month_to_date.is_empty() {
                p.muted { "No cost this month or last." }
            } @else {
                dl.facts {
                    @for (cur, (now, same, whole)) in &f.month_to_date {
                        dt { "This month" } dd { strong { (money(*now)) " " (cur) } " (" (change(*now, *same)) ")" }
                        dt { "Same days last month" } dd { (money(*same)) " " (cur) }
                        dt { "Whole of last month" } dd { (money(*whole)) " " (cur) }
                    }
                }
            }
        }
        section aria-labelledby="daily" {
            h2 id="daily" { "Daily cost" @if !currency.is_empty() { " (" (currency) ")" } }
            @if f.totals.is_empty() {
                p.muted { "No cost data in this range. sync.billing brings in Cost Explorer's daily costs: run it from the overview, or pick another range." }
            } @else {
                p {
                    "Total "
                    @for (i, (cur, v)) in f.totals.iter().enumerate() {
                        @if i > 0 { ", " }
                        strong { (money(*v)) " " (cur) }
                    }
                    " from " (r.start) " until " (r.end) "."
                    @if f.estimated { " " span.muted { "Includes days Cost Explorer still marks as estimated." } }
                    @if f.totals.len() > 1 { " " span.muted { "The chart shows " (currency) " only." } }
                }
                (charts::stacked_bars(&format!("Daily cost in {currency}, stacked by service"), &f.series, &f.days, 1.0, &|v| format!("{v:.0}")))
                table {
                    caption { "By service (" (currency) ")" }
                    thead { tr { th scope="col" { "Service" } th.num scope="col" { "Cost" } } }
                    tbody { @for (s, v) in &f.by_service { tr { th scope="row" { (s) } td.num { (money(*v)) } } } }
                }
            }
        }
    };
    pages::layout(base, session, "Billing", "Billing", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_to_date_change_is_signed_and_says_when_there_is_nothing_to_compare() {
        assert_eq!(
            change(Decimal::from(110), Decimal::from(100)),
            "+10.0 % against the same days last month"
        );
        assert_eq!(
            change(Decimal::from(90), Decimal::from(100)),
            "-10.0 % against the same days last month"
        );
        assert_eq!(
            change(Decimal::from(5), Decimal::ZERO),
            "no cost in the same days last month"
        );
    }

    #[test]
    fn a_range_is_checked_like_the_api_naming_the_field() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let f = Filters::parse(Some("start=2026-12-10&end=2026-12-01"));
        assert!(matches!(range(&f, today), Err(ApiError::Unprocessable { ref field, .. }) if field == "end"));
        let f = Filters::parse(Some("start=2020-01-01&end=2026-12-01"));
        assert!(
            matches!(range(&f, today), Err(ApiError::Unprocessable { ref field, .. }) if field == "start")
        );
        let f = Filters::parse(Some("view=mine"));
        assert!(
            matches!(range(&f, today), Err(ApiError::Unprocessable { ref field, .. }) if field == "view")
        );
        let ok = range(&Filters::parse(None), today).unwrap();
        assert_eq!(
            (ok.start, ok.end),
            (
                NaiveDate::from_ymd_opt(2026, 11, 7).unwrap(),
                NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
            )
        );
    }
}
