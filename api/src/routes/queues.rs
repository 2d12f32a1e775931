//! `/api/v1/queues`: depth and workers per queue, and the dead set.

use std::time::Duration;

use crate::{
    error::ApiError,
    schema,
    state::AppState,
    views::{
        jobs::{Requeued, RequeuedAll},
        queues::{DeadJob, DeadPage, QueueList, QueueStats},
    },
};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use hangar_queue::{DeadCursor, Queue};
use serde::Deserialize;

/// A worker counts as alive if it reported in this recently.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(30);

fn queue<'a>(state: &'a AppState, name: &str) -> Result<&'a Queue, ApiError> {
    state
        .queue(name)
        .ok_or_else(|| ApiError::NotFound(format!("no queue {name:?}")))
}

/// List queues
///
/// Depth by part and live workers, per queue.
#[utoipa::path(get, path = "/api/v1/queues", operation_id = "list_queues", tag = "queues",
    responses((status = 200, description = "Every queue", body = QueueList)),
    security(("bearer" = ["viewer"])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let mut queues = Vec::new();
    for (name, q) in state.queues.iter() {
        let counts = q.counts().await?;
        let workers = q.workers_alive(ALIVE_WITHIN).await?;
        state.metrics.set_queue(name, &counts, workers);
        queues.push(QueueStats {
            name: name.clone(),
            queued: counts.ready,
            delayed: counts.scheduled,
            running: counts.running,
            dead: counts.dead,
            finished_kept: counts.done,
            workers_alive: workers,
        });
    }
    Ok(Json(QueueList { queues }))
}

/// Paging of the dead set (keyset, like every other list).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// `next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

/// List dead jobs
///
/// A queue's dead jobs (out of attempts), newest first, with their last error.
/// Failed jobs are read like every other job: a viewer may read them (here
/// and through `GET /api/v1/jobs?state=dead`, which show the same payloads
/// and errors); acting on them (requeue, delete, retry) needs admin.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/dead", operation_id = "list_dead_jobs", tag = "queues",
    params(("queue" = String, Path, description = "Queue name: sync, reports or inference"), Page),
    responses(
        (status = 200, description = "A page of dead jobs", body = DeadPage),
        (status = 404, description = "No such queue", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn dead(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(p): Query<Page>,
) -> Result<Json<DeadPage>, ApiError> {
    let q = queue(&state, &name)?;
    let after = match super::split_cursor(p.cursor.as_deref(), 2)? {
        None => None,
        Some(parts) => Some(DeadCursor {
            died_at_ms: parts[0]
                .parse()
                .map_err(|_| ApiError::invalid("cursor", "not a cursor returned by this endpoint"))?,
            id: parts[1].clone(),
        }),
    };
    let limit = super::page_limit(p.limit.as_deref(), 50, 200)? as u64;
    let page = q.dead(after.as_ref(), limit).await?;
    let jobs = page.jobs.into_iter().map(DeadJob::from).collect();
    let next_cursor = page
        .next
        .map(|c| super::make_cursor(&[&c.died_at_ms.to_string(), &c.id]));
    Ok(Json(DeadPage {
        total: page.total,
        jobs,
        next_cursor,
    }))
}

/// Requeue a dead job
///
/// Runs it again with a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/dead/{id}/requeue", operation_id = "requeue_dead_job", tag = "queues",
    params(("queue" = String, Path, description = "Queue name: sync, reports or inference"), ("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued again", body = Requeued),
        (status = 404, description = "No such dead job", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn requeue(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let q = queue(&state, &name)?;
    if !q
        .state(&id)
        .await?
        .is_some_and(|s| s.status == hangar_queue::JobStatus::Dead)
    {
        return Err(ApiError::NotFound(format!("no dead job {id} in queue {name}")));
    }
    // The record first: an outcome of the new run then always lands on a reopened row.
    hangar_shared::db::mark_requeued(&state.pool, std::slice::from_ref(&id)).await?;
    q.requeue_dead(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(Requeued::new(id, false))))
}

/// Requeue every dead job
///
/// Every dead job of the queue runs again.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/dead/requeue-all", operation_id = "requeue_all_dead_jobs", tag = "queues",
    params(("queue" = String, Path, description = "Queue name: sync, reports or inference")),
    responses(
        (status = 202, description = "Queued again", body = RequeuedAll),
        (status = 404, description = "No such queue", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn requeue_all(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let q = queue(&state, &name)?;
    let mut total = 0;
    loop {
        let page = q.dead(None, 500).await?;
        let ids: Vec<String> = page.jobs.into_iter().map(|j| j.id).collect();
        if ids.is_empty() {
            break;
        }
        hangar_shared::db::mark_requeued(&state.pool, &ids).await?;
        let n = q.requeue_dead_ids(&ids).await?;
        total += n;
        if n == 0 {
            break; // another requeue took them meanwhile
        }
    }
    Ok((StatusCode::ACCEPTED, Json(RequeuedAll { requeued: total })))
}

/// Delete a dead job
///
/// Forgets it in Redis; its record in PostgreSQL stays, as history.
#[utoipa::path(delete, path = "/api/v1/queues/{queue}/dead/{id}", operation_id = "delete_dead_job", tag = "queues",
    params(("queue" = String, Path, description = "Queue name: sync, reports or inference"), ("id" = String, Path, description = "Job id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such dead job", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn delete(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let q = queue(&state, &name)?;
    // Record it as dead first, or the repair loop would find an open record
    // Redis no longer knows and dispatch it again.
    if let Some(live) = q.state(&id).await?
        && live.status == hangar_queue::JobStatus::Dead
    {
        hangar_shared::db::sync_from_queue(&state.pool, &id, &live).await?;
    }
    if !q.delete_dead(&id).await? {
        return Err(ApiError::NotFound(format!("no dead job {id} in queue {name}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
