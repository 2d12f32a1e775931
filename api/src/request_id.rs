//! Request ids. The id is always generated here
//! (a ULID), never taken from the client: a caller could otherwise reuse
//! another's id and blur the audit trail. It is sent back in `X-Request-Id`,
//! put on the request's span, stored with the jobs the request creates and
//! handed to the worker. What a client sent as `X-Request-Id` is kept
//! beside it as `client_request_id` (span and audit log), for correlation.

use axum::http::HeaderName;
use tokio::task::futures::TaskLocalFuture;

/// The header carrying the request id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What a request's tasks know of it: its id and the caller's trace.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The request id (a ULID).
    pub id: String,
    /// The caller's valid `traceparent` (canonical form), if it sent one;
    /// jobs record it when this process does not trace (with tracing on,
    /// they record their own `send` span, a child of it).
    pub caller_traceparent: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Runs `fut` in the request `context`. Not an `async fn`: a wrapper
/// `async fn` would keep `fut` in its own state beside the task-local
/// future holding it, doubling what every request's future copies (a
/// callgrind count of the request path showed it: bench/RESULTS.md).
pub fn scope<F: std::future::Future>(context: RequestContext, fut: F) -> TaskLocalFuture<RequestContext, F> {
    REQUEST.scope(context, fut)
}

/// `fut` in the current request's context, for a task the request
/// spawns: task-locals do not cross `tokio::spawn`, and a job enqueued
/// there must still record the request's id and the caller's trace.
pub fn in_current_request<F: std::future::Future>(fut: F) -> TaskLocalFuture<RequestContext, F> {
    scope(REQUEST.try_with(Clone::clone).unwrap_or_default(), fut)
}

/// The current request's caller `traceparent`, if it sent a valid one.
pub fn caller_traceparent() -> Option<String> {
    REQUEST.try_with(|r| r.caller_traceparent.clone()).ok().flatten()
}

/// The current request's id ("" outside a request).
pub fn current_request_id() -> String {
    REQUEST.try_with(|r| r.id.clone()).unwrap_or_default()
}

/// Whether a client's `X-Request-Id` is worth keeping (1-128 visible ASCII).
pub fn acceptable(v: &str) -> bool {
    (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
}

/// What the client sent as `X-Request-Id` (when sane), put in the
/// request's extensions for the layers inside (the audit log).
#[derive(Debug, Clone)]
pub struct ClientRequestId(pub String);
