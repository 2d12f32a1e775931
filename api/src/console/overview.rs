//! The overview page: queue depth and each sync target's last success,
//! with "Sync now" per kind.

use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{CsrfForm, WriteRequest, api_error_page, base, pages, session::Session};
use crate::{auth::Role, state::AppState};

pub(super) async fn overview(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Query(query): axum::extract::Query<OverviewQuery>,
) -> Response {
    let mut queues = Vec::new();
    for (name, q) in state.queues.iter() {
        match (
            q.counts().await,
            q.workers_alive(crate::routes::queues::ALIVE_WITHIN).await,
            q.oldest_waiting().await,
        ) {
            (Ok(counts), Ok(workers), Ok(oldest)) => queues.push(pages::QueueRow {
                name: name.clone(),
                queued: counts.ready,
                running: counts.running,
                delayed: counts.scheduled,
                dead: counts.dead,
                workers,
                oldest_waiting: oldest
                    .and_then(|ms| chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)),
            }),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::warn!(queue = %name, error = %e, "console: queue counts unavailable");
                return pages::error_page(
                    &base(&state),
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Redis did not answer, so the queues cannot be shown; try again.",
                );
            }
        }
    }
    let syncs = match crate::sync_status::sync_targets(&state).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "console: last syncs unavailable");
            return pages::error_page(
                &base(&state),
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer, so the syncs cannot be shown; try again.",
            );
        }
    };
    let (activity, activity_at) = match state.activity.get(&state).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "console: job activity unavailable");
            return pages::error_page(
                &base(&state),
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL did not answer, so the activity cannot be shown; try again.",
            );
        }
    };
    let models: Vec<(String, hangar_inference::ModelHealth)> = state
        .config
        .inference
        .models
        .iter()
        .map(|m| (m.name.clone(), state.models.health(&m.name).unwrap_or_default()))
        .collect();
    let notice = query.sync.as_deref().map(|kind| pages::SyncNotice {
        kind: kind.to_owned(),
        already: query.already.as_deref() == Some("1"),
    });
    let page = pages::Overview {
        queues: &queues,
        activity: &activity,
        activity_at,
        models: &models,
        syncs: &syncs,
        notice: notice.as_ref(),
    };
    Html(pages::overview(&base(&state), &session, &page).into_string()).into_response()
}

/// The overview's query: what a "Sync now" just did.
#[derive(Debug, Default, Deserialize)]
pub(super) struct OverviewQuery {
    sync: Option<String>,
    already: Option<String>,
}

/// How long a counted activity chart is shown before it is counted again.
const ACTIVITY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The overview's activity chart as last counted, and when. Counting is the
/// overview's one costly query: at 10 million job records it reads the
/// 220,000 of the last two days, about 180 ms (`bench/history.sh`); counted
/// on every load, that was the slowest console page by four times. One
/// caller counts while the others wait for its answer.
#[derive(Debug, Default)]
pub struct ActivityCache(tokio::sync::Mutex<Option<Counted>>);

/// One count of the activity chart: when (monotonic, for its age, and as
/// shown) and what.
#[derive(Debug)]
struct Counted {
    at: std::time::Instant,
    when: chrono::DateTime<chrono::Utc>,
    rows: Vec<pages::Activity>,
}

impl ActivityCache {
    /// The chart and when it was counted: the last count if younger than
    /// [`ACTIVITY_TTL`], else a new one.
    async fn get(
        &self,
        state: &AppState,
    ) -> sqlx::Result<(Vec<pages::Activity>, chrono::DateTime<chrono::Utc>)> {
        let mut held = self.0.lock().await;
        if let Some(c) = held.as_ref()
            && c.at.elapsed() < ACTIVITY_TTL
        {
            return Ok((c.rows.clone(), c.when));
        }
        let rows = activity(state).await?;
        let when = chrono::Utc::now();
        *held = Some(Counted {
            at: std::time::Instant::now(),
            when,
            rows: rows.clone(),
        });
        Ok((rows, when))
    }
}

/// Jobs finished per hour over the last day, succeeded and failed (dead),
/// oldest hour first. Jobs are found by id (ULIDs start with their creation
/// time, so the primary key bounds the scan); a job that ran for more than
/// a day before finishing in the window is not counted.
async fn activity(state: &AppState) -> sqlx::Result<Vec<pages::Activity>> {
    let now = chrono::Utc::now();
    let since = now - chrono::Duration::days(2);
    let lowest_id = hangar_shared::db::id_at(since);
    let rows = sqlx::query!(
        r#"SELECT date_trunc('hour', finished_at) AS "hour!",
                  count(*) FILTER (WHERE state = 'succeeded') AS "succeeded!",
                  count(*) FILTER (WHERE state = 'dead') AS "failed!"
           FROM job_runs
           WHERE id >= $1 AND finished_at >= date_trunc('hour', now()) - interval '23 hours'
           GROUP BY 1"#,
        lowest_id,
    )
    .fetch_all(&state.pool)
    .await?;
    let this_hour = now
        .date_naive()
        .and_hms_opt(chrono::Timelike::hour(&now), 0, 0)
        .unwrap_or_default()
        .and_utc();
    Ok((0..24)
        .rev()
        .map(|h| this_hour - chrono::Duration::hours(h))
        .map(|hour| {
            let row = rows.iter().find(|r| r.hour == hour);
            pages::Activity {
                hour,
                succeeded: row.map_or(0, |r| r.succeeded),
                failed: row.map_or(0, |r| r.failed),
            }
        })
        .collect())
}

/// `POST /ui/syncs/{kind}`: "Sync now" for every configured target of a
/// kind (operator), then back to the overview saying what happened.
pub(super) async fn sync_now(
    State(state): State<AppState>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    write: WriteRequest,
    Form(form): Form<CsrfForm>,
) -> Response {
    const ACTION: &str = "console_start_sync";
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Operator, ACTION).await {
        return r;
    }
    let base = base(&state);
    let request = crate::routes::syncs::SyncRequest {
        kind: &kind,
        ..Default::default()
    };
    match crate::routes::syncs::start(&state, &write.session.principal, &request).await {
        Ok(accepted) => {
            let ids: Vec<&str> = accepted.jobs.iter().map(|j| j.job.id.as_str()).collect();
            let already = accepted.jobs.iter().all(|j| j.already);
            write
                .audit(&state, ACTION, Some(ids.join(",")), StatusCode::SEE_OTHER)
                .await;
            let flag = if already { "&already=1" } else { "" };
            Redirect::to(&format!("{base}/?sync={kind}{flag}")).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            write.audit(&state, ACTION, None, page.status()).await;
            page
        }
    }
}
