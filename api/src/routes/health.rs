//! Health and metrics endpoints.

use crate::{
    state::AppState,
    views::health::{Check, Live, Ready, ReadyChecks},
};
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

/// Liveness
///
/// The process is up and serving. No dependency is checked: restart the
/// process only when this fails.
#[utoipa::path(get, path = "/health/live", operation_id = "live", tag = "health",
    responses((status = 200, description = "Serving", body = Live)),
    security(()))]
pub async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Liveness (alias)
///
/// Same as `/health/live`.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "health",
    responses((status = 200, description = "Serving", body = Live)),
    security(()))]
pub async fn health() -> Json<Live> {
    live().await
}

/// Readiness
///
/// PostgreSQL and Redis answer within `HANGAR_READY_TIMEOUT_MS` and every
/// migration is applied; otherwise 503 naming what failed. Route traffic
/// only to ready replicas.
#[utoipa::path(get, path = "/health/ready", operation_id = "ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "A dependency failed", body = Ready)),
    security(()))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = state.config.api.ready_timeout;
    let postgres =
        match tokio::time::timeout(timeout, hangar_shared::db::pending_migrations(&state.pool)).await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(n)) => Err(format!("{n} migration(s) not applied; run `hangar-api migrate`")),
            Ok(Err(e)) => {
                // The cause (host names, user names) goes to the log, not to
                // an unauthenticated caller.
                tracing::warn!(error = %e, "readiness: postgres unreachable");
                Err("unreachable".to_owned())
            }
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
    let redis = match state.queues.values().next() {
        Some(q) => match tokio::time::timeout(timeout, q.counts()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: redis unreachable");
                Err("unreachable".to_owned())
            }
            Err(_) => Err(format!("no answer within {timeout:?}")),
        },
        None => Err("no queue configured".to_owned()),
    };
    let failed: Vec<&str> = [("postgres", &postgres), ("redis", &redis)]
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| *n)
        .collect();
    let (status, word) = if failed.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = Ready {
        status: word,
        failed,
        checks: ReadyChecks {
            postgres: Check::from(&postgres),
            redis: Check::from(&redis),
        },
    };
    (status, Json(body))
}

/// Prometheus metrics
///
/// Prometheus text: requests, latency, enqueues, queue depths and latency,
/// workers, pool, each sync target's last success, the scheduler leader,
/// the Cost Explorer budget left, whether PostgreSQL and Redis answered,
/// authentication failures, rate limiting, audit failures. Public unless
/// `HANGAR_METRICS_PUBLIC=false` (then the viewer role is needed).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")),
    security((), ("bearer" = ["viewer"])))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::scrape::refresh(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
