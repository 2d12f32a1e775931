//! W3C trace context (`traceparent`) carried by jobs, so the span that runs
//! a job continues the trace of the request (or scheduler tick) that
//! enqueued it, across Redis and across worker processes.
//!
//! A job stores the traceparent of its `send <queue>` span as text; the
//! worker's `process <queue>` span takes it as parent and as a link, as
//! OpenTelemetry's messaging conventions describe. Everything here works
//! on `tracing` spans: with no OpenTelemetry layer installed (tracing off)
//! a span has no context, [`of`] returns `None` and [`continue_from`] does
//! nothing, at the cost of one failed downcast.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called once by the process that installs an exporting OpenTelemetry
/// layer (`hangar_shared::traces`).
pub fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// Whether spans are exported. The spans that exist only for traces (a
/// Redis script, a SQL batch, an AWS call, a model request) are made only
/// then, so they cost nothing when tracing is off.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A span that exists only for traces: `make()` when exporting and inside
/// a trace (a span is current), else a disabled span. The worker's idle
/// polls and other background round trips would otherwise each start a
/// trace of their own.
pub fn child_span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if exporting() && !tracing::Span::current().is_none() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// Parses a W3C `traceparent` header value: `00-<trace id>-<parent id>-<flags>`,
/// lowercase hex. A later version is read by its first four fields, as the
/// specification asks; `ff`, all-zero ids and malformed text are refused.
pub fn parse(value: &str) -> Option<SpanContext> {
    let value = value.trim();
    let mut parts = value.splitn(5, '-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && value.len() != 55 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// `cx` as a version-00 `traceparent`.
pub fn format(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// The `traceparent` of `span`, when tracing is on and it has a valid context.
pub fn of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_cx = cx.span().span_context().clone();
    span_cx.is_valid().then(|| format(&span_cx))
}

/// Makes `span` (not yet entered) a child of the remote `traceparent`
/// (an HTTP caller's). A malformed value is ignored.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if let Some(remote) = parse(traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
}

/// Makes `span` (not yet entered) a child of the remote `traceparent` and
/// links it there too: the messaging conventions' "creation context" link,
/// which survives a backend that re-parents. A malformed value is ignored.
pub fn continue_from(span: &tracing::Span, traceparent: &str) {
    if let Some(remote) = parse(traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(remote.clone()));
        span.add_link(remote);
    }
}

/// Links `span` to the remote `traceparent` without joining its trace:
/// for work that starts its own trace because of an older one (a repair
/// re-dispatch, a scheduler tick's job).
pub fn link(span: &tracing::Span, traceparent: &str) {
    if let Some(remote) = parse(traceparent) {
        span.add_link(remote);
    }
}

/// Sets attribute `key` of `span` to a list of strings (OpenTelemetry's
/// array attribute; a `tracing` field can only hold one value).
pub fn set_strings(span: &tracing::Span, key: &'static str, values: impl IntoIterator<Item = String>) {
    let values = values.into_iter().map(Into::into).collect();
    span.set_attribute(
        key,
        opentelemetry::Value::Array(opentelemetry::Array::String(values)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_example_round_trips() {
        let cx = parse(SAMPLE).unwrap();
        assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled() && cx.is_remote());
        assert_eq!(format(&cx), SAMPLE);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let cx = parse(later).unwrap();
        assert!(!cx.is_sampled());
    }

    #[test]
    fn without_an_opentelemetry_layer_spans_have_no_traceparent() {
        let span = tracing::info_span!("plain");
        assert_eq!(of(&span), None);
        continue_from(&span, SAMPLE);
    }
}
