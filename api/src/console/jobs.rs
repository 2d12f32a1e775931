//! The job pages: one job's page, its Retry and Cancel
//! actions, and the live state of a page's jobs over server-sent events.

use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{CsrfForm, WriteRequest, api_error_page, base, pages, session::Session};
use crate::{auth::Role, state::AppState};

/// `POST /ui/jobs/{id}/{cancel|retry}`: the API's own handler for the
/// action (same checks, same outcome; admins only, as the API's security
/// says), audited as `console_<action>_job`; back to the job's page.
pub(super) async fn job_action(
    State(state): State<AppState>,
    axum::extract::Path((id, action)): axum::extract::Path<(String, String)>,
    write: WriteRequest,
    Form(form): Form<CsrfForm>,
) -> Response {
    let base = base(&state);
    let audited = match action.as_str() {
        "cancel" => "console_cancel_job",
        "retry" => "console_retry_job",
        "delete" => "console_delete_job",
        _ => {
            return pages::error_page(
                &base,
                StatusCode::NOT_FOUND,
                "no such job action: use cancel, retry or delete",
            );
        }
    };
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Admin, audited).await {
        return r;
    }
    let path = axum::extract::Path(id.clone());
    let done = match action.as_str() {
        "cancel" => crate::routes::jobs::cancel(State(state.clone()), path)
            .await
            .map(|_| ()),
        // A dead job removed from its queue's dead set (the API's
        // `DELETE /api/v1/queues/{queue}/dead/{id}`); its record stays.
        "delete" => match crate::routes::jobs::recorded_job(&state, &id).await {
            Ok(run) => crate::routes::queues::delete(
                State(state.clone()),
                axum::extract::Path((run.queue, id.clone())),
            )
            .await
            .map(|_| ()),
            Err(e) => Err(e),
        },
        _ => crate::routes::jobs::retry(State(state.clone()), path)
            .await
            .map(|_| ()),
    };
    match done {
        Ok(()) => {
            write
                .audit(&state, audited, Some(id.clone()), StatusCode::SEE_OTHER)
                .await;
            Redirect::to(&format!("{base}/jobs/{id}")).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            write.audit(&state, audited, Some(id), page.status()).await;
            page
        }
    }
}

/// `GET /ui/jobs/{id}`: one job's record.
pub(super) async fn job_page(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match crate::routes::jobs::recorded_job(&state, &id).await {
        Ok(run) => {
            // Redis's view while it keeps the job: each attempt's error and
            // time, and the worker holding it now.
            let live = match state.queue(&run.queue) {
                Some(q) => q.state(&id).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "redis unreachable; the job page shows the record only");
                    None
                }),
                None => None,
            };
            Html(pages::job(&base(&state), &session, &run, live.as_ref()).into_string()).into_response()
        }
        Err(e) => api_error_page(&base(&state), e).await,
    }
}

/// How often a followed job is looked at, and for how long at most.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const FOLLOW_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Jobs one page follows at most (the overview lists one open job per
/// sync target; past this many the rest show their state as rendered).
const FOLLOW_AT_MOST: usize = 50;

/// The query of `GET /ui/events`.
#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    /// Job ids, comma-separated.
    jobs: String,
}

/// `GET /ui/events?jobs=<id>,<id>`: the state of a page's jobs as
/// server-sent events on one connection (a browser allows six per server):
/// a `job` event (the API's job view) whenever one changes, until every one
/// has finished. Read the way `GET /api/v1/jobs/{id}` reads a job: the
/// record, with Redis's live attempts and progress while it is open.
pub(super) async fn job_events(
    State(state): State<AppState>,
    _session: Session,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt as _;
    let ids: Vec<String> = query
        .jobs
        .split(',')
        .filter(|id| !id.is_empty())
        .take(FOLLOW_AT_MOST)
        .map(str::to_owned)
        .collect();
    let started = std::time::Instant::now();
    // Per job: the last text sent, and whether it has finished.
    let followed: Vec<(String, Option<String>, bool)> = ids.into_iter().map(|id| (id, None, false)).collect();
    let events = futures_util::stream::unfold(
        (state, followed, true),
        move |(state, mut followed, first)| async move {
            if followed.iter().all(|(_, _, done)| *done) || started.elapsed() > FOLLOW_FOR {
                return None;
            }
            if !first {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
            let mut batch = Vec::new();
            for (id, last, done) in followed.iter_mut().filter(|(_, _, done)| !*done) {
                match crate::routes::jobs::get(State(state.clone()), axum::extract::Path(id.clone())).await {
                    Ok(axum::Json(job)) => {
                        *done = !job.state.is_open();
                        let text = serde_json::to_string(&job).unwrap_or_default();
                        if last.as_deref() != Some(text.as_str()) {
                            batch.push(Ok::<_, std::convert::Infallible>(
                                Event::default().event("job").data(text.clone()),
                            ));
                            *last = Some(text);
                        }
                    }
                    Err(_) => *done = true,
                }
            }
            Some((futures_util::stream::iter(batch), (state, followed, false)))
        },
    )
    .flatten();
    // A keep-alive comment as often as the job is looked at: writing is how
    // a closed tab is noticed, so a stream ends within a second of its
    // viewer leaving instead of holding a connection (and a server's drain
    // at shutdown) for the rest of its 15 minutes.
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(FOLLOW_EVERY))
        .into_response()
}
