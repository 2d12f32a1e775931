//! `/api/v1/jobs`: enqueue, read, list, cancel, retry.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use hangar_shared::{
    db::{self, JobFilter, JobRun, NewJobRun},
    job_admin, kinds,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    audit::{AuditTarget, AuditedWithJob, PendingAudit},
    auth::Principal,
    error::ApiError,
    request_id::current_request_id,
    schema,
    state::AppState,
    views::jobs::{Cancelled, Job, JobAccepted, JobPage, Requeued},
};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Enqueue a job
///
/// Records the job in PostgreSQL, then queues it in Redis. With an
/// `Idempotency-Key` header, or for kinds that allow one open job per key
/// (syncs), an existing job is returned (200, `duplicate: true`) instead of
/// a second one. Idempotency keys belong to the caller (another caller's
/// same key is another key); the same key with a different request (kind,
/// payload or `run_at`) is refused with 422. `run_at` may be at most
/// `HANGAR_RUN_AT_HORIZON_DAYS` (30) days ahead. Some kinds need more than
/// the operator role (`system.sleep` and `system.retention` need admin): 403.
#[utoipa::path(post, path = "/api/v1/jobs", operation_id = "create_job", tag = "jobs",
    request_body = schema::CreateJob,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1-256 visible ASCII characters (not starting with `schedule:`); a repeat of the same request by the same caller returns the first job")),
    responses(
        (status = 202, description = "Recorded and queued", body = schema::JobAccepted),
        (status = 200, description = "An existing job (same caller and Idempotency-Key, or its singleton is open)", body = schema::JobAccepted),
        (status = 403, description = "The kind needs a higher role than the caller's", body = schema::ErrorBody),
        (status = 422, description = "Invalid field (`kind`, `payload.*`, `run_at` beyond the horizon), or an Idempotency-Key reused for a different request", body = schema::ErrorBody)),
    security(("bearer" = ["operator"])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    audit: Option<Extension<PendingAudit>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("kind", "missing (the body is empty)"));
    }
    let obj = super::json_object(&state, &body, &["kind", "payload", "run_at"])?;
    let kind_name = match obj.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err(ApiError::invalid("kind", "must be a string")),
        None => return Err(ApiError::invalid("kind", "missing")),
    };
    let Some(spec) = kinds::kind(&kind_name) else {
        let known: Vec<&str> = kinds::all().iter().map(|k| k.name).collect();
        return Err(ApiError::invalid(
            "kind",
            format!("unknown kind {kind_name:?}; known: {}", known.join(", ")),
        ));
    };
    super::may_submit(&caller, spec)?;
    let payload = kinds::validate_for(
        spec,
        obj.get("payload").unwrap_or(&json!({})),
        &state.config.inference.models,
    )
    .map_err(|e| e.within("payload"))?;
    let run_at = match obj.get("run_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|e| ApiError::invalid("run_at", format!("not an RFC 3339 time: {e}")))?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err(ApiError::invalid("run_at", "must be an RFC 3339 time string")),
    };
    let horizon = state.config.api.security.run_at_horizon;
    if let Some(at) = run_at
        && at > Utc::now() + chrono::Duration::from_std(horizon).unwrap_or(chrono::Duration::MAX)
    {
        return Err(ApiError::invalid(
            "run_at",
            format!(
                "must be at most {} days ahead (HANGAR_RUN_AT_HORIZON_DAYS); use a schedule for later work",
                horizon.as_secs() / 86_400
            ),
        ));
    }
    let idempotency_key = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| (1..=256).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
                // Reserved for the scheduler's tick keys: a client must not
                // be able to claim (and so suppress) a future tick.
                .filter(|k| !k.starts_with("schedule:"));
            Some(
                key.ok_or_else(|| ApiError::BadRequest {
                    code: crate::error::ErrorCode::InvalidHeader,
                    message: "Idempotency-Key must be 1-256 visible ASCII characters, not starting with \"schedule:\"".into(),
                    field: Some("Idempotency-Key".into()),
                })?
                .to_owned(),
            )
        }
    };
    let mut new = NewJobRun::new(spec, payload)
        .requested_by(caller.actor.clone())
        .request_id(current_request_id())
        .run_at(run_at);
    if let Some(key) = idempotency_key {
        // Keys are the caller's own: one caller's key never answers another's.
        new = new.idempotency(Some(caller.rate_key.clone()), key);
    }
    accept(&state, new, audit).await
}

/// Records and queues `new` with the request's audit entry in the same
/// commit, and answers as `POST /api/v1/jobs` does: 202 (or 200 for an
/// existing job) with the job, its id as the audit target.
pub(super) async fn accept(
    state: &AppState,
    new: NewJobRun,
    audit: Option<Extension<PendingAudit>>,
) -> Result<Response, ApiError> {
    let ((status, duplicate, run), audited) = state
        .enqueuer
        .submit_audited(new, audit.map(|Extension(PendingAudit(entry))| entry))
        .await?;
    let mut response = (
        status,
        Json(JobAccepted {
            duplicate,
            job: Job::new(&run, None),
        }),
    )
        .into_response();
    response.extensions_mut().insert(AuditTarget(run.id));
    if audited {
        response.extensions_mut().insert(AuditedWithJob);
    }
    Ok(response)
}

/// Get a job
///
/// Its record, with the live state (attempts, progress, worker) while it
/// is open.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = schema::Job),
        (status = 404, description = "No such job", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Job>, ApiError> {
    let run = recorded_job(&state, &id).await?;
    let live = if run.state.is_open() {
        match state.queue(&run.queue) {
            Some(q) => q.state(&id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "redis unreachable; showing the recorded state");
                None
            }),
            None => None,
        }
    } else {
        None
    };
    Ok(Json(Job::new(&run, live.as_ref())))
}

/// The job's record, or 404.
pub(crate) async fn recorded_job(state: &AppState, id: &str) -> Result<JobRun, ApiError> {
    db::get_job(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
}

/// The job's record and the queue it runs on.
pub(crate) async fn job_and_queue<'s>(
    state: &'s AppState,
    id: &str,
) -> Result<(JobRun, &'s hangar_queue::Queue), ApiError> {
    let run = recorded_job(state, id).await?;
    let queue = state
        .queue(&run.queue)
        .ok_or_else(|| anyhow::anyhow!("queue {} not configured", run.queue))?;
    Ok((run, queue))
}

/// Query of `GET /api/v1/jobs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state: scheduled, queued, running, retrying, succeeded, cancelled, dead.
    pub state: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs asked for by this caller, e.g. `jwt:alice`, `key:ci`, `schedule:nightly`.
    pub requested_by: Option<String>,
    /// Only jobs whose payload contains this JSON object, e.g.
    /// `{"account":"prod"}` (JSONB containment, indexed).
    pub payload: Option<String>,
    /// Only jobs created at or after this time (RFC 3339 or a date).
    pub created_after: Option<String>,
    /// Only jobs created before this time (RFC 3339 or a date).
    pub created_before: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List jobs
///
/// Recorded jobs, newest first, keyset paged.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "list_jobs", tag = "jobs",
    params(ListQuery),
    responses((status = 200, description = "A page of jobs", body = schema::JobPage)),
    security(("bearer" = ["viewer"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    page(&state, q).await.map(Json)
}

/// One page of recorded jobs as `q` asks (the API's list and the console's).
pub async fn page(state: &AppState, q: ListQuery) -> Result<JobPage, ApiError> {
    let limit = super::page_limit(q.limit.as_deref(), 50, 200)?;
    let mut filter = job_filter(&q)?;
    let cursor = super::job_id_cursor(q.cursor.as_deref())?;
    filter.before = match (cursor, filter.before) {
        (Some(c), Some(end)) => Some(c.min(end)),
        (c, end) => c.or(end),
    };
    filter.limit = limit;
    let runs = db::list_jobs(&state.pool, &filter).await?;
    let next = super::next_cursor(&runs, limit, |r| r.id.clone());
    let jobs = runs.iter().map(|r| Job::new(r, None)).collect();
    Ok(JobPage {
        jobs,
        next_cursor: next,
    })
}

/// Payload filters hold at most this many fields (each one narrows; more
/// is a sign of a pasted payload rather than a filter).
const PAYLOAD_FILTER_FIELDS: usize = 16;

/// The filter `q` describes (without its cursor and page size), each
/// parameter checked and named when refused.
pub fn job_filter(q: &ListQuery) -> Result<JobFilter, ApiError> {
    if let Some(k) = &q.kind
        && kinds::kind(k).is_none()
    {
        return Err(ApiError::invalid("kind", format!("unknown kind {k:?}")));
    }
    let payload = match q.payload.as_deref() {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) if m.len() <= PAYLOAD_FILTER_FIELDS => Some(Value::Object(m)),
            Ok(Value::Object(_)) => {
                return Err(ApiError::invalid(
                    "payload",
                    format!("at most {PAYLOAD_FILTER_FIELDS} fields"),
                ));
            }
            _ => {
                return Err(ApiError::invalid(
                    "payload",
                    "must be a JSON object the payload contains, e.g. {\"account\":\"prod\"}",
                ));
            }
        },
    };
    let after = super::parse_time("created_after", q.created_after.as_deref())?;
    let before = super::parse_time("created_before", q.created_before.as_deref())?;
    if let (Some(a), Some(b)) = (after, before)
        && a >= b
    {
        return Err(ApiError::invalid("created_before", "must be after created_after"));
    }
    Ok(JobFilter {
        kind: q.kind.clone(),
        state: super::job_state_filter(q.state.as_deref())?,
        queue: q.queue.clone(),
        requested_by: q.requested_by.clone(),
        payload,
        from_id: after.map(db::id_at),
        before: before.map(db::id_at),
        limit: 0,
    })
}

/// Cancel a job
///
/// A waiting job is cancelled at once (200); a running one is asked to stop
/// (202) and stops at its next checkpoint. A finished job answers 409.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = 202, description = "Running; asked to stop", body = Cancelled),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "Already finished", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (run, queue) = job_and_queue(&state, &id).await?;
    Ok(match job_admin::cancel(&state.pool, queue, &run).await? {
        job_admin::Cancelled::Done => (StatusCode::OK, Json(Cancelled::done(id))),
        job_admin::Cancelled::Requested => (StatusCode::ACCEPTED, Json(Cancelled::requested(id))),
    })
}

/// Retry a dead job
///
/// The dead job runs again under the same id with a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", operation_id = "retry_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued again", body = Requeued),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 409, description = "Not dead", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (run, queue) = job_and_queue(&state, &id).await?;
    job_admin::retry(&state.pool, queue, &run, current_request_id()).await?;
    Ok((StatusCode::ACCEPTED, Json(Requeued::new(id, true))))
}
