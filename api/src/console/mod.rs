//! The web console at `/ui/`: server-rendered pages (maud, checked at
//! compile time), assets compiled into the binary under content-hashed
//! names, and login through a server-side session ([`session`]).
//!
//! Console routes are outside the OpenAPI document, so the API's access
//! middleware lets them through and this module enforces the same roles
//! itself: every page needs a session, every state-changing request a
//! matching CSRF token and a same-origin `Origin`, and every action is
//! written to the audit log like an API call.

mod admin;
pub mod assets;
mod audit;
mod billing;
mod charts;
mod job_list;
mod jobs;
mod login;
mod models;
mod overview;
mod pages;
mod reports;
mod schedules;
pub mod session;
mod workers;
mod workspaces;

pub use overview::ActivityCache;

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use self::session::Session;
use crate::{
    audit::Entry,
    auth::{Principal, Role},
    request_id::current_request_id,
    state::AppState,
};

/// Whether `path` is a console route.
pub fn is_console(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("ui/") }))
        .route("/ui/", get(overview::overview))
        .route("/ui/login", get(login::login_form).post(login::login))
        .route("/ui/logout", post(login::logout))
        .route("/ui/syncs/{kind}", post(overview::sync_now))
        .route("/ui/jobs", get(job_list::page))
        .route("/ui/jobs/bulk", post(job_list::bulk))
        .route("/ui/jobs/{id}", get(jobs::job_page))
        .route("/ui/events", get(jobs::job_events))
        .route("/ui/jobs/{id}/{action}", post(jobs::job_action))
        .route("/ui/schedules", get(schedules::list).post(schedules::create))
        .route("/ui/schedules/new", get(schedules::new_form))
        .route("/ui/schedules/{name}", post(schedules::update))
        .route("/ui/schedules/{name}/edit", get(schedules::edit_form))
        .route("/ui/schedules/{name}/{action}", post(schedules::action))
        .route("/ui/workspaces", get(workspaces::list))
        .route("/ui/workspaces/{id}", get(workspaces::page))
        .route("/ui/billing", get(billing::page))
        .route("/ui/audit", get(audit::cloudtrail))
        .route("/ui/audit/hangar", get(audit::hangar))
        .route("/ui/models", get(models::page))
        .route("/ui/models/chat", post(models::chat))
        .route("/ui/models/stream/{job}", get(models::stream))
        .route("/ui/admin", get(admin::page))
        .route("/ui/admin/keys", post(admin::create_key))
        .route("/ui/admin/keys/{id}/revoke", post(admin::revoke_key))
        .route("/ui/admin/sessions/{id}/revoke", post(admin::revoke_session))
        .route("/ui/reports", get(reports::page).post(reports::create))
        .route("/ui/reports/{id}/download", get(reports::download))
        .route("/ui/workers", get(workers::page))
        .route("/ui/assets/{name}", get(assets::serve))
}

/// Where the console lives as the browser sees it: the path of
/// `HANGAR_PUBLIC_URL` (a reverse proxy's prefix) followed by `/ui`.
pub fn base(state: &AppState) -> String {
    let prefix = state
        .config
        .reports
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("")
        .trim_end_matches('/');
    format!("{prefix}/ui")
}

/// Whether the console is served over TLS (its cookie is then `Secure`).
fn over_tls(state: &AppState) -> bool {
    state
        .config
        .reports
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// Whether a state-changing request comes from a console page: its
/// `Origin` names this server (the public URL's origin when configured,
/// else the `Host` it was sent to). Browsers send `Origin` with every POST;
/// a request without one is refused.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host_of = |origin: &str| origin.split_once("://").map(|(_, h)| h.to_owned());
    match state.config.reports.public_url.as_deref() {
        Some(public) => {
            let public_origin = public
                .split_once("://")
                .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or("")));
            public_origin.as_deref() == Some(origin)
        }
        None => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            host.is_some() && host_of(origin).as_deref() == host
        }
    }
}

/// The session a request's cookie names, if it is open.
async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, Response> {
    let Some(token) = session::cookie_token(headers) else {
        return Ok(None);
    };
    session::resume(&state.pool, &state.config.api.console, token)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "console session lookup failed");
            pages::error_page(
                &base(state),
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer; try again.",
            )
        })
}

/// A page's session, as an extractor: a request without an open one is
/// sent to the login form.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(state, &parts.headers).await? {
            Some(s) => {
                let class = if parts.method == axum::http::Method::GET {
                    "read"
                } else {
                    "write"
                };
                within_rate(state, &s.principal, class).await?;
                Ok(s)
            }
            None => Err(Redirect::to(&format!("{}/login", base(state))).into_response()),
        }
    }
}

/// Counts a console request against its user's API rate limit
/// (`HANGAR_RATE_LIMIT_READ` for pages, `_WRITE` for forms), exactly as an
/// API call is counted: the console is another way in, not a way around it.
async fn within_rate(state: &AppState, who: &Principal, class: &'static str) -> Result<(), Response> {
    let refused = match crate::middleware::access::check_rate(state, &who.rate_key, class).await {
        Ok(Some((_, decision))) if !decision.allowed => {
            state.metrics.rate_limited(class);
            crate::error::ApiError::rate_limited(class, decision.retry_after)
        }
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let retry_after = match &refused {
        crate::error::ApiError::TooMany { retry_after, .. } => Some(retry_after.as_secs().max(1)),
        _ => None,
    };
    let mut page = api_error_page(&base(state), refused).await;
    if let Some(secs) = retry_after {
        page.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    Err(page)
}

/// A state-changing console request, as an extractor: its session and what
/// its checks and audit entry need. Its handler calls [`Self::authorize`]
/// with the form's CSRF token before doing anything.
pub(super) struct WriteRequest {
    /// Who sent it.
    pub(super) session: Session,
    path: String,
    client_ip: Option<String>,
    same_origin: bool,
}

impl FromRequestParts<AppState> for WriteRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, state).await?;
        Ok(Self {
            session,
            path: parts.uri.path().to_owned(),
            client_ip: client_ip(&parts.extensions),
            same_origin: same_origin(state, &parts.headers),
        })
    }
}

impl WriteRequest {
    /// Refuses (403, audited) a request without a same-origin `Origin`,
    /// without the session's CSRF token, or from a role below `needed`.
    pub(super) async fn authorize(
        &self,
        state: &AppState,
        csrf: &str,
        needed: Role,
        action: &str,
    ) -> Result<(), Response> {
        let why = if !self.same_origin {
            "this form was not sent from this console (Origin check)"
        } else if !session::same_secret(csrf, &self.session.csrf_token) {
            "the form's security token is missing or stale: reload the page and try again"
        } else if self.session.principal.role < needed {
            "your role may not do this"
        } else {
            return Ok(());
        };
        self.audit(state, action, None, StatusCode::FORBIDDEN).await;
        Err(pages::error_page(&base(state), StatusCode::FORBIDDEN, why))
    }

    /// Writes the action's outcome to the audit log.
    pub(super) async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: Option<String>,
        status: StatusCode,
    ) {
        let request = AuditedRequest {
            path: &self.path,
            client_ip: self.client_ip.clone(),
        };
        audit(state, &self.session.principal, action, &request, target, status).await;
    }
}

/// The peer's address, when the server recorded it.
fn client_ip(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// What an API error tells its caller: the status, the field it names (if
/// any) and the message, exactly as the API's JSON envelope says them.
#[derive(Debug)]
pub(super) struct ApiRefusal {
    pub(super) status: StatusCode,
    pub(super) field: Option<String>,
    pub(super) message: String,
}

impl ApiRefusal {
    async fn of(e: crate::error::ApiError) -> Self {
        let response = e.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Self {
            status,
            field: v["error"]["field"]
                .as_str()
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
            message: v["error"]["message"]
                .as_str()
                .unwrap_or("the request failed")
                .to_owned(),
        }
    }

    /// The message prefixed with the field it names.
    fn text(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// An API error as a console page: the same status and the API's own
/// message, prefixed with the field it names.
async fn api_error_page(base: &str, e: crate::error::ApiError) -> Response {
    let refusal = ApiRefusal::of(e).await;
    pages::error_page(base, refusal.status, &refusal.text())
}

/// A list page's filters: the query string's non-empty pairs in order.
/// Empty ones are what a filter form sends for "any", so they are dropped
/// before the API's own query type reads the rest (and refuses unknown or
/// malformed ones with its field messages).
#[derive(Debug, Clone, Default)]
pub(super) struct Filters(Vec<(String, String)>);

impl Filters {
    /// From a raw query string (`None` when the URL has none).
    fn parse(raw: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
        Self(pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect())
    }

    /// The value of `name`, or empty.
    pub(super) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The filters as the API's query type `T`, or a 400 page naming what
    /// it refused.
    fn decode<T: serde::de::DeserializeOwned>(&self, base: &str) -> Result<T, Box<Response>> {
        let text = serde_urlencoded::to_string(&self.0).unwrap_or_default();
        serde_urlencoded::from_str(&text).map_err(|e| {
            Box::new(pages::error_page(
                base,
                StatusCode::BAD_REQUEST,
                &format!("this page's filters: {e}"),
            ))
        })
    }

    /// Sets `name` to `value` (replacing it).
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// These filters as a query string (`?…`, or empty without any).
    pub(super) fn query(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        format!("?{}", serde_urlencoded::to_string(&self.0).unwrap_or_default())
    }

    /// A query string (`?…`) of these filters with `name` set to `value`
    /// (the next page's link keeps the filters and adds the cursor).
    pub(super) fn with(&self, name: &str, value: &str) -> String {
        let mut next = self.clone();
        next.set(name, value);
        next.query()
    }
}

/// Where a console action was sent, for its audit entry.
struct AuditedRequest<'a> {
    path: &'a str,
    client_ip: Option<String>,
}

/// Writes a console action (`console_<verb>`) to the audit log, as the API
/// does for its own.
async fn audit(
    state: &AppState,
    who: &Principal,
    action: &str,
    request: &AuditedRequest<'_>,
    target: Option<String>,
    status: StatusCode,
) {
    state
        .audit
        .record(Entry {
            actor: who.actor.clone(),
            role: who.role.as_str().to_owned(),
            auth: who.method.as_str().to_owned(),
            action: action.to_owned(),
            method: "POST".to_owned(),
            path: request.path.to_owned(),
            target,
            status,
            request_id: current_request_id(),
            client_request_id: None,
            client_ip: request.client_ip.clone(),
        })
        .await;
}

/// A state-changing form's one common field: the session's CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}
