//! Inference metrics, per model: requests by outcome, retries by reason,
//! prompt and completion tokens, latency to the first token and in total,
//! time waiting for a server slot, requests in flight, turns dropped to fit
//! the context, and each model's readiness and probe latency.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        MetricType, counter::Counter, family::Family, gauge::ConstGauge, gauge::Gauge, histogram::Histogram,
    },
    registry::Registry,
};

use crate::health::ModelMonitor;

type Labels = Vec<(String, String)>;

fn model(name: &str) -> Labels {
    vec![("model".to_owned(), name.to_owned())]
}

fn latency() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ])
}

/// Registered into the worker's registry.
#[derive(Debug)]
pub struct InferenceMetrics {
    requests: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    prompt_tokens: Family<Labels, Counter>,
    completion_tokens: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    first_token: Family<Labels, Histogram>,
    slot_wait: Family<Labels, Histogram>,
    in_flight: Family<Labels, Gauge>,
    dropped_turns: Family<Labels, Counter>,
}

impl Default for InferenceMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            retries: Family::default(),
            prompt_tokens: Family::default(),
            completion_tokens: Family::default(),
            duration: Family::new_with_constructor(latency),
            first_token: Family::new_with_constructor(latency),
            slot_wait: Family::new_with_constructor(latency),
            in_flight: Family::default(),
            dropped_turns: Family::default(),
        }
    }
}

impl InferenceMetrics {
    /// Registers every metric under `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "inference_requests",
            "Inference jobs by model and outcome (succeeded, failed, cancelled, deferred: given back while the model is not ready)",
            self.requests.clone(),
        );
        registry.register(
            "inference_retries",
            "Model server requests retried inside a job, by model and reason (refused, timeout, stalled, disconnected, busy, server_error, malformed)",
            self.retries.clone(),
        );
        registry.register(
            "inference_prompt_tokens",
            "Prompt tokens sent, by model (as the server counted them)",
            self.prompt_tokens.clone(),
        );
        registry.register(
            "inference_completion_tokens",
            "Tokens generated, by model",
            self.completion_tokens.clone(),
        );
        registry.register(
            "inference_duration_seconds",
            "Model server time per successful job, from request to last token, by model",
            self.duration.clone(),
        );
        registry.register(
            "inference_first_token_seconds",
            "Time from request to first token, by model",
            self.first_token.clone(),
        );
        registry.register(
            "inference_slot_wait_seconds",
            "Time jobs waited for a free server slot (the cross-worker in-flight cap), by model",
            self.slot_wait.clone(),
        );
        registry.register(
            "inference_in_flight",
            "Requests this process has in flight, by model",
            self.in_flight.clone(),
        );
        registry.register(
            "inference_dropped_turns",
            "Earlier conversation turns left out to fit the model's context, by model",
            self.dropped_turns.clone(),
        );
    }

    pub(crate) fn outcome(&self, name: &str, outcome: &str) {
        let mut l = model(name);
        l.push(("outcome".to_owned(), outcome.to_owned()));
        self.requests.get_or_create(&l).inc();
    }

    pub(crate) fn retry(&self, name: &str, reason: &str) {
        let mut l = model(name);
        l.push(("reason".to_owned(), reason.to_owned()));
        self.retries.get_or_create(&l).inc();
    }

    pub(crate) fn tokens(&self, name: &str, prompt: u64, completion: u64) {
        self.prompt_tokens.get_or_create(&model(name)).inc_by(prompt);
        self.completion_tokens
            .get_or_create(&model(name))
            .inc_by(completion);
    }

    pub(crate) fn timings(&self, name: &str, total: f64, first_token: Option<f64>) {
        self.duration.get_or_create(&model(name)).observe(total);
        if let Some(f) = first_token {
            self.first_token.get_or_create(&model(name)).observe(f);
        }
    }

    pub(crate) fn slot_waited(&self, name: &str, secs: f64) {
        self.slot_wait.get_or_create(&model(name)).observe(secs);
    }

    pub(crate) fn in_flight(&self, name: &str, delta: i64) {
        self.in_flight.get_or_create(&model(name)).inc_by(delta);
    }

    pub(crate) fn dropped(&self, name: &str, turns: u64) {
        if turns > 0 {
            self.dropped_turns.get_or_create(&model(name)).inc_by(turns);
        }
    }
}

/// Each model's readiness and probe latency, read from the monitor at
/// scrape time (so they are never stale by more than a probe interval).
/// Empty until the monitor is set (it starts after the registry is built).
#[derive(Debug, Default, Clone)]
pub struct HealthCollector(pub std::sync::Arc<std::sync::OnceLock<ModelMonitor>>);

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(monitor) = self.0.get() else {
            return Ok(());
        };
        let names = monitor.names();
        let healths: Vec<_> = names
            .iter()
            .filter_map(|n| Some((n, monitor.health(n)?)))
            .collect();
        let mut ready = encoder.encode_descriptor(
            "model_ready",
            "1 while the model answers its health probe and has warmed up",
            None,
            MetricType::Gauge,
        )?;
        for (name, h) in &healths {
            ConstGauge::new(i64::from(h.ready)).encode(ready.encode_family(&model(name))?)?;
        }
        let mut failures = encoder.encode_descriptor(
            "model_consecutive_failures",
            "Failed probes or requests since the model last answered",
            None,
            MetricType::Gauge,
        )?;
        for (name, h) in &healths {
            ConstGauge::new(i64::from(h.consecutive_failures))
                .encode(failures.encode_family(&model(name))?)?;
        }
        let mut probe = encoder.encode_descriptor(
            "model_probe_latency_seconds",
            "The last health probe's round trip",
            None,
            MetricType::Gauge,
        )?;
        for (name, h) in &healths {
            let secs = h.latency_ms.unwrap_or(0) as f64 / 1000.0;
            ConstGauge::new(secs).encode(probe.encode_family(&model(name))?)?;
        }
        Ok(())
    }
}
