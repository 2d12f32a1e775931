//! The backend's middleware: sees each attempt's result (after all user
//! middleware) and turns it into an outcome: success, retry with backoff,
//! dead, or cancelled. Also turns a handler panic into a retryable failure
//! instead of taking the whole worker down.

use std::{
    any::Any,
    error::Error as StdError,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{Arc, Mutex, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::Task,
};
use futures_util::FutureExt;
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    JobContext,
    run::{Held, Pending, Run, WorkerStats},
};
use crate::{queue::Outcome, retry::RetryPolicies};

/// Marks an error as permanent: the job goes to dead without further attempts
/// (bad credentials, invalid arguments). Same as apalis's `AbortError`.
pub fn permanent<E: Into<BoxDynError>>(err: E) -> AbortError {
    AbortError::new(err)
}

/// Returned by a handler that cannot start its job yet (a dependency is
/// down): the job goes back to its queue for `delay` without using up an
/// attempt, so an outage of what it needs does not kill it.
#[derive(Debug)]
pub struct Deferred {
    reason: String,
    delay: Duration,
}

impl std::fmt::Display for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "deferred for {:?}: {}", self.delay, self.reason)
    }
}

impl StdError for Deferred {}

/// See [`Deferred`].
pub fn defer(reason: impl Into<String>, delay: Duration) -> Deferred {
    Deferred {
        reason: reason.into(),
        delay,
    }
}

/// Shared by the layer and its services.
#[derive(Clone)]
pub(crate) struct AckShared {
    pub outcomes: mpsc::UnboundedSender<Pending>,
    pub held: Arc<Held>,
    pub policies: RetryPolicies,
    pub stats: Arc<WorkerStats>,
    pub rng: Arc<Mutex<fastrand::Rng>>,
    /// The queue's name, for the `process <queue>` span.
    pub queue: Arc<str>,
}

/// Layer returned by the backend's `middleware`.
#[derive(Clone)]
pub struct AckLayer {
    pub(crate) shared: AckShared,
}

impl std::fmt::Debug for AckLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckLayer")
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    shared: AckShared,
}

impl<S> std::fmt::Debug for AckService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckService")
    }
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: serde::Serialize,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let ctx = task.data().get::<JobContext>().cloned();
        let fut = self.inner.call(task);
        let Some(ctx) = ctx else {
            return Box::pin(async move { fut.await.map_err(Into::into) });
        };
        let shared = self.shared.clone();
        let run = ctx.run.clone();
        run.started_at_ms.store(
            crate::job::epoch_ms(std::time::SystemTime::now()),
            Ordering::Relaxed,
        );
        Box::pin(async move {
            // If this future is dropped before the attempt ends (worker torn
            // down), stop renewing: the lease lapses and the job runs again.
            let guard = DropGuard {
                run: Some(run.clone()),
                held: shared.held.clone(),
            };
            let span = process_span(&shared.queue, &run);
            let result =
                tracing::Instrument::instrument(AssertUnwindSafe(fut).catch_unwind(), span.clone()).await;
            let result: Result<S::Response, BoxDynError> = match result {
                Ok(r) => r.map_err(Into::into),
                Err(panic) => {
                    WorkerStats::add(&shared.stats.panics, 1);
                    Err(format!("handler panicked: {}", panic_message(&panic)).into())
                }
            };
            // In the span, so the outcome's log line ("will retry", "moving
            // to dead") carries the job's request id and trace.
            let outcome = span.in_scope(|| decide(&shared, &run, &result));
            if crate::trace_context::exporting() {
                record_outcome(&span, &outcome);
            }
            guard.finish(&shared, outcome);
            result
        })
    }
}

/// The span of one attempt: `job.*` and `request_id` fields for the logs;
/// for traces, OpenTelemetry's messaging consumer span `process <queue>`,
/// continuing the trace its job was enqueued in (parent and link).
fn process_span(queue: &str, run: &Run) -> tracing::Span {
    let claimed = &run.claimed;
    let span = tracing::info_span!("job", job.id = %claimed.id, job.kind = %claimed.kind,
        job.attempt = run.attempt(), request_id = %claimed.correlation_id,
        otel.name = tracing::field::Empty, otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty, otel.status_description = tracing::field::Empty);
    if span.is_disabled() || !crate::trace_context::exporting() {
        return span;
    }
    // Only when traced: these would otherwise be noise in every JSON log line.
    span.record("otel.name", format!("process {queue}"));
    span.record("otel.kind", "consumer");
    if !claimed.traceparent.is_empty() {
        crate::trace_context::continue_from(&span, &claimed.traceparent);
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.set_attribute("messaging.system", "redis");
    span.set_attribute("messaging.operation.type", "process");
    span.set_attribute("messaging.operation.name", "process");
    span.set_attribute("messaging.destination.name", queue.to_owned());
    span.set_attribute("messaging.message.id", claimed.id.clone());
    span.set_attribute("hangar.job.kind", claimed.kind.clone());
    span.set_attribute("hangar.job.attempt", i64::from(run.attempt()));
    span.set_attribute("hangar.job.delivery", i64::from(claimed.deliveries));
    span
}

/// The attempt's outcome on its `process` span: `hangar.job.outcome`, and
/// an error status for a failed attempt only; a deferred attempt (its model
/// server down, say) or a cancelled job is not an error of the job's.
fn record_outcome(span: &tracing::Span, outcome: &Outcome) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let (name, error) = match outcome {
        Outcome::Succeeded { .. } => ("succeeded", None),
        Outcome::Cancelled => ("cancelled", None),
        Outcome::Retry { error, .. } => ("retry", Some(error)),
        Outcome::Deferred { reason, .. } => {
            span.set_attribute("hangar.job.deferred_reason", reason.clone());
            ("deferred", None)
        }
        Outcome::Dead { error } => ("dead", Some(error)),
    };
    span.set_attribute("hangar.job.outcome", name);
    if let Some(error) = error {
        span.record("otel.status_code", "error");
        span.record("otel.status_description", error.as_str());
    }
}

struct DropGuard {
    run: Option<Arc<Run>>,
    held: Arc<Held>,
}

impl DropGuard {
    fn finish(mut self, shared: &AckShared, outcome: Outcome) {
        if let Some(run) = self.run.take() {
            run.finished.store(true, Ordering::Relaxed);
            run.release_slot();
            // Still held (and renewed) until the recorder has written the outcome.
            let _ = shared.outcomes.send(Pending::new(run, outcome));
        }
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.held.remove_run(&run);
            run.release_slot();
        }
    }
}

/// The outcome of an attempt, from its result and the kind's policy.
fn decide<R: serde::Serialize>(shared: &AckShared, run: &Run, result: &Result<R, BoxDynError>) -> Outcome {
    let attempt = run.attempt();
    let kind = &run.claimed.kind;
    match result {
        Ok(response) => Outcome::Succeeded {
            result: serde_json::to_string(response).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "job result does not serialise to JSON; storing null");
                "null".to_owned()
            }),
        },
        Err(_) if run.cancel_requested.load(Ordering::Relaxed) => Outcome::Cancelled,
        Err(err) => {
            let text = error_chain(err.as_ref());
            let out_of_attempts = attempt >= run.claimed.max_attempts;
            if let Some(d) = err.downcast_ref::<Deferred>() {
                tracing::info!(job.id = %run.claimed.id, reason = %d.reason, delay = ?d.delay, "deferred; the attempt is not counted");
                Outcome::Deferred {
                    reason: d.reason.clone(),
                    delay: d.delay,
                }
            } else if err.downcast_ref::<AbortError>().is_some() {
                tracing::warn!(job.id = %run.claimed.id, error = %text, "permanent failure; moving to dead");
                Outcome::Dead {
                    error: format!("permanent failure: {text}"),
                }
            } else if out_of_attempts {
                tracing::warn!(job.id = %run.claimed.id, error = %text, attempt, "out of attempts; moving to dead");
                Outcome::Dead {
                    error: format!("failed after {attempt} attempts: {text}"),
                }
            } else {
                let delay = match err.downcast_ref::<RetryAfterError>() {
                    Some(r) => r.get_duration(),
                    None => {
                        let mut rng = shared.rng.lock().unwrap_or_else(|p| p.into_inner());
                        shared.policies.for_kind(kind).delay(attempt, &mut rng)
                    }
                };
                tracing::info!(job.id = %run.claimed.id, error = %text, attempt, retry_in = ?delay, "attempt failed; will retry");
                Outcome::Retry {
                    error: text,
                    delay: delay.min(Duration::from_secs(30 * 24 * 3600)),
                }
            }
        }
    }
}

/// "outer: inner: root", skipping apalis's wrapper prefixes.
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let wrapper = e.is::<AbortError>() || e.is::<RetryAfterError>();
        if !wrapper {
            parts.push(e.to_string());
        }
        cur = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad credentials")]
    struct Creds;

    #[test]
    fn error_chain_drops_wrappers_and_keeps_causes() {
        let e: BoxDynError = Box::new(permanent(Creds));
        assert_eq!(error_chain(e.as_ref()), "bad credentials");
        let e: BoxDynError = "plain".into();
        assert_eq!(error_chain(e.as_ref()), "plain");
    }
}
