//! Request ids. The id is always generated here
//! (a ULID), never taken from the client: a caller could otherwise reuse
//! another's id and blur the audit trail. It is sent back in `X-Request-Id`,
//! put on the request's span, stored with the jobs the request creates and
//! handed to the worker. What a client sent as `X-Request-Id` is kept
//! beside it as `client_request_id` (span and audit log), for correlation.

use axum::http::HeaderName;

/// The header carrying the request id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
    static CALLER_TRACEPARENT: Option<String>;
}

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Runs `fut` with `id` as the current request id (for work a request
/// hands to a spawned task, and for the middleware that assigns it).
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Runs `fut` with the caller's (valid) `traceparent`, which jobs record
/// when this process does not trace (with tracing on, they record their
/// own `send` span, a child of it).
pub async fn with_caller_traceparent<F: std::future::Future>(
    traceparent: Option<String>,
    fut: F,
) -> F::Output {
    CALLER_TRACEPARENT.scope(traceparent, fut).await
}

/// `fut` with this request's id and caller `traceparent`, for a task it
/// spawns: task-locals do not cross `tokio::spawn`, and a job enqueued
/// there must still record both.
pub fn in_current_request<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
    let id = current_request_id();
    let traceparent = caller_traceparent();
    scope(id, with_caller_traceparent(traceparent, fut))
}

/// The current request's caller `traceparent`, if it sent a valid one.
pub fn caller_traceparent() -> Option<String> {
    CALLER_TRACEPARENT.try_with(Clone::clone).ok().flatten()
}

/// The current request's id ("" outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Whether a client's `X-Request-Id` is worth keeping (1-128 visible ASCII).
pub fn acceptable(v: &str) -> bool {
    (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
}

/// What the client sent as `X-Request-Id` (when sane), put in the
/// request's extensions for the layers inside (the audit log).
#[derive(Debug, Clone)]
pub struct ClientRequestId(pub String);
