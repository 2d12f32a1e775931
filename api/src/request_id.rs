//! Request ids and per-request telemetry. The id is always generated here
//! (a ULID), never taken from the client: a caller could otherwise reuse
//! another's id and blur the audit trail. It is sent back in `X-Request-Id`,
//! put on the request's span, stored with the jobs the request creates and
//! handed to the worker. What a client sent as `X-Request-Id` is kept
//! beside it as `client_request_id` (span and audit log), for correlation.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

use crate::state::AppState;

/// The header carrying the request id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id (for work a request
/// hands to a spawned task).
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// A metrics label for `method`: the standard methods, else `other` (any
/// token is a valid method, and each would otherwise be a new series).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .iter()
    .find(|m| *m == method)
    .map_or("other", |m| match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "OPTIONS",
    })
}

/// The current request's id ("" outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Error responses not produced by `ApiError` (axum's own rejections, 405,
/// 413) are rewritten into the JSON envelope.
async fn into_envelope(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !response.status().is_client_error() && !response.status().is_server_error() || is_json {
        return response;
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut envelope = crate::error::envelope_for(status, &text);
    // Keep the security, CORS and rate-limit headers of the original.
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            envelope.headers_mut().insert(name.clone(), value.clone());
        }
    }
    envelope
}

/// Whether a client's `X-Request-Id` is worth keeping (1-128 visible ASCII).
fn acceptable(v: &str) -> bool {
    (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
}

/// What the client sent as `X-Request-Id` (when sane), put in the
/// request's extensions for the layers inside (the audit log).
#[derive(Debug, Clone)]
pub struct ClientRequestId(pub String);

/// Assigns the request id, records metrics and a span for every request.
pub async fn middleware(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = ulid::Ulid::new().to_string();
    let client_id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .unwrap_or("")
        .to_owned();
    if !client_id.is_empty() {
        req.extensions_mut().insert(ClientRequestId(client_id.clone()));
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method()).to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route,
        client_request_id = tracing::field::Empty);
    if !client_id.is_empty() {
        span.record("client_request_id", client_id.as_str());
    }
    let start = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), async {
            let response = next.run(req).instrument(span.clone()).await;
            into_envelope(response).await
        })
        .await;
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(&route, &method, status, start.elapsed());
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                status,
                elapsed_ms = start.elapsed().as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status,
                elapsed_ms = start.elapsed().as_millis() as u64,
                "request served"
            );
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}
