//! The jobs list: the API's filters (kind, state, queue, requester, time
//! range, payload fields), keyset paging, a capped count of what matches,
//! and bulk actions: on the jobs ticked, or on every job matching the
//! filter after a preview count and a confirmation. A bulk action runs as a
//! `system.bulk_jobs` job, so it survives restarts and shows its progress
//! like any job.

use axum::{
    Extension,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::{ApiRefusal, Filters, WriteRequest, api_error_page, base, pages, session::Session};
use crate::{auth::Role, routes::jobs as api, state::AppState, views::jobs::JobPage};

/// Counts stop here: past it the page says "10,000+" (an exact count of a
/// million rows costs seconds; this costs at most this many index entries).
pub(super) const COUNT_CAP: i64 = 10_000;

/// The filter fields, as the form and the URL name them.
const FIELDS: &[&str] = &[
    "kind",
    "state",
    "queue",
    "requested_by",
    "created_after",
    "created_before",
    "payload",
];

/// The console's payload filter as the API's JSON object: either JSON
/// itself or `field=value` pairs separated by commas (`account=prod,
/// region=us-east-1`); a value that reads as a JSON number, boolean or null
/// is that, anything else a string.
fn payload_json(text: &str) -> Result<String, ApiRefusal> {
    let text = text.trim();
    if text.starts_with('{') {
        return Ok(text.to_owned());
    }
    let mut fields = Map::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ApiRefusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                field: Some("payload".to_owned()),
                message: format!("{pair:?} is not field=value (e.g. account=prod, region=us-east-1)"),
            });
        };
        let value = value.trim();
        let parsed = match serde_json::from_str::<Value>(value) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => v,
            _ => Value::String(value.to_owned()),
        };
        fields.insert(key.trim().to_owned(), parsed);
    }
    Ok(Value::Object(fields).to_string())
}

/// The API's list query for the console's filters (and `cursor`, `limit`).
fn list_query(filters: &Filters) -> Result<api::ListQuery, ApiRefusal> {
    let given = |name: &str| Some(filters.get(name).to_owned()).filter(|v| !v.is_empty());
    Ok(api::ListQuery {
        kind: given("kind"),
        state: given("state"),
        queue: given("queue"),
        requested_by: given("requested_by"),
        payload: given("payload").map(|p| payload_json(&p)).transpose()?,
        created_after: given("created_after"),
        created_before: given("created_before"),
        limit: given("limit"),
        cursor: given("cursor"),
    })
}

/// `GET /ui/jobs`.
pub(super) async fn page(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let base = base(&state);
    let filters = Filters::parse(raw.as_deref());
    let query = match list_query(&filters) {
        Ok(q) => q,
        Err(r) => return pages::error_page(&base, r.status, &r.text()),
    };
    let count = match api::job_filter(&query) {
        Ok(f) => hangar_shared::db::count_jobs(&state.pool, &f, COUNT_CAP)
            .await
            .map_err(Into::into),
        Err(e) => Err(e),
    };
    let count = match count {
        Ok(n) => n,
        Err(e) => return api_error_page(&base, e).await,
    };
    match api::page(&state, query).await {
        Ok(page) => Html(render(&base, &session, &filters, &page, count).into_string()).into_response(),
        Err(e) => api_error_page(&base, e).await,
    }
}

/// "1,234" or "10,000+".
pub(super) fn count_text(n: i64) -> String {
    let digits = n.min(COUNT_CAP).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n > COUNT_CAP {
        out.push('+');
    }
    out
}

/// The filter as hidden fields, so a bulk form carries what the list shows.
fn hidden_filters(filters: &Filters) -> Markup {
    html! {
        @for name in FIELDS {
            @if !filters.get(name).is_empty() { input type="hidden" name={ "f_" (name) } value=(filters.get(name)); }
        }
    }
}

fn render(base: &str, session: &Session, filters: &Filters, page: &JobPage, count: i64) -> Markup {
    let kinds: Vec<&str> = hangar_shared::kinds::all().iter().map(|k| k.name).collect();
    let admin = session.principal.role >= Role::Admin;
    let state = filters.get("state");
    let may_retry = state.is_empty() || state == "dead";
    let may_cancel = state.is_empty() || hangar_queue::JobStatus::parse(state).is_some_and(|s| s.is_open());
    let body = html! {
        form.filters method="get" action={ (base) "/jobs" } role="search" {
            label for="kind" { "Kind" }
            select id="kind" name="kind" {
                option value="" { "any" }
                @for k in &kinds { option value=(k) selected[*k == filters.get("kind")] { (k) } }
            }
            label for="state" { "State" }
            select id="state" name="state" {
                option value="" { "any" }
                @for st in STATES { option value=(st) selected[*st == state] { (st) } }
            }
            label for="queue" { "Queue" }
            select id="queue" name="queue" {
                option value="" { "any" }
                @for q in hangar_shared::kinds::QUEUES { option value=(q) selected[*q == filters.get("queue")] { (q) } }
            }
            (pages::text_filter("requested_by", "Requested by", filters.get("requested_by"), "jwt:alice, key:ci", 14))
            (pages::text_filter("created_after", "Created from", filters.get("created_after"), "2026-12-01", 11))
            (pages::text_filter("created_before", "before", filters.get("created_before"), "2026-12-07", 11))
            (pages::text_filter("payload", "Payload", filters.get("payload"), "account=prod, region=us-east-1", 26))
            button type="submit" { "Filter" }
        }
        p role="status" { strong { (count_text(count)) } " " (if count == 1 { "job matches" } else { "jobs match" }) "." }
        @if page.jobs.is_empty() {
            p.muted { "No jobs match." }
        } @else {
            form method="post" action={ (base) "/jobs/bulk" } {
                @if admin {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    (hidden_filters(filters))
                    div.actions {
                        @if may_retry {
                            button type="submit" name="do" value="retry-selected" { "Retry selected" }
                            button type="submit" name="do" value="retry-matching" { "Retry all matching…" }
                        }
                        @if may_cancel {
                            button type="submit" name="do" value="cancel-selected" { "Cancel selected" }
                            button type="submit" name="do" value="cancel-matching" { "Cancel all matching…" }
                        }
                    }
                }
                table {
                    thead { tr {
                        @if admin { th scope="col" { span.visually-hidden { "Select" } } }
                        th scope="col" { "Job" } th scope="col" { "Kind" } th scope="col" { "State" }
                        th.num scope="col" { "Attempts" } th scope="col" { "Requested by" } th scope="col" { "Created" }
                    } }
                    tbody {
                        @for j in &page.jobs {
                            tr data-live-job=[j.state.is_open().then_some(j.id.as_str())] {
                                @if admin {
                                    td { input type="checkbox" name="ids" value=(j.id) id={ "pick-" (j.id) } aria-label={ "Select job " (j.id) }; }
                                }
                                th scope="row" { a href={ (base) "/jobs/" (j.id) } { code { (j.id) } } }
                                td { (j.kind) }
                                td.bad[j.state.as_str() == "dead"] data-field="state" { (j.state.as_str()) }
                                td.num { (j.attempts) "/" (j.max_attempts) }
                                td { (j.requested_by.as_deref().unwrap_or("-")) }
                                td { (pages::when(j.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &page.next_cursor {
            p { a href={ (base) "/jobs" (filters.with("cursor", c)) } rel="next" { "Older jobs" } }
        }
    };
    pages::layout(base, session, "Jobs", "Jobs", &body)
}

const STATES: &[&str] = &[
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "cancelled",
    "dead",
];

/// A bulk form's fields: the action, the ticked ids, the list's filter
/// (`f_*`), and on the confirmation, the previewed count.
struct BulkForm {
    csrf: String,
    action: String,
    scope: String,
    ids: Vec<String>,
    filters: Filters,
    confirmed: Option<u64>,
}

impl BulkForm {
    fn parse(body: &[u8]) -> Self {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let one = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (action, scope) = one("do")
            .split_once('-')
            .map(|(a, s)| (a.to_owned(), s.to_owned()))
            .unwrap_or_default();
        let filters = pairs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("f_").map(|k| (k.to_owned(), v.clone())))
            .filter(|(k, v)| FIELDS.contains(&k.as_str()) && !v.is_empty())
            .collect();
        Self {
            csrf: one("csrf"),
            action,
            scope,
            ids: pairs
                .iter()
                .filter(|(k, _)| k == "ids")
                .map(|(_, v)| v.clone())
                .collect(),
            filters: Filters(filters),
            confirmed: one("confirmed").parse().ok(),
        }
    }

    /// The `system.bulk_jobs` payload's filter.
    fn bulk_filter(&self) -> Result<Value, ApiRefusal> {
        let mut f = Map::new();
        for name in [
            "kind",
            "state",
            "queue",
            "requested_by",
            "created_after",
            "created_before",
        ] {
            let v = self.filters.get(name);
            if !v.is_empty() {
                let v = match name {
                    // A bare date is its midnight, UTC, as the list reads it.
                    "created_after" | "created_before" if !v.contains('T') => format!("{v}T00:00:00Z"),
                    _ => v.to_owned(),
                };
                f.insert(name.to_owned(), Value::String(v));
            }
        }
        if !self.filters.get("payload").is_empty() {
            let text = payload_json(self.filters.get("payload"))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| ApiRefusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                field: Some("payload".to_owned()),
                message: format!("is not JSON: {e}"),
            })?;
            f.insert("payload".to_owned(), v);
        }
        Ok(Value::Object(f))
    }
}

/// `POST /ui/jobs/bulk` (admin): on the ticked jobs, a bulk job at once;
/// on every job matching the filter, first a page with the preview count
/// and a confirmation, then the bulk job (capped at the previewed count).
pub(super) async fn bulk(State(state): State<AppState>, write: WriteRequest, body: Bytes) -> Response {
    const ACTION: &str = "console_bulk_jobs";
    let form = BulkForm::parse(&body);
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Admin, ACTION).await {
        return r;
    }
    let base = base(&state);
    let refuse = |message: &str| pages::error_page(&base, StatusCode::UNPROCESSABLE_ENTITY, message);
    let payload = if !["retry", "cancel"].contains(&form.action.as_str())
        || !["selected", "matching"].contains(&form.scope.as_str())
    {
        Err(refuse(
            "do: must be retry or cancel, on the selected or the matching jobs",
        ))
    } else if form.scope == "selected" {
        if form.ids.is_empty() {
            Err(refuse("ids: tick at least one job, or act on all matching"))
        } else {
            Ok(json!({ "action": form.action, "ids": form.ids, "max_jobs": form.ids.len() }))
        }
    } else {
        match (form.bulk_filter(), form.confirmed) {
            (Err(r), _) => Err(pages::error_page(&base, r.status, &r.text())),
            (Ok(_), None) => return preview(&state, &write.session, &form).await,
            (Ok(filter), Some(confirmed)) => {
                Ok(json!({ "action": form.action, "filter": filter, "max_jobs": confirmed.max(1) }))
            }
        }
    };
    let payload = match payload {
        Ok(p) => p,
        Err(page) => {
            write.audit(&state, ACTION, None, page.status()).await;
            return page;
        }
    };
    let body = Bytes::from(
        json!({ "kind": hangar_shared::kinds::SYSTEM_BULK_JOBS, "payload": payload }).to_string(),
    );
    let caller = Extension(write.session.principal.clone());
    match api::create(State(state.clone()), caller, None, HeaderMap::new(), body).await {
        Ok(r) => {
            let bytes = axum::body::to_bytes(r.into_response().into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let id = v["job"]["id"].as_str().unwrap_or_default().to_owned();
            write
                .audit(&state, ACTION, Some(id.clone()), StatusCode::SEE_OTHER)
                .await;
            Redirect::to(&format!("{base}/jobs/{id}")).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            write.audit(&state, ACTION, None, page.status()).await;
            page
        }
    }
}

/// The confirmation of an action on every matching job: what it does, to
/// how many (the count the action is then capped at), and the filter.
async fn preview(state: &AppState, session: &Session, form: &BulkForm) -> Response {
    let base = base(state);
    let mut filters = form.filters.clone();
    // Retry acts on dead jobs only, cancel on open ones: count those.
    if form.action == "retry" {
        filters.set("state", "dead");
    }
    let query = match list_query(&filters) {
        Ok(q) => q,
        Err(r) => return pages::error_page(&base, r.status, &r.text()),
    };
    let mut filter = match api::job_filter(&query) {
        Ok(f) => f,
        Err(e) => return api_error_page(&base, e).await,
    };
    let count = if form.action == "cancel" && filter.state.is_none() {
        let mut total = 0;
        for s in ["scheduled", "queued", "retrying", "running"] {
            filter.state = hangar_queue::JobStatus::parse(s);
            match hangar_shared::db::count_jobs(&state.pool, &filter, COUNT_CAP).await {
                Ok(n) => total += n,
                Err(e) => return api_error_page(&base, e.into()).await,
            }
        }
        total
    } else {
        match hangar_shared::db::count_jobs(&state.pool, &filter, COUNT_CAP).await {
            Ok(n) => n,
            Err(e) => return api_error_page(&base, e.into()).await,
        }
    };
    let what = if form.action == "retry" { "Retry" } else { "Cancel" };
    let which = if form.action == "retry" { "dead" } else { "open" };
    let shown: Vec<(&str, &str)> = FIELDS
        .iter()
        .map(|f| (*f, form.filters.get(f)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let body = html! {
        div.card.wide {
            @if count == 0 {
                p { "No " (which) " job matches this filter: there is nothing to " (form.action) "." }
                p { a href={ (base) "/jobs" (form.filters.query()) } { "Back to the list" } }
            } @else {
                p { strong { (what) " " (count_text(count)) " " (which) " " (if count == 1 { "job" } else { "jobs" }) } " matching:" }
                @if shown.is_empty() { p { "every job (no filter)" } }
                @else { ul { @for (k, v) in &shown { li { (k) " = " code { (v) } } } } }
                @if count > COUNT_CAP {
                    p.hint { "More than " (count_text(COUNT_CAP)) " match; the action stops after " (count_text(COUNT_CAP)) " jobs. Run it again for the rest." }
                }
                p.hint { "It runs as a job (system.bulk_jobs) whose progress you can follow; jobs that arrive meanwhile are not added beyond this count." }
                form method="post" action={ (base) "/jobs/bulk" } {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    input type="hidden" name="do" value={ (form.action) "-matching" };
                    input type="hidden" name="confirmed" value=(count.min(COUNT_CAP));
                    (hidden_filters(&form.filters))
                    div.actions {
                        button.danger type="submit" { (what) " " (count_text(count.min(COUNT_CAP))) " jobs" }
                        a href={ (base) "/jobs" (form.filters.query()) } { "Back without doing anything" }
                    }
                }
            }
        }
    };
    Html(pages::layout(&base, session, "Jobs", &format!("{what} matching jobs"), &body).into_string())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_filters_read_pairs_or_json() {
        let v: Value =
            serde_json::from_str(&payload_json("account=prod, days = 7, dry_run=true").unwrap()).unwrap();
        assert_eq!(v, json!({"account": "prod", "days": 7, "dry_run": true}));
        assert_eq!(payload_json(r#"{"a":"b"}"#).unwrap(), r#"{"a":"b"}"#);
        let refused = payload_json("account").unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("payload"));
    }

    #[test]
    fn counts_are_grouped_and_capped() {
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(1234), "1,234");
        assert_eq!(count_text(10_000), "10,000");
        assert_eq!(count_text(10_001), "10,000+");
    }
}
