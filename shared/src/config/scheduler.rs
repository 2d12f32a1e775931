//! The scheduler section: [`SchedulerConfig`], its variables (repair loop,
//! schedules file, leader lease, tick, grace, metrics), and the code that
//! reads them and checks they fit together.

use std::{net::SocketAddr, time::Duration};

use super::reader::{Reader, Var};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the repair loop compares PostgreSQL with Redis.
    pub repair_interval: Duration,
    /// Jobs younger than this are left alone by the repair loop (their
    /// enqueue may still be on its way to Redis).
    pub repair_min_age: Duration,
    /// TOML file of schedules; `None`: the shipped ones; `none`: no schedules.
    pub schedules_file: Option<String>,
    /// The leader lease; a dead leader is replaced within two of these.
    pub leader_lease: Duration,
    /// How often the scheduler looks for due ticks.
    pub tick_interval: Duration,
    /// A tick this late is still on time; older ones follow the catch-up policy.
    pub grace: Duration,
    /// Where the scheduler serves `/metrics`; `None`: not served.
    pub metrics_bind: Option<SocketAddr>,
}

/// The scheduler variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_REPAIR_INTERVAL_SECS",
        default: Some("30"),
        doc: "scheduler repair loop period (s)",
    },
    Var {
        name: "HANGAR_REPAIR_MIN_AGE_SECS",
        default: Some("10"),
        doc: "repair ignores jobs younger than this (s)",
    },
    Var {
        name: "HANGAR_SCHEDULES_FILE",
        default: Some(""),
        doc: "TOML file of periodic schedules ([[schedule]] tables); empty: the shipped deploy/schedules.toml; none: no schedules",
    },
    Var {
        name: "HANGAR_SCHEDULER_LEASE_SECS",
        default: Some("10"),
        doc: "scheduler leader lease; another replica takes over within two of these (s)",
    },
    Var {
        name: "HANGAR_SCHEDULER_TICK_MS",
        default: Some("1000"),
        doc: "how often the scheduler looks for due ticks (ms)",
    },
    Var {
        name: "HANGAR_SCHEDULER_GRACE_SECS",
        default: Some("60"),
        doc: "a tick at most this late fires as usual; older ones follow the catch-up policy (s)",
    },
    Var {
        name: "HANGAR_SCHEDULER_METRICS_BIND",
        default: Some(""),
        doc: "scheduler /metrics address; empty: off",
    },
];

impl Reader<'_> {
    /// Reads the scheduler section.
    pub(super) fn scheduler(&mut self) -> SchedulerConfig {
        let scheduler = SchedulerConfig {
            repair_interval: self.secs("HANGAR_REPAIR_INTERVAL_SECS", 1, 86_400),
            repair_min_age: self.secs("HANGAR_REPAIR_MIN_AGE_SECS", 0, 86_400),
            schedules_file: self.raw("HANGAR_SCHEDULES_FILE").filter(|f| !f.is_empty()),
            leader_lease: self.secs("HANGAR_SCHEDULER_LEASE_SECS", 2, 3600),
            tick_interval: self.millis("HANGAR_SCHEDULER_TICK_MS", 10, 60_000),
            grace: self.secs("HANGAR_SCHEDULER_GRACE_SECS", 0, 86_400),
            metrics_bind: self.addr("HANGAR_SCHEDULER_METRICS_BIND", true),
        };
        // The leader renews its lease once per tick: a lease shorter than two
        // ticks would lapse between passes and leadership would flap.
        if scheduler.leader_lease < scheduler.tick_interval * 2 {
            self.problem(
                "HANGAR_SCHEDULER_LEASE_SECS",
                "must be at least two HANGAR_SCHEDULER_TICK_MS intervals".into(),
            );
        }
        // A pass may run a tick interval late: a shorter grace would treat
        // every tick as missed.
        if scheduler.grace < scheduler.tick_interval {
            self.problem(
                "HANGAR_SCHEDULER_GRACE_SECS",
                "must be at least one HANGAR_SCHEDULER_TICK_MS interval".into(),
            );
        }
        scheduler
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load;

    #[test]
    fn the_scheduler_lease_and_grace_must_cover_its_tick() {
        let err = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_SCHEDULER_TICK_MS", "1500"),
            ("HANGAR_SCHEDULER_LEASE_SECS", "2"),
            ("HANGAR_SCHEDULER_GRACE_SECS", "1"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("HANGAR_SCHEDULER_LEASE_SECS: must be at least two"),
            "{err}"
        );
        assert!(
            err.contains("HANGAR_SCHEDULER_GRACE_SECS: must be at least one"),
            "{err}"
        );
    }
}
