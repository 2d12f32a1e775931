//! `/api/models`: every configured model with its health (cached by the
//! background monitor: these routes never wait on a model server), its
//! parameters, requests in flight across every worker (the Redis
//! semaphore), jobs waiting, and the recent success rate.

use crate::{
    error::ApiError,
    schema,
    state::AppState,
    views::inference::{LastHour, Model, ModelJobs, ModelList, ModelParameters},
};
use axum::{
    Json,
    extract::{Path, State},
};
use hangar_shared::{kinds, models::ModelConfig};

async fn model_view(state: &AppState, model: &ModelConfig) -> Result<Model, ApiError> {
    let health = state.models.health(&model.name).unwrap_or_default();
    let sem = hangar_inference::slot_semaphore(state.redis.clone(), &state.config.redis.prefix, model);
    let in_flight = match sem.in_use().await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "redis unreachable; in-flight count unknown");
            None
        }
    };
    let stats = sqlx::query!(
        r#"SELECT
             count(*) FILTER (WHERE state IN ('scheduled', 'queued', 'retrying')) AS "queued!",
             count(*) FILTER (WHERE state = 'running') AS "running!",
             count(*) FILTER (WHERE state = 'succeeded' AND finished_at > now() - interval '1 hour') AS "succeeded!",
             count(*) FILTER (WHERE state = 'dead' AND finished_at > now() - interval '1 hour') AS "failed!"
           FROM job_runs
           WHERE kind = $1 AND payload->>'model' = $2
             AND (state IN ('scheduled', 'queued', 'retrying', 'running') OR finished_at > now() - interval '1 hour')"#,
        kinds::INFERENCE_CHAT,
        model.name
    )
    .fetch_one(&state.pool)
    .await?;
    Ok(Model {
        name: model.name.clone(),
        base_url: model.base_url.clone(),
        upstream_model: model.upstream_model.clone(),
        health,
        parameters: ModelParameters::from(model),
        in_flight,
        jobs: ModelJobs {
            queued: stats.queued,
            running: stats.running,
            last_hour: LastHour::new(stats.succeeded, stats.failed),
        },
    })
}

/// List models
///
/// Every configured model server with its cached health (probe latency,
/// consecutive failures, last error, warm-up), parameters, requests in
/// flight across all workers, queued jobs and last hour's success rate.
#[utoipa::path(get, path = "/api/models", operation_id = "list_models", tag = "inference",
    responses((status = 200, description = "Every configured model", body = ModelList)),
    security(("bearer" = ["viewer"])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let mut items = Vec::new();
    for m in state.config.inference.models.iter() {
        items.push(model_view(&state, m).await?);
    }
    Ok(Json(ModelList { items }))
}

/// Get a model
///
/// One model's health, parameters, in-flight requests and jobs.
#[utoipa::path(get, path = "/api/models/{name}", operation_id = "get_model", tag = "inference",
    params(("name" = String, Path, description = "Model name from the models file")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 404, description = "No such model", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Model>, ApiError> {
    let model = state.config.inference.models.get(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no model called {name:?}; configured: {}",
            state.config.inference.models.names().join(", ")
        ))
    })?;
    Ok(Json(model_view(&state, model).await?))
}
