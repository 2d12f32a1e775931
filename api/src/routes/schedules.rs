//! `/api/v1/schedules`: the periodic schedules. Those from the deployment's
//! schedules file are listed read-only (`"source": "file"`); the API
//! creates, changes and deletes its own (`"source": "api"`, stored in the
//! `schedules` table, picked up by the scheduler on its next pass). Every
//! schedule shows its next 5 fire times and its last run.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use chrono::Utc;
use hangar_shared::{
    db::NewJobRun,
    kinds,
    models::ModelRegistry,
    schedule::{self, Schedule, ScheduleSpec},
};
use serde_json::{Map, Value, json};

use crate::{
    audit::AuditTarget,
    auth::Principal,
    error::ApiError,
    request_id::current_request_id,
    schema,
    state::AppState,
    views::{
        jobs::{Job, ScheduleRun, ScheduleRunJob},
        schedules::{LastRun, ScheduleList, ScheduleView},
    },
};

fn parse_body(state: &AppState, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match super::parse_json(state, body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::invalid("", "request body must be a JSON object")),
    }
}

/// Decodes and validates a definition, naming the field at fault; a
/// payload is also checked against the deployment (an inference schedule's
/// model must be configured), as a job submitted now would be. Fan-out
/// payloads get their target only when they fire: `Schedule::new` checked
/// them with a probe target.
fn validate(body: Map<String, Value>, models: &ModelRegistry) -> Result<Schedule, ApiError> {
    let spec: ScheduleSpec = kinds::decode(&Value::Object(body))?;
    let s = Schedule::new(spec)?;
    if !s.fans_out()
        && let Some(kind) = kinds::kind(&s.spec.kind)
    {
        kinds::validate_for(kind, &s.spec.payload, models).map_err(|e| e.within("payload"))?;
    }
    Ok(s)
}

/// A schedule submits jobs of its kind on its own later: defining one needs
/// the role the kind needs (today every kind's is within admin, which
/// these routes need anyway; the check keeps that true if either changes).
fn may_define(caller: &Principal, s: &Schedule) -> Result<(), ApiError> {
    match kinds::kind(&s.spec.kind) {
        Some(kind) => super::may_submit(caller, kind),
        None => Ok(()),
    }
}

/// The stored (API) schedule called `name`, if any.
async fn stored(state: &AppState, name: &str) -> Result<Option<Value>, ApiError> {
    Ok(
        sqlx::query_scalar!("SELECT spec FROM schedules WHERE name = $1", name)
            .fetch_optional(&state.pool)
            .await?,
    )
}

/// Every schedule, file ones first, with where it comes from.
async fn all(state: &AppState) -> Result<Vec<(Schedule, &'static str)>, ApiError> {
    let mut out: Vec<(Schedule, &'static str)> = state
        .file_schedules
        .iter()
        .cloned()
        .map(|s| (s, "file"))
        .collect();
    let rows = sqlx::query!("SELECT name, spec FROM schedules ORDER BY name")
        .fetch_all(&state.pool)
        .await?;
    for row in rows {
        let parsed = serde_json::from_value::<ScheduleSpec>(row.spec)
            .ok()
            .and_then(|spec| Schedule::new(spec).ok());
        match parsed {
            Some(s) => out.push((s, "api")),
            None => tracing::error!(schedule = %row.name, "stored schedule no longer validates; not listed"),
        }
    }
    Ok(out)
}

/// The views of `schedules`: definition, source, next fire times, last run.
async fn views(
    state: &AppState,
    schedules: &[(Schedule, &'static str)],
) -> Result<Vec<ScheduleView>, ApiError> {
    let names: Vec<String> = schedules.iter().map(|(s, _)| s.spec.name.clone()).collect();
    let runs = sqlx::query!(
        r#"SELECT s.name, s.cursor, s.last_job_id, s.last_fired_at, j.state AS "state?"
           FROM schedule_state s LEFT JOIN job_runs j ON j.id = s.last_job_id
           WHERE s.name = ANY($1)"#,
        &names
    )
    .fetch_all(&state.pool)
    .await?;
    let now = Utc::now();
    Ok(schedules
        .iter()
        .map(|(s, source)| {
            let last_run = runs.iter().find(|r| r.name == s.spec.name).map(|r| LastRun {
                job_id: r.last_job_id.clone(),
                state: r.state.clone(),
                tick: r.last_fired_at,
                accounted_up_to: r.cursor,
            });
            ScheduleView::new(s, source, now, last_run)
        })
        .collect())
}

/// The view of one schedule.
async fn view(state: &AppState, schedule: (Schedule, &'static str)) -> Result<ScheduleView, ApiError> {
    let name = schedule.0.spec.name.clone();
    views(state, &[schedule])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no view made of schedule {name}")))
}

async fn one(state: &AppState, name: &str) -> Result<(Schedule, &'static str), ApiError> {
    all(state)
        .await?
        .into_iter()
        .find(|(s, _)| s.spec.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no schedule {name}")))
}

/// List schedules
///
/// File schedules (read-only) first, then API ones, each with its next 5
/// fire times and last run.
#[utoipa::path(get, path = "/api/v1/schedules", operation_id = "list_schedules", tag = "schedules",
    responses((status = 200, description = "Every schedule", body = ScheduleList)),
    security(("bearer" = ["viewer"])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = all(&state).await?;
    Ok(Json(ScheduleList {
        schedules: views(&state, &schedules).await?,
    }))
}

/// Get a schedule
#[utoipa::path(get, path = "/api/v1/schedules/{name}", operation_id = "get_schedule", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let s = one(&state, &name).await?;
    Ok(Json(view(&state, s).await?))
}

/// Create a schedule
///
/// Stored in PostgreSQL; the scheduler picks it up on its next pass.
#[utoipa::path(post, path = "/api/v1/schedules", operation_id = "create_schedule", tag = "schedules",
    request_body = schema::ScheduleInput,
    responses(
        (status = 201, description = "Created", body = ScheduleView),
        (status = 409, description = "The name is taken (or defined in the schedules file)", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let s = validate(parse_body(&state, &body)?, &state.config.inference.models)?;
    may_define(&caller, &s)?;
    if state.file_schedules.iter().any(|f| f.spec.name == s.spec.name) {
        return Err(ApiError::Conflict(format!(
            "schedule {} is defined in the deployment's schedules file; change it there",
            s.spec.name
        )));
    }
    let spec = serde_json::to_value(&s.spec).map_err(anyhow::Error::from)?;
    // A new schedule has no past: drop any state a former schedule of the
    // same name left behind, in the same statement.
    let inserted = sqlx::query_scalar!(
        "WITH i AS (INSERT INTO schedules (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name),
              d AS (DELETE FROM schedule_state WHERE name IN (SELECT name FROM i))
         SELECT name AS \"name!\" FROM i",
        s.spec.name,
        spec
    )
    .fetch_optional(&state.pool)
    .await?;
    if inserted.is_none() {
        return Err(ApiError::Conflict(format!(
            "schedule {} already exists",
            s.spec.name
        )));
    }
    tracing::info!(schedule = %s.spec.name, "schedule created");
    let name = s.spec.name.clone();
    let mut response = (StatusCode::CREATED, Json(view(&state, (s, "api")).await?)).into_response();
    response.extensions_mut().insert(AuditTarget(name));
    Ok(response)
}

fn not_from_file(state: &AppState, name: &str) -> Result<(), ApiError> {
    if state.file_schedules.iter().any(|f| f.spec.name == name) {
        return Err(ApiError::Conflict(format!(
            "schedule {name} is defined in the deployment's schedules file (HANGAR_SCHEDULES_FILE); change it there"
        )));
    }
    Ok(())
}

/// Change a schedule
///
/// Changes the given fields (the name cannot change); the result is
/// validated as a whole.
#[utoipa::path(patch, path = "/api/v1/schedules/{name}", operation_id = "update_schedule", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    request_body(content = Object, description = "Any fields of a schedule definition except name"),
    responses(
        (status = 200, description = "Changed", body = ScheduleView),
        (status = 404, description = "No such schedule", body = schema::ErrorBody),
        (status = 409, description = "Defined in the schedules file", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<ScheduleView>, ApiError> {
    not_from_file(&state, &name)?;
    let changes = parse_body(&state, &body)?;
    let Some(Value::Object(mut spec)) = stored(&state, &name).await? else {
        return Err(ApiError::NotFound(format!("no schedule {name}")));
    };
    if let Some(new) = changes.get("name")
        && new != &json!(name)
    {
        return Err(ApiError::invalid(
            "name",
            "cannot be changed; create a new schedule instead",
        ));
    }
    spec.extend(changes);
    let s = validate(spec, &state.config.inference.models)?;
    may_define(&caller, &s)?;
    let stored_spec = serde_json::to_value(&s.spec).map_err(anyhow::Error::from)?;
    sqlx::query!(
        "UPDATE schedules SET spec = $2, updated_at = now() WHERE name = $1",
        name,
        stored_spec
    )
    .execute(&state.pool)
    .await?;
    tracing::info!(schedule = %name, "schedule changed");
    Ok(Json(view(&state, (s, "api")).await?))
}

/// Delete a schedule
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", operation_id = "delete_schedule", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule", body = schema::ErrorBody),
        (status = 409, description = "Defined in the schedules file", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    not_from_file(&state, &name)?;
    let deleted = sqlx::query!(
        "WITH d AS (DELETE FROM schedules WHERE name = $1 RETURNING name),
              s AS (DELETE FROM schedule_state WHERE name IN (SELECT name FROM d))
         SELECT count(*) AS \"n!\" FROM d",
        name
    )
    .fetch_one(&state.pool)
    .await?;
    if deleted.n == 0 {
        return Err(ApiError::NotFound(format!("no schedule {name}")));
    }
    tracing::info!(schedule = %name, "schedule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Run a schedule now
///
/// Runs it outside its ticks (one job, or one per target for a fan-out
/// schedule). Its overlap policy applies: with `skip_if_running`, an open
/// job is returned as `already`.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/run", operation_id = "run_schedule", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 202, description = "At least one new job", body = ScheduleRun),
        (status = 200, description = "Every job was already open", body = ScheduleRun),
        (status = 403, description = "The schedule's kind needs a higher role than the caller's (e.g. `system.retention`: admin)", body = schema::ErrorBody),
        (status = 404, description = "No such schedule", body = schema::ErrorBody),
        (status = 409, description = "No account to run for", body = schema::ErrorBody)),
    security(("bearer" = ["operator"])))]
pub async fn run_now(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (s, _) = one(&state, &name).await?;
    let spec = &s.spec;
    if let Some(kind) = kinds::kind(&spec.kind) {
        super::may_submit(&caller, kind)?;
    }
    let targets = schedule::job_targets(&s, &state.config.aws);
    if targets.is_empty() {
        return Err(ApiError::Conflict(format!(
            "schedule {name} has no account to run for (HANGAR_AWS_ACCOUNTS)"
        )));
    }
    let request_id = current_request_id();
    let runs = targets
        .iter()
        .map(|(key, payload)| Ok(schedule::job_for(&s, key, payload)?.request_id(request_id.clone())))
        .collect::<Result<Vec<NewJobRun>, ApiError>>()?;
    let submits = runs.into_iter().map(|run| {
        let enqueuer = state.enqueuer.clone();
        async move { enqueuer.submit(run).await }
    });
    let results = futures_util::future::try_join_all(submits).await?;
    let any_new = results.iter().any(|(_, already, _)| !already);
    let jobs = results
        .iter()
        .map(|(_, already, run)| ScheduleRunJob {
            already: *already,
            job: Job::new(run, None),
        })
        .collect();
    let status = if any_new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ScheduleRun { schedule: name, jobs })))
}
