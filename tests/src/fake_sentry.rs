//! A stand-in for Sentry's ingest endpoint, on a free loopback port: it
//! takes envelopes (`POST /api/<project>/envelope/`), decodes them as the
//! protocol describes (a header line, then per item a header line and a
//! payload of `length` bytes or up to the newline) and keeps each event,
//! with the `X-Sentry-Auth` header it came with.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::Value;

/// One event received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The event's JSON.
    pub event: Value,
    /// The whole envelope as sent (to look for what must not be in it).
    pub raw: String,
    /// Its `X-Sentry-Auth` header.
    pub auth: String,
}

/// The fake ingest endpoint; stops with the test process.
pub struct FakeSentry {
    /// A DSN pointing at it (project 42, public key `hangarpublickey`).
    pub dsn: String,
    events: Arc<Mutex<Vec<Received>>>,
}

impl FakeSentry {
    pub async fn start() -> Self {
        let events: Arc<Mutex<Vec<Received>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/api/{project}/envelope/", post(envelope))
            .with_state(events.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            dsn: format!("http://hangarpublickey@127.0.0.1:{port}/42"),
            events,
        }
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Received> {
        self.events.lock().unwrap().clone()
    }

    /// Waits for an event `matches` accepts.
    pub async fn wait_for(&self, what: &str, within: Duration, matches: impl Fn(&Value) -> bool) -> Received {
        let started = Instant::now();
        loop {
            if let Some(r) = self.events().into_iter().find(|r| matches(&r.event)) {
                return r;
            }
            assert!(
                started.elapsed() < within,
                "no {what} event within {within:?}; got: {:#?}",
                self.events()
                    .iter()
                    .map(|r| &r.event["message"])
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn envelope(
    State(events): State<Arc<Mutex<Vec<Received>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let auth = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let raw = String::from_utf8_lossy(&body).into_owned();
    for event in decode(&body) {
        events.lock().unwrap().push(Received {
            event,
            raw: raw.clone(),
            auth: auth.clone(),
        });
    }
    "{}"
}

/// The event payloads of an envelope.
pub fn decode(body: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    // The envelope header line.
    let Some(mut at) = body.iter().position(|&b| b == b'\n').map(|i| i + 1) else {
        return out;
    };
    while at < body.len() {
        let end = body[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| at + i);
        let Ok(header) = serde_json::from_slice::<Value>(&body[at..end]) else {
            break;
        };
        at = end + 1;
        let len = header["length"].as_u64().map(|l| l as usize).unwrap_or_else(|| {
            body[at.min(body.len())..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(body.len() - at)
        });
        let payload = &body[at.min(body.len())..(at + len).min(body.len())];
        if header["type"] == "event"
            && let Ok(event) = serde_json::from_slice::<Value>(payload)
        {
            out.push(event);
        }
        at += len + 1;
    }
    out
}
