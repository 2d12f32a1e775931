//! Hangar's HTTP API. `main.rs` only parses arguments and calls [`run`]; tests
//! call the same [`run`] with a listener on port 0.

pub mod access;
pub mod audit;
pub mod auth;
pub mod console;
pub mod enqueue;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod request_id;
pub mod routes;
pub mod schema;
pub mod scrape;
pub mod serve;
pub mod state;
pub mod streams;
pub mod sync_status;
pub mod views;

use std::{future::Future, sync::Arc};

use axum::{Router, extract::DefaultBodyLimit, middleware::from_fn_with_state};
use hangar_shared::{Config, db, kinds};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::{error::ApiError, state::AppState};

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Every route, with its layers (outermost first): request id and
/// metrics, security headers and JSON-only bodies, CORS, timeout, body
/// limit, then authentication, rate limiting and audit.
pub fn router(state: AppState) -> Router {
    let (routes, spec) = openapi::routes();
    let security = &state.config.api.security;
    let mut router = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .merge(console::routes())
        .fallback(not_found)
        .layer(from_fn_with_state(
            state.clone(),
            crate::middleware::access::middleware,
        ))
        .layer(DefaultBodyLimit::max(security.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            security.request_timeout,
        ));
    if let Some(cors) = crate::middleware::hardening::cors(&security.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(from_fn_with_state(
            state.clone(),
            crate::middleware::hardening::middleware,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            crate::middleware::request_id::middleware,
        ))
        .with_state(state)
}

/// Builds the shared state: a lazy PostgreSQL pool (the API starts, and
/// reports not ready, while PostgreSQL is down) and a Redis connection
/// (retried with backoff at start) shared by every queue.
pub async fn state(config: Config) -> anyhow::Result<AppState> {
    // Its lists take optional filters: see `Planning::ForEachExecution`.
    let pool = db::pool_with(&config.database, db::Planning::ForEachExecution)?;
    // The enqueuer's and the audit writer's fixed-shape batch inserts keep
    // their cached plans (planning each again cost about 10 % of the enqueue
    // rate, bench/api.sh). Each writes from one task: one connection each.
    let writes = db::pool(&config.database)?;
    // The AWS Organization's accounts (HANGAR_AWS_ORGANIZATION_ROLE), as the
    // scheduler last stored them; read again every minute.
    db::org_accounts::keep_loaded(
        pool.clone(),
        config.aws.clone(),
        std::time::Duration::from_secs(60),
    );
    let queues = Arc::new(hangar_shared::open_queues(&config, kinds::QUEUES.iter().copied()).await?);
    let metrics: Arc<metrics::Metrics> = Arc::default();
    let enqueuer = enqueue::Enqueuer::start(writes.clone(), queues.clone(), metrics.clone());
    let file_schedules =
        Arc::new(hangar_shared::schedule::load_file(&config).map_err(|e| anyhow::anyhow!(e))?);
    let security = &config.api.security;
    let policy = Arc::new(access::Policy::from_openapi(
        &openapi::document(),
        security.metrics_public,
    ));
    let jwt = auth::jwt::JwtVerifier::new(&security.jwt)?;
    jwt.spawn_refresh();
    let redis = config.redis_settings().connect().await?;
    let rate_limiter = hangar_queue::RateLimiter::new(redis.clone(), &config.redis.prefix);
    let keys = auth::key_cache::KeyCache::start(redis.clone(), &config.redis.prefix, metrics.clone());
    let auth = auth::Authenticator::new(pool.clone(), jwt, keys);
    let models =
        hangar_inference::ModelMonitor::start(&config.inference.models, config.inference.probe_interval);
    metrics.watch_models(models.clone());
    let audit = audit::AuditLog::start(writes);
    let streams = streams::StreamHub::start(
        config.redis_settings(),
        redis.clone(),
        security.streams_per_caller,
        security.streams_max,
        metrics.clone(),
    );
    let reports = hangar_reports::ReportStore::open(&config.reports)?;
    Ok(AppState::new(state::Services {
        reports,
        activity: console::ActivityCache::default(),
        streams,
        blocked: access::BlockedAddresses::default(),
        policy,
        auth,
        rate_limiter,
        audit,
        pool,
        queues,
        metrics,
        config: Arc::new(config),
        enqueuer,
        file_schedules,
        models,
        redis,
    }))
}

/// Serves the API on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _reports = hangar_shared::error_reports::init(&config.errors, "api");
    let state = state(config).await?;
    tracing::info!(addr = %listener.local_addr()?, "hangar-api listening");
    let security = &state.config.api.security;
    let limits = serve::Limits {
        max_connections: security.max_connections,
        header_read: security.header_read_timeout,
        body_read: security.body_read_timeout,
        idle: security.idle_timeout,
        drain: state.config.worker.drain_timeout,
    };
    let metrics = state.metrics.clone();
    serve::serve(listener, router(state), limits, metrics, shutdown).await?;
    tracing::info!("hangar-api stopped");
    Ok(())
}
