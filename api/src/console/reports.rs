//! The reports page: ask for a report (operator), follow it live, and
//! download its file once published. Through the API's own handlers, so
//! types, formats, parameters and their messages are the API's.

use axum::{
    Extension, Form,
    body::Bytes,
    extract::{Path, Query, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiRefusal, Filters, WriteRequest, api_error_page, base, pages, session::Session};
use crate::{auth::Role, routes::reports as api, state::AppState, views::reports::ReportPage};

/// `GET /ui/reports`.
pub(super) async fn page(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let filters = Filters::parse(raw.as_deref());
    render_page(
        &state,
        &session,
        &filters,
        &ReportForm::default(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn render_page(
    state: &AppState,
    session: &Session,
    filters: &Filters,
    form: &ReportForm,
    refused: Option<&ApiRefusal>,
    status: StatusCode,
) -> Response {
    let base = base(state);
    let query = match filters.decode::<api::ReportQuery>(&base) {
        Ok(q) => q,
        Err(page) => return *page,
    };
    match api::list(State(state.clone()), Query(query)).await {
        Ok(axum::Json(page)) => {
            let html = render(&base, session, filters, &page, form, refused);
            (status, Html(html.into_string())).into_response()
        }
        Err(e) => api_error_page(&base, e).await,
    }
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b < 10 * 1024 => format!("{b} B"),
        b if b < 10 * 1024 * 1024 => format!("{} KiB", b / 1024),
        b => format!("{} MiB", b / (1024 * 1024)),
    }
}

fn render(
    base: &str,
    session: &Session,
    filters: &Filters,
    page: &ReportPage,
    form: &ReportForm,
    refused: Option<&ApiRefusal>,
) -> Markup {
    let types: Vec<&str> = hangar_shared::kinds::family("report").map(|(t, _)| t).collect();
    let invalid = |name: &str| {
        refused
            .is_some_and(|r| {
                r.field
                    .as_deref()
                    .is_some_and(|f| f == name || f.starts_with(&format!("{name}.")))
            })
            .then_some("true")
    };
    let body = html! {
        @if session.principal.role >= Role::Operator {
            section aria-labelledby="ask" {
                h2 id="ask" { "Ask for a report" }
                @if let Some(r) = refused { p.error role="alert" { (r.text()) } }
                form.stacked method="post" action={ (base) "/reports" } {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    div.field {
                        label for="type" { "Report" }
                        select id="type" name="type" aria-invalid=[invalid("type")] {
                            @for t in &types { option value=(t) selected[*t == form.r#type] { (t) } }
                        }
                    }
                    div.field {
                        label for="format" { "Format" }
                        select id="format" name="format" aria-invalid=[invalid("format")] {
                            @for f in ["csv", "json", "xlsx"] { option value=(f) selected[f == form.format] { (f) } }
                        }
                    }
                    div.field {
                        label for="params" { "Parameters (JSON, optional)" }
                        textarea id="params" name="params" rows="3" aria-invalid=[invalid("params")] aria-describedby="params-hint" { (form.params) }
                        p.hint id="params-hint" { "For inventory, the workspace filters, e.g. {\"state\": \"STOPPED\"}; audit_log needs the admin role." }
                    }
                    button type="submit" { "Ask for the report" }
                }
            }
        }
        section aria-labelledby="list" {
            h2 id="list" { "Reports" }
            form.filters method="get" action={ (base) "/reports" } role="search" {
                label for="f-type" { "Type" }
                select id="f-type" name="type" {
                    option value="" { "any" }
                    @for t in &types { option value=(t) selected[*t == filters.get("type")] { (t) } }
                }
                button type="submit" { "Filter" }
            }
            @if page.reports.is_empty() {
                p.muted { "No reports yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Report" } th scope="col" { "Type" } th scope="col" { "State" }
                        th scope="col" { "File" } th scope="col" { "Asked by" } th scope="col" { "Asked" }
                    } }
                    tbody {
                        @for r in &page.reports {
                            tr data-live-job=[r.state.is_open().then_some(r.id.as_str())] {
                                th scope="row" { a href={ (base) "/jobs/" (r.id) } { code { (r.id) } } }
                                td { (r.r#type) " (" (r.format) ")" }
                                td.bad[r.state.as_str() == "dead"] data-field="state" aria-live="polite" { (r.state.as_str()) }
                                td {
                                    @if let Some(f) = &r.file {
                                        a href={ (base) "/reports/" (r.id) "/download" } download { "Download" }
                                        " " span.muted { (f.rows) " rows, " (size(f.size_bytes)) }
                                    } @else if let Some(e) = &r.error { span.bad { (e) } }
                                    @else { span.muted { "not yet" } }
                                }
                                td { (r.requested_by.as_deref().unwrap_or("-")) }
                                td { (pages::when(r.created_at)) }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = &page.next_cursor {
                p { a href={ (base) "/reports" (filters.with("cursor", c)) } rel="next" { "Older reports" } }
            }
        }
    };
    pages::layout(base, session, "Reports", "Reports", &body)
}

/// The ask-for-a-report form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    r#type: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    params: String,
}

/// `POST /ui/reports` (operator): the API's create; back to the list,
/// where the new report's state follows live.
pub(super) async fn create(
    State(state): State<AppState>,
    write: WriteRequest,
    Form(form): Form<ReportForm>,
) -> Response {
    const ACTION: &str = "console_create_report";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Operator, ACTION).await {
        return r;
    }
    let base = base(&state);
    let params = if form.params.trim().is_empty() {
        Ok(json!({}))
    } else {
        serde_json::from_str::<Value>(&form.params)
    };
    let result = match params {
        Ok(params) => {
            let body = json!({ "type": form.r#type, "format": form.format, "params": params });
            let caller = Extension(write.session.principal.clone());
            match api::create(State(state.clone()), caller, None, Bytes::from(body.to_string())).await {
                Ok(r) => Ok(r.into_response()),
                Err(e) => Err(ApiRefusal::of(e).await),
            }
        }
        Err(e) => Err(ApiRefusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            field: Some("params".to_owned()),
            message: format!("is not JSON: {e}"),
        }),
    };
    match result {
        Ok(response) => {
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let id = v["id"].as_str().or(v["job"]["id"].as_str()).map(str::to_owned);
            write.audit(&state, ACTION, id, StatusCode::SEE_OTHER).await;
            Redirect::to(&format!("{base}/reports#list")).into_response()
        }
        Err(refused) => {
            write.audit(&state, ACTION, None, refused.status).await;
            let status = refused.status;
            render_page(
                &state,
                &write.session,
                &Filters::default(),
                &form,
                Some(&refused),
                status,
            )
            .await
        }
    }
}

/// `GET /ui/reports/{id}/download`: the API's download (ranges, ETag).
pub(super) async fn download(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match api::download(State(state.clone()), Path(id), headers).await {
        Ok(r) => r,
        Err(e) => api_error_page(&base(&state), e).await,
    }
}
