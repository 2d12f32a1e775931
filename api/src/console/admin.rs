//! The admin page: API keys (create, shown once; revoke) and open console
//! sessions (revoke). Admins only, like the API's key routes; key changes
//! go through the API's own handlers.

use axum::{
    Extension, Form,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiRefusal, CsrfForm, WriteRequest, api_error_page, base, pages, session};
use crate::{
    auth::{Role, api_keys::ApiKey},
    routes::api_keys as api,
    state::AppState,
};

/// Sessions the page lists at most.
const SESSIONS_SHOWN: i64 = 200;

/// What the page shows besides the lists: a key just created (its token,
/// once) or the create form's refusal.
#[derive(Default)]
struct Outcome {
    /// The created key (the API's answer) and its token.
    created: Option<(Value, String)>,
    refused: Option<ApiRefusal>,
    form: KeyForm,
}

/// `GET /ui/admin`.
pub(super) async fn page(State(state): State<AppState>, session: session::Session) -> Response {
    render_page(&state, &session, Outcome::default(), StatusCode::OK).await
}

async fn render_page(
    state: &AppState,
    session: &session::Session,
    outcome: Outcome,
    status: StatusCode,
) -> Response {
    let base = base(state);
    if let Some(refused) = pages::forbidden_below(&base, session, Role::Admin, "the admin page") {
        return refused;
    }
    let q = serde_urlencoded::from_str::<api::ListQuery>("").expect("an empty query decodes");
    let keys = match api::list(State(state.clone()), Query(q)).await {
        Ok(axum::Json(list)) => list.api_keys,
        Err(e) => return api_error_page(&base, e).await,
    };
    let sessions = match session::open_sessions(&state.pool, &state.config.api.console, SESSIONS_SHOWN).await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "console: sessions unavailable");
            return pages::error_page(
                &base,
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer; try again.",
            );
        }
    };
    let mut response = (
        status,
        Html(render(&base, session, &keys, &sessions, &outcome).into_string()),
    )
        .into_response();
    // A page showing a new token must not be kept by the browser or a proxy.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn render(
    base: &str,
    session: &session::Session,
    keys: &[ApiKey],
    sessions: &[session::OpenSession],
    outcome: &Outcome,
) -> Markup {
    let csrf = |html_: Markup| {
        html! { input type="hidden" name="csrf" value=(session.csrf_token); (html_) }
    };
    let invalid = |name: &str| {
        outcome
            .refused
            .as_ref()
            .is_some_and(|r| r.field.as_deref() == Some(name))
            .then_some("true")
    };
    let body = html! {
        section aria-labelledby="keys" {
            h2 id="keys" { "API keys" }
            @if let Some((key, token)) = &outcome.created {
                div.notice role="status" {
                    p { "Key " strong { (key["name"].as_str().unwrap_or("")) } " (" (key["role"].as_str().unwrap_or("")) ") created. Copy its token now: it is not shown again." }
                    label for="new-token" { "Token" }
                    input id="new-token" readonly value=(token) size="60";
                }
            }
            @if let Some(r) = &outcome.refused { p.error role="alert" { (r.text()) } }
            form.filters method="post" action={ (base) "/admin/keys" } {
                (csrf(html! {}))
                label for="key-name" { "Name" }
                input id="key-name" name="name" required maxlength="64" pattern="[A-Za-z0-9_.\\-]{1,64}" value=(outcome.form.name)
                    aria-invalid=[invalid("name")];
                label for="key-role" { "Role" }
                select id="key-role" name="role" aria-invalid=[invalid("role")] {
                    @for r in ["viewer", "operator", "admin"] { option value=(r) selected[r == outcome.form.role] { (r) } }
                }
                label for="key-expires" { "Expires on (UTC, optional)" }
                input id="key-expires" name="expires_on" type="date" value=(outcome.form.expires_on) aria-invalid=[invalid("expires_at")];
                button type="submit" { "Create key" }
            }
            @if keys.is_empty() {
                p.muted { "No API keys in use." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Prefix" } th scope="col" { "Created" }
                        th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for k in keys {
                            tr {
                                th scope="row" { (k.name) }
                                td { (k.role.as_str()) }
                                td { code { (k.prefix) } }
                                td { (pages::when(k.created_at)) " by " (k.created_by) }
                                td { @if let Some(t) = k.expires_at { (pages::at(t)) } @else { "never" } }
                                td { @if let Some(t) = k.last_used_at { (pages::when(t)) } @else { "never" } }
                                td {
                                    form method="post" action={ (base) "/admin/keys/" (k.id) "/revoke" } {
                                        (csrf(html! {}))
                                        button.danger type="submit" aria-label={ "Revoke key " (k.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="sessions" {
            h2 id="sessions" { "Console sessions" }
            table {
                thead { tr {
                    th scope="col" { "Who" } th scope="col" { "From" } th scope="col" { "Logged in" }
                    th scope="col" { "Last seen" } th scope="col" { "Ends" } th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for s in sessions {
                        tr {
                            th scope="row" {
                                (s.actor) " " span.muted { "(" (s.role) ", " (s.method) ")" }
                                @if s.id == session.id { " " span.tag { "this session" } }
                            }
                            td { (s.client_ip.as_deref().unwrap_or("-")) br; span.muted { (s.user_agent.as_deref().unwrap_or("")) } }
                            td { (pages::when(s.created_at)) }
                            td { (pages::when(s.last_seen_at)) }
                            td { (pages::at(s.expires_at)) }
                            td {
                                form method="post" action={ (base) "/admin/sessions/" (s.id) "/revoke" } {
                                    (csrf(html! {}))
                                    button.danger type="submit" aria-label={ "Revoke the session of " (s.actor) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    pages::layout(base, session, "Admin", "Admin", &body)
}

/// The create-key form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// A date (`YYYY-MM-DD`); the key stops working at its start, UTC.
    #[serde(default)]
    expires_on: String,
}

/// `POST /ui/admin/keys`: the API's create; the page then shows the token once.
pub(super) async fn create_key(
    State(state): State<AppState>,
    write: WriteRequest,
    Form(form): Form<KeyForm>,
) -> Response {
    const ACTION: &str = "console_create_api_key";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Admin, ACTION).await {
        return r;
    }
    let mut body = json!({ "name": form.name.trim(), "role": form.role });
    if !form.expires_on.is_empty() {
        body["expires_at"] = Value::from(format!("{}T00:00:00Z", form.expires_on));
    }
    let caller = Extension(write.session.principal.clone());
    let (outcome, status) =
        match api::create(State(state.clone()), caller, Bytes::from(body.to_string())).await {
            Ok(r) => {
                let bytes = axum::body::to_bytes(r.into_response().into_body(), 64 * 1024)
                    .await
                    .unwrap_or_default();
                let created: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let key = created["api_key"].clone();
                let token = created["token"].as_str().unwrap_or_default().to_owned();
                let id = key["id"].as_str().map(str::to_owned);
                write.audit(&state, ACTION, id, StatusCode::CREATED).await;
                (
                    Outcome {
                        created: Some((key, token)),
                        ..Default::default()
                    },
                    StatusCode::CREATED,
                )
            }
            Err(e) => {
                let refused = ApiRefusal::of(e).await;
                let status = refused.status;
                write.audit(&state, ACTION, None, status).await;
                (
                    Outcome {
                        refused: Some(refused),
                        form,
                        ..Default::default()
                    },
                    status,
                )
            }
        };
    render_page(&state, &write.session, outcome, status).await
}

/// `POST /ui/admin/keys/{id}/revoke`.
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    write: WriteRequest,
    Form(form): Form<CsrfForm>,
) -> Response {
    const ACTION: &str = "console_revoke_api_key";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Admin, ACTION).await {
        return r;
    }
    let base = base(&state);
    let caller = Extension(write.session.principal.clone());
    match api::revoke(State(state.clone()), caller, Path(id.clone())).await {
        Ok(_) => {
            write.audit(&state, ACTION, Some(id), StatusCode::SEE_OTHER).await;
            Redirect::to(&format!("{base}/admin#keys")).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            write.audit(&state, ACTION, Some(id), page.status()).await;
            page
        }
    }
}

/// `POST /ui/admin/sessions/{id}/revoke`: ends that session at once (its
/// next request goes to the login form).
pub(super) async fn revoke_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    write: WriteRequest,
    Form(form): Form<CsrfForm>,
) -> Response {
    const ACTION: &str = "console_revoke_session";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Admin, ACTION).await {
        return r;
    }
    let base = base(&state);
    match session::revoke(&state.pool, &id).await {
        Ok(true) => {
            write.audit(&state, ACTION, Some(id), StatusCode::SEE_OTHER).await;
            Redirect::to(&format!("{base}/admin#sessions")).into_response()
        }
        Ok(false) => {
            write
                .audit(&state, ACTION, Some(id.clone()), StatusCode::NOT_FOUND)
                .await;
            pages::error_page(&base, StatusCode::NOT_FOUND, &format!("no open session {id}"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: session revocation failed");
            write
                .audit(&state, ACTION, Some(id), StatusCode::SERVICE_UNAVAILABLE)
                .await;
            pages::error_page(
                &base,
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer; try again.",
            )
        }
    }
}
