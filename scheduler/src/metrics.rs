//! Scheduler metrics, served at `/metrics` when
//! `HANGAR_SCHEDULER_METRICS_BIND` is set: ticks fired (on time or as
//! catch-up), ticks skipped because the previous job was still open, missed
//! ticks dropped by a catch-up policy, leader changes, and whether this
//! replica leads.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels = Vec<(String, String)>;

/// The scheduler's metrics.
pub struct SchedulerMetrics {
    registry: Registry,
    fires: Family<Labels, Counter>,
    skipped_overlaps: Family<Labels, Counter>,
    dropped: Family<Labels, Counter>,
    leader_changes: Counter,
    leader: Gauge,
    failures: Family<Labels, Counter>,
    partition_horizon: Gauge,
    repair_pass_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    org_accounts: Gauge,
    org_refresh_failures: Counter,
    org_refreshed_at: Gauge,
    schedule_interval: Family<Labels, Gauge>,
    repair_redispatched: Counter,
    repair_reconciled: Counter,
    repair_failures: Counter,
}

impl std::fmt::Debug for SchedulerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchedulerMetrics")
    }
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hangar_scheduler");
        let fires = Family::<Labels, Counter>::default();
        let skipped_overlaps = Family::<Labels, Counter>::default();
        let dropped = Family::<Labels, Counter>::default();
        let leader_changes = Counter::default();
        let leader = Gauge::default();
        let failures = Family::<Labels, Counter>::default();
        let partition_horizon = Gauge::default();
        let repair_pass_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let org_accounts = Gauge::default();
        let org_refresh_failures = Counter::default();
        let org_refreshed_at = Gauge::default();
        let schedule_interval = Family::<Labels, Gauge>::default();
        let repair_redispatched = Counter::default();
        let repair_reconciled = Counter::default();
        let repair_failures = Counter::default();
        registry.register(
            "schedule_interval_seconds",
            "Longest gap between an enabled schedule's next ticks, by schedule and kind (exported by the leader; a sync is stale when its last success is older than twice this)",
            schedule_interval.clone(),
        );
        registry.register(
            "repair_redispatched",
            "Jobs PostgreSQL recorded as open that Redis did not know, dispatched again by the repair loop (Redis lost data, or the API recorded jobs while Redis was down)",
            repair_redispatched.clone(),
        );
        registry.register(
            "repair_reconciled",
            "Job records the repair loop brought in line with Redis (e.g. a job that died with its worker)",
            repair_reconciled.clone(),
        );
        registry.register(
            "repair_failures",
            "Repair passes that failed (PostgreSQL or Redis errors); retried next repair interval",
            repair_failures.clone(),
        );
        hangar_shared::telemetry::register_export_metrics(&mut registry);
        registry.register(
            "org_accounts",
            "Active accounts of the AWS Organization kept by the last refresh (HANGAR_AWS_ORGANIZATION_ROLE)",
            org_accounts.clone(),
        );
        registry.register(
            "org_refresh_failures",
            "Refreshes of the organization's accounts that failed (AWS or PostgreSQL errors); the last list is kept",
            org_refresh_failures.clone(),
        );
        registry.register(
            "org_refreshed_at_seconds",
            "Unix time of the last successful refresh of the organization's accounts",
            org_refreshed_at.clone(),
        );
        registry.register(
            "repair_pass_seconds",
            "How long the last repair pass took (reading every open job record and asking Redis about it); a pass slower than the repair interval delays the next",
            repair_pass_seconds.clone(),
        );
        registry.register(
            "job_partitions_horizon_seconds",
            "Seconds until the last job_runs partition ends; job records cannot be written past it (kept at 8 weeks each repair pass)",
            partition_horizon.clone(),
        );
        registry.register(
            "pass_failures",
            "Schedule passes that failed (database or Redis errors); retried next tick",
            failures.clone(),
        );
        registry.register(
            "fires",
            "Jobs created for ticks, by schedule and whether the tick was caught up after downtime",
            fires.clone(),
        );
        registry.register(
            "skipped_overlaps",
            "Ticks skipped because the schedule's previous job was still open (overlap = skip_if_running)",
            skipped_overlaps.clone(),
        );
        registry.register(
            "dropped_ticks",
            "Missed ticks dropped by the schedule's catch-up policy",
            dropped.clone(),
        );
        registry.register(
            "leader_changes",
            "Times this replica became or stopped being the leader",
            leader_changes.clone(),
        );
        registry.register(
            "is_leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            fires,
            skipped_overlaps,
            dropped,
            leader_changes,
            leader,
            failures,
            partition_horizon,
            repair_pass_seconds,
            org_accounts,
            org_refresh_failures,
            org_refreshed_at,
            schedule_interval,
            repair_redispatched,
            repair_reconciled,
            repair_failures,
        }
    }
}

fn schedule_label(name: &str) -> Labels {
    vec![("schedule".to_owned(), name.to_owned())]
}

impl SchedulerMetrics {
    /// A job was created for a tick.
    pub fn fired(&self, schedule: &str, catch_up: bool) {
        let mut labels = schedule_label(schedule);
        labels.push(("catch_up".to_owned(), catch_up.to_string()));
        self.fires.get_or_create(&labels).inc();
    }

    /// A tick was skipped as an overlap.
    pub fn skipped_overlap(&self, schedule: &str) {
        self.skipped_overlaps
            .get_or_create(&schedule_label(schedule))
            .inc();
    }

    /// Missed ticks were dropped.
    pub fn dropped(&self, schedule: &str, n: usize) {
        self.dropped
            .get_or_create(&schedule_label(schedule))
            .inc_by(n as u64);
    }

    /// A schedule's pass failed.
    pub fn failed(&self, schedule: &str) {
        self.failures.get_or_create(&schedule_label(schedule)).inc();
    }

    /// Leadership changed; `leading` is the new state.
    pub fn leader_changed(&self, leading: bool) {
        self.leader_changes.inc();
        self.leader.set(i64::from(leading));
    }

    /// How far ahead job records can be written.
    pub fn partition_horizon(&self, seconds: i64) {
        self.partition_horizon.set(seconds);
    }

    /// A refresh of the organization's accounts kept `active` (`None`: it failed).
    pub fn org_refreshed(&self, active: Option<usize>) {
        match active {
            Some(n) => {
                self.org_accounts.set(n as i64);
                self.org_refreshed_at.set(chrono::Utc::now().timestamp());
            }
            None => {
                self.org_refresh_failures.inc();
            }
        }
    }

    /// A repair pass finished in `took` having done `report`, or failed.
    pub fn repair_pass(&self, took: std::time::Duration, report: Option<&crate::repair::RepairReport>) {
        match report {
            Some(r) => {
                self.repair_pass_seconds.set(took.as_secs_f64());
                self.repair_redispatched.inc_by(r.redispatched);
                self.repair_reconciled.inc_by(r.reconciled);
            }
            None => {
                self.repair_failures.inc();
            }
        }
    }

    /// The enabled schedules' longest tick intervals, replacing the last
    /// set (`None`: this replica stopped leading, so it exports none and a
    /// deleted schedule's series ends).
    pub fn schedule_intervals(&self, intervals: Option<&[(&str, &str, std::time::Duration)]>) {
        self.schedule_interval.clear();
        for (schedule, kind, every) in intervals.unwrap_or_default() {
            let labels = vec![
                ("schedule".to_owned(), (*schedule).to_owned()),
                ("kind".to_owned(), (*kind).to_owned()),
            ];
            self.schedule_interval
                .get_or_create(&labels)
                .set(i64::try_from(every.as_secs()).unwrap_or(i64::MAX));
        }
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
