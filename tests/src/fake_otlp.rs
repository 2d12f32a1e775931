//! An OTLP/HTTP trace receiver on a free loopback port, as a collector
//! would be: `POST /v1/traces` with an `ExportTraceServiceRequest`, as
//! protobuf (`application/x-protobuf`) or JSON (`application/json`),
//! decoded with the `opentelemetry-proto` types. It keeps every span,
//! flattened to what the tests compare.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
};
use prost::Message;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of its resource.
    pub service: String,
    /// Its name.
    pub name: String,
    /// OTLP's span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// Hex ids.
    pub trace_id: String,
    /// Hex.
    pub span_id: String,
    /// Hex; empty for a root.
    pub parent_span_id: String,
    /// Its links, as (trace id, span id).
    pub links: Vec<(String, String)>,
    /// Its attributes, each as text.
    pub attributes: BTreeMap<String, String>,
    /// Status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// Content type of the request it came in.
    pub content_type: String,
    /// Content encoding of that request ("" or "gzip").
    pub content_encoding: String,
}

impl ReceivedSpan {
    /// Attribute `key`, or "".
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// OTLP span kinds.
pub mod kind {
    /// Internal.
    pub const INTERNAL: i32 = 1;
    /// Server.
    pub const SERVER: i32 = 2;
    /// Client.
    pub const CLIENT: i32 = 3;
    /// Producer.
    pub const PRODUCER: i32 = 4;
    /// Consumer.
    pub const CONSUMER: i32 = 5;
}

/// The receiver; stops with the test process. It answers from a thread
/// and runtime of its own, so a test that blocks its runtime's only thread
/// (`Traces::flush` waits synchronously for the export) is still answered.
pub struct FakeOtlp {
    /// Its base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl FakeOtlp {
    pub fn start() -> Self {
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await
            })
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            spans,
        }
    }

    /// The variables that send a process's spans here, in batches at
    /// most 100 ms old (not the default 5 s), for a test's builder.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]
    }

    /// Every span so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` accepts the spans received, and returns them.
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                started.elapsed() < within,
                "{what} not received within {within:?}; got {} spans: {:#?}",
                spans.len(),
                spans
                    .iter()
                    .map(|s| format!("{} {} ({})", s.service, s.name, s.trace_id))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn receive(
    State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let content_encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match content_encoding.as_str() {
        "" => body,
        "gzip" => {
            let mut inflated = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut inflated)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip: {e}")))?;
            Bytes::from(inflated)
        }
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding {other:?}"),
            ));
        }
    };
    let request: ExportTraceServiceRequest = if content_type.starts_with("application/json") {
        serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))?
    } else if content_type.starts_with("application/x-protobuf") {
        ExportTraceServiceRequest::decode(body)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad protobuf: {e}")))?
    } else {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {content_type:?}"),
        ));
    };
    let mut got = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                got.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    attributes: attributes(&span.attributes),
                    status: span.status.map_or(0, |s| s.code),
                    content_type: content_type.clone(),
                    content_encoding: content_encoding.clone(),
                });
            }
        }
    }
    spans.lock().unwrap().extend(got);
    // An empty ExportTraceServiceResponse: full success.
    Ok(Vec::new())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(list)) => format!(
            "[{}]",
            list.values
                .iter()
                .map(|v| text(Some(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
