//! The models page: each configured model's health (from the background
//! monitor), requests in flight, jobs waiting and the last hour's success
//! rate; and a chat playground that streams the answer's tokens as the
//! model produces them (the API's token stream, relayed under the
//! console's session).

use axum::{
    Extension, Form,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiRefusal, WriteRequest, api_error_page, base, pages, session::Session};
use crate::{
    auth::Role,
    routes::{inference, models as api},
    state::AppState,
    views::inference::{Conversation, Model},
};

/// The playground's query: the conversation shown and the job answering.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PlaygroundQuery {
    conversation: Option<String>,
    job: Option<String>,
}

/// `GET /ui/models[?conversation=…&job=…]`.
pub(super) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PlaygroundQuery>,
) -> Response {
    let base = base(&state);
    let models = match api::list(State(state.clone())).await {
        Ok(axum::Json(list)) => list.items,
        Err(e) => return api_error_page(&base, e).await,
    };
    let conversation = match q.conversation.as_deref() {
        Some(id) => match inference::conversation(State(state.clone()), Path(id.to_owned())).await {
            Ok(axum::Json(c)) => Some(c),
            // The first job has not finished yet: nothing stored to show.
            Err(crate::error::ApiError::NotFound(_)) => None,
            Err(e) => return api_error_page(&base, e).await,
        },
        None => None,
    };
    // The message the followed job answers (stored in the conversation only
    // once the job has finished).
    let asked = match q.job.as_deref() {
        Some(id) => crate::routes::jobs::recorded_job(&state, id)
            .await
            .ok()
            .and_then(|run| {
                let p = &run.payload;
                p["message"].as_str().map(str::to_owned).or_else(|| {
                    p["messages"]
                        .as_array()
                        .and_then(|m| m.last())
                        .and_then(|m| m["content"].as_str())
                        .map(str::to_owned)
                })
            }),
        None => None,
    };
    let already_stored = conversation.as_ref().is_some_and(|c| {
        q.job
            .as_deref()
            .is_some_and(|j| c.messages.iter().any(|m| m.job_id == j))
    });
    let asked = asked.filter(|_| !already_stored);
    let form = ChatForm {
        model: conversation.as_ref().map(|c| c.model.clone()).unwrap_or_default(),
        conversation_id: q.conversation.clone().unwrap_or_default(),
        ..Default::default()
    };
    let followed = q
        .job
        .as_deref()
        .filter(|_| !already_stored)
        .map(|id| (id, asked.as_deref()));
    Html(
        render(
            &base,
            &session,
            &models,
            conversation.as_ref(),
            followed,
            &form,
            None,
        )
        .into_string(),
    )
    .into_response()
}

fn health_cell(m: &Model) -> Markup {
    let h = &m.health;
    html! {
        span.bad[!h.ready] .ok[h.ready] { (h.status) }
        @if let Some(ms) = h.latency_ms { " " span.muted { (ms) " ms" } }
        @if let Some(e) = &h.last_error {
            br; span.muted { "last error" @if let Some(t) = h.last_error_at { " (" (pages::when(t)) ")" } ": " (e) }
        }
        @if let Some(t) = h.checked_at { br; span.muted { "checked " (pages::when(t)) } }
    }
}

fn render(
    base: &str,
    session: &Session,
    models: &[Model],
    conversation: Option<&Conversation>,
    followed: Option<(&str, Option<&str>)>,
    form: &ChatForm,
    error: Option<&ApiRefusal>,
) -> Markup {
    let may_chat = session.principal.role >= Role::Operator;
    let body = html! {
        section aria-labelledby="health" {
            h2 id="health" { "Health" }
            @if models.is_empty() {
                p.muted { "No models are configured (HANGAR_MODELS_FILE), so inference jobs cannot run." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Model" } th scope="col" { "Health" } th.num scope="col" { "In flight" }
                        th.num scope="col" { "Queued" } th.num scope="col" { "Running" } th scope="col" { "Last hour" }
                    } }
                    tbody {
                        @for m in models {
                            tr {
                                th scope="row" { (m.name) br; span.muted { (m.upstream_model) " at " (m.base_url) } }
                                td { (health_cell(m)) }
                                td.num { @if let Some(n) = m.in_flight { (n) " of " (m.parameters.max_in_flight) } @else { "unknown" } }
                                td.num { (m.jobs.queued) }
                                td.num { (m.jobs.running) }
                                td {
                                    (m.jobs.last_hour.succeeded) " succeeded, " (m.jobs.last_hour.failed) " failed"
                                    @if let Some(r) = m.jobs.last_hour.success_rate { " (" (format!("{:.0}", r * 100.0)) " %)" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="playground" {
            h2 id="playground" { "Playground" }
            @if let Some(c) = conversation {
                ol.chat {
                    @for m in &c.messages {
                        li.{ "msg-" (m.role) } { span.who { (m.role) } pre { (m.content) } }
                    }
                }
            }
            @if let Some((id, asked)) = followed {
                @if let Some(text) = asked {
                    ol.chat { li.msg-user { span.who { "user" } pre { (text) } } }
                }
                div.answer data-stream={ (base) "/models/stream/" (id) } {
                    p.muted { "Answer of job " a href={ (base) "/jobs/" (id) } { code { (id) } } ":" }
                    pre data-field="answer" aria-live="polite" { "" }
                    p.muted data-field="status" role="status" { "waiting for the model…" }
                }
            }
            @if let Some(e) = error { p.error role="alert" { (e.text()) } }
            @if !may_chat {
                p.muted { "Chatting runs an inference job, which needs the operator role." }
            } @else if models.is_empty() {
            } @else {
                form.stacked method="post" action={ (base) "/models/chat" } {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    input type="hidden" name="conversation_id" value=(form.conversation_id);
                    div.field {
                        label for="model" { "Model" }
                        select id="model" name="model" disabled[!form.conversation_id.is_empty()] {
                            @for m in models { option value=(m.name) selected[m.name == form.model] { (m.name) } }
                        }
                        @if !form.conversation_id.is_empty() { input type="hidden" name="model" value=(form.model); }
                    }
                    div.field {
                        label for="message" { @if form.conversation_id.is_empty() { "Message" } @else { "Next message" } }
                        textarea id="message" name="message" rows="3" required maxlength="32000"
                            aria-invalid=[error.is_some_and(|e| e.field.as_deref().is_some_and(|f| f.starts_with("message"))).then_some("true")] { (form.message) }
                    }
                    button type="submit" { "Send" }
                    @if !form.conversation_id.is_empty() { " " a href={ (base) "/models" } { "New conversation" } }
                }
            }
        }
    };
    pages::layout(base, session, "Models", "Models", &body)
}

/// The playground's form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ChatForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    conversation_id: String,
}

/// `POST /ui/models/chat` (operator): the API's chat enqueue; then the
/// playground follows the job's tokens.
pub(super) async fn chat(
    State(state): State<AppState>,
    write: WriteRequest,
    Form(form): Form<ChatForm>,
) -> Response {
    const ACTION: &str = "console_start_chat";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Operator, ACTION).await {
        return r;
    }
    let base = base(&state);
    let body = if form.conversation_id.is_empty() {
        json!({ "model": form.model, "messages": [{ "role": "user", "content": form.message }] })
    } else {
        json!({ "model": form.model, "conversation_id": form.conversation_id, "message": form.message })
    };
    let caller = Extension(write.session.principal.clone());
    let accepted = inference::chat(State(state.clone()), caller, Bytes::from(body.to_string())).await;
    match accepted {
        Ok(response) => {
            let response = response.into_response();
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let job = v["job"]["id"].as_str().unwrap_or_default();
            let conversation = v["conversation_id"].as_str().unwrap_or(job);
            write
                .audit(&state, ACTION, Some(job.to_owned()), StatusCode::SEE_OTHER)
                .await;
            let q = serde_urlencoded::to_string([("conversation", conversation), ("job", job)])
                .unwrap_or_default();
            Redirect::to(&format!("{base}/models?{q}#playground")).into_response()
        }
        Err(e) => {
            let refusal = ApiRefusal::of(e).await;
            write.audit(&state, ACTION, None, refusal.status).await;
            let models = match api::list(State(state.clone())).await {
                Ok(axum::Json(list)) => list.items,
                Err(e) => return api_error_page(&base, e).await,
            };
            let page = render(&base, &write.session, &models, None, None, &form, Some(&refusal));
            (refusal.status, Html(page.into_string())).into_response()
        }
    }
}

/// `GET /ui/models/stream/{job}`: the job's tokens as server-sent events,
/// exactly as `GET /api/v1/jobs/{id}/stream` sends them (resumable with
/// `Last-Event-ID`, limited per caller).
pub(super) async fn stream(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match inference::stream(
        State(state.clone()),
        Extension(session.principal),
        Path(id),
        headers,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
