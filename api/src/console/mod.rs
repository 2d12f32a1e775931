//! The web console at `/ui/`: server-rendered pages (maud, checked at
//! compile time), assets compiled into the binary under content-hashed
//! names, and login through a server-side session ([`session`]).
//!
//! Console routes are outside the OpenAPI document, so the API's access
//! middleware lets them through and this module enforces the same roles
//! itself: every page needs a session, every state-changing request a
//! matching CSRF token and a same-origin `Origin`, and every action is
//! written to the audit log like an API call.

pub mod assets;
mod pages;
pub mod session;

use std::net::SocketAddr;

use axum::{
    Form, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
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
        .route("/ui/", get(overview))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/syncs/{kind}", post(sync_now))
        .route("/ui/jobs", get(jobs_page))
        .route("/ui/jobs/{id}", get(job_page))
        .route("/ui/events", get(job_events))
        .route("/ui/jobs/{id}/cancel", post(cancel_job))
        .route("/ui/jobs/{id}/retry", post(retry_job))
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

/// A page that needs a session: the session, or a redirect to the login.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match current(state, headers).await? {
        Some(s) => Ok(s),
        None => Err(Redirect::to(&format!("{}/login", base(state))).into_response()),
    }
}

/// Refuses (403) a state-changing request without a same-origin `Origin`,
/// without the session's CSRF token, or from a role below `needed`; each
/// refusal is audited.
async fn check_write(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    csrf: &str,
    needed: Role,
    action: &str,
) -> Result<(), Response> {
    let why = if !same_origin(state, headers) {
        Some("this form was not sent from this console (Origin check)")
    } else if !session::same_secret(csrf, &session.csrf_token) {
        Some("the form's security token is missing or stale: reload the page and try again")
    } else if session.principal.role < needed {
        Some("your role may not do this")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => {
            audit(state, &session.principal, action, None, StatusCode::FORBIDDEN).await;
            Err(pages::error_page(&base(state), StatusCode::FORBIDDEN, why))
        }
    }
}

/// An API error as a console page: the same status and the API's own
/// message, prefixed with the field it names.
async fn api_error_page(base: &str, e: crate::error::ApiError) -> Response {
    let response = e.into_response();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = v["error"]["message"].as_str().unwrap_or("the request failed");
    let text = match v["error"]["field"].as_str() {
        Some(field) if !field.is_empty() => format!("{field}: {message}"),
        _ => message.to_owned(),
    };
    pages::error_page(base, status, &text)
}

/// Writes a console action (`console_<verb>`, sent to `/ui/<verb>`) to the
/// audit log, as the API does for its own.
async fn audit(state: &AppState, who: &Principal, action: &str, target: Option<String>, status: StatusCode) {
    state
        .audit
        .record(Entry {
            actor: who.actor.clone(),
            role: who.role.as_str().to_owned(),
            auth: who.method.as_str().to_owned(),
            action: action.to_owned(),
            method: "POST".to_owned(),
            path: format!("/ui/{}", action.trim_start_matches("console_")),
            target,
            status,
            request_id: current_request_id(),
            client_request_id: None,
            client_ip: None,
        })
        .await;
}

async fn overview(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<OverviewQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut queues = Vec::new();
    for (name, q) in state.queues.iter() {
        match (
            q.counts().await,
            q.workers_alive(crate::routes::queues::ALIVE_WITHIN).await,
        ) {
            (Ok(counts), Ok(workers)) => queues.push(pages::QueueRow {
                name: name.clone(),
                queued: counts.ready,
                running: counts.running,
                delayed: counts.scheduled,
                dead: counts.dead,
                workers,
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(queue = %name, error = %e, "console: queue counts unavailable");
                return pages::error_page(
                    &base(&state),
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Redis did not answer, so the queues cannot be shown; try again.",
                );
            }
        }
    }
    let syncs = match sync_rows(&state).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "console: last syncs unavailable");
            return pages::error_page(
                &base(&state),
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer, so the syncs cannot be shown; try again.",
            );
        }
    };
    let notice = query.sync.as_deref().map(|kind| pages::SyncNotice {
        kind: kind.to_owned(),
        already: query.already.as_deref() == Some("1"),
    });
    Html(pages::overview(&base(&state), &session, &queues, &syncs, notice.as_ref()).into_string())
        .into_response()
}

/// The overview's query: what a "Sync now" just did.
#[derive(Debug, Default, Deserialize)]
struct OverviewQuery {
    sync: Option<String>,
    already: Option<String>,
}

/// Every configured target of every sync kind: when it last succeeded and
/// the job open for it now, if any.
async fn sync_rows(state: &AppState) -> sqlx::Result<Vec<pages::SyncRow>> {
    let kinds: Vec<String> = hangar_shared::kinds::syncs()
        .map(|(_, k)| k.name.to_owned())
        .collect();
    let seen = sqlx::query!(
        r#"SELECT kind AS "kind!", payload->>'account' AS "account!",
                  COALESCE(payload->>'region', 'global') AS "region!",
                  max(finished_at) FILTER (WHERE state = 'succeeded') AS last_ok,
                  (array_agg(id ORDER BY id DESC)
                     FILTER (WHERE state IN ('scheduled', 'queued', 'running', 'retrying')))[1] AS open_job
           FROM job_runs WHERE kind = ANY($1) AND payload ? 'account'
           GROUP BY 1, 2, 3"#,
        &kinds[..],
    )
    .fetch_all(&state.pool)
    .await?;
    let mut rows = Vec::new();
    for (short, kind) in hangar_shared::kinds::syncs() {
        for (account, region) in hangar_shared::kinds::targets(&state.config.aws, kind, None, None) {
            let found = seen
                .iter()
                .find(|r| r.kind == kind.name && r.account == account && r.region == region);
            rows.push(pages::SyncRow {
                short: short.to_owned(),
                account,
                region,
                last_ok: found.and_then(|r| r.last_ok),
                open_job: found.and_then(|r| r.open_job.clone()),
            });
        }
    }
    Ok(rows)
}

/// `POST /ui/syncs/{kind}`: "Sync now" for every configured target of a
/// kind (operator), then back to the overview saying what happened.
async fn sync_now(
    State(state): State<AppState>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let base = base(&state);
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_write(
        &state,
        &headers,
        &session,
        &form.csrf,
        Role::Operator,
        "console_start_sync",
    )
    .await
    {
        return r;
    }
    let request = crate::routes::syncs::SyncRequest {
        kind: &kind,
        ..Default::default()
    };
    match crate::routes::syncs::start(&state, &session.principal, &request).await {
        Ok(accepted) => {
            let ids: Vec<&str> = accepted.jobs.iter().map(|j| j.job.id.as_str()).collect();
            let already = accepted.jobs.iter().all(|j| j.already);
            audit(
                &state,
                &session.principal,
                "console_start_sync",
                Some(ids.join(",")),
                StatusCode::SEE_OTHER,
            )
            .await;
            let flag = if already { "&already=1" } else { "" };
            Redirect::to(&format!("{base}/?sync={kind}{flag}")).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            audit(
                &state,
                &session.principal,
                "console_start_sync",
                None,
                page.status(),
            )
            .await;
            page
        }
    }
}

/// `GET /ui/jobs/{id}`: one job's record.
async fn job_page(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match crate::routes::jobs::recorded_job(&state, &id).await {
        Ok(run) => Html(pages::job(&base(&state), &session, &run).into_string()).into_response(),
        Err(e) => api_error_page(&base(&state), e).await,
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    credential: String,
}

async fn login_form(State(state): State<AppState>) -> Response {
    Html(pages::login(&base(&state), None).into_string()).into_response()
}

async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let base = base(&state);
    let refuse = |status: StatusCode, message: &str| {
        (status, Html(pages::login(&base, Some(message)).into_string())).into_response()
    };
    // Login CSRF: a page elsewhere must not sign a browser in as someone else.
    if !same_origin(&state, &headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This form was not sent from this console (Origin check).",
        );
    }
    let credential = form.credential.trim();
    if credential.is_empty() {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "credential: paste an API key or a JWT.",
        );
    }
    let mut bearer = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {credential}")) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "credential: not a token (unexpected characters).",
        );
    };
    bearer.insert(header::AUTHORIZATION, value);
    let principal = match state.auth.authenticate(&bearer).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credential: paste an API key or a JWT.",
            );
        }
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, &format!("credential: {e}")),
    };
    let client = session::Client {
        ip: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|p| p.0.ip().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let opened = match session::open(&state.pool, &state.config.api.console, &principal, &client).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "console session not opened");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session could not be stored; try again.",
            );
        }
    };
    audit(
        &state,
        &principal,
        "console_login",
        Some(opened.session.id.clone()),
        StatusCode::SEE_OTHER,
    )
    .await;
    let cookie = session::set_cookie(
        &opened.token,
        &base,
        over_tls(&state),
        state.config.api.console.max_age,
    );
    let mut response = Redirect::to(&format!("{base}/")).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let base = base(&state);
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_write(
        &state,
        &headers,
        &session,
        &form.csrf,
        Role::Viewer,
        "console_logout",
    )
    .await
    {
        return r;
    }
    if let Err(e) = session::revoke(&state.pool, &session.id).await {
        tracing::error!(error = %e, "console session not revoked");
        return pages::error_page(
            &base,
            StatusCode::SERVICE_UNAVAILABLE,
            "The session could not be ended; try again.",
        );
    }
    audit(
        &state,
        &session.principal,
        "console_logout",
        Some(session.id.clone()),
        StatusCode::SEE_OTHER,
    )
    .await;
    let mut response = Redirect::to(&format!("{base}/login")).into_response();
    let cookie = session::set_cookie("", &base, over_tls(&state), std::time::Duration::ZERO);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /ui/jobs`: recorded jobs, newest first, filtered by kind and
/// state, keyset paged (the API's list; the URL is the bookmark).
async fn jobs_page(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<crate::routes::jobs::ListQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filter = pages::JobsFilter {
        kind: query.kind.clone().unwrap_or_default(),
        state: query.state.clone().unwrap_or_default(),
    };
    let query = crate::routes::jobs::ListQuery {
        kind: query.kind.filter(|k| !k.is_empty()),
        state: query.state.filter(|s| !s.is_empty()),
        ..query
    };
    match crate::routes::jobs::page(&state, query).await {
        Ok(page) => Html(pages::jobs(&base(&state), &session, &filter, &page).into_string()).into_response(),
        Err(e) => api_error_page(&base(&state), e).await,
    }
}

/// Runs one of the API's job actions for the console: same checks, same
/// outcome, audited as `console_<action>`; back to the job's page.
async fn job_action<F, Fut, R>(
    state: AppState,
    id: String,
    headers: HeaderMap,
    csrf: String,
    action: &str,
    run: F,
) -> Response
where
    F: FnOnce(AppState, String) -> Fut,
    Fut: std::future::Future<Output = Result<R, crate::error::ApiError>>,
{
    let base = base(&state);
    let session = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // The API allows job actions to admins (its OpenAPI security).
    if let Err(r) = check_write(&state, &headers, &session, &csrf, Role::Admin, action).await {
        return r;
    }
    match run(state.clone(), id.clone()).await {
        Ok(_) => {
            audit(
                &state,
                &session.principal,
                action,
                Some(id.clone()),
                StatusCode::SEE_OTHER,
            )
            .await;
            Redirect::to(&format!("{base}/jobs/{id}")).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            audit(&state, &session.principal, action, Some(id), page.status()).await;
            page
        }
    }
}

async fn cancel_job(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    job_action(state, id, headers, form.csrf, "console_cancel_job", |s, id| {
        crate::routes::jobs::cancel(State(s), axum::extract::Path(id))
    })
    .await
}

async fn retry_job(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    job_action(state, id, headers, form.csrf, "console_retry_job", |s, id| {
        crate::routes::jobs::retry(State(s), axum::extract::Path(id))
    })
    .await
}

/// How often a followed job is looked at, and for how long at most.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const FOLLOW_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Jobs one page follows at most (the overview lists one open job per
/// sync target; past this many the rest show their state as rendered).
const FOLLOW_AT_MOST: usize = 50;

/// The query of `GET /ui/events`.
#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// Job ids, comma-separated.
    jobs: String,
}

/// `GET /ui/events?jobs=<id>,<id>`: the state of a page's jobs as
/// server-sent events on one connection (a browser allows six per server):
/// a `job` event (the API's job view) whenever one changes, until every one
/// has finished. Read the way `GET /api/v1/jobs/{id}` reads a job: the
/// record, with Redis's live attempts and progress while it is open.
async fn job_events(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt as _;
    if let Err(r) = signed_in(&state, &headers).await {
        return r;
    }
    let ids: Vec<String> = query
        .jobs
        .split(',')
        .filter(|id| !id.is_empty())
        .take(FOLLOW_AT_MOST)
        .map(str::to_owned)
        .collect();
    let started = std::time::Instant::now();
    // Per job: the last text sent, and whether it has finished.
    let followed: Vec<(String, Option<String>, bool)> = ids.into_iter().map(|id| (id, None, false)).collect();
    let events = futures_util::stream::unfold(
        (state, followed, true),
        move |(state, mut followed, first)| async move {
            if followed.iter().all(|(_, _, done)| *done) || started.elapsed() > FOLLOW_FOR {
                return None;
            }
            if !first {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
            let mut batch = Vec::new();
            for (id, last, done) in followed.iter_mut().filter(|(_, _, done)| !*done) {
                match crate::routes::jobs::get(State(state.clone()), axum::extract::Path(id.clone())).await {
                    Ok(axum::Json(job)) => {
                        *done = !job.state.is_open();
                        let text = serde_json::to_string(&job).unwrap_or_default();
                        if last.as_deref() != Some(text.as_str()) {
                            batch.push(Ok::<_, std::convert::Infallible>(
                                Event::default().event("job").data(text.clone()),
                            ));
                            *last = Some(text);
                        }
                    }
                    Err(_) => *done = true,
                }
            }
            Some((futures_util::stream::iter(batch), (state, followed, false)))
        },
    )
    .flatten();
    // A keep-alive comment as often as the job is looked at: writing is how
    // a closed tab is noticed, so a stream ends within a second of its
    // viewer leaving instead of holding a connection (and a server's drain
    // at shutdown) for the rest of its 15 minutes.
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(FOLLOW_EVERY))
        .into_response()
}
