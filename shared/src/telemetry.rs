//! Logging for every binary: JSON lines in production, readable text locally.
//! Spans carry `request_id`, `job.id` and `job.kind`, so one id follows a
//! request from the API into the worker's log lines.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber (once; later calls are ignored, which
/// lets tests start several components in one process).
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
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
