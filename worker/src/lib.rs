//! Hangar's worker: one apalis worker per configured queue, each over the
//! Hangar backend with its own concurrency, outcomes persisted to PostgreSQL.
//! `main.rs` only parses arguments and calls [`run`]; tests call [`run`] too.

pub mod jobs;
pub mod metrics;
pub mod persist;

use std::{future::Future, sync::Arc, time::Duration};

use apalis_core::worker::builder::WorkerBuilder;
use hangar_inference::{ChatRunner, ModelMonitor};
use hangar_queue::{BackendHandle, HangarBackend, WorkerOptions};
use hangar_shared::{Config, db, kinds};
use serde_json::Value;
use tokio::{sync::watch, task::JoinSet};

use crate::metrics::WorkerMetrics;

/// How long the final outcomes may take to reach PostgreSQL at exit; after
/// that the scheduler's repair loop reconciles them from Redis.
const PERSIST_DEADLINE: Duration = Duration::from_secs(10);

/// Options for one queue from the configuration.
pub fn queue_options(config: &Config, concurrency: usize) -> WorkerOptions {
    let lease = config.worker.lease;
    WorkerOptions {
        concurrency,
        fetch_batch: concurrency.clamp(1, 50),
        lease,
        heartbeat: (lease / 10).max(Duration::from_millis(200)),
        outage_limit: Some(config.redis.outage_limit),
        ..WorkerOptions::default()
    }
}

/// The inference job runner and its model monitor (which probes only when
/// this worker serves the inference queue).
async fn inference_runner(
    config: &Config,
    pool: &sqlx::PgPool,
    metrics: &WorkerMetrics,
) -> anyhow::Result<(Arc<ChatRunner>, ModelMonitor)> {
    let serves = config
        .worker
        .queues
        .iter()
        .any(|(q, _)| q == kinds::QUEUE_INFERENCE);
    let registry = if serves {
        config.inference.models.clone()
    } else {
        hangar_shared::models::ModelRegistry::default()
    };
    let monitor = ModelMonitor::start(&registry, config.inference.probe_interval);
    metrics.watch_models(monitor.clone());
    let runner = ChatRunner::new(
        registry,
        monitor.clone(),
        pool.clone(),
        config.redis_settings().connect().await?,
        &config.redis.prefix,
        metrics.inference(),
    );
    Ok((Arc::new(runner), monitor))
}

/// The queues a worker serves: those configured, and the control queue
/// with one slot unless configured otherwise (its bulk actions must run
/// even when every work queue is busy).
fn served_queues(configured: &[(String, usize)]) -> Vec<(String, usize)> {
    let mut served = configured.to_vec();
    if !served.iter().any(|(n, _)| n == kinds::QUEUE_CONTROL) {
        served.push((kinds::QUEUE_CONTROL.to_owned(), 1));
    }
    served
}

/// Runs every configured queue until `shutdown` resolves, then drains:
/// no new jobs start, running jobs get `drain_timeout` to finish, and any
/// still running after that are given back to their queue. Returns an error
/// (so the process exits non-zero) if a queue's worker stopped on its own,
/// e.g. because Redis stayed unreachable past the outage limit.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let _reports = hangar_shared::error_reports::init(&config.errors, "worker");
    let pool = db::pool(&config.database)?;
    // The AWS Organization's accounts (HANGAR_AWS_ORGANIZATION_ROLE), as the
    // scheduler last stored them; read again every minute.
    db::org_accounts::keep_loaded(
        pool.clone(),
        config.aws.clone(),
        std::time::Duration::from_secs(60),
    );
    let metrics = Arc::new(WorkerMetrics::default());
    let (outcomes_tx, outcomes_rx) = tokio::sync::mpsc::channel(64);
    let persister = tokio::spawn(persist::run(pool.clone(), outcomes_rx, metrics.clone()));
    let _metrics_server = match config.worker.metrics_bind {
        Some(bind) => {
            let m = metrics.clone();
            Some(hangar_shared::telemetry::serve_metrics(bind, "worker", move || m.render()).await?)
        }
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    let mut handles: Vec<(String, BackendHandle)> = Vec::new();
    let served = served_queues(&config.worker.queues);
    // Every queue, not only those served: a bulk action cancels and retries
    // jobs of any queue.
    let names: std::collections::BTreeSet<&str> = served
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(kinds::QUEUES.iter().copied())
        .collect();
    let all_queues = Arc::new(hangar_shared::open_queues(&config, names).await?);
    let mut queues = (*all_queues).clone();
    let syncer = Arc::new(hangar_sync::Syncer::new(
        pool.clone(),
        config.redis_settings().connect().await?,
        &config.redis.prefix,
        config.aws.clone(),
        metrics.sync(),
    ));
    let (chat, monitor) = inference_runner(&config, &pool, &metrics).await?;
    let store = hangar_reports::ReportStore::open(&config.reports)?;
    // Temporary files of reports whose worker was killed mid-write.
    let swept = hangar_reports::sweep_abandoned(&store.staging_dir(), std::time::Duration::from_secs(3600));
    if swept > 0 {
        tracing::info!(files = swept, "removed abandoned report temporary files");
    }
    let reports = hangar_reports::Reports {
        pool: pool.clone(),
        store,
        retention_days: config.reports.retention_days,
        pricing: (&config.reports).into(),
        webhook: config.reports.webhook_url.as_ref().map(|url| {
            hangar_reports::webhook::Webhook::new(
                url.expose().to_owned(),
                config
                    .reports
                    .webhook_secret
                    .as_ref()
                    .map(|s| s.expose().to_owned()),
                config.reports.public_url.clone(),
            )
        }),
    };
    let env = Arc::new(jobs::Env {
        pool: pool.clone(),
        syncer,
        chat,
        reports,
        metrics: metrics.clone(),
        queues: all_queues.clone(),
    });
    for (name, concurrency) in &served {
        let queue = queues
            .remove(name)
            .ok_or_else(|| anyhow::anyhow!("queue {name} not opened"))?;
        let mut options = queue_options(&config, *concurrency);
        if name == kinds::QUEUE_INFERENCE {
            // Lease inference jobs only while a model is up and warmed up:
            // while the server is down they wait in the queue, not die.
            options.gate = Some(monitor.any_ready());
            if config.inference.models.is_empty() {
                tracing::warn!(
                    "serving the inference queue with no models configured (HANGAR_MODELS_FILE); inference jobs will wait"
                );
            }
        }
        let backend = HangarBackend::<Value>::new(queue, options)?.with_outcome_sink(outcomes_tx.clone());
        let handle = backend.handle();
        tracing::info!(queue = %name, concurrency, worker = %handle.worker_id(), "serving queue");
        metrics.watch(name, handle.clone());
        handles.push((name.clone(), handle));
        let worker = WorkerBuilder::new(name.clone())
            .backend(backend)
            .data(env.clone())
            .build(jobs::dispatch);
        let mut stop = stop_rx.clone();
        let name = name.clone();
        workers.spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
                Ok::<(), apalis_core::error::WorkerError>(())
            };
            (name, worker.run_until(signal).await)
        });
    }
    drop(outcomes_tx);

    let mut failure = None;
    tokio::select! {
        () = shutdown => tracing::info!("draining: no new jobs start"),
        Some(done) = workers.join_next() => {
            // Whatever ended it (an error, or a panic), drain the other
            // queues as on SIGTERM, then exit non-zero.
            let (name, reason) = match done {
                Ok((name, Ok(()))) => (name, "stopped unexpectedly".to_owned()),
                Ok((name, Err(e))) => (name, e.to_string()),
                Err(e) => ("?".to_owned(), format!("worker task failed: {e}")),
            };
            tracing::error!(queue = %name, %reason, "a queue's worker stopped; shutting down");
            failure = Some(anyhow::anyhow!("queue {name}: {reason}"));
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.worker.drain_timeout, async {
        while let Some(done) = workers.join_next().await {
            if let Ok((name, Err(e))) = done {
                tracing::warn!(queue = %name, error = %e, "worker ended with an error while draining");
            }
        }
    })
    .await;
    if drained.is_err() {
        for (name, handle) in &handles {
            match handle.release_held().await {
                Ok(n) if n > 0 => {
                    tracing::warn!(queue = %name, released = n, "drain deadline passed; gave running jobs back")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(queue = %name, error = %e, "could not give jobs back; their leases will lapse")
                }
            }
        }
        workers.shutdown().await;
    }
    if tokio::time::timeout(PERSIST_DEADLINE, persister).await.is_err() {
        tracing::warn!("outcomes not yet in postgres at exit; the repair loop reconciles them from redis");
    }
    tracing::info!("hangar-worker stopped");
    failure.map_or(Ok(()), Err)
}
