//! Hangar's HTTP API. `main.rs` only parses arguments and calls [`run`]; tests
//! call the same [`run`] with a listener on port 0.

pub mod enqueue;
pub mod error;
pub mod metrics;
pub mod request_id;
pub mod routes;
pub mod state;

use std::{future::Future, sync::Arc};

use axum::{
    Router, middleware,
    routing::{delete, get, post},
};
use hangar_shared::{Config, db, kinds};
use tokio::net::TcpListener;

use crate::{error::ApiError, routes::*, state::AppState};

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::live))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/api/v1/syncs/{kind}", post(syncs::create))
        .route("/api/v1/workspaces", get(inventory::list_workspaces))
        .route("/api/v1/workspaces/{id}", get(inventory::get_workspace))
        .route("/api/v1/directories", get(inventory::list_directories))
        .route("/api/v1/audit-events", get(inventory::list_audit_events))
        .route("/api/v1/costs", get(inventory::list_costs))
        .route("/api/v1/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/api/v1/schedules/{name}",
            get(schedules::get)
                .patch(schedules::update)
                .delete(schedules::delete),
        )
        .route("/api/v1/schedules/{name}/run", post(schedules::run_now))
        .route("/api/v1/queues", get(queues::list))
        .route("/api/v1/queues/{queue}/dead", get(queues::dead))
        .route(
            "/api/v1/queues/{queue}/dead/requeue-all",
            post(queues::requeue_all),
        )
        .route("/api/v1/queues/{queue}/dead/{id}/requeue", post(queues::requeue))
        .route("/api/v1/queues/{queue}/dead/{id}", delete(queues::delete))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_id::middleware,
        ))
        .with_state(state)
}

/// Builds the shared state: a lazy PostgreSQL pool (the API starts, and
/// reports not ready, while PostgreSQL is down) and a Redis connection
/// (retried with backoff at start) shared by every queue.
pub async fn state(config: Config) -> anyhow::Result<AppState> {
    let pool = db::pool(&config.database)?;
    let queues = Arc::new(hangar_shared::open_queues(&config, kinds::QUEUES.iter().copied()).await?);
    let metrics: Arc<metrics::Metrics> = Arc::default();
    let enqueuer = enqueue::Enqueuer::start(pool.clone(), queues.clone(), metrics.clone());
    let file_schedules =
        Arc::new(hangar_shared::schedule::load_file(&config).map_err(|e| anyhow::anyhow!(e))?);
    Ok(AppState {
        pool,
        queues,
        metrics,
        config: Arc::new(config),
        enqueuer,
        file_schedules,
    })
}

/// Serves the API on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = state(config).await?;
    tracing::info!(addr = %listener.local_addr()?, "hangar-api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("hangar-api stopped");
    Ok(())
}
