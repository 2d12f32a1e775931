//! Prometheus metrics of the API process, served at `/metrics`.

use std::time::Duration;

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

type Labels = Vec<(String, String)>;

/// Every metric the API exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    enqueued: Family<Labels, Counter>,
    deferred: Family<Labels, Counter>,
    queue_depth: Family<Labels, Gauge>,
    workers: Family<Labels, Gauge>,
    db_pool: Family<Labels, Gauge>,
    auth_failures: Family<Labels, Counter>,
    rate_limited: Family<Labels, Counter>,
    rate_limit_errors: Counter,
    key_cache: Family<Labels, Counter>,
    audit_failures: Counter,
    open_connections: Gauge,
    open_streams: Gauge,
    refused_streams: Family<Labels, Counter>,
    models: hangar_inference::HealthCollector,
    oldest_waiting: Family<Labels, Gauge>,
    sync_last_success: Family<Labels, Gauge>,
    leader_present: Gauge,
    dependency_up: Family<Labels, Gauge>,
    ce_budget_remaining: Family<Labels, Gauge>,
    ce_budget: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hangar");
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let enqueued = Family::<Labels, Counter>::default();
        let deferred = Family::<Labels, Counter>::default();
        let queue_depth = Family::<Labels, Gauge>::default();
        let workers = Family::<Labels, Gauge>::default();
        let db_pool = Family::<Labels, Gauge>::default();
        let auth_failures = Family::<Labels, Counter>::default();
        let rate_limited = Family::<Labels, Counter>::default();
        let rate_limit_errors = Counter::default();
        let key_cache = Family::<Labels, Counter>::default();
        let audit_failures = Counter::default();
        let open_connections = Gauge::default();
        let open_streams = Gauge::default();
        let refused_streams = Family::<Labels, Counter>::default();
        let oldest_waiting = Family::<Labels, Gauge>::default();
        let sync_last_success = Family::<Labels, Gauge>::default();
        let leader_present = Gauge::default();
        let dependency_up = Family::<Labels, Gauge>::default();
        let ce_budget_remaining = Family::<Labels, Gauge>::default();
        let ce_budget = Gauge::default();
        registry.register(
            "queue_oldest_waiting_age_seconds",
            "Seconds the oldest job ready to run has waited, per queue (0 when none waits): the queue's latency and the autoscaling signal",
            oldest_waiting.clone(),
        );
        registry.register(
            "sync_last_success_timestamp_seconds",
            "Unix time each sync target (kind, account, region) last succeeded; absent until its first success",
            sync_last_success.clone(),
        );
        registry.register(
            "scheduler_leader_present",
            "1 while some scheduler replica holds the leader lease in Redis (no leader: no schedule fires)",
            leader_present.clone(),
        );
        registry.register(
            "dependency_up",
            "1 if the dependency (postgres, redis) answered this scrape's check",
            dependency_up.clone(),
        );
        registry.register(
            "cost_explorer_budget_remaining",
            "Paid Cost Explorer requests left this calendar month, per account (HANGAR_CE_MONTHLY_REQUEST_BUDGET minus those used)",
            ce_budget_remaining.clone(),
        );
        registry.register(
            "cost_explorer_budget_requests",
            "Paid Cost Explorer requests allowed per account and calendar month (HANGAR_CE_MONTHLY_REQUEST_BUDGET)",
            ce_budget.clone(),
        );
        registry.register(
            "api_key_cache_lookups",
            "API key checks by where the answer came from (hit: the verified-key cache; miss: PostgreSQL, then cached; bypass: PostgreSQL because the revocation feed is not current)",
            key_cache.clone(),
        );
        registry.register(
            "api_open_connections",
            "Client connections open now (capped by HANGAR_MAX_CONNECTIONS)",
            open_connections.clone(),
        );
        registry.register(
            "api_open_streams",
            "Token streams (GET /api/v1/jobs/{id}/stream) open now",
            open_streams.clone(),
        );
        registry.register(
            "api_streams_refused",
            "Token streams refused with 429, by limit (caller, total)",
            refused_streams.clone(),
        );
        registry.register(
            "api_auth_failures",
            "Requests refused for their credentials (reason: missing, invalid, forbidden, unavailable)",
            auth_failures.clone(),
        );
        registry.register(
            "api_rate_limited",
            "Requests refused with 429, by class (read, write, auth_failure)",
            rate_limited.clone(),
        );
        registry.register(
            "api_rate_limit_errors",
            "Rate-limit checks that could not reach Redis (let through unless HANGAR_RATE_LIMIT_FAIL_CLOSED)",
            rate_limit_errors.clone(),
        );
        registry.register(
            "api_audit_failures",
            "Audit entries that could not be stored (written to the log instead)",
            audit_failures.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "jobs_enqueued",
            "Jobs accepted by the API, by kind",
            enqueued.clone(),
        );
        registry.register(
            "jobs_enqueue_deferred",
            "Jobs recorded while Redis was unreachable (the repair loop dispatches them), by kind",
            deferred.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs per queue and part (ready, scheduled, running, dead)",
            queue_depth.clone(),
        );
        registry.register(
            "workers_alive",
            "Worker processes that reported in within 30 s, per queue",
            workers.clone(),
        );
        registry.register(
            "db_pool_connections",
            "PostgreSQL pool connections by state (in_use, idle)",
            db_pool.clone(),
        );
        hangar_shared::telemetry::register_export_metrics(&mut registry);
        let models = hangar_inference::HealthCollector::default();
        registry.register_collector(Box::new(models.clone()));
        Self {
            models,
            registry,
            requests,
            latency,
            enqueued,
            deferred,
            queue_depth,
            workers,
            db_pool,
            auth_failures,
            rate_limited,
            rate_limit_errors,
            key_cache,
            audit_failures,
            open_connections,
            open_streams,
            refused_streams,
            oldest_waiting,
            sync_last_success,
            leader_present,
            dependency_up,
            ce_budget_remaining,
            ce_budget,
        }
    }
}

impl Metrics {
    /// Exports the readiness of `monitor`'s models (once).
    pub fn watch_models(&self, monitor: hangar_inference::ModelMonitor) {
        let _ = self.models.0.set(monitor);
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Metrics {
    /// Counts a served request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.requests
            .get_or_create(&labels(&[
                ("route", route),
                ("method", method),
                ("status", &status),
            ]))
            .inc();
        self.latency
            .get_or_create(&labels(&[("route", route)]))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an accepted job.
    pub fn job_enqueued(&self, kind: &str) {
        self.enqueued.get_or_create(&labels(&[("kind", kind)])).inc();
    }

    /// Counts a job recorded while Redis was unreachable.
    pub fn job_deferred(&self, kind: &str) {
        self.deferred.get_or_create(&labels(&[("kind", kind)])).inc();
    }

    /// Sets a queue's depth gauges.
    pub fn set_queue(&self, queue: &str, counts: &hangar_queue::QueueCounts, workers: u64) {
        for (part, n) in [
            ("ready", counts.ready),
            ("scheduled", counts.scheduled),
            ("running", counts.running),
            ("dead", counts.dead),
        ] {
            self.queue_depth
                .get_or_create(&labels(&[("queue", queue), ("part", part)]))
                .set(n as i64);
        }
        self.workers
            .get_or_create(&labels(&[("queue", queue)]))
            .set(workers as i64);
    }

    /// Sets how long a queue's oldest ready job has waited.
    pub fn set_oldest_waiting(&self, queue: &str, age: Duration) {
        self.oldest_waiting
            .get_or_create(&labels(&[("queue", queue)]))
            .set(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
    }

    /// Replaces the sync targets' last successes: (kind, account, region,
    /// unix seconds). A target no longer given stops being exported.
    pub fn set_sync_successes<'a>(
        &self,
        successes: impl IntoIterator<Item = (&'a str, &'a str, &'a str, i64)>,
    ) {
        self.sync_last_success.clear();
        for (kind, account, region, at) in successes {
            self.sync_last_success
                .get_or_create(&labels(&[
                    ("kind", kind),
                    ("account", account),
                    ("region", region),
                ]))
                .set(at);
        }
    }

    /// Sets whether a scheduler leads.
    pub fn set_leader_present(&self, present: bool) {
        self.leader_present.set(i64::from(present));
    }

    /// Sets whether `dependency` answered.
    pub fn set_dependency_up(&self, dependency: &str, up: bool) {
        self.dependency_up
            .get_or_create(&labels(&[("dependency", dependency)]))
            .set(i64::from(up));
    }

    /// Sets the Cost Explorer budget and what each account has left of it.
    pub fn set_ce_budget(&self, budget: u32, remaining: &[(String, i64)]) {
        self.ce_budget.set(i64::from(budget));
        self.ce_budget_remaining.clear();
        for (account, left) in remaining {
            self.ce_budget_remaining
                .get_or_create(&labels(&[("account", account)]))
                .set(*left);
        }
    }

    /// Sets the pool gauges.
    pub fn set_pool(&self, in_use: u32, idle: u32) {
        self.db_pool
            .get_or_create(&labels(&[("state", "in_use")]))
            .set(i64::from(in_use));
        self.db_pool
            .get_or_create(&labels(&[("state", "idle")]))
            .set(i64::from(idle));
    }

    /// Counts a request refused for its credentials.
    pub fn auth_failed(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// Counts a 429.
    pub fn rate_limited(&self, class: &str) {
        self.rate_limited
            .get_or_create(&labels(&[("class", class)]))
            .inc();
    }

    /// Counts a rate-limit check Redis did not answer.
    pub fn rate_limit_error(&self) {
        self.rate_limit_errors.inc();
    }

    /// Counts an API key check by where its answer came from.
    pub fn key_cache(&self, result: &str) {
        self.key_cache.get_or_create(&labels(&[("result", result)])).inc();
    }

    /// Counts an audit entry that could not be stored.
    pub fn audit_failed(&self) {
        self.audit_failures.inc();
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    /// A client connection ended.
    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// A token stream opened (+1) or ended (-1).
    pub fn stream_open(&self, delta: i64) {
        self.open_streams.inc_by(delta);
    }

    /// A token stream refused for `limit` (`caller` or `total`).
    pub fn stream_refused(&self, limit: &str) {
        self.refused_streams
            .get_or_create(&labels(&[("limit", limit)]))
            .inc();
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
