//! Access control, rate limiting and auditing of every request.
//!
//! What each route requires is read from the OpenAPI document the routes
//! are built with: an operation's `security` names the minimum role as the
//! scope of the `bearer` scheme (`{"bearer": ["operator"]}`), or `{}` for a
//! public route. So the documentation and the enforcement cannot disagree,
//! and a route whose operation declares no security at all is refused to
//! everyone (fail closed) and caught by a test.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hangar_queue::{Rate, RateDecision};
use serde_json::Value;
use tracing::Instrument;

use crate::{
    audit::{AuditTarget, Entry},
    auth::{self, AuthError, Principal, Role},
    error::ApiError,
    request_id::{ClientRequestId, current_request_id},
    state::AppState,
};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Callers with at least this role.
    Role(Role),
    /// The operation declared no security: nobody (a bug, logged).
    Undeclared,
}

/// One operation's rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Who may call it.
    pub access: Access,
    /// Its OpenAPI operation id (the audit log's action).
    pub action: String,
}

/// Rules by (method, route template).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: HashMap<(Method, String), Rule>,
}

impl Policy {
    /// Reads the rules off an OpenAPI document. `metrics_public` decides
    /// operations that allow both anonymous and authenticated callers.
    pub fn from_openapi(spec: &utoipa::openapi::OpenApi, metrics_public: bool) -> Self {
        let doc = serde_json::to_value(spec).unwrap_or_default();
        let mut rules = HashMap::new();
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Self { rules };
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for (method, op) in item {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let action = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("unnamed")
                    .to_owned();
                rules.insert(
                    (method, path.clone()),
                    Rule {
                        access: access_of(op.get("security"), metrics_public),
                        action,
                    },
                );
            }
        }
        Self { rules }
    }

    /// The rule of `method` on `route` (HEAD follows GET).
    pub fn rule(&self, method: &Method, route: &str) -> Option<&Rule> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.rules.get(&(method.clone(), route.to_owned()))
    }

    /// Every (method, route) and its access, for tests and documentation.
    pub fn rules(&self) -> impl Iterator<Item = (&Method, &str, &Rule)> {
        self.rules.iter().map(|((m, p), r)| (m, p.as_str(), r))
    }
}

fn access_of(security: Option<&Value>, metrics_public: bool) -> Access {
    let Some(reqs) = security.and_then(Value::as_array) else {
        return Access::Undeclared;
    };
    let anonymous = reqs.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()));
    let role = reqs
        .iter()
        .filter_map(|r| r.get("bearer")?.as_array()?.first()?.as_str())
        .filter_map(Role::parse)
        .min();
    match (anonymous, role) {
        (true, None) => Access::Public,
        (true, Some(_)) if metrics_public => Access::Public,
        (_, Some(r)) => Access::Role(r),
        (false, None) => Access::Undeclared,
    }
}

/// Routes outside the OpenAPI document that are public by design.
fn is_docs(route: &str) -> bool {
    route == "/openapi.json" || route == "/docs" || route.starts_with("/docs/")
}

/// `read` for GET and HEAD, `write` for everything else.
fn class_of(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        "read"
    } else {
        "write"
    }
}

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
async fn check_rate(
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
        self.store(state, actor, named, status)
    }

    async fn store(self, state: &AppState, actor: Actor, named: Option<String>, status: StatusCode) {
        let target = named.or(self.path_target);
        let entry = Entry {
            actor: actor.actor,
            role: actor.role,
            auth: actor.auth,
            action: self.action,
            method: self.method,
            path: self.path,
            target,
            status,
            request_id: current_request_id(),
            client_request_id: self.client_request_id,
            client_ip: self.client_ip,
        };
        if !state.audit.record(entry).await {
            state.metrics.audit_failed();
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

/// Client addresses that sent too many refused credentials, and until
/// when their API keys are refused without being looked up. Held in memory
/// per replica: checking it costs no Redis or PostgreSQL round trip, which
/// is the point (an address flooding invented API keys reaches PostgreSQL
/// at most a burst's worth of times per replica and window).
///
/// Only lookups are spared: JWTs are checked as usual (verifying one costs
/// no query), and an API key whose prefix this replica has recently seen
/// verified is looked up as usual, so valid callers behind the same address
/// (a proxy, a NAT) keep working while invented keys are refused.
#[derive(Debug, Default, Clone)]
pub struct BlockedAddresses(Arc<Mutex<Blocked>>);

#[derive(Debug, Default)]
struct Blocked {
    until: HashMap<String, Instant>,
    /// Prefixes of API keys that verified here (random, not secret).
    known_keys: std::collections::HashSet<String>,
}

/// Most verified key prefixes remembered (then the set starts over).
const KNOWN_KEYS_MAX: usize = 100_000;

impl BlockedAddresses {
    /// How long `ip` is still refused for `token`, if it is.
    fn remaining(&self, ip: &str, token: &str) -> Option<Duration> {
        let prefix = auth::api_keys::prefix_of(token)?;
        let mut blocked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.known_keys.contains(prefix) {
            return None;
        }
        let until = *blocked.until.get(ip)?;
        let left = until.checked_duration_since(Instant::now());
        if left.is_none() {
            blocked.until.remove(ip);
        }
        left
    }

    fn block(&self, ip: &str, wait: Duration) {
        let mut blocked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget expired entries now and then so the map stays small.
        if blocked.until.len() > 10_000 {
            let now = Instant::now();
            blocked.until.retain(|_, until| *until > now);
        }
        blocked.until.insert(ip.to_owned(), Instant::now() + wait);
    }

    /// Remembers that the key with this token's prefix verified.
    fn verified(&self, token: &str) {
        let Some(prefix) = auth::api_keys::prefix_of(token) else {
            return;
        };
        let mut blocked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !blocked.known_keys.contains(prefix) {
            if blocked.known_keys.len() >= KNOWN_KEYS_MAX {
                blocked.known_keys.clear();
            }
            blocked.known_keys.insert(prefix.to_owned());
        }
    }
}

fn refused_address(state: &AppState, wait: Duration) -> Response {
    state.metrics.rate_limited("auth_failure");
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::TooMany {
        code: "rate_limited",
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
    if is_docs(&route) {
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
    let caller = auth::authenticate(&state, req.headers()).await;
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
    let request_id = current_request_id();
    let served = crate::request_id::scope(request_id, async move {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn access_is_read_from_security_requirements() {
        assert_eq!(access_of(Some(&json!([{}])), false), Access::Public);
        assert_eq!(
            access_of(Some(&json!([{"bearer": ["operator"]}])), false),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            access_of(Some(&json!([{}, {"bearer": ["viewer"]}])), true),
            Access::Public
        );
        assert_eq!(
            access_of(Some(&json!([{}, {"bearer": ["viewer"]}])), false),
            Access::Role(Role::Viewer)
        );
        assert_eq!(access_of(None, true), Access::Undeclared);
        assert_eq!(
            access_of(Some(&json!([{"bearer": ["root"]}])), true),
            Access::Undeclared
        );
        assert_eq!(
            access_of(Some(&json!([{"bearer": []}])), true),
            Access::Undeclared
        );
    }
}
