//! Sync metrics: every AWS request by service, operation and outcome (Cost
//! Explorer requests are paid, so their count is a bill), retries, rows and
//! pages written, time in PostgreSQL, rate-limiter waits and the rates
//! themselves, budget refusals. Throttles are the requests counted with
//! `outcome="throttled"`.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Registered into the worker's registry.
#[derive(Debug)]
pub struct SyncMetrics {
    requests: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    rows: Family<Labels, Counter>,
    pages: Family<Labels, Counter>,
    db_write_seconds: Family<Labels, Histogram>,
    rate_wait_seconds: Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>,
    rate_limit: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    budget_refusals: Family<Labels, Counter>,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            retries: Family::default(),
            rows: Family::default(),
            pages: Family::default(),
            db_write_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
            }),
            rate_wait_seconds: Family::default(),
            rate_limit: Family::default(),
            budget_refusals: Family::default(),
        }
    }
}

impl SyncMetrics {
    /// Registers every metric under `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "aws_requests",
            "AWS API requests by service, operation and outcome (ok, throttled, server_error, ...); service=ce requests are billed at $0.01 each",
            self.requests.clone(),
        );
        registry.register(
            "aws_request_retries",
            "AWS requests retried inside a job after throttling, 5xx or a transport failure",
            self.retries.clone(),
        );
        registry.register(
            "sync_rows_written",
            "Rows inserted or changed by sync jobs, by kind and table",
            self.rows.clone(),
        );
        registry.register(
            "sync_pages",
            "AWS result pages processed by sync jobs",
            self.pages.clone(),
        );
        registry.register(
            "sync_db_write_seconds",
            "Time per batched PostgreSQL write (one statement per page) by kind",
            self.db_write_seconds.clone(),
        );
        registry.register(
            "aws_rate_limit_wait_seconds",
            "Time AWS calls waited for their turn in the Redis rate limiter shared by all workers (HANGAR_AWS_RATES), by service and operation",
            self.rate_wait_seconds.clone(),
        );
        registry.register(
            "aws_rate_limit_per_second",
            "Calls per second per account and region each AWS rate bucket is paced at (HANGAR_AWS_RATES; 0: not paced)",
            self.rate_limit.clone(),
        );
        registry.register(
            "cost_explorer_budget_refusals",
            "Cost Explorer requests refused because the account's monthly request budget is spent",
            self.budget_refusals.clone(),
        );
    }

    pub(crate) fn request(&self, service: &str, operation: &str, account: &str, outcome: &str) {
        self.requests
            .get_or_create(&labels(&[
                ("service", service),
                ("operation", operation),
                ("account", account),
                ("outcome", outcome),
            ]))
            .inc();
    }

    pub(crate) fn retry(&self, service: &str, operation: &str) {
        self.retries
            .get_or_create(&labels(&[("service", service), ("operation", operation)]))
            .inc();
    }

    pub(crate) fn rows(&self, kind: &str, table: &str, n: u64) {
        self.rows
            .get_or_create(&labels(&[("kind", kind), ("table", table)]))
            .inc_by(n);
    }

    pub(crate) fn page(&self, kind: &str) {
        self.pages.get_or_create(&labels(&[("kind", kind)])).inc();
    }

    pub(crate) fn db_write(&self, kind: &str, secs: f64) {
        self.db_write_seconds
            .get_or_create(&labels(&[("kind", kind)]))
            .observe(secs);
    }

    pub(crate) fn rate_wait(&self, service: &str, operation: &str, secs: f64) {
        self.rate_wait_seconds
            .get_or_create(&labels(&[("service", service), ("operation", operation)]))
            .inc_by(secs);
    }

    /// Publishes the rate each operation is paced at, so a dashboard can
    /// draw requests against their limit.
    pub fn configured_rates(&self, rates: &hangar_shared::config::AwsRates) {
        for (bucket, rate) in rates.iter() {
            self.rate_limit
                .get_or_create(&labels(&[("bucket", bucket)]))
                .set(rate.map_or(0.0, |r| r.per_second));
        }
    }

    pub(crate) fn budget_refused(&self, account: &str) {
        self.budget_refusals
            .get_or_create(&labels(&[("account", account)]))
            .inc();
    }
}
