//! The audit pages: CloudTrail's WorkSpaces events (what sync.cloudtrail
//! stored; every role) and Hangar's own audit log (who did what through the
//! API and the console; admins). Both are the API's lists, with the same
//! filters, messages and keyset paging.

use axum::{
    extract::{Query, RawQuery, State},
    response::{Html, IntoResponse, Response},
};
use maud::{Markup, html};

use super::{Filters, api_error_page, base, pages, session::Session};
use crate::{
    auth::Role,
    routes::{audit_log, inventory},
    state::AppState,
    views::{admin::AuditLogPage, inventory::AuditEventPage},
};

fn tabs(base: &str, session: &Session, current: &str) -> Markup {
    html! {
        nav.tabs aria-label="Audit" {
            a href={ (base) "/audit" } aria-current=[(current == "cloudtrail").then_some("page")] { "CloudTrail events" }
            @if session.principal.role >= Role::Admin {
                a href={ (base) "/audit/hangar" } aria-current=[(current == "hangar").then_some("page")] { "Hangar's audit log" }
            }
        }
    }
}

/// `GET /ui/audit`: CloudTrail events, newest first.
pub(super) async fn cloudtrail(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = base(&state);
    let filters = Filters::parse(raw.as_deref());
    let query = match filters.decode::<inventory::AuditQuery>(&base) {
        Ok(q) => q,
        Err(page) => return *page,
    };
    match inventory::list_audit_events(State(state.clone()), Query(query)).await {
        Ok(axum::Json(page)) => {
            Html(render_cloudtrail(&base, &session, &filters, &page).into_string()).into_response()
        }
        Err(e) => api_error_page(&base, e).await,
    }
}

fn render_cloudtrail(base: &str, session: &Session, filters: &Filters, page: &AuditEventPage) -> Markup {
    let body = html! {
        (tabs(base, session, "cloudtrail"))
        form.filters method="get" action={ (base) "/audit" } role="search" {
            (pages::text_filter("event_name", "Event", filters.get("event_name"), "e.g. TerminateWorkspaces", 16))
            (pages::text_filter("user", "User", filters.get("user"), "exact name", 16))
            (pages::text_filter("account", "Account", filters.get("account"), "any", 16))
            (pages::text_filter("region", "Region", filters.get("region"), "any", 16))
            (pages::text_filter("start", "From", filters.get("start"), "YYYY-MM-DD", 16))
            (pages::text_filter("end", "Before", filters.get("end"), "YYYY-MM-DD", 16))
            button type="submit" { "Filter" }
        }
        @if page.events.is_empty() {
            p.muted { "No CloudTrail events match. sync.cloudtrail brings in WorkSpaces events; run it from the overview." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "User" }
                    th scope="col" { "Resources" } th scope="col" { "Account / region" }
                } }
                tbody {
                    @for e in &page.events {
                        tr {
                            td { (pages::at(e.event_time)) }
                            th scope="row" { (e.event_name) @if e.read_only == Some(true) { " " span.muted { "(read)" } } }
                            td { (e.username.as_deref().unwrap_or("-")) }
                            td {
                                @for r in e.resources.as_array().into_iter().flatten() {
                                    @if let Some(name) = r["name"].as_str() {
                                        @if name.starts_with("ws-") {
                                            a href={ (base) "/workspaces/" (name) "?account=" (e.account) } { code { (name) } } " "
                                        } @else { code { (name) } " " }
                                    }
                                }
                            }
                            td { (e.account) " / " (e.region) }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &page.next_cursor {
            p { a href={ (base) "/audit" (filters.with("cursor", c)) } rel="next" { "Older events" } }
        }
    };
    pages::layout(base, session, "Audit", "Audit", &body)
}

/// `GET /ui/audit/hangar`: Hangar's own audit log (admin).
pub(super) async fn hangar(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = base(&state);
    if let Some(refused) = pages::forbidden_below(&base, &session, Role::Admin, "Hangar's audit log") {
        return refused;
    }
    let filters = Filters::parse(raw.as_deref());
    let query = match filters.decode::<audit_log::AuditLogQuery>(&base) {
        Ok(q) => q,
        Err(page) => return *page,
    };
    match audit_log::list(State(state.clone()), Query(query)).await {
        Ok(axum::Json(page)) => {
            Html(render_hangar(&base, &session, &filters, &page).into_string()).into_response()
        }
        Err(e) => api_error_page(&base, e).await,
    }
}

fn render_hangar(base: &str, session: &Session, filters: &Filters, page: &AuditLogPage) -> Markup {
    let body = html! {
        (tabs(base, session, "hangar"))
        form.filters method="get" action={ (base) "/audit/hangar" } role="search" {
            (pages::text_filter("actor", "Actor", filters.get("actor"), "jwt:alice, key:ci", 16))
            (pages::text_filter("action", "Action", filters.get("action"), "e.g. cancel_job", 16))
            (pages::text_filter("target", "Target", filters.get("target"), "job or key id", 16))
            label for="outcome" { "Outcome" }
            select id="outcome" name="outcome" {
                option value="" { "any" }
                @for o in ["allowed", "denied", "failed"] { option value=(o) selected[filters.get("outcome") == o] { (o) } }
            }
            (pages::text_filter("start", "From", filters.get("start"), "YYYY-MM-DD", 16))
            (pages::text_filter("end", "Before", filters.get("end"), "YYYY-MM-DD", 16))
            button type="submit" { "Filter" }
        }
        @if page.entries.is_empty() {
            p.muted { "No audit entries match." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" }
                    th scope="col" { "Target" } th.num scope="col" { "Status" } th scope="col" { "Request" } th scope="col" { "From" }
                } }
                tbody {
                    @for e in &page.entries {
                        tr {
                            td { (pages::at(e.at)) }
                            td { (e.actor) " " span.muted { "(" (e.role) ", " (e.auth) ")" } }
                            th scope="row" { (e.action) br; span.muted { (e.method) " " (e.path) } }
                            td { @if let Some(t) = &e.target { code { (t) } } @else { "-" } }
                            td.num.bad[e.status == 401 || e.status == 403 || e.status >= 500] { (e.status) }
                            td { code { (e.request_id) } }
                            td { (e.client_ip.as_deref().unwrap_or("-")) }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &page.next_cursor {
            p { a href={ (base) "/audit/hangar" (filters.with("cursor", c)) } rel="next" { "Older entries" } }
        }
    };
    pages::layout(base, session, "Audit", "Audit", &body)
}
