//! `POST /api/v1/inference/chat` (enqueue a chat completion),
//! `GET /api/v1/conversations/{id}` (a conversation's turns) and
//! `GET /api/v1/jobs/{id}/stream` (an inference job's tokens as
//! server-sent events, relayed from the job's Redis stream).

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::Stream;
use hangar_inference::tokens;
use hangar_shared::{db::NewJobRun, kinds};
use serde_json::{Value, json};

use super::jobs::{job_and_queue, job_json};
use crate::{
    audit::AuditTarget, auth::Principal, error::ApiError, request_id::current_request_id, schema,
    state::AppState,
};

/// How long one XREAD waits before the relay checks on the job itself.
const READ_BLOCK: Duration = Duration::from_secs(5);

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
        (status = 202, description = "Recorded and queued", body = schema::ChatAccepted)),
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
    let spec =
        kinds::kind(kinds::INFERENCE_CHAT).ok_or_else(|| anyhow::anyhow!("inference.chat not registered"))?;
    let payload = kinds::validate_for(spec, &body, &state.config.inference.models).map_err(|e| {
        ApiError::invalid(
            if e.field.is_empty() {
                "body".to_owned()
            } else {
                e.field
            },
            e.message,
        )
    })?;
    let id = kinds::new_job_id().to_string();
    let conversation_id = match payload.get("conversation_id").and_then(Value::as_str) {
        Some(c) => {
            let known = sqlx::query_scalar!("SELECT count(*) FROM conversations WHERE id = $1", c)
                .fetch_one(&state.pool)
                .await?;
            if known.unwrap_or(0) == 0 {
                return Err(ApiError::invalid(
                    "conversation_id",
                    format!("no conversation {c}"),
                ));
            }
            c.to_owned()
        }
        None => id.clone(),
    };
    let new = NewJobRun {
        id,
        kind: spec.name.to_owned(),
        queue: spec.queue.to_owned(),
        payload,
        max_attempts: kinds::retry_policies().for_kind(spec.name).max_attempts as i32,
        requested_by: Some(caller.actor.clone()),
        request_id: Some(current_request_id()),
        idempotency_key: None,
        run_at: None,
        singleton_key: None,
    };
    let (status, _, run) = state.enqueuer.submit(new).await?;
    let mut response = (
        status,
        Json(json!({
            "job": job_json(&run, None),
            "conversation_id": conversation_id,
            "stream_url": format!("/api/v1/jobs/{}/stream", run.id),
        })),
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
        (status = 200, description = "The conversation", body = schema::Conversation),
        (status = 404, description = "No such conversation", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn conversation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = sqlx::query!(
        "SELECT id, model, created_by, created_at, updated_at FROM conversations WHERE id = $1",
        id
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
    let messages = sqlx::query!(
        "SELECT role, content, job_id, created_at FROM messages WHERE conversation_id = $1 ORDER BY id",
        id
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({
        "id": c.id,
        "model": c.model,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "messages": messages.iter().map(|m| json!({
            "role": m.role, "content": m.content, "job_id": m.job_id, "created_at": m.created_at,
        })).collect::<Vec<_>>(),
    })))
}

struct Relay {
    state: AppState,
    job_id: String,
    queue: String,
    key: String,
    conn: redis::aio::ConnectionManager,
    after: String,
    pending: VecDeque<Event>,
    finished: bool,
}

fn data_event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Relay {
    /// SSE events of one stream entry: one `token` event per delta.
    fn push_entry(&mut self, entry: tokens::Entry) {
        match entry.kind.as_str() {
            "tokens" => {
                let texts = entry.data.as_array().cloned().unwrap_or_default();
                let n = texts.len();
                for (i, t) in texts.into_iter().enumerate() {
                    let mut e = data_event("token", &json!({ "text": t }));
                    if i + 1 == n {
                        e = e.id(entry.id.clone());
                    }
                    self.pending.push_back(e);
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
    /// was cancelled while queued, or its stream expired): finish from the job.
    async fn finish_from_job(&mut self) -> bool {
        let Some(queue) = self.state.queue(&self.queue) else {
            return false;
        };
        let live = queue.state(&self.job_id).await.ok().flatten();
        let record = hangar_shared::db::get_job(&self.state.pool, &self.job_id)
            .await
            .ok()
            .flatten();
        let (status, result, error) = match (&live, &record) {
            (Some(l), _) => (
                l.status.as_str().to_owned(),
                l.result.clone(),
                l.last_error.clone(),
            ),
            (None, Some(r)) => (
                r.state.clone(),
                r.result.clone(),
                r.error.as_ref().map(|e| e.to_string()),
            ),
            (None, None) => return false,
        };
        if !matches!(status.as_str(), "succeeded" | "dead" | "cancelled") {
            return false;
        }
        self.pending.push_back(match (status.as_str(), result) {
            ("succeeded", Some(r)) => data_event("result", &r),
            _ => data_event("error", &json!({ "error": error, "state": status })),
        });
        self.finished = true;
        true
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            match tokens::read(&mut self.conn, &self.key, &self.after, READ_BLOCK).await {
                Ok(entries) if !entries.is_empty() => entries.into_iter().for_each(|e| self.push_entry(e)),
                Ok(_) => {
                    self.finish_from_job().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "token stream read failed; ending the relay");
                    self.pending.push_back(data_event(
                        "error",
                        &json!({"error": "the token stream is unavailable (redis); poll the job's status_url"}),
                    ));
                    self.finished = true;
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
/// far), and a final `result` (the job's result) or `error` event.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/stream", operation_id = "stream_job", tag = "inference",
    params(("id" = String, Path, description = "Job id of an inference.chat job"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "Not an inference job", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (run, _) = job_and_queue(&state, &id).await?;
    if run.kind != kinds::INFERENCE_CHAT {
        return Err(ApiError::Conflict(format!(
            "job {id} is a {} job; only {} jobs stream tokens",
            run.kind,
            kinds::INFERENCE_CHAT
        )));
    }
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.split_once('-')
                .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
        })
        .unwrap_or("0")
        .to_owned();
    let settings = state.config.redis_settings();
    let conn = settings
        .connect_with_timeout(READ_BLOCK + settings.response_timeout)
        .await
        .map_err(ApiError::from)?;
    let relay = Relay {
        key: tokens::stream_key(&state.config.redis.prefix, &id),
        queue: run.queue.clone(),
        job_id: id,
        state,
        conn,
        after,
        pending: VecDeque::new(),
        finished: false,
    };
    let events = futures_util::stream::unfold(relay, |mut relay| async move {
        relay.next_event().await.map(|e| (Ok(e), relay))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
