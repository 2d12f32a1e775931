//! `POST /api/v1/inference/chat` (enqueue a chat completion),
//! `GET /api/v1/conversations/{id}` (a conversation's turns) and
//! `GET /api/v1/jobs/{id}/stream` (an inference job's tokens as
//! server-sent events, relayed from the job's Redis stream).

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
};
use hangar_inference::tokens;
use hangar_queue::JobStatus;
use hangar_shared::{db::NewJobRun, kinds};
use serde_json::{Value, json};

use super::jobs::job_and_queue;
use crate::{
    audit::AuditTarget,
    auth::Principal,
    error::ApiError,
    request_id::current_request_id,
    schema,
    state::AppState,
    views::{
        inference::{ChatAccepted, Conversation, StoredMessage},
        jobs::Job,
    },
};

/// How long a relay waits for entries before it checks on the job itself.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Longest a relay of a running job stays open; a client that still wants
/// more reconnects with `Last-Event-ID`. A job that has not started yet is
/// followed for `HANGAR_STREAM_WAIT_SECS` only.
const MAX_RELAY: Duration = Duration::from_secs(3600);
/// What a client waits before reconnecting (the SSE `retry` field).
const RECONNECT_AFTER: Duration = Duration::from_secs(3);
/// The id of a final event made from the job's record (its stream gone).
const FINAL_ID: &str = "final";

/// Start a chat completion
///
/// Validates the request against the model's limits (422 naming the field),
/// records and queues an `inference.chat` job. Follow it at `status_url`,
/// or read its tokens as they are generated at `stream_url` (SSE). With
/// `messages` the job starts a conversation (its id is the job's);
/// continue it with `conversation_id` and `message`.
#[utoipa::path(post, path = "/api/v1/inference/chat", operation_id = "start_chat", tag = "inference",
    request_body = schema::ChatRequest,
    responses(
        (status = 202, description = "Recorded and queued", body = ChatAccepted)),
    security(("bearer" = ["operator"])))]
pub async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("model", "missing (the body is empty)"));
    }
    let body = super::parse_json(&state, &body)?;
    let spec = kinds::spec::<kinds::Chat>();
    let payload = kinds::validate_for(spec, &body, &state.config.inference.models)?;
    let id = kinds::new_job_id().to_string();
    let conversation_id = match payload.get("conversation_id").and_then(Value::as_str) {
        Some(c) => {
            let known = sqlx::query_scalar!("SELECT count(*) FROM conversations WHERE id = $1", c)
                .fetch_one(&state.pool)
                .await?;
            if known.unwrap_or(0) == 0 {
                // The job that starts a conversation creates it when it
                // finishes: say so rather than "no such conversation".
                let starting = hangar_shared::db::get_job(&state.pool, c)
                    .await?
                    .filter(|j| j.kind == kinds::INFERENCE_CHAT);
                let message = match starting {
                    Some(j) if j.state.is_open() => format!(
                        "conversation {c} is still being started by its first job ({}); send the next message once it has succeeded",
                        j.state.as_str()
                    ),
                    Some(j) => format!(
                        "job {c} ended {} without starting a conversation",
                        j.state.as_str()
                    ),
                    None => format!("no conversation {c}"),
                };
                return Err(ApiError::invalid("conversation_id", message));
            }
            c.to_owned()
        }
        None => id.clone(),
    };
    let new = NewJobRun::new(spec, payload)
        .id(id)
        .requested_by(caller.actor.clone())
        .request_id(current_request_id());
    let (status, _, run) = state.enqueuer.submit(new).await?;
    let mut response = (
        status,
        Json(ChatAccepted {
            job: Job::new(&run, None),
            conversation_id,
            stream_url: format!("/api/v1/jobs/{}/stream", run.id),
        }),
    )
        .into_response();
    response.extensions_mut().insert(AuditTarget(run.id));
    Ok(response)
}

/// Get a conversation
///
/// The conversation's turns, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", operation_id = "get_conversation", tag = "inference",
    params(("id" = String, Path, description = "Conversation id (the id of the job that started it)")),
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 404, description = "No such conversation", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn conversation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let c = sqlx::query!(
        "SELECT id, model, created_by, created_at, updated_at FROM conversations WHERE id = $1",
        id
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
    let messages = sqlx::query_as!(
        StoredMessage,
        "SELECT role, content, tokens, job_id, created_at FROM messages WHERE conversation_id = $1 ORDER BY id",
        id
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Conversation {
        id: c.id,
        model: c.model,
        created_by: c.created_by,
        created_at: c.created_at,
        updated_at: c.updated_at,
        messages,
    }))
}

struct Relay {
    state: AppState,
    job_id: String,
    queue: String,
    key: String,
    /// Entries as the process's one stream reader finds them.
    entries: crate::streams::Subscription,
    /// The caller's stream slot, given back when the relay ends.
    _admission: crate::streams::Admission,
    after: String,
    pending: VecDeque<Event>,
    finished: bool,
    /// Tokens of the entry `after` already delivered before a reconnect.
    resume_skip: Option<usize>,
    opened: std::time::Instant,
    /// When the last entry arrived (or the relay opened).
    last_entry: std::time::Instant,
}

fn data_event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Relay {
    /// SSE events of one stream entry: one `token` event per delta, each
    /// with its own id (`{entry}.{index}`), so a reconnect resumes exactly.
    fn push_entry(&mut self, entry: tokens::Entry, skip: usize) {
        match entry.kind.as_str() {
            "tokens" => {
                let texts = entry.data.as_array().cloned().unwrap_or_default();
                for (i, t) in texts.into_iter().enumerate().skip(skip) {
                    self.pending.push_back(
                        data_event("token", &json!({ "text": t })).id(format!("{}.{i}", entry.id)),
                    );
                }
            }
            "retry" => self
                .pending
                .push_back(data_event("retry", &entry.data).id(entry.id.clone())),
            "done" => {
                self.pending
                    .push_back(data_event("result", &entry.data).id(entry.id.clone()));
                self.finished = true;
            }
            _ => {
                self.pending
                    .push_back(data_event("error", &entry.data).id(entry.id.clone()));
                self.finished = true;
            }
        }
        self.after = entry.id;
    }

    /// The job ended without a final entry we could see (it never started,
    /// was cancelled while queued, or its stream expired): finish from the
    /// job. Returns the job's state, if known.
    async fn finish_from_job(&mut self) -> Option<JobStatus> {
        let queue = self.state.queue(&self.queue)?;
        // Redis first; the record only when Redis no longer has the job
        // (this runs every few seconds for every idle stream).
        let (status, result, error) = match queue.state(&self.job_id).await.ok().flatten() {
            Some(l) => (l.status, l.result, l.last_error),
            None => {
                let r = hangar_shared::db::get_job(&self.state.pool, &self.job_id)
                    .await
                    .ok()
                    .flatten()?;
                (r.state, r.result, r.error)
            }
        };
        if status.is_terminal() {
            self.pending.push_back(
                match (status, result) {
                    (JobStatus::Succeeded, Some(r)) => data_event("result", &r),
                    _ => data_event("error", &json!({ "error": error, "state": status })),
                }
                .id(FINAL_ID),
            );
            self.finished = true;
        }
        Some(status)
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            if let Some(skip) = self.resume_skip.take() {
                // Reconnected mid-entry: the rest of that entry first.
                let mut conn = self.state.redis.clone();
                if let Ok(Some(e)) = tokens::entry(&mut conn, &self.key, &self.after).await {
                    self.push_entry(e, skip);
                }
                continue;
            }
            if self.opened.elapsed() > MAX_RELAY {
                return None; // the client reconnects with Last-Event-ID
            }
            match tokio::time::timeout(IDLE_CHECK, self.entries.next()).await {
                Ok(Some(entries)) => {
                    self.last_entry = std::time::Instant::now();
                    entries.into_iter().for_each(|e| self.push_entry(e, 0));
                }
                // Dropped for falling behind: the client resumes from its
                // last event id, with nothing lost.
                Ok(None) => return None,
                Err(_) => {
                    let status = self.finish_from_job().await;
                    // A job that has not started holds no relay for long:
                    // the client reconnects (EventSource does on its own).
                    let waiting = status != Some(JobStatus::Running);
                    if !self.finished
                        && waiting
                        && self.last_entry.elapsed() >= self.state.config.api.security.stream_wait
                    {
                        self.pending.push_back(
                            data_event(
                                "waiting",
                                &json!({"state": status, "message": "the job has not started; reconnect with Last-Event-ID to keep following it"}),
                            )
                            .retry(RECONNECT_AFTER),
                        );
                        self.finished = true;
                    }
                }
            }
        }
    }
}

/// Stream an inference job
///
/// The job's tokens as server-sent events, in order, from the first (a
/// late client misses nothing; `Last-Event-ID` resumes): `token` events
/// (`{"text"}`), `retry` when an attempt starts over (discard the text so
/// far), and a final `result` (the job's result) or `error` event. Each event
/// has an id; reconnecting with `Last-Event-ID` resumes after it, and after
/// the final event the answer is 204 (which stops EventSource reconnecting).
/// A job that has not started yet is followed for `HANGAR_STREAM_WAIT_SECS`;
/// then a `waiting` event (with the job's state) ends the stream and the
/// client reconnects with `Last-Event-ID` to keep following. Streams are
/// limited per caller and per server (429 with `Retry-After` beyond).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/stream", operation_id = "stream_job", tag = "inference",
    params(("id" = String, Path, description = "Job id of an inference.chat job"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String),
        (status = 204, description = "The stream already ended (Last-Event-ID at its final event)"),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "Not an inference job", body = schema::ErrorBody),
        (status = 429, description = "Too many token streams open (per caller: `HANGAR_STREAMS_PER_CALLER`, per server: `HANGAR_STREAMS_MAX`); retry after `Retry-After` seconds", body = schema::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("bearer" = ["viewer"])))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let (run, _) = job_and_queue(&state, &id).await?;
    if run.kind != kinds::INFERENCE_CHAT {
        return Err(ApiError::Conflict(format!(
            "job {id} is a {} job; only {} jobs stream tokens",
            run.kind,
            kinds::INFERENCE_CHAT
        )));
    }
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if last == FINAL_ID {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // `{entry}.{index}` (a token) or `{entry}` (other events); anything else: from the start.
    let (entry_id, index) = match last.split_once('.') {
        Some((e, i)) => (e, i.parse::<usize>().ok()),
        None => (last, None),
    };
    let valid = entry_id
        .split_once('-')
        .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
    let admission = state.streams.admit(&caller.rate_key).map_err(|refused| {
        let message = match refused {
            crate::streams::Refused::Caller(n) => format!(
                "you have {n} token streams open (HANGAR_STREAMS_PER_CALLER); close one or retry later"
            ),
            crate::streams::Refused::Total(n) => format!(
                "this server has {n} token streams open (HANGAR_STREAMS_MAX); retry later or poll the job's status_url"
            ),
        };
        ApiError::TooMany {
            code: crate::error::ErrorCode::TooManyStreams,
            message,
            retry_after: RECONNECT_AFTER,
        }
    })?;
    let mut conn = state.redis.clone();
    let key = tokens::stream_key(&state.config.redis.prefix, &id);
    if valid
        && let Some(e) = tokens::entry(&mut conn, &key, entry_id)
            .await
            .map_err(hangar_queue::QueueError::from)?
        && matches!(e.kind.as_str(), "done" | "error")
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let stream_exists = tokens::exists(&mut conn, &key)
        .await
        .map_err(hangar_queue::QueueError::from)?;
    let after = if valid {
        entry_id.to_owned()
    } else {
        "0".to_owned()
    };
    let entries = state.streams.subscribe(&key, &after).await;
    let now = std::time::Instant::now();
    let mut relay = Relay {
        key,
        queue: run.queue.clone(),
        job_id: id,
        state,
        entries,
        _admission: admission,
        after,
        pending: VecDeque::new(),
        finished: false,
        resume_skip: index.filter(|_| valid).map(|i| i + 1),
        opened: now,
        last_entry: now,
    };
    if !stream_exists {
        // Finished long ago (stream expired) or never started: answer from
        // the job at once instead of after a first empty wait.
        relay.finish_from_job().await;
    }
    let events = futures_util::stream::unfold(relay, |mut relay| async move {
        relay.next_event().await.map(|e| (Ok::<_, Infallible>(e), relay))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
