//! The WorkSpaces pages: the inventory (the API's list: its filters, search
//! and keyset paging, the URL as the bookmark) and one workspace's page with
//! tabs: overview, connection history, tags, usage (hours per day), costs
//! and CloudTrail events.

use axum::{
    extract::{Path, Query, RawQuery, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use chrono::Utc;
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Filters, api_error_page, base, charts, pages, session::Session};
use crate::{
    routes::inventory as api,
    state::AppState,
    views::inventory::{WorkspaceDetail, WorkspacePage},
};

/// `GET /ui/workspaces`.
pub(super) async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = base(&state);
    let filters = Filters::parse(raw.as_deref());
    let query = match filters.decode::<api::WorkspaceQuery>(&base) {
        Ok(q) => q,
        Err(page) => return *page,
    };
    match api::list_workspaces(State(state.clone()), Query(query)).await {
        Ok(axum::Json(page)) => {
            Html(render_list(&base, &session, &filters, &page).into_string()).into_response()
        }
        Err(e) => api_error_page(&base, e).await,
    }
}

fn render_list(base: &str, session: &Session, filters: &Filters, page: &WorkspacePage) -> Markup {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let body = html! {
        form.filters method="get" action={ (base) "/workspaces" } role="search" {
            label for="q" { "Search" }
            input id="q" name="q" type="search" value=(filters.get("q")) maxlength="200"
                placeholder="id, user, computer or IP";
            label for="state" { "State" }
            select id="state" name="state" {
                option value="" { "any" }
                @for st in hangar_shared::inventory::WORKSPACE_STATES {
                    option value=(st) selected[filters.get("state").eq_ignore_ascii_case(st)] { (st) }
                }
            }
            (pages::text_filter("account", "Account", filters.get("account"), "any", 14))
            (pages::text_filter("region", "Region", filters.get("region"), "any", 14))
            (pages::text_filter("directory", "Directory", filters.get("directory"), "d-…", 14))
            (pages::text_filter("user", "User", filters.get("user"), "exact name", 14))
            (pages::text_filter("bundle", "Bundle", filters.get("bundle"), "wsb-…", 14))
            span.check {
                input id="include_deleted" name="include_deleted" type="checkbox" value="true"
                    checked[filters.get("include_deleted") == "true"];
                label for="include_deleted" { "include deleted" }
            }
            button type="submit" { "Filter" }
        }
        @if page.workspaces.is_empty() {
            p.muted { "No workspaces match. "
                @if filters.get("q").is_empty() && filters.get("state").is_empty() {
                    "If none have been synced yet, run Sync now: workspaces on the overview."
                } }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Workspace" } th scope="col" { "User" } th scope="col" { "State" }
                    th scope="col" { "Computer" } th scope="col" { "Running mode" } th scope="col" { "Connection" }
                    th scope="col" { "Last connected" } th scope="col" { "Account / region" }
                } }
                tbody {
                    @for w in &page.workspaces {
                        tr {
                            th scope="row" {
                                a href={ (base) "/workspaces/" (w.workspace_id) "?account=" (w.account) } { code { (w.workspace_id) } }
                                @if w.deleted_at.is_some() { " " span.tag.bad { "deleted" } }
                            }
                            td { (opt(&w.user_name)) }
                            td.bad[w.state.as_deref() == Some("ERROR") || w.state.as_deref() == Some("UNHEALTHY")] { (opt(&w.state)) }
                            td { (opt(&w.computer_name)) }
                            td { (opt(&w.running_mode)) }
                            td { (opt(&w.connection_state)) }
                            td { @if let Some(t) = w.last_user_connection_at { (pages::when(t)) } @else { span.muted { "never" } } }
                            td { (w.account) " / " (w.region) }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &page.next_cursor {
            p { a href={ (base) "/workspaces" (filters.with("cursor", c)) } rel="next" { "Next page" } }
        }
    };
    pages::layout(base, session, "WorkSpaces", "WorkSpaces", &body)
}

/// The query of a workspace's page: which account's workspace (ids are
/// unique per account) and which tab.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WorkspaceQuery {
    account: Option<String>,
    tab: Option<String>,
}

/// The workspace page's tabs: query value and label.
const TABS: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("connections", "Connection history"),
    ("tags", "Tags"),
    ("usage", "Usage"),
    ("costs", "Costs"),
    ("events", "CloudTrail events"),
];

/// Days of usage the usage tab charts.
const USAGE_DAYS: i64 = 30;
/// Rows the history and events tabs show (newest first).
const TAB_ROWS: i64 = 100;

/// `GET /ui/workspaces/{id}?account=…&tab=…`.
pub(super) async fn page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<WorkspaceQuery>,
) -> Response {
    let base = base(&state);
    let tab = q.tab.as_deref().unwrap_or("overview");
    if !TABS.iter().any(|(t, _)| *t == tab) {
        return pages::error_page(
            &base,
            StatusCode::NOT_FOUND,
            "no such tab: overview, connections, tags, usage, costs or events",
        );
    }
    let query = api::OneWorkspaceQuery { account: q.account };
    let w = match api::get_workspace(State(state.clone()), Path(id), Query(query)).await {
        Ok(axum::Json(w)) => w,
        Err(e) => return api_error_page(&base, e).await,
    };
    let content = match tab {
        "connections" => connections(&state, &w).await,
        "usage" => usage(&state, &w).await,
        "costs" => costs(&state, &w).await,
        "events" => events(&state, &base, &w).await,
        "tags" => Ok(tags(&w)),
        _ => Ok(overview(&w)),
    };
    let content = match content {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, workspace = %w.workspace_id, tab, "console: workspace tab unavailable");
            html! { p.error role="alert" { "PostgreSQL did not answer, so this tab cannot be shown; try again." } }
        }
    };
    let here = format!("{base}/workspaces/{}?account={}", w.workspace_id, w.account);
    let body = html! {
        p.muted { (w.account) " / " (w.region) @if w.deleted_at.is_some() { " · " span.bad { "deleted in AWS" } } }
        nav.tabs aria-label="Workspace" {
            @for (t, label) in TABS {
                a href={ (here) "&tab=" (t) } aria-current=[(*t == tab).then_some("page")] { (label) }
            }
        }
        (content)
    };
    Html(
        pages::layout(
            &base,
            &session,
            "WorkSpaces",
            &format!("Workspace {}", w.workspace_id),
            &body,
        )
        .into_string(),
    )
    .into_response()
}

fn overview(w: &WorkspaceDetail) -> Markup {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let gib = |v: Option<i32>| v.map_or("-".to_owned(), |g| format!("{g} GiB"));
    html! {
        dl.facts {
            dt { "State" } dd { (opt(&w.state)) }
            dt { "User" } dd { (opt(&w.user_name)) }
            dt { "Computer" } dd { (opt(&w.computer_name)) }
            dt { "IP address" } dd { (opt(&w.ip_address)) }
            dt { "Directory" } dd { (opt(&w.directory.id)) @if let Some(a) = &w.directory.alias { " (" (a) ")" } }
            dt { "Bundle" } dd { (opt(&w.bundle.id)) @if let Some(n) = &w.bundle.name { " (" (n) ")" } }
            dt { "Running mode" } dd {
                (opt(&w.properties.running_mode))
                @if let Some(m) = w.properties.auto_stop_timeout_minutes { " (stops after " (m) " min)" }
            }
            dt { "Compute type" } dd { (opt(&w.properties.compute_type)) }
            dt { "Volumes" } dd { "root " (gib(w.properties.root_volume_gib)) ", user " (gib(w.properties.user_volume_gib)) }
            dt { "Connection" } dd {
                (opt(&w.last_connection.state))
                @if let Some(t) = w.last_connection.checked_at { " (checked " (pages::when(t)) ")" }
            }
            dt { "Last user connection" } dd {
                @if let Some(t) = w.last_connection.last_user_connection_at { (pages::at(t)) } @else { "never" }
            }
            dt { "First seen" } dd { (pages::at(w.first_seen_at)) }
            dt { "Last synced" } dd { (pages::when(w.updated_at)) }
        }
    }
}

fn tags(w: &WorkspaceDetail) -> Markup {
    let pairs: Vec<(&String, &serde_json::Value)> =
        w.tags.as_object().map(|m| m.iter().collect()).unwrap_or_default();
    html! {
        @if pairs.is_empty() {
            p.muted { "This workspace has no tags." }
        } @else {
            table {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in pairs { tr { th scope="row" { (k) } td { (v.as_str().unwrap_or("")) } } } }
            }
        }
    }
}

async fn connections(state: &AppState, w: &WorkspaceDetail) -> sqlx::Result<Markup> {
    let rows = sqlx::query!(
        "SELECT last_user_connection_at, seen_at FROM workspace_connection_history
         WHERE account = $1 AND region = $2 AND workspace_id = $3
         ORDER BY last_user_connection_at DESC LIMIT $4",
        w.account,
        w.region,
        w.workspace_id,
        TAB_ROWS,
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(html! {
        @if rows.is_empty() {
            p.muted { "No user connection has been seen yet (the workspace sync records each new last-connection time)." }
        } @else {
            table {
                thead { tr { th scope="col" { "User connected" } th scope="col" { "Seen by the sync" } } }
                tbody { @for r in &rows { tr { td { (pages::at(r.last_user_connection_at)) } td { (pages::when(r.seen_at)) } } } }
            }
        }
    })
}

async fn usage(state: &AppState, w: &WorkspaceDetail) -> sqlx::Result<Markup> {
    let since = Utc::now().date_naive() - chrono::Duration::days(USAGE_DAYS - 1);
    let rows = sqlx::query!(
        r#"SELECT (hour AT TIME ZONE 'UTC')::date AS "day!", sum(connected_minutes)::bigint AS "minutes!"
           FROM workspace_usage
           WHERE account = $1 AND region = $2 AND workspace_id = $3 AND hour >= $4::date
           GROUP BY 1 ORDER BY 1"#,
        w.account,
        w.region,
        w.workspace_id,
        since,
    )
    .fetch_all(&state.pool)
    .await?;
    if rows.is_empty() {
        return Ok(html! {
            p.muted { "No usage data for the last " (USAGE_DAYS) " days: either nobody connected, or sync.usage has not run for this account and region." }
        });
    }
    let days: Vec<charts::Bar> = (0..USAGE_DAYS)
        .map(|i| since + chrono::Duration::days(i))
        .map(|day| {
            let hours = rows
                .iter()
                .find(|r| r.day == day)
                .map_or(0.0, |r| r.minutes as f64 / 60.0);
            charts::Bar::day(day, vec![hours])
        })
        .collect();
    let total: i64 = rows.iter().map(|r| r.minutes).sum();
    Ok(html! {
        p { "Connected " strong { (format!("{:.1}", total as f64 / 60.0)) " hours" } " in the last " (USAGE_DAYS) " days (UTC days, 5-minute resolution from CloudWatch's UserConnected)." }
        (charts::stacked_bars("Hours connected per day", &["hours".to_owned()], &days, 0.5, &|v| format!("{v:.1} h")))
        details {
            summary { "Figures" }
            table {
                thead { tr { th scope="col" { "Day (UTC)" } th.num scope="col" { "Hours" } } }
                tbody { @for r in &rows { tr { td { (r.day) } td.num { (format!("{:.2}", r.minutes as f64 / 60.0)) } } } }
            }
        }
    })
}

async fn costs(state: &AppState, w: &WorkspaceDetail) -> sqlx::Result<Markup> {
    let rows = sqlx::query!(
        r#"SELECT month AS "month!", currency AS "currency!", amount AS "amount!", workspaces AS "workspaces!",
                  usage_types AS "usage_types!"
           FROM workspace_mode_costs
           WHERE account = $1 AND running_mode = $2 AND compute_type = $3
           ORDER BY month DESC, currency LIMIT 24"#,
        w.account,
        w.properties.running_mode,
        w.properties.compute_type,
    )
    .fetch_all(&state.pool)
    .await?;
    let share = |amount: Decimal, n: i64| {
        if n > 0 {
            (amount / Decimal::from(n)).round_dp(2)
        } else {
            amount
        }
    };
    Ok(html! {
        @if rows.is_empty() {
            p.muted { "No cost data for this workspace's running mode and compute type: sync.billing has not brought in a matching WorkSpaces usage type yet." }
        } @else {
            p.hint { "Cost Explorer has no per-workspace figure: this is the month's cost of the usage types matching this workspace's running mode and compute type, shared evenly among the account's workspaces of that kind." }
            table {
                thead { tr {
                    th scope="col" { "Month" } th.num scope="col" { "This workspace's share" }
                    th.num scope="col" { "Usage type total" } th.num scope="col" { "Workspaces sharing" } th scope="col" { "Usage types" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (r.month.format("%Y-%m")) }
                            td.num { (share(r.amount, r.workspaces)) " " (r.currency) }
                            td.num { (r.amount.round_dp(2)) " " (r.currency) }
                            td.num { (r.workspaces) }
                            td { code { (r.usage_types) } }
                        }
                    }
                }
            }
        }
    })
}

async fn events(state: &AppState, base: &str, w: &WorkspaceDetail) -> sqlx::Result<Markup> {
    let named = serde_json::json!([{ "name": w.workspace_id }]);
    let rows = sqlx::query!(
        r#"SELECT event_id, event_time, event_name, username, read_only
           FROM audit_events
           WHERE account = $1 AND region = $2 AND resources @> $3
           ORDER BY event_time DESC, event_id DESC LIMIT $4"#,
        w.account,
        w.region,
        named,
        TAB_ROWS,
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(html! {
        @if rows.is_empty() {
            p.muted { "No CloudTrail event names this workspace (sync.cloudtrail brings in WorkSpaces events)." }
        } @else {
            table {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "User" } th scope="col" { "Read-only" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (pages::at(r.event_time)) }
                            td { a href={ (base) "/audit?event_name=" (r.event_name) "&account=" (w.account) } { (r.event_name) } }
                            td { (r.username.as_deref().unwrap_or("-")) }
                            td { (match r.read_only { Some(true) => "yes", Some(false) => "no", None => "-" }) }
                        }
                    }
                }
            }
        }
    })
}
