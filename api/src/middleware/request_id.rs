//! Assigns each request its id (see [`crate::request_id`]), records its
//! metrics and span, and rewrites error responses that did not come from
//! [`ApiError`](crate::error::ApiError) into the JSON envelope.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

use crate::{
    request_id::{ClientRequestId, HEADER, RequestContext, TRACEPARENT, acceptable, scope},
    state::AppState,
};

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

/// Error responses not produced by `ApiError` (axum's own rejections, 405,
/// 413) are rewritten into the JSON envelope; the console's HTML pages
/// (which explain their own errors) are left as they are.
async fn into_envelope(response: Response) -> Response {
    let formed = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !response.status().is_client_error() && !response.status().is_server_error() || formed {
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
        client_request_id = tracing::field::Empty, otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty, otel.status_code = tracing::field::Empty);
    if !client_id.is_empty() {
        span.record("client_request_id", client_id.as_str());
    }
    // A malformed traceparent is ignored, as W3C Trace Context asks: the
    // request starts a trace of its own rather than failing. A valid one is
    // kept in its canonical 55-character form, never as sent: a later
    // version's extra fields would otherwise reach the job's record.
    let caller_trace = req
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(hangar_queue::trace_context::parse)
        .map(|cx| hangar_queue::trace_context::format(&cx));
    let traced = hangar_queue::trace_context::exporting();
    if traced {
        // Only when traced: these would otherwise be noise in every JSON log line.
        span.record("otel.name", format!("{method} {route}"));
        span.record("otel.kind", "server");
        if let Some(t) = &caller_trace {
            hangar_queue::trace_context::set_parent(&span, t);
        }
    }
    let start = Instant::now();
    let context = RequestContext {
        id: id.clone(),
        caller_traceparent: caller_trace,
    };
    let mut response = scope(context, async {
        let response = next.run(req).instrument(span.clone()).await;
        into_envelope(response).await
    })
    .await;
    let status = response.status().as_u16();
    if traced {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.set_attribute("http.request.method", method.clone());
        span.set_attribute("http.route", route.clone());
        span.set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
    state
        .metrics
        .observe_request(&route, &method, status, start.elapsed());
    if status >= 500 {
        hangar_shared::error_reports::server_error(&route, &method, status, &id);
    }
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
