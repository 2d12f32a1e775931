//! A scripted OpenAI-compatible model server for the failures a real one
//! will not produce on demand: streams that stall, events that are not
//! JSON, connections cut mid-stream, error statuses. It also counts the
//! requests it has in flight (the highest count proves the cross-worker
//! cap) and notices clients hanging up (cancellation drops the request).

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

/// What the server does with one streaming request.
#[derive(Debug, Clone)]
pub enum Script {
    /// Streams `tokens` deltas (`t0 t1 ...`), `delay` apart, then finishes properly.
    Stream { tokens: usize, delay: Duration },
    /// Streams `after` deltas, then sends nothing more (keeps the connection open).
    Stall { after: usize },
    /// Streams `after` deltas, then an event that is not JSON.
    Malformed { after: usize },
    /// Streams `after` deltas, then closes the connection without `[DONE]`.
    Disconnect { after: usize },
    /// Answers `status` with `body`.
    Status { status: u16, body: Value },
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Script>>,
    fallback: Mutex<Option<Script>>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    requests: AtomicU64,
    hung_up: AtomicU64,
    completed: AtomicU64,
}

/// A running fake server.
#[derive(Clone)]
pub struct FakeModel {
    shared: Arc<Shared>,
    /// `http://127.0.0.1:{port}`.
    pub url: String,
}

impl FakeModel {
    /// Starts it; requests beyond the queued scripts follow `fallback`.
    pub async fn start(fallback: Script) -> Self {
        Self::start_on(0, fallback).await
    }

    /// Starts it on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(port: u16, fallback: Script) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.fallback.lock().unwrap() = Some(fallback);
        let app = Router::new()
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { shared, url }
    }

    /// Queues scripts for the next streaming requests, in order.
    pub fn then(&self, scripts: impl IntoIterator<Item = Script>) {
        self.shared.script.lock().unwrap().extend(scripts);
    }

    /// Streaming requests received.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The most streaming requests ever in flight at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Streams the client abandoned before their end.
    pub fn hung_up(&self) -> u64 {
        self.shared.hung_up.load(Ordering::SeqCst)
    }

    /// Streams sent to the end.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::SeqCst)
    }
}

/// Counts a stream in flight; on drop before `done`, counts a hang-up.
struct InFlight {
    shared: Arc<Shared>,
    done: std::sync::atomic::AtomicBool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.done.load(Ordering::SeqCst) {
            self.shared.completed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.shared.hung_up.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn delta(i: usize) -> Bytes {
    let chunk =
        json!({"choices": [{"index": 0, "delta": {"content": format!("t{i} ")}, "finish_reason": null}]});
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn finish(tokens: usize) -> Bytes {
    let stop = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]});
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}});
    Bytes::from(format!("data: {stop}\n\ndata: {usage}\n\ndata: [DONE]\n\n"))
}

async fn chat(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    if body["stream"] != true {
        // The warm-up: a plain, one-token answer.
        return Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "t0"}, "finish_reason": "length"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
        .into_response();
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let script = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| shared.fallback.lock().unwrap().clone())
        .expect("a script");
    if let Script::Status { status, body } = script {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let guard = InFlight {
        shared: shared.clone(),
        done: false.into(),
    };
    let stream = futures_util::stream::unfold((0usize, script, guard), |(i, script, guard)| async move {
        let (tokens, delay, end) = match &script {
            Script::Stream { tokens, delay } => (*tokens, *delay, "finish"),
            Script::Stall { after } => (*after, Duration::ZERO, "stall"),
            Script::Malformed { after } => (*after, Duration::ZERO, "malformed"),
            Script::Disconnect { after } => (*after, Duration::ZERO, "disconnect"),
            Script::Status { .. } => unreachable!(),
        };
        if i < tokens {
            tokio::time::sleep(delay).await;
            return Some((Ok::<_, Infallible>(delta(i)), (i + 1, script, guard)));
        }
        if i > tokens {
            guard.done.store(true, Ordering::SeqCst);
            return None;
        }
        match end {
            "finish" => Some((Ok(finish(tokens)), (i + 1, script, guard))),
            "malformed" => Some((
                Ok(Bytes::from("data: {\"choices\": [oops\n\n")),
                (i + 1, script, guard),
            )),
            "stall" => {
                std::future::pending::<()>().await;
                None
            }
            _ => {
                guard.done.store(true, Ordering::SeqCst);
                None
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}
