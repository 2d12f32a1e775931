//! Access control, rate limiting and auditing of every request.
//!
//! What each route requires is read from the OpenAPI document the routes
//! are built with: an operation's `security` names the minimum role as the
//! scope of the `bearer` scheme (`{"bearer": ["operator"]}`), or `{}` for a
//! public route. So the documentation and the enforcement cannot disagree,
//! and a route whose operation declares no security at all is refused to
//! everyone (fail closed) and caught by a test.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
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
    request_id::current_request_id,
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
    let key = format!("api:{class}:{key}");
    // A Redis that does not answer must not hold every request for the
    // full reply timeout.
    match tokio::time::timeout(Duration::from_millis(500), state.rate_limiter.check(&key, rate)).await {
        Ok(Ok(decision)) => Ok(Some((rate, decision))),
        outcome => {
            let error = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer within 500 ms".to_owned(),
            };
            state.metrics.rate_limit_error();
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
        AuthError::Malformed | AuthError::Invalid(_) => {
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

/// The audit target a handler named and the status of `response`.
fn outcome(response: &Response) -> (Option<String>, StatusCode) {
    (
        response.extensions().get::<AuditTarget>().map(|t| t.0.clone()),
        response.status(),
    )
}

/// Stores the audit entry of a write (allowed or refused).
#[allow(clippy::too_many_arguments)]
async fn audit(
    state: &AppState,
    principal: &Principal,
    rule: &Rule,
    method: &Method,
    path: String,
    client_ip: Option<String>,
    request_id: String,
    (target, status): (Option<String>, StatusCode),
) {
    let entry = Entry {
        actor: principal.actor.clone(),
        role: principal.role.to_string(),
        // The key id as well: a name can be reused after a revocation.
        auth: match principal.method {
            auth::Method::ApiKey => principal.rate_key.replacen("key:", "api_key:", 1),
            auth::Method::Jwt => "jwt".to_owned(),
        },
        action: rule.action.clone(),
        method: method.to_string(),
        path,
        target,
        status,
        request_id,
        client_ip,
    };
    if !state.audit.record(entry).await {
        state.metrics.audit_failed();
    }
}

/// Authenticates, authorizes, rate-limits and audits each request.
pub async fn middleware(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
    let caller = auth::authenticate(&state, req.headers()).await;

    // Callers without valid credentials count against their address, so
    // guessing credentials is limited too.
    let class = class_of(&method);
    let rate_key = match &caller {
        Ok(Some(p)) => p.rate_key.clone(),
        _ => format!("ip:{}", client_ip.as_deref().unwrap_or("unknown")),
    };
    let limit = match check_rate(&state, &rate_key, class).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    if let Some((rate, decision)) = &limit
        && !decision.allowed
    {
        state.metrics.rate_limited(class);
        let mut response = ApiError::RateLimited {
            retry_after: decision.retry_after,
            class,
        }
        .into_response();
        rate_headers(&mut response, *rate, decision);
        return response;
    }

    let principal: Principal = match caller {
        Ok(Some(p)) => p,
        Ok(None) => return unauthorized(&state, &AuthError::Missing),
        Err(e) => return unauthorized(&state, &e),
    };
    let path = req.uri().path().to_owned();
    let request_id = current_request_id();
    let forbidden = (principal.role < needed).then(|| {
        state.metrics.auth_failed("forbidden");
        format!(
            "{method} {route} needs the {needed} role; your credentials carry {}",
            principal.role
        )
    });
    req.extensions_mut().insert(principal.clone());
    let served = crate::request_id::scope(request_id.clone(), async move {
        let response = match forbidden {
            Some(message) => ApiError::Forbidden(message).into_response(),
            None => next.run(req).await,
        };
        if class == "write" {
            audit(
                &state,
                &principal,
                &rule,
                &method,
                path,
                client_ip,
                request_id,
                outcome(&response),
            )
            .await;
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
