//! Worker metrics: jobs started and finished by kind and outcome, and job
//! duration. Served at `/metrics` when `HANGAR_WORKER_METRICS_BIND` is set.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use hangar_queue::BackendHandle;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, text::encode},
    metrics::{MetricType, counter::ConstCounter, counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

type Labels = Vec<(String, String)>;

/// The worker's metrics.
pub struct WorkerMetrics {
    registry: Registry,
    started: Family<Labels, Counter>,
    handler_results: Family<Labels, Counter>,
    outcomes: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    persist_errors: Counter,
    engines: Arc<Mutex<Vec<(String, BackendHandle)>>>,
    sync: Arc<hangar_sync::SyncMetrics>,
    inference: Arc<hangar_inference::InferenceMetrics>,
    models: hangar_inference::HealthCollector,
}

/// The queue engine's own counters (everything that can go wrong below the
/// handlers: Redis errors, lost leases, stale outcomes, panics, reaped
/// leases), read from each queue's backend at scrape time.
#[derive(Debug)]
struct EngineEvents(Arc<Mutex<Vec<(String, BackendHandle)>>>);

impl Collector for EngineEvents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let engines = self.0.lock().map(|e| e.clone()).unwrap_or_default();
        let mut metric = encoder.encode_descriptor(
            "queue_engine_events",
            "Queue engine events by queue: fetched, succeeded, retried, dead, cancelled, stale_outcomes, \
             leases_lost, panics, redis_errors, reaped, promoted, trimmed",
            None,
            MetricType::Counter,
        )?;
        for (queue, handle) in &engines {
            let s = handle.stats();
            for (event, counter) in [
                ("fetched", &s.fetched),
                ("succeeded", &s.succeeded),
                ("retried", &s.retried),
                ("dead", &s.dead),
                ("cancelled", &s.cancelled),
                ("stale_outcomes", &s.stale_outcomes),
                ("leases_lost", &s.leases_lost),
                ("panics", &s.panics),
                ("redis_errors", &s.redis_errors),
                ("reaped", &s.reaped),
                ("promoted", &s.promoted),
                ("trimmed", &s.trimmed),
            ] {
                let labels = vec![
                    ("queue".to_owned(), queue.clone()),
                    ("event".to_owned(), event.to_owned()),
                ];
                ConstCounter::new(counter.load(Ordering::Relaxed)).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerMetrics")
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0,
    ])
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hangar");
        let started = Family::<Labels, Counter>::default();
        let handler_results = Family::<Labels, Counter>::default();
        let outcomes = Family::<Labels, Counter>::default();
        let duration =
            Family::<Labels, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        let persist_errors = Counter::default();
        registry.register("jobs_started", "Attempts started, by kind", started.clone());
        hangar_shared::telemetry::register_export_metrics(&mut registry);
        registry.register(
            "job_handler_results",
            "Attempts that returned, by kind and result (ok, error, deferred)",
            handler_results.clone(),
        );
        registry.register(
            "jobs_finished",
            "Recorded outcomes by kind and resulting state (succeeded, retrying = failed, dead, cancelled)",
            outcomes.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Handler run time by kind",
            duration.clone(),
        );
        registry.register(
            "job_record_errors",
            "Failed writes of outcomes to PostgreSQL (retried)",
            persist_errors.clone(),
        );
        let engines = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(EngineEvents(engines.clone())));
        let sync = Arc::new(hangar_sync::SyncMetrics::default());
        sync.register(&mut registry);
        let inference = Arc::new(hangar_inference::InferenceMetrics::default());
        inference.register(&mut registry);
        let models = hangar_inference::HealthCollector::default();
        registry.register_collector(Box::new(models.clone()));
        Self {
            inference,
            models,
            registry,
            started,
            handler_results,
            outcomes,
            duration,
            persist_errors,
            engines,
            sync,
        }
    }
}

fn kind_label(kind: &str) -> Labels {
    vec![("kind".to_owned(), kind.to_owned())]
}

impl WorkerMetrics {
    /// The inference jobs' metrics (registered with the rest).
    pub fn inference(&self) -> Arc<hangar_inference::InferenceMetrics> {
        self.inference.clone()
    }

    /// Exports the readiness of `monitor`'s models (once; later calls are ignored).
    pub fn watch_models(&self, monitor: hangar_inference::ModelMonitor) {
        let _ = self.models.0.set(monitor);
    }

    /// Exports the queue engine counters of `queue`'s backend.
    pub fn watch(&self, queue: &str, handle: BackendHandle) {
        if let Ok(mut e) = self.engines.lock() {
            e.push((queue.to_owned(), handle));
        }
    }

    /// The AWS sync jobs' metrics (registered with the rest).
    pub fn sync(&self) -> Arc<hangar_sync::SyncMetrics> {
        self.sync.clone()
    }

    /// An attempt started.
    pub fn started(&self, kind: &str) {
        self.started.get_or_create(&kind_label(kind)).inc();
    }

    /// An attempt's handler returned.
    pub fn finished(&self, kind: &str, result: &str, elapsed: Duration) {
        let mut labels = kind_label(kind);
        labels.push(("result".to_owned(), result.to_owned()));
        self.handler_results.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&kind_label(kind))
            .observe(elapsed.as_secs_f64());
    }

    /// Redis recorded an outcome leaving the job in `state`.
    pub fn outcome(&self, kind: &str, state: &str) {
        let mut labels = kind_label(kind);
        labels.push(("state".to_owned(), state.to_owned()));
        self.outcomes.get_or_create(&labels).inc();
    }

    /// A batch of outcomes could not be written to PostgreSQL (it is retried).
    pub fn persist_error(&self) {
        self.persist_errors.inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
