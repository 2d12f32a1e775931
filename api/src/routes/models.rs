//! `/api/models`: every configured model with its health (cached by the
//! background monitor: these routes never wait on a model server), its
//! parameters, requests in flight across every worker (the Redis
//! semaphore), jobs waiting, and the recent success rate.

use axum::{
    Json,
    extract::{Path, State},
};
use hangar_shared::{kinds, models::ModelConfig};
use serde_json::{Value, json};

use crate::{error::ApiError, schema, state::AppState};

async fn model_json(state: &AppState, model: &ModelConfig) -> Result<Value, ApiError> {
    let health = state.models.health(&model.name).unwrap_or_default();
    let sem = hangar_inference::slot_semaphore(state.redis.clone(), &state.config.redis.prefix, model);
    let in_flight = match sem.in_use().await {
        Ok(n) => json!(n),
        Err(e) => {
            tracing::warn!(error = %e, "redis unreachable; in-flight count unknown");
            Value::Null
        }
    };
    let stats = sqlx::query!(
        r#"SELECT
             count(*) FILTER (WHERE state IN ('scheduled', 'queued', 'retrying')) AS "queued!",
             count(*) FILTER (WHERE state = 'running') AS "running!",
             count(*) FILTER (WHERE state = 'succeeded' AND finished_at > now() - interval '1 hour') AS "succeeded!",
             count(*) FILTER (WHERE state IN ('dead', 'failed') AND finished_at > now() - interval '1 hour') AS "failed!"
           FROM job_runs
           WHERE kind = $1 AND payload->>'model' = $2
             AND (state IN ('scheduled', 'queued', 'retrying', 'running') OR finished_at > now() - interval '1 hour')"#,
        kinds::INFERENCE_CHAT,
        model.name
    )
    .fetch_one(&state.pool)
    .await?;
    let finished = stats.succeeded + stats.failed;
    Ok(json!({
        "name": model.name,
        "base_url": model.base_url,
        "upstream_model": model.upstream_model,
        "health": health,
        "parameters": {
            "context_size": model.context_size,
            "max_tokens_cap": model.max_tokens_cap,
            "max_in_flight": model.max_in_flight,
            "request_timeout_secs": model.request_timeout.as_secs(),
            "stall_timeout_secs": model.stall_timeout.as_secs(),
            "request_attempts": model.request_attempts,
            "defaults": model.defaults,
        },
        "in_flight": in_flight,
        "jobs": {
            "queued": stats.queued,
            "running": stats.running,
            "last_hour": {
                "succeeded": stats.succeeded,
                "failed": stats.failed,
                "success_rate": (finished > 0).then(|| stats.succeeded as f64 / finished as f64),
            },
        },
    }))
}

/// List models
///
/// Every configured model server with its cached health (probe latency,
/// consecutive failures, last error, warm-up), parameters, requests in
/// flight across all workers, queued jobs and last hour's success rate.
#[utoipa::path(get, path = "/api/models", operation_id = "list_models", tag = "inference",
    responses((status = 200, description = "Every configured model", body = schema::ModelList)),
    security(("bearer" = ["viewer"])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for m in state.config.inference.models.iter() {
        items.push(model_json(&state, m).await?);
    }
    Ok(Json(json!({ "items": items })))
}

/// Get a model
///
/// One model's health, parameters, in-flight requests and jobs.
#[utoipa::path(get, path = "/api/models/{name}", operation_id = "get_model", tag = "inference",
    params(("name" = String, Path, description = "Model name from the models file")),
    responses(
        (status = 200, description = "The model", body = schema::Model),
        (status = 404, description = "No such model", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let model = state.config.inference.models.get(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no model called {name:?}; configured: {}",
            state.config.inference.models.names().join(", ")
        ))
    })?;
    Ok(Json(model_json(&state, model).await?))
}
