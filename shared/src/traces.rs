//! Traces, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: `tracing` spans become
//! OpenTelemetry spans (tracing-opentelemetry) and go to a collector as
//! OTLP over HTTP, protobuf or JSON, through the same reqwest (and rustls)
//! the rest of Hangar uses. Off, and free, when it is unset.
//!
//! Spans are exported from one background thread through a bounded queue
//! ([`BoundedBatch`]): a slow or dead collector never slows a request or a
//! job. What the queue cannot take, and what the collector does not accept,
//! is dropped and counted (`hangar_trace_spans_dropped_total{reason}`), and
//! a failing collector is logged when it starts failing and when it
//! recovers, not once per batch. The SDK's own batch processor does the
//! same queueing but only logs its drop count at shutdown, which no alert
//! can see; that is why this one exists.
//!
//! Which spans exist: the API's request spans (continuing a caller's W3C
//! `traceparent`), `send <queue>` around each enqueue, the worker's
//! `process <queue>` (continuing the job's recorded traceparent; see
//! `hangar_queue::trace_context`), and inside them Redis scripts, SQL
//! batches, AWS calls and model requests.

use std::{
    sync::{
        LazyLock, Mutex, OnceLock,
        mpsc::{self, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{Sampler, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor},
};
use prometheus_client::metrics::{counter::Counter, family::Family};

use crate::config::{OtlpCompression, OtlpProtocol, ParentlessChoice, SamplerChoice, TraceConfig};

/// Labels of the dropped-spans counter: `reason` is `queue_full` (the
/// exporter fell behind) or `export_failed` (the collector refused the
/// batch or could not be reached).
pub type DropLabels = Vec<(String, String)>;

static DROPPED: LazyLock<Family<DropLabels, Counter>> = LazyLock::new(Family::default);
static EXPORTED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Spans dropped, by reason; each process registers it as
/// `hangar_trace_spans_dropped_total`.
pub fn dropped_family() -> Family<DropLabels, Counter> {
    DROPPED.clone()
}

/// Spans the collector accepted; registered as `hangar_trace_spans_exported_total`.
pub fn exported_counter() -> Counter {
    EXPORTED.clone()
}

fn drop_spans(reason: &str, n: usize) {
    DROPPED
        .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
        .inc_by(n as u64);
}

/// Keeps exporting while held; dropping it sends what is queued, waiting
/// at most 5 s in all (a span that ends after that is counted as `stopped`).
#[must_use = "traces stop when this is dropped"]
#[derive(Debug, Default)]
pub struct Traces(Option<SdkTracerProvider>);

impl Traces {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Sends every finished span now (tests, and before a process exits).
    pub fn flush(&self) {
        if let Some(p) = &self.0 {
            let _ = p.force_flush();
        }
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown_with_timeout(Duration::from_secs(5));
            hangar_queue::trace_context::set_exporting(false);
        }
    }
}

/// The tracer provider `config` describes for `component` (api, worker,
/// scheduler), or `Ok(None)` when tracing is off.
pub(crate) fn provider(config: &TraceConfig, component: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = &config.endpoint else {
        return Ok(None);
    };
    let client = reqwest::Client::builder().timeout(config.timeout).build()?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.clone())
        .with_protocol(match config.protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        })
        .with_timeout(config.timeout)
        .with_headers(
            config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
        )
        .with_http_client(ReqwestClient(client));
    if config.compression == OtlpCompression::Gzip {
        exporter = exporter.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    let mut exporter = exporter.build()?;
    let resource = resource(config, component);
    exporter.set_resource(&resource);
    let processor = BoundedBatch::start(exporter, config, endpoint.clone())?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(config.sampler))
        .with_span_processor(processor)
        .build();
    hangar_queue::trace_context::set_exporting(true);
    Ok(Some(provider))
}

/// Wraps `provider` into the guard `telemetry::init` returns.
pub(crate) fn guard(provider: Option<SdkTracerProvider>) -> Traces {
    Traces(provider)
}

/// `service.name` (OTEL_SERVICE_NAME, else one from
/// OTEL_RESOURCE_ATTRIBUTES, else `hangar-<component>`), the version, the
/// host and process, and the other attributes given.
fn resource(config: &TraceConfig, component: &str) -> Resource {
    let from_attributes = config
        .resource
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let name = config
        .service_name
        .clone()
        .or(from_attributes)
        .unwrap_or_else(|| format!("hangar-{component}"));
    Resource::builder_empty()
        .with_attributes(
            config
                .resource
                .iter()
                .filter(|(k, _)| k != "service.name")
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("hangar.component", component.to_owned()),
            KeyValue::new(
                "host.name",
                gethostname::gethostname().to_string_lossy().into_owned(),
            ),
            KeyValue::new("process.pid", i64::from(std::process::id())),
        ])
        .with_service_name(name)
        .build()
}

fn sampler(choice: SamplerChoice) -> Sampler {
    match choice {
        SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
        SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
        SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
        SamplerChoice::ParentBased(root) => Sampler::ParentBased(Box::new(match root {
            ParentlessChoice::AlwaysOn => Sampler::AlwaysOn,
            ParentlessChoice::AlwaysOff => Sampler::AlwaysOff,
            ParentlessChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
        })),
    }
}

/// The OTLP exporter's HTTP client: the workspace's reqwest, so exports
/// use the same TLS stack as everything else and no second client is built.
#[derive(Debug)]
struct ReqwestClient(reqwest::Client);

/// The largest collector answer read (OTLP answers are tiny).
const MAX_ANSWER: usize = 1 << 20;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ReqwestClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let answer = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = answer.status();
        let headers = answer.headers().clone();
        // Read chunk by chunk so a misbehaving collector's endless answer
        // costs at most MAX_ANSWER bytes of memory.
        let mut answer = answer;
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = answer.chunk().await? {
            let room = MAX_ANSWER - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_ANSWER {
                break;
            }
        }
        let body = body.freeze();
        let mut response = http::Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

enum Message {
    Span(Box<SpanData>),
    /// Export what has gathered, then answer.
    Flush(SyncSender<()>),
    /// Export what has gathered, stop, then answer.
    Stop(SyncSender<()>),
}

/// A batch span processor whose queue is bounded and whose losses are
/// counted: `on_end` never blocks (a full queue drops the span), and one
/// thread exports batches of up to `max_batch` spans every `delay`, or
/// sooner when a batch fills.
#[derive(Debug)]
struct BoundedBatch {
    tx: SyncSender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Span(_) => "Span",
            Self::Flush(_) => "Flush",
            Self::Stop(_) => "Stop",
        })
    }
}

impl BoundedBatch {
    fn start(
        exporter: opentelemetry_otlp::SpanExporter,
        config: &TraceConfig,
        endpoint: String,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(config.max_queue);
        let (max_batch, delay) = (config.max_batch, config.delay);
        let thread = std::thread::Builder::new()
            .name("hangar-traces".into())
            .spawn(move || export_loop(&rx, &exporter, max_batch, delay, &endpoint))?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Sends `message` and waits for the exporter's answer, both within
    /// `timeout`: a full queue (the exporter busy with a slow collector) is
    /// waited for only until then, so a process's exit is never held longer.
    fn ask(&self, message: impl FnOnce(SyncSender<()>) -> Message, timeout: Duration) -> OTelSdkResult {
        let deadline = std::time::Instant::now() + timeout;
        let (done, answered) = mpsc::sync_channel(1);
        let mut message = message(done);
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(OTelSdkError::AlreadyShutdown),
                Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TrySendError::Full(_)) => return Err(OTelSdkError::Timeout(timeout)),
            }
        }
        answered
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for BoundedBatch {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.tx.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => drop_spans("queue_full", 1),
            Err(TrySendError::Disconnected(_)) => drop_spans("stopped", 1),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Message::Flush, Duration::from_secs(10))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let answer = self.ask(Message::Stop, timeout);
        if answer.is_ok()
            && let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take())
        {
            let _ = thread.join();
        }
        answer
    }
}

/// Whether the collector took the last batch, for logging only changes.
struct Health {
    failing_since: Option<Instant>,
    last_warning: Option<Instant>,
}

/// How often a collector that keeps failing is logged again.
const REPEAT_WARNING: Duration = Duration::from_secs(300);

fn export_loop(
    rx: &mpsc::Receiver<Message>,
    exporter: &opentelemetry_otlp::SpanExporter,
    max_batch: usize,
    delay: Duration,
    endpoint: &str,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        eprintln!("hangar-traces: could not start the exporter's runtime; traces are off");
        return;
    };
    let mut health = Health {
        failing_since: None,
        last_warning: None,
    };
    let mut batch: Vec<SpanData> = Vec::with_capacity(max_batch);
    let mut deadline = Instant::now() + delay;
    let send = |batch: &mut Vec<SpanData>, health: &mut Health| {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::replace(batch, Vec::with_capacity(max_batch));
        let n = spans.len();
        // The exporter's own work (reqwest, hyper) is not traced: its spans
        // would be exported in turn, forever.
        let result = tracing::dispatcher::with_default(&tracing::Dispatch::none(), || {
            runtime.block_on(exporter.export(spans))
        });
        match result {
            Ok(()) => {
                EXPORTED.inc_by(n as u64);
                if let Some(since) = health.failing_since.take() {
                    tracing::info!(
                        collector = endpoint,
                        failing_for_s = since.elapsed().as_secs(),
                        "trace export recovered"
                    );
                }
            }
            Err(e) => {
                drop_spans("export_failed", n);
                let now = Instant::now();
                let first = health.failing_since.is_none();
                let due = health.last_warning.is_none_or(|t| now - t >= REPEAT_WARNING);
                health.failing_since.get_or_insert(now);
                if first || due {
                    health.last_warning = Some(now);
                    tracing::warn!(collector = endpoint, error = %e, spans = n,
                        "trace export failed; spans are dropped and counted in hangar_trace_spans_dropped_total until the collector answers (jobs and requests are not affected)");
                }
            }
        }
    };
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= max_batch {
                    send(&mut batch, &mut health);
                    deadline = Instant::now() + delay;
                }
            }
            Ok(Message::Flush(done)) => {
                send(&mut batch, &mut health);
                let _ = done.send(());
            }
            Ok(Message::Stop(done)) => {
                send(&mut batch, &mut health);
                let _ = exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                send(&mut batch, &mut health);
                deadline = Instant::now() + delay;
            }
            Err(RecvTimeoutError::Disconnected) => {
                send(&mut batch, &mut health);
                return;
            }
        }
    }
}

/// The process's subscriber, kept so log lines can look up the trace of
/// their span (`telemetry`'s JSON format); set once by `telemetry::init`.
pub(crate) static DISPATCH: OnceLock<tracing::Dispatch> = OnceLock::new();

/// The (trace id, span id) of the innermost traced span this thread is
/// in. Read from the registry itself, not through a log layer's filtered
/// view: with `HANGAR_LOG_LEVEL=warn` the info-level request and job spans
/// are hidden from the log layer but still traced, and the warn lines are
/// the ones an operator most needs to join to their trace.
pub(crate) fn current_ids() -> Option<(String, String)> {
    use tracing_subscriber::registry::LookupSpan;
    if !hangar_queue::trace_context::exporting() {
        return None;
    }
    let dispatch = DISPATCH.get()?;
    let current = dispatch.current_span();
    let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
    registry
        .span(current.id()?)?
        .scope()
        .find_map(|span| ids_of(&span.id()))
}

/// The (trace id, span id) of the span with `id`, when it is traced.
fn ids_of(id: &tracing::span::Id) -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    let dispatch = DISPATCH.get()?;
    let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// OpenTelemetry's messaging producer span for enqueuing job `job_id` on
/// `queue` (`send <queue>`), a child of the current span; a disabled span
/// when tracing is off.
pub fn send_span(queue: &str, job_id: &str) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !hangar_queue::trace_context::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("send", otel.name = %format!("send {queue}"), otel.kind = "producer");
    span.set_attribute("messaging.system", "redis");
    span.set_attribute("messaging.operation.type", "send");
    span.set_attribute("messaging.operation.name", "send");
    span.set_attribute("messaging.destination.name", queue.to_owned());
    if !job_id.is_empty() {
        span.set_attribute("messaging.message.id", job_id.to_owned());
    }
    span
}

/// A client span for one SQL statement or transaction (`INSERT job_runs`),
/// over `rows` rows when known, inside traces only.
pub fn sql_span(operation: &str, table: &str, rows: Option<usize>) -> tracing::Span {
    hangar_queue::trace_context::child_span(|| {
        tracing::info_span!("sql", otel.name = %format!("{operation} {table}"), otel.kind = "client",
            db.system.name = "postgresql", db.operation.name = %operation, db.collection.name = %table,
            db.operation.batch.size = rows)
    })
}

/// Most links one span carries to the traces of the jobs it handles (a
/// batch of 256 enqueues links its first 128).
pub const MAX_LINKS: usize = 128;

/// A root span for work done for many jobs at once (a group-committed
/// enqueue, a repair re-dispatch): with one job it continues that job's
/// trace; with several it starts its own and links theirs, as
/// OpenTelemetry's batch messaging conventions do. Disabled when tracing is off.
pub fn batch_span<'a>(
    name: &'static str,
    traceparents: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> tracing::Span {
    if !hangar_queue::trace_context::exporting() {
        return tracing::Span::none();
    }
    let jobs = traceparents.len();
    let known: Vec<&str> = traceparents.flatten().take(MAX_LINKS).collect();
    match known.as_slice() {
        [one] if jobs == 1 => {
            let span = tracing::info_span!(parent: None, "batch", otel.name = name, jobs);
            hangar_queue::trace_context::continue_from(&span, one);
            span
        }
        many => linked_root_span(name, jobs, many.iter().copied()),
    }
}

/// A span that starts its own trace, linked to the traces of the jobs it
/// acts on (at most [`MAX_LINKS`]): a repair re-dispatch, a scheduler
/// tick. Disabled when tracing is off.
pub fn linked_root_span<'a>(
    name: &str,
    jobs: usize,
    traceparents: impl Iterator<Item = &'a str>,
) -> tracing::Span {
    if !hangar_queue::trace_context::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(parent: None, "batch", otel.name = %name, jobs);
    traceparents
        .take(MAX_LINKS)
        .for_each(|t| hangar_queue::trace_context::link(&span, t));
    span
}
