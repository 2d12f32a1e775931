//! Authentication, authorization, rate limiting and auditing of every
//! request, by the rules of [`crate::access::Policy`].

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hangar_queue::{Rate, RateDecision};
use tracing::Instrument;

use crate::{
    access::{Access, class_of, is_docs},
    audit::{AuditTarget, AuditedWithJob, Entry, PendingAudit},
    auth::{self, AuthError, Principal},
    error::{ApiError, ErrorCode},
    request_id::{ClientRequestId, current_request_id},
    state::AppState,
};

/// Asks the shared limiter about `key`. A Redis that does not answer
/// within 500 ms must not hold every request for the full reply timeout;
/// failures are counted, and the caller decides what they mean.
async fn ask_limiter(state: &AppState, key: &str, rate: Rate) -> Result<RateDecision, String> {
    let error =
        match tokio::time::timeout(Duration::from_millis(500), state.rate_limiter.check(key, rate)).await {
            Ok(Ok(decision)) => return Ok(decision),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 500 ms".to_owned(),
        };
    state.metrics.rate_limit_error();
    Err(error)
}

/// Counts the request against the caller's limit. `Ok(None)`: no limit
/// configured, or Redis did not answer and the limiter fails open.
pub(crate) async fn check_rate(
    state: &AppState,
    key: &str,
    class: &'static str,
) -> Result<Option<(Rate, RateDecision)>, ApiError> {
    let security = &state.config.api.security;
    let rate = if class == "read" {
        security.read_rate
    } else {
        security.write_rate
    };
    let Some(rate) = rate else { return Ok(None) };
    match ask_limiter(state, &format!("api:{class}:{key}"), rate).await {
        Ok(decision) => Ok(Some((rate, decision))),
        Err(error) => {
            if security.rate_limit_fail_closed {
                tracing::warn!(%error, "rate limiter unavailable; refusing (HANGAR_RATE_LIMIT_FAIL_CLOSED=true)");
                Err(ApiError::Unavailable {
                    dependency: "redis",
                    cause: error,
                })
            } else {
                tracing::warn!(%error, "rate limiter unavailable; letting the request through");
                Ok(None)
            }
        }
    }
}

fn rate_headers(response: &mut Response, rate: Rate, decision: &RateDecision) {
    let h = response.headers_mut();
    let secs = |d: Duration| HeaderValue::from(d.as_secs_f64().ceil() as u64);
    h.insert("ratelimit-limit", HeaderValue::from(rate.burst));
    h.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    h.insert("ratelimit-reset", secs(decision.reset_after));
}

fn unauthorized(state: &AppState, error: &AuthError) -> Response {
    let (reason, api_error) = match error {
        AuthError::Unavailable(dependency) => (
            "unavailable",
            ApiError::Unavailable {
                dependency,
                cause: "credential lookup failed".into(),
            },
        ),
        AuthError::NoRole(m) => ("forbidden", ApiError::Forbidden(m.clone())),
        AuthError::Missing => ("missing", ApiError::Unauthorized(error.to_string())),
        AuthError::Malformed | AuthError::Invalid(_) | AuthError::RefusedKey { .. } => {
            ("invalid", ApiError::Unauthorized(error.to_string()))
        }
    };
    state.metrics.auth_failed(reason);
    let mut response = api_error.into_response();
    if response.status() == StatusCode::UNAUTHORIZED {
        let challenge = if matches!(error, AuthError::Missing) {
            "Bearer realm=\"hangar\""
        } else {
            "Bearer realm=\"hangar\", error=\"invalid_token\""
        };
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}

/// What the audit entry of one request says about it, whoever the caller.
#[derive(Clone)]
struct AuditDraft {
    /// The operation id.
    action: String,
    method: String,
    path: String,
    /// The object the path names (its last `{id}` or `{name}`), if any.
    path_target: Option<String>,
    client_ip: Option<String>,
    client_request_id: Option<String>,
}

impl AuditDraft {
    /// Stores the entry of a write by `actor` (allowed or refused). The
    /// target is what the handler named (a created job's id) or else the
    /// object the path names, so `?target=<job id>` finds a cancel too.
    fn audit<'a>(
        self,
        state: &'a AppState,
        actor: Actor,
        response: &Response,
    ) -> impl Future<Output = ()> + Send + 'a {
        // Read off the response now: it is not `Sync`, so the returned
        // future must not hold it.
        let (named, status) = (
            response.extensions().get::<AuditTarget>().map(|t| t.0.clone()),
            response.status(),
        );
        let stored_with_job = response.extensions().get::<AuditedWithJob>().is_some();
        let entry = self.entry(actor, named, status);
        async move {
            if !stored_with_job && !state.audit.record(entry).await {
                state.metrics.audit_failed();
            }
        }
    }

    /// The entry: the target is what the handler named, else the object
    /// the path names.
    fn entry(self, actor: Actor, named: Option<String>, status: StatusCode) -> Entry {
        Entry {
            actor: actor.actor,
            role: actor.role,
            auth: actor.auth,
            action: self.action,
            method: self.method,
            path: self.path,
            target: named.or(self.path_target),
            status,
            request_id: current_request_id(),
            client_request_id: self.client_request_id,
            client_ip: self.client_ip,
        }
    }
}

/// Who the audit log says acted.
struct Actor {
    actor: String,
    role: String,
    auth: String,
}

impl Actor {
    fn of(principal: &Principal) -> Self {
        Self {
            actor: principal.actor.clone(),
            role: principal.role.to_string(),
            // The key id as well: a name can be reused after a revocation.
            auth: match principal.method {
                auth::Method::ApiKey => principal.rate_key.replacen("key:", "api_key:", 1),
                auth::Method::Jwt => "jwt".to_owned(),
            },
        }
    }

    /// A caller whose credentials were refused: unknown, but the key the
    /// token's prefix names is recorded when there is one.
    fn refused(error: &AuthError, token: Option<&str>) -> Self {
        let auth = match (error, token) {
            (AuthError::RefusedKey { id, .. }, _) => format!("api_key:{id}"),
            (_, Some(t)) if t.starts_with(auth::api_keys::TOKEN_PREFIX) => "api_key".to_owned(),
            (_, Some(_)) => "jwt".to_owned(),
            (_, None) => "none".to_owned(),
        };
        Self {
            actor: "unknown".to_owned(),
            role: "none".to_owned(),
            auth,
        }
    }
}

fn refused_address(state: &AppState, wait: Duration) -> Response {
    state.metrics.rate_limited("auth_failure");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::TooMany {
        code: ErrorCode::RateLimited,
        message: format!(
            "too many refused credentials from your address (HANGAR_RATE_LIMIT_AUTH_FAILURES); retry in {secs} s"
        ),
        retry_after: wait,
    }
    .into_response()
}

/// Counts a refused credential against its address; `Some(wait)` when
/// the address is now over its limit (it is refused unchecked until then).
async fn count_auth_failure(state: &AppState, ip: &str) -> Option<Duration> {
    let rate = state.config.api.security.auth_failure_rate?;
    // Fails open: a limiter that cannot be asked leaves the 401 as it is.
    let decision = ask_limiter(state, &format!("api:authfail:ip:{ip}"), rate)
        .await
        .ok()?;
    if decision.allowed {
        return None;
    }
    let wait = decision.retry_after.max(Duration::from_secs(1));
    state.blocked.block(ip, wait);
    Some(wait)
}

/// The object a request's path names: its last path parameter (a job id,
/// a key id, a schedule name).
async fn path_target(req: axum::extract::Request) -> (axum::extract::Request, Option<String>) {
    let (mut parts, body) = req.into_parts();
    let target = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| p.iter().last().map(|(_, v)| v.to_owned()));
    (axum::extract::Request::from_parts(parts, body), target)
}

/// Authenticates, authorizes, rate-limits and audits each request.
pub async fn middleware(State(state): State<AppState>, req: axum::extract::Request, next: Next) -> Response {
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await; // no route: the fallback answers 404
    };
    // The docs are public; the console checks its own sessions, roles and
    // CSRF tokens and audits its actions (crate::console).
    if is_docs(&route) || crate::console::is_console(&route) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let Some(rule) = state.policy.rule(&method, &route).cloned() else {
        return ApiError::MethodNotAllowed(format!("{method} is not allowed on {route}")).into_response();
    };
    let needed = match rule.access {
        Access::Public => return next.run(req).await,
        Access::Role(role) => role,
        Access::Undeclared => {
            tracing::error!(%route, %method, "route has no declared access policy; refusing");
            return ApiError::Forbidden("this route is not available".into()).into_response();
        }
    };
    let client_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let ip = client_ip.clone().unwrap_or_else(|| "unknown".to_owned());
    let class = class_of(&method);
    let token = auth::bearer(req.headers()).ok().flatten().map(str::to_owned);
    // An address that sent too many refused credentials is refused before
    // its credentials cost a lookup (PostgreSQL for API keys).
    if let Some(t) = &token
        && let Some(wait) = state.blocked.remaining(&ip, t)
    {
        return refused_address(&state, wait);
    }
    let caller = state.auth.authenticate(req.headers()).await;
    // What the audit entry will say; only writes are audited, so reads
    // skip the work.
    let (req, request) = if class == "write" {
        let (req, path_target) = path_target(req).await;
        let request = AuditDraft {
            action: rule.action.clone(),
            method: method.to_string(),
            path: req.uri().path().to_owned(),
            path_target,
            client_ip,
            client_request_id: req.extensions().get::<ClientRequestId>().map(|c| c.0.clone()),
        };
        (req, Some(request))
    } else {
        (req, None)
    };
    let principal: Principal = match caller {
        Ok(Some(p)) => {
            if let (auth::Method::ApiKey, Some(t)) = (p.method, &token) {
                state.blocked.verified(t);
            }
            p
        }
        Ok(None) => {
            // No credentials: counted against the address's read/write limit.
            if let Some(limited) = over_limit(&state, &format!("ip:{ip}"), class).await {
                return limited;
            }
            return unauthorized(&state, &AuthError::Missing);
        }
        // Not a guess at credentials: the store was down, or a real
        // identity without a Hangar role.
        Err(e @ (AuthError::Unavailable(_) | AuthError::NoRole(_))) => return unauthorized(&state, &e),
        Err(error) => {
            if let Some(wait) = count_auth_failure(&state, &ip).await {
                tracing::warn!(%ip, %route, %method, "credentials refused too often from this address; refusing it for a while");
                return refused_address(&state, wait);
            }
            let response = unauthorized(&state, &error);
            if let Some(request) = request {
                tracing::warn!(%ip, %route, %method, reason = %error, "write refused: bad credentials");
                request
                    .audit(&state, Actor::refused(&error, token.as_deref()), &response)
                    .await;
            }
            return response;
        }
    };
    let limit = match check_rate(&state, &principal.rate_key, class).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    if let Some((rate, decision)) = &limit
        && !decision.allowed
    {
        return limited(&state, class, *rate, decision);
    }
    let forbidden = (principal.role < needed).then(|| {
        state.metrics.auth_failed("forbidden");
        format!(
            "{method} {route} needs the {needed} role; your credentials carry {}",
            principal.role
        )
    });
    let mut req = req;
    req.extensions_mut().insert(principal.clone());
    if let (Some(draft), None) = (&request, &forbidden) {
        // Status and target are the enqueuer's to fill in, if the handler
        // stores the entry with its job.
        let pending = draft
            .clone()
            .entry(Actor::of(&principal), None, StatusCode::ACCEPTED);
        req.extensions_mut().insert(PendingAudit(pending));
    }
    let served = crate::request_id::in_current_request(async move {
        let response = match forbidden {
            Some(message) => ApiError::Forbidden(message).into_response(),
            None => next.run(req).await,
        };
        if let Some(request) = request {
            request.audit(&state, Actor::of(&principal), &response).await;
        }
        response
    });
    // A write and its audit entry run in their own task: a request timeout
    // or a client hanging up drops this future, but not the change it
    // started, nor its audit entry.
    let mut response = if class == "write" {
        match tokio::spawn(served.instrument(tracing::Span::current())).await {
            Ok(response) => response,
            Err(e) => ApiError::Internal(anyhow::anyhow!("handler task failed: {e}")).into_response(),
        }
    } else {
        served.await
    };
    if let Some((rate, decision)) = &limit {
        rate_headers(&mut response, *rate, decision);
    }
    response
}

/// The 429 of a caller over its read or write limit.
fn limited(state: &AppState, class: &'static str, rate: Rate, decision: &RateDecision) -> Response {
    state.metrics.rate_limited(class);
    let mut response = ApiError::rate_limited(class, decision.retry_after).into_response();
    rate_headers(&mut response, rate, decision);
    response
}

/// Counts an anonymous request against its address; the 429 if over.
async fn over_limit(state: &AppState, key: &str, class: &'static str) -> Option<Response> {
    match check_rate(state, key, class).await {
        Ok(Some((rate, decision))) if !decision.allowed => Some(limited(state, class, rate, &decision)),
        Ok(_) => None,
        Err(e) => Some(e.into_response()),
    }
}
