//! An OpenAI-compatible client for one model server: streaming chat
//! completions (`/v1/chat/completions` with `stream: true`), token counting
//! (llama.cpp's `/tokenize`), and the health probe and warm-up.
//!
//! One attempt is one HTTP request; retrying is the caller's business (see
//! [`crate::runner`]), so that each retry can be counted, logged and shown.
//!
//! About 520 lines: one client of one protocol (OpenAI-compatible chat,
//! streamed), its error mapping and its tests' fixtures' expectations.

use std::time::{Duration, Instant};

use hangar_shared::{chat::ChatMessage, models::ModelConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{error::InferenceError, sse::SseParser};

/// Most bytes of an error body kept for the message.
const ERROR_BODY_LIMIT: usize = 4_096;
/// How long a health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One chat completion request, parameters resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The prompt.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling.
    pub top_p: f64,
    /// Tokens to generate at most.
    pub max_tokens: u32,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<u32>,
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text.
    pub content: String,
    /// Why generation ended: `stop`, `length`, ...
    pub finish_reason: String,
    /// Prompt tokens, as the server counted them.
    pub prompt_tokens: Option<u64>,
    /// Generated tokens, as the server counted them.
    pub completion_tokens: Option<u64>,
    /// Content deltas received.
    pub deltas: u64,
    /// The server's own timings, when it reports them (llama.cpp does).
    pub server_timings: Option<Value>,
    /// From sending the request to the first content.
    pub first_token: Option<Duration>,
    /// From sending the request to the end of the stream.
    pub elapsed: Duration,
}

/// A probe's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Whether the server can take requests.
    pub ok: bool,
    /// What it said, when not ok.
    pub error: Option<String>,
    /// Round trip.
    pub latency: Duration,
}

/// A client for one configured model.
#[derive(Debug, Clone)]
pub struct ModelClient {
    http: reqwest::Client,
    model: ModelConfig,
}

fn connect_error(model: &ModelConfig, e: &reqwest::Error) -> InferenceError {
    let what = if e.is_timeout() {
        ("timeout", "timed out")
    } else if e.is_connect() {
        ("refused", "could not connect")
    } else {
        ("disconnected", "connection failed")
    };
    InferenceError::transient(
        what.0,
        format!(
            "model server {} at {} {}: {}; is it running?",
            model.name,
            model.base_url,
            what.1,
            root_cause(e)
        ),
    )
}

/// The innermost error's text ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl ModelClient {
    /// A client for `model`.
    pub fn new(model: ModelConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(model.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self { http, model }
    }

    /// The model's configuration.
    pub fn model(&self) -> &ModelConfig {
        &self.model
    }

    /// A request to `path` on the server, with its credentials.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.model.base_url));
        match &self.model.api_key {
            Some(k) => r.bearer_auth(k.expose()),
            None => r,
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// The request body for `req`.
    pub fn body(&self, req: &ChatRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": self.model.upstream_model,
            "messages": req.messages,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if !req.stop.is_empty() {
            body["stop"] = json!(req.stop);
        }
        if let Some(seed) = req.seed {
            body["seed"] = json!(seed);
        }
        body
    }

    /// Streams a completion, sending each content delta to `tokens` as it
    /// arrives. Dropping the returned future closes the connection, which
    /// makes llama-server stop generating (that is how cancelling works).
    pub async fn chat_stream(
        &self,
        req: &ChatRequest,
        tokens: &mpsc::UnboundedSender<String>,
    ) -> Result<Completion, InferenceError> {
        // A client span with OpenTelemetry's gen_ai attributes; the time to
        // the first token has no standard attribute yet, so it is ours.
        let span = hangar_queue::trace_context::child_span(|| {
            tracing::info_span!("model request", otel.name = %format!("chat {}", self.model.name),
                otel.kind = "client", otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                gen_ai.operation.name = "chat", gen_ai.request.model = %self.model.name,
                gen_ai.request.max_tokens = req.max_tokens, gen_ai.request.temperature = req.temperature,
                server.address = tracing::field::Empty, server.port = tracing::field::Empty,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                hangar.gen_ai.time_to_first_token_ms = tracing::field::Empty)
        });
        if !span.is_disabled()
            && let Ok(url) = reqwest::Url::parse(&self.model.base_url)
        {
            span.record("server.address", url.host_str().unwrap_or_default());
            span.record("server.port", url.port_or_known_default());
        }
        let result =
            tracing::Instrument::instrument(self.chat_stream_untraced(req, tokens), span.clone()).await;
        if !span.is_disabled() {
            match &result {
                Ok(done) => {
                    span.record("gen_ai.usage.input_tokens", done.prompt_tokens);
                    span.record("gen_ai.usage.output_tokens", done.completion_tokens);
                    hangar_queue::trace_context::set_strings(
                        &span,
                        "gen_ai.response.finish_reasons",
                        [done.finish_reason.clone()],
                    );
                    span.record(
                        "hangar.gen_ai.time_to_first_token_ms",
                        done.first_token.map(|t| t.as_secs_f64() * 1000.0),
                    );
                }
                Err(e) => {
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", e.to_string().as_str());
                }
            }
        }
        result
    }

    /// [`Self::chat_stream`], untraced.
    async fn chat_stream_untraced(
        &self,
        req: &ChatRequest,
        tokens: &mpsc::UnboundedSender<String>,
    ) -> Result<Completion, InferenceError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.model.request_timeout;
        let send = self
            .post("/v1/chat/completions")
            .json(&self.body(req, true))
            .send();
        let response = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => return Err(self.timed_out()),
            Ok(Err(e)) => return Err(connect_error(&self.model, &e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            return Err(self.refusal(status.as_u16(), response).await);
        }
        let mut parser = SseParser::default();
        let mut out = Completion {
            content: String::new(),
            finish_reason: String::new(),
            prompt_tokens: None,
            completion_tokens: None,
            deltas: 0,
            server_timings: None,
            first_token: None,
            elapsed: Duration::ZERO,
        };
        let mut response = response;
        loop {
            let chunk = tokio::select! {
                c = response.chunk() => c,
                () = tokio::time::sleep(self.model.stall_timeout) => {
                    return Err(InferenceError::transient("stalled", format!(
                        "model server {} sent nothing for {:?} mid-stream (stalled); after {} tokens",
                        self.model.name, self.model.stall_timeout, out.deltas)));
                }
                () = tokio::time::sleep_until(deadline) => return Err(self.timed_out()),
            };
            let bytes = match chunk {
                Ok(Some(b)) => b,
                Ok(None) if !out.finish_reason.is_empty() && !parser.has_partial() => {
                    // Finished, but the server closed without `[DONE]`: the
                    // answer is whole; take it rather than generate again.
                    out.elapsed = started.elapsed();
                    return Ok(out);
                }
                Ok(None) => {
                    return Err(InferenceError::transient(
                        "disconnected",
                        format!(
                            "model server {} closed the stream before it finished (after {} tokens)",
                            self.model.name, out.deltas
                        ),
                    ));
                }
                Err(e) => {
                    return Err(InferenceError::transient(
                        "disconnected",
                        format!(
                            "model server {} broke off the stream after {} tokens: {}",
                            self.model.name,
                            out.deltas,
                            root_cause(&e)
                        ),
                    ));
                }
            };
            let events = parser.push(&bytes).map_err(|e| self.malformed(&e.to_string()))?;
            for event in events {
                if event.data == "[DONE]" {
                    if out.finish_reason.is_empty() {
                        return Err(self.malformed("the stream ended ([DONE]) without a finish reason"));
                    }
                    out.elapsed = started.elapsed();
                    return Ok(out);
                }
                let chunk: Value = serde_json::from_str(&event.data).map_err(|e| {
                    self.malformed(&format!("an event is not JSON ({e}): {}", clip(&event.data)))
                })?;
                if let Some(err) = chunk.get("error") {
                    // llama.cpp reports errors raised mid-generation in-band.
                    if err.get("type").and_then(Value::as_str) == Some("exceed_context_size_error") {
                        return Err(InferenceError::Permanent(context_overflow_message(
                            &self.model.name,
                            err.get("n_prompt_tokens").and_then(Value::as_u64),
                            err.get("n_ctx").and_then(Value::as_u64),
                        )));
                    }
                    return Err(InferenceError::transient(
                        "server_error",
                        format!(
                            "model server {} failed mid-stream: {}",
                            self.model.name,
                            error_text(err)
                        ),
                    ));
                }
                let choices = chunk.get("choices").and_then(Value::as_array).ok_or_else(|| {
                    self.malformed(&format!("an event has no choices: {}", clip(&event.data)))
                })?;
                if let Some(choice) = choices.first() {
                    if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
                        && !text.is_empty()
                    {
                        out.first_token.get_or_insert_with(|| started.elapsed());
                        out.content.push_str(text);
                        out.deltas += 1;
                        let _ = tokens.send(text.to_owned());
                    }
                    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                        out.finish_reason = reason.to_owned();
                    }
                }
                if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
                    out.prompt_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
                    out.completion_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
                }
                if let Some(t) = chunk.get("timings").filter(|t| t.is_object()) {
                    out.server_timings = Some(t.clone());
                }
            }
        }
    }

    fn timed_out(&self) -> InferenceError {
        InferenceError::transient(
            "timeout",
            format!(
                "model server {} did not finish within {:?} (request_timeout_secs)",
                self.model.name, self.model.request_timeout
            ),
        )
    }

    fn malformed(&self, what: &str) -> InferenceError {
        InferenceError::transient(
            "malformed",
            format!("model server {} sent a malformed stream: {what}", self.model.name),
        )
    }

    /// Sorts a non-2xx answer: busy/unavailable is transient, a rejected
    /// request is permanent with the server's explanation, other 5xx are
    /// transient once (the caller gives up if the same answer repeats).
    async fn refusal(&self, status: u16, response: reqwest::Response) -> InferenceError {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(response).await;
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        let text = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .map(error_text)
            .unwrap_or_else(|| clip(&body));
        let name = &self.model.name;
        match status {
            429 | 502 | 503 | 504 => InferenceError::Transient {
                reason: "busy",
                message: format!(
                    "model server {name} answered {status} (busy or loading{}): {text}",
                    retry_after
                        .map(|r| format!(", retry after {r}s"))
                        .unwrap_or_default()
                ),
                answer: Some((status, body)),
            },
            400 => {
                let error = parsed.as_ref().and_then(|v| v.get("error"));
                let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
                if kind == Some("exceed_context_size_error") {
                    let n = error
                        .and_then(|e| e.get("n_prompt_tokens"))
                        .and_then(Value::as_u64);
                    let ctx = error.and_then(|e| e.get("n_ctx")).and_then(Value::as_u64);
                    InferenceError::Permanent(context_overflow_message(
                        name,
                        n,
                        ctx.or(Some(u64::from(self.model.context_size))),
                    ))
                } else {
                    InferenceError::Permanent(format!(
                        "model server {name} rejected the request (400): {text}"
                    ))
                }
            }
            401 | 403 => InferenceError::Permanent(format!(
                "model server {name} refused our credentials ({status}): check api_key_env in the models file; {text}"
            )),
            404 => InferenceError::Permanent(format!(
                "model server {name} has no {}/v1/chat/completions (404): check base_url; {text}",
                self.model.base_url
            )),
            s if s >= 500 => InferenceError::Transient {
                reason: "server_error",
                message: format!("model server {name} failed ({status}): {text}"),
                answer: Some((status, body)),
            },
            _ => InferenceError::Permanent(format!("model server {name} answered {status}: {text}")),
        }
    }

    /// Tokens in `text` by the server's tokenizer (`/tokenize`); `None` if
    /// the server has no such endpoint (not llama.cpp).
    pub async fn count_tokens(&self, text: &str) -> Result<Option<usize>, InferenceError> {
        let r = self
            .post("/tokenize")
            .timeout(PROBE_TIMEOUT)
            .json(&json!({"content": text, "add_special": false}))
            .send()
            .await
            .map_err(|e| connect_error(&self.model, &e))?;
        if matches!(r.status().as_u16(), 404 | 405 | 501) {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.refusal(r.status().as_u16(), r).await);
        }
        let v: Value = r
            .json()
            .await
            .map_err(|e| self.malformed(&format!("/tokenize answer: {e}")))?;
        Ok(v.get("tokens").and_then(Value::as_array).map(Vec::len))
    }

    /// Whether the server can take requests: `/health` (llama.cpp answers
    /// 503 while loading), falling back to `GET /v1/models` for servers
    /// without it.
    pub async fn probe(&self) -> Probe {
        let started = Instant::now();
        let result = async {
            let r = self
                .get("/health")
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .map_err(|e| connect_error(&self.model, &e).to_string())?;
            let r = if r.status().as_u16() == 404 {
                self.get("/v1/models")
                    .timeout(PROBE_TIMEOUT)
                    .send()
                    .await
                    .map_err(|e| connect_error(&self.model, &e).to_string())?
            } else {
                r
            };
            let status = r.status();
            if status.is_success() {
                Ok(())
            } else {
                let body = read_limited(r).await;
                let text = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").map(error_text))
                    .unwrap_or_else(|| clip(&body));
                Err(format!("health check answered {status}: {text}"))
            }
        }
        .await;
        Probe {
            ok: result.is_ok(),
            error: result.err(),
            latency: started.elapsed(),
        }
    }

    /// One `max_tokens: 1` completion: proves the model loaded, answers,
    /// and accepts our model id and credentials.
    pub async fn warm_up(&self) -> Result<Duration, InferenceError> {
        let started = Instant::now();
        let req = ChatRequest {
            messages: vec![ChatMessage {
                role: hangar_shared::chat::Role::User,
                content: "Hi".into(),
            }],
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 1,
            stop: Vec::new(),
            seed: None,
        };
        let r = self
            .post("/v1/chat/completions")
            .timeout(self.model.request_timeout)
            .json(&self.body(&req, false))
            .send()
            .await
            .map_err(|e| connect_error(&self.model, &e))?;
        if !r.status().is_success() {
            return Err(self.refusal(r.status().as_u16(), r).await);
        }
        let v: Value = r
            .json()
            .await
            .map_err(|e| self.malformed(&format!("warm-up answer: {e}")))?;
        if v.pointer("/choices/0").is_none() {
            return Err(self.malformed("the warm-up answer has no choices"));
        }
        Ok(started.elapsed())
    }

    /// The server's per-slot context (llama.cpp's `/props`), if it says.
    pub async fn server_context(&self) -> Option<u64> {
        let r = self.get("/props").timeout(PROBE_TIMEOUT).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        v.pointer("/default_generation_settings/n_ctx")
            .and_then(Value::as_u64)
    }
}

/// The message for a prompt over the context: what to shorten.
pub fn context_overflow_message(model: &str, prompt_tokens: Option<u64>, context: Option<u64>) -> String {
    format!(
        "the prompt{} does not fit model {model}'s context{}: shorten the message or the system prompt, \
         start a new conversation, or lower max_tokens",
        prompt_tokens
            .map(|n| format!(" ({n} tokens)"))
            .unwrap_or_default(),
        context.map(|n| format!(" of {n} tokens")).unwrap_or_default(),
    )
}

async fn read_limited(mut r: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= ERROR_BODY_LIMIT {
            body.truncate(ERROR_BODY_LIMIT);
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn error_text(err: &Value) -> String {
    err.get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| err.as_str().map(str::to_owned))
        .unwrap_or_else(|| clip(&err.to_string()))
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
