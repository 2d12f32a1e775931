//! Logging for every binary: JSON lines in production, readable text locally.
//! Spans carry `request_id`, `job.id` and `job.kind`, so one id follows a
//! request from the API into the worker's log lines. With tracing on
//! (`crate::traces`), the same spans are exported and each JSON line in a
//! traced span carries `trace_id` and `span_id`, so logs and traces join.

use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::LevelFilter,
    fmt::{self, FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::{
    config::{LogConfig, LogFormat, TraceConfig},
    traces::Traces,
};

/// Installs the global subscriber (once; later calls are ignored, which
/// lets tests start several components in one process) and, when
/// `traces` names a collector, the OpenTelemetry layer that exports spans
/// as `component` (api, worker, scheduler). Keep the returned guard until
/// exit: dropping it sends the spans still queued.
pub fn init(log: &LogConfig, traces: &TraceConfig, component: &str) -> Traces {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = match crate::traces::provider(traces, component) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tracing is off: the OTLP exporter could not be built: {e:#}");
            None
        }
    };
    // Traces keep every span at info and above whatever the log level: an
    // operator who quiets the logs to `warn` must not lose the traces too.
    // So with tracing on, the log level filters the log layer alone; with
    // it off, it filters globally, as before traces existed: a span or
    // event below the level is then disabled at its callsite and costs
    // nothing on the request path.
    let installed = match &provider {
        Some(p) => {
            use opentelemetry::trace::TracerProvider as _;
            let otel = tracing_opentelemetry::layer()
                .with_tracer(p.tracer("hangar"))
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_filter(LevelFilter::INFO);
            tracing_subscriber::registry()
                .with(otel)
                .with(log_layer(log.format).with_filter(filter))
                .try_init()
        }
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(log.format))
            .try_init(),
    };
    if installed.is_ok() {
        let _ = crate::traces::DISPATCH.set(tracing::dispatcher::get_default(Clone::clone));
        if let Some(endpoint) = &traces.endpoint {
            tracing::info!(collector = %endpoint.split('?').next().unwrap_or_default(), component,
                sampler = ?traces.sampler, "exporting traces (OTLP)");
        }
    }
    crate::traces::guard(provider)
}

/// The log layer: JSON lines (with trace ids when traced) or compact
/// text, to stderr.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .map_event_format(WithTraceIds)
            .boxed(),
        LogFormat::Pretty => fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
    }
}

/// The JSON event format with `trace_id` and `span_id` first when the
/// event's span is traced.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = crate::traces::current_ids() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            None => writer.write_str(&line),
        }
    }
}

/// Registers what every process counts of its error reports and traces
/// leaving it: reports dropped (`hangar_error_reports_dropped_total`),
/// spans dropped by reason (`hangar_trace_spans_dropped_total`) and spans
/// exported (`hangar_trace_spans_exported_total`).
pub fn register_export_metrics(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "error_reports_dropped",
        "Error reports (SENTRY_DSN) dropped: the queue to Sentry was full, or Sentry refused or could not be reached (each also logged)",
        crate::error_reports::dropped_counter(),
    );
    registry.register(
        "trace_spans_dropped",
        "Spans (OTEL_EXPORTER_OTLP_ENDPOINT) dropped, by reason: queue_full (the exporter fell behind), export_failed (the collector refused or could not be reached), stopped",
        crate::traces::dropped_family(),
    );
    registry.register(
        "trace_spans_exported",
        "Spans the OTLP collector accepted",
        crate::traces::exported_counter(),
    );
}

/// Logs Redis settings that can lose jobs (eviction, no persistence), once
/// at start, so an operator sees them before a job goes missing.
pub async fn warn_about_redis(queue: &hangar_queue::Queue) {
    match queue.server_warnings().await {
        Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
        Err(e) => tracing::debug!(error = %e, "could not read redis settings (CONFIG may be disabled)"),
    }
}

/// The `/metrics` listener of a worker or scheduler; it stops (and frees
/// its port) when this is dropped, so a `run` that returns takes its
/// listener with it, in a test process as in a real one.
#[must_use = "the listener stops when this is dropped"]
#[derive(Debug)]
pub struct MetricsServer(tokio::task::JoinHandle<()>);

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `render()` (the Prometheus text exposition) at `GET /metrics` on
/// `bind`, in the background, for the binaries without an HTTP API of their
/// own (worker, scheduler), until the returned guard is dropped. Fails only
/// if `bind` cannot be bound.
pub async fn serve_metrics(
    bind: std::net::SocketAddr,
    component: &'static str,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> anyhow::Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move { render() }
        }),
    );
    tracing::info!(addr = %listener.local_addr()?, component, "metrics listening");
    Ok(MetricsServer(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, component, "metrics server stopped");
        }
    })))
}
