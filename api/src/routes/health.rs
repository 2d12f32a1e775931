//! Health and metrics endpoints.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::{Value, json};

use crate::state::AppState;

/// `GET /health` and `/health/live`: the process is up and serving.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /health/ready`: PostgreSQL and Redis answer within the timeout and
/// migrations are applied; otherwise 503 naming what failed.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = state.config.api.ready_timeout;
    let postgres =
        match tokio::time::timeout(timeout, hangar_shared::db::pending_migrations(&state.pool)).await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(n)) => Err(format!("{n} migration(s) not applied; run `hangar-api migrate`")),
            Ok(Err(e)) => Err(format!("unreachable: {e}")),
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
    let check = |r: &Result<(), String>| {
        r.as_ref()
            .map_or_else(|e| json!({"ok": false, "error": e}), |()| json!({"ok": true}))
    };
    let failed: Vec<&str> = [("postgres", &postgres), ("redis", &redis)]
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| *n)
        .collect();
    let body = json!({
        "status": if failed.is_empty() { "ready" } else { "unavailable" },
        "failed": failed,
        "checks": {"postgres": check(&postgres), "redis": check(&redis)},
    });
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text. Queue depths and pool gauges are
/// refreshed at scrape time.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    for (name, q) in state.queues.iter() {
        if let (Ok(counts), Ok(workers)) = (
            q.counts().await,
            q.workers_alive(super::queues::ALIVE_WITHIN).await,
        ) {
            state.metrics.set_queue(name, &counts, workers);
        }
    }
    let size = state.pool.size();
    let idle = state.pool.num_idle() as u32;
    state.metrics.set_pool(size.saturating_sub(idle), idle);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
