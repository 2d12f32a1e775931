//! The worker section: [`WorkerConfig`], its variables (`HANGAR_QUEUES`,
//! lease, drain, metrics), and the code that reads them.

use std::{net::SocketAddr, time::Duration};

use super::reader::{Reader, Var};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues this worker serves, with their concurrency.
    pub queues: Vec<(String, usize)>,
    /// A claimed job's lease.
    pub lease: Duration,
    /// How long a stopping worker lets running jobs finish before giving them back.
    pub drain_timeout: Duration,
    /// Where the worker serves `/metrics`; `None`: not served.
    pub metrics_bind: Option<SocketAddr>,
}

/// The worker variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_QUEUES",
        default: Some("sync=4,reports=2,inference=1"),
        doc: "worker queues and concurrency, name=n,...",
    },
    Var {
        name: "HANGAR_LEASE_SECS",
        default: Some("30"),
        doc: "job lease; a dead worker's job runs again after this (s)",
    },
    Var {
        name: "HANGAR_DRAIN_TIMEOUT_SECS",
        default: Some("30"),
        doc: "on SIGTERM, time running jobs get to finish (s)",
    },
    Var {
        name: "HANGAR_WORKER_METRICS_BIND",
        default: Some(""),
        doc: "worker /metrics address; empty: off",
    },
];

impl Reader<'_> {
    /// Reads the worker section.
    pub(super) fn worker(&mut self) -> WorkerConfig {
        WorkerConfig {
            queues: self.queues("HANGAR_QUEUES"),
            lease: self.secs("HANGAR_LEASE_SECS", 2, 3600),
            drain_timeout: self.secs("HANGAR_DRAIN_TIMEOUT_SECS", 0, 3600),
            metrics_bind: self.addr("HANGAR_WORKER_METRICS_BIND", true),
        }
    }

    /// `queue=concurrency,...`: each name a valid queue name, each
    /// concurrency 1..=1000, at least one queue. "names no queue" is only
    /// added when no part was already refused, so one mistake is one problem.
    fn queues(&mut self, name: &'static str) -> Vec<(String, usize)> {
        let text = self.raw(name).unwrap_or_default();
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = part
                .split_once('=')
                .and_then(|(q, n)| Some((q.trim(), n.trim().parse::<usize>().ok()?)));
            match parsed {
                Some((q, n)) if hangar_queue::QueueName::new(q).is_ok() && (1..=1000).contains(&n) => {
                    out.push((q.to_owned(), n));
                }
                _ => self.problem(
                    name,
                    format!("{part:?} is not queue=concurrency (a-z0-9-_. name, 1..=1000)"),
                ),
            }
        }
        if out.is_empty() && !self.problems.iter().any(|(v, _)| v == name) {
            self.problem(name, "names no queue".into());
        }
        out
    }
}
