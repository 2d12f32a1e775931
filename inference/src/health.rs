//! Model health, probed in the background and cached, so that neither the
//! API nor a worker ever waits on a model server to answer "is it up?".
//!
//! Per model: a probe (`/health`, or `/v1/models`), then a warm-up (one
//! `max_tokens: 1` completion) after start and after every recovery. A
//! model is *ready* once both succeed; workers lease inference jobs only
//! while one of their models is ready. A failing request marks its model
//! unhealthy at once (no need to wait for the next probe) and a sick model
//! is probed every second until it answers.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hangar_shared::models::ModelRegistry;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::client::ModelClient;

/// Re-probe cadence while a model is unhealthy.
const SICK_PROBE: Duration = Duration::from_secs(1);

/// What the monitor knows of one model (also its OpenAPI schema).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ModelHealth {
    /// `unknown` (not probed yet), `healthy`, `warming` (up, warm-up pending or failed), `unhealthy`.
    #[schema(value_type = String, example = "healthy")]
    pub status: &'static str,
    /// Healthy and warmed up: jobs may run.
    pub ready: bool,
    /// Whether the last warm-up succeeded.
    pub warmed_up: bool,
    /// The last probe's round trip.
    pub latency_ms: Option<u64>,
    /// Failed probes (or requests) since the last success.
    pub consecutive_failures: u32,
    /// The most recent failure (kept after recovery: see `last_error_at`).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When it was last probed.
    pub checked_at: Option<DateTime<Utc>>,
    /// When it last answered.
    pub healthy_at: Option<DateTime<Utc>>,
    /// The server's per-slot context, when it reports it (llama.cpp's `/props`).
    pub server_context: Option<u64>,
}

impl Default for ModelHealth {
    fn default() -> Self {
        Self {
            status: "unknown",
            ready: false,
            warmed_up: false,
            latency_ms: None,
            consecutive_failures: 0,
            last_error: None,
            last_error_at: None,
            checked_at: None,
            healthy_at: None,
            server_context: None,
        }
    }
}

struct Watched {
    client: ModelClient,
    health: RwLock<ModelHealth>,
    ready: watch::Sender<bool>,
    wake: Notify,
    /// Bumped by every `report_unreachable`: a probe that started before a
    /// report must not mark the model ready over it.
    reports: std::sync::atomic::AtomicU64,
}

/// Probes every configured model in the background.
#[derive(Clone)]
pub struct ModelMonitor {
    models: Arc<BTreeMap<String, Arc<Watched>>>,
    any_ready: watch::Sender<bool>,
}

impl std::fmt::Debug for ModelMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelMonitor")
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ModelMonitor {
    /// Starts probing every model in `registry` each `interval`.
    pub fn start(registry: &ModelRegistry, interval: Duration) -> Self {
        let models: BTreeMap<String, Arc<Watched>> = registry
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    Arc::new(Watched {
                        client: ModelClient::new(m.clone()),
                        health: RwLock::new(ModelHealth::default()),
                        ready: watch::channel(false).0,
                        wake: Notify::new(),
                        reports: Default::default(),
                    }),
                )
            })
            .collect();
        let monitor = Self {
            models: Arc::new(models),
            any_ready: watch::channel(false).0,
        };
        for (name, w) in monitor.models.iter() {
            tokio::spawn(probe_loop(name.clone(), w.clone(), monitor.clone(), interval));
        }
        monitor
    }

    /// Every monitored model's name.
    pub fn names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// The client of model `name`.
    pub fn client(&self, name: &str) -> Option<&ModelClient> {
        self.models.get(name).map(|w| &w.client)
    }

    /// The cached health of model `name`.
    pub fn health(&self, name: &str) -> Option<ModelHealth> {
        self.models
            .get(name)
            .map(|w| w.health.read().map(|h| h.clone()).unwrap_or_default())
    }

    /// Whether model `name` is ready for jobs.
    pub fn is_ready(&self, name: &str) -> bool {
        self.models.get(name).is_some_and(|w| *w.ready.borrow())
    }

    /// True while at least one model is ready: the inference queue's fetch gate.
    pub fn any_ready(&self) -> watch::Receiver<bool> {
        self.any_ready.subscribe()
    }

    /// Waits until model `name` is ready (or forever, for unknown names).
    pub async fn wait_ready(&self, name: &str) {
        if let Some(w) = self.models.get(name) {
            let mut rx = w.ready.subscribe();
            let _ = rx.wait_for(|r| *r).await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// A request to model `name` could not reach it: it is unhealthy as of
    /// now, and is probed again at once.
    pub fn report_unreachable(&self, name: &str, error: &str) {
        let Some(w) = self.models.get(name) else { return };
        if let Ok(mut h) = w.health.write() {
            w.reports.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            h.status = "unhealthy";
            h.ready = false;
            h.warmed_up = false;
            h.consecutive_failures += 1;
            h.last_error = Some(error.to_owned());
            h.last_error_at = Some(Utc::now());
        }
        w.ready.send_replace(false);
        self.refresh_any();
        w.wake.notify_one();
    }

    fn refresh_any(&self) {
        // Computed under the gate's own lock, so concurrent refreshes
        // cannot leave an older answer last.
        self.any_ready.send_if_modified(|v| {
            let any = self.models.values().any(|w| *w.ready.borrow());
            let changed = *v != any;
            *v = any;
            changed
        });
    }
}

async fn probe_loop(name: String, w: Arc<Watched>, monitor: ModelMonitor, interval: Duration) {
    loop {
        let reports_before = w.reports.load(std::sync::atomic::Ordering::SeqCst);
        let probe = w.client.probe().await;
        let was = w.health.read().map(|h| h.clone()).unwrap_or_default();
        let mut next = was.clone();
        next.checked_at = Some(Utc::now());
        next.latency_ms = Some(probe.latency.as_millis() as u64);
        if probe.ok {
            next.healthy_at = next.checked_at;
            if !was.warmed_up {
                match w.client.warm_up().await {
                    Ok(took) => {
                        next.warmed_up = true;
                        next.consecutive_failures = 0;
                        next.server_context = w.client.server_context().await;
                        tracing::info!(model = %name, warm_up_ms = took.as_millis() as u64,
                            server_context = ?next.server_context, "model ready");
                        if let Some(ctx) = next.server_context
                            && ctx < u64::from(w.client.model().context_size)
                        {
                            tracing::warn!(model = %name, server_context = ctx, configured = w.client.model().context_size,
                                "the server's per-slot context is smaller than context_size in the models file; long prompts will be refused");
                        }
                    }
                    Err(e) => {
                        next.consecutive_failures += 1;
                        next.last_error = Some(format!("warm-up failed: {e}"));
                        next.last_error_at = next.checked_at;
                        tracing::warn!(model = %name, error = %e, "model warm-up failed");
                    }
                }
            } else {
                next.consecutive_failures = 0;
            }
            next.status = if next.warmed_up { "healthy" } else { "warming" };
        } else {
            next.status = "unhealthy";
            next.warmed_up = false;
            next.consecutive_failures += 1;
            next.last_error = probe.error.clone();
            next.last_error_at = next.checked_at;
            if was.status != "unhealthy" {
                tracing::warn!(model = %name, error = ?probe.error, "model unhealthy");
            }
        }
        next.ready = next.status == "healthy";
        if next.ready && was.status == "unhealthy" {
            tracing::info!(model = %name, "model healthy again");
        }
        let ready = match w.health.write() {
            Ok(mut h) => {
                // Checked under the lock `report_unreachable` takes: a request
                // that failed to connect while this probe ran wins (and its
                // error stays), and the model is probed again shortly.
                if w.reports.load(std::sync::atomic::Ordering::SeqCst) != reports_before {
                    next.ready = false;
                    next.status = "unhealthy";
                    next.warmed_up = false;
                    next.consecutive_failures = next.consecutive_failures.max(h.consecutive_failures);
                    next.last_error = h.last_error.clone();
                    next.last_error_at = h.last_error_at;
                }
                let ready = next.ready;
                *h = next;
                ready
            }
            Err(_) => false,
        };
        w.ready.send_replace(ready);
        monitor.refresh_any();
        // Answering but failing its warm-up is a configuration problem (model
        // id, credentials): retry at the normal pace, not every second.
        let wait = if ready || probe.ok {
            interval
        } else {
            interval.min(SICK_PROBE)
        };
        let slept = Instant::now();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = w.wake.notified() => {
                // Reported unreachable by a request: probe again soon, but
                // not in a tight loop if reports keep coming.
                tokio::time::sleep(SICK_PROBE.saturating_sub(slept.elapsed())).await;
            }
        }
    }
}
