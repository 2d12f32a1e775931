//! The workers page: the worker processes serving each queue, as they
//! report themselves to Redis every few seconds: concurrency, the jobs they
//! hold now, when they started and when they last reported.

use std::time::Duration;

use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use hangar_queue::WorkerReport;
use maud::{Markup, html};

use super::{base, pages, session::Session};
use crate::state::AppState;

/// Workers silent for longer than this are not listed (they report every
/// 5 s; the queue forgets them after a minute).
const LISTED_WITHIN: Duration = Duration::from_secs(60);

fn time_of(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?).filter(|_| ms > 0)
}

/// `GET /ui/workers`.
pub(super) async fn page(State(state): State<AppState>, session: Session) -> Response {
    let base = base(&state);
    let mut queues = Vec::new();
    for (name, q) in state.queues.iter() {
        match q.workers(LISTED_WITHIN).await {
            Ok(workers) => queues.push((name.clone(), workers)),
            Err(e) => {
                tracing::warn!(queue = %name, error = %e, "console: workers unavailable");
                return pages::error_page(
                    &base,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Redis did not answer, so the workers cannot be shown; try again.",
                );
            }
        }
    }
    Html(render(&base, &session, &queues).into_string()).into_response()
}

fn render(base: &str, session: &Session, queues: &[(String, Vec<(WorkerReport, u64)>)]) -> Markup {
    let alive = crate::routes::queues::ALIVE_WITHIN;
    let body = html! {
        p.hint { "Each worker process reports itself on every queue it serves every 5 seconds; one silent for " (alive.as_secs()) " s is marked stale, and after a minute it is forgotten." }
        @for (queue, workers) in queues {
            section aria-labelledby={ "q-" (queue) } {
                h2 id={ "q-" (queue) } { "Queue " (queue) " " span.muted { "(" (workers.len()) " " (if workers.len() == 1 { "process" } else { "processes" }) ")" } }
                @if workers.is_empty() {
                    p.muted { "No worker serves this queue: its jobs wait until one starts (hangar-worker --queues " (queue) ")." }
                } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Worker" } th.num scope="col" { "Concurrency" } th scope="col" { "Running now" }
                            th scope="col" { "Started" } th scope="col" { "Last report" } th scope="col" { "Version" }
                        } }
                        tbody {
                            @for (w, at) in workers {
                                @let last = time_of(*at);
                                @let stale = last.is_none_or(|t| (Utc::now() - t).to_std().unwrap_or_default() > alive);
                                tr {
                                    th scope="row" { code { (w.id) } }
                                    td.num { @if w.concurrency > 0 { (w.concurrency) } @else { "-" } }
                                    td {
                                        (w.holding) " "
                                        @for id in &w.running { a href={ (base) "/jobs/" (id) } { code { (id) } } " " }
                                        @if w.holding > w.running.len() { span.muted { "and " (w.holding - w.running.len()) " more" } }
                                    }
                                    td { @if let Some(t) = time_of(w.started_at_ms) { (pages::when(t)) } @else { "-" } }
                                    td.bad[stale] { @if let Some(t) = last { (pages::when(t)) } @if stale { " (stale)" } }
                                    td { (if w.version.is_empty() { "-" } else { w.version.as_str() }) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    pages::layout(base, session, "Workers", "Workers", &body)
}
