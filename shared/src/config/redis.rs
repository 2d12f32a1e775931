//! The Redis section: [`RedisConfig`], its `HANGAR_REDIS_*` variables, and
//! the code that reads them.

use std::time::Duration;

use super::reader::{Reader, Var};
use crate::secret::Secret;

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://…`, `rediss://…` (TLS), or several comma-separated (a cluster's nodes).
    pub url: Secret,
    /// Talk the cluster protocol even with one URL (a configuration endpoint).
    pub cluster: bool,
    /// PEM file of the CA certificates to trust for `rediss://` (else the system's).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// That file's contents, read once here so a bad path fails `check-config`.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Key prefix for every queue.
    pub prefix: String,
    /// How long a command waits for its reply.
    pub response_timeout: Duration,
    /// How long a worker keeps retrying an unreachable Redis before exiting non-zero.
    pub outage_limit: Duration,
}

/// The Redis variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_REDIS_URL",
        default: Some("redis://127.0.0.1:6379"),
        doc: "Redis URL, redis://[user:password@]host:port[/db]; rediss:// for TLS; several, comma-separated, name the seed nodes of a Redis Cluster",
    },
    Var {
        name: "HANGAR_REDIS_CLUSTER",
        default: Some("false"),
        doc: "speak the Redis Cluster protocol even when HANGAR_REDIS_URL names one node (a configuration endpoint)",
    },
    Var {
        name: "HANGAR_REDIS_TLS_CA_FILE",
        default: Some(""),
        doc: "PEM file of the CA certificates trusted for rediss:// (empty: the system's trust store)",
    },
    Var {
        name: "HANGAR_REDIS_PREFIX",
        default: Some("hangar"),
        doc: "key prefix for all queues (a-z0-9-_.)",
    },
    Var {
        name: "HANGAR_REDIS_RESPONSE_TIMEOUT_MS",
        default: Some("5000"),
        doc: "Redis reply timeout (ms)",
    },
    Var {
        name: "HANGAR_REDIS_OUTAGE_LIMIT_SECS",
        default: Some("60"),
        doc: "worker exits non-zero after Redis is unreachable this long (s)",
    },
];

impl RedisConfig {
    /// How the processes will talk to Redis, for `check-config`'s summary:
    /// one server or a cluster (and its seed nodes), plain or TLS, which CA.
    /// Read off the same settings the processes connect with.
    pub fn mode(&self) -> String {
        let mut settings = hangar_queue::RedisSettings::new(self.url.expose());
        settings.cluster = self.cluster;
        let nodes = settings.nodes().len();
        let mut parts = vec![match (settings.is_cluster(), nodes) {
            (false, _) => "one server".to_owned(),
            (true, 1) => "cluster, 1 seed node".to_owned(),
            (true, n) => format!("cluster, {n} seed nodes"),
        }];
        if settings.nodes().iter().any(|u| u.starts_with("rediss://")) {
            parts.push(match &self.tls_ca_file {
                Some(path) => format!("TLS trusting {}", path.display()),
                None => "TLS trusting the system's roots".to_owned(),
            });
        }
        parts.join(", ")
    }
}

impl Reader<'_> {
    /// Reads the Redis section.
    pub(super) fn redis(&mut self) -> RedisConfig {
        // The prefix becomes part of every queue's keys, so it obeys the
        // queue engine's naming rules.
        let prefix = self.raw("HANGAR_REDIS_PREFIX").unwrap_or_default();
        if hangar_queue::QueueName::new(prefix.clone()).is_err() {
            self.problem(
                "HANGAR_REDIS_PREFIX",
                format!("{prefix:?} must be 1-64 of a-z, 0-9, '-', '_', '.'"),
            );
        }
        let url = self.url("HANGAR_REDIS_URL", &["redis", "rediss"]);
        let cluster = self.boolean("HANGAR_REDIS_CLUSTER");
        let tls_ca_file = self
            .optional("HANGAR_REDIS_TLS_CA_FILE")
            .map(std::path::PathBuf::from);
        let tls_ca_pem = tls_ca_file.as_ref().and_then(|path| match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                self.problem(
                    "HANGAR_REDIS_TLS_CA_FILE",
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        });
        // The scheme alone is not enough: "redis://a,http://b" has one and
        // yet no process can open it. Judge it as connecting will, with the
        // same settings.
        let refused = self
            .problems
            .iter()
            .any(|(v, _)| v == "HANGAR_REDIS_URL" || v == "HANGAR_REDIS_TLS_CA_FILE");
        let mut settings = hangar_queue::RedisSettings::new(url.expose());
        settings.cluster = cluster;
        settings.tls_ca_pem = tls_ca_pem.clone();
        if !refused && let Some(why) = settings.problem() {
            self.problem(
                "HANGAR_REDIS_URL",
                format!(
                    "Redis cannot open it ({why}); give redis://[user:password@]host:port[/db], rediss:// for TLS, or the comma-separated nodes of a cluster"
                ),
            );
        }
        RedisConfig {
            url,
            cluster,
            tls_ca_file,
            tls_ca_pem,
            prefix,
            response_timeout: self.millis("HANGAR_REDIS_RESPONSE_TIMEOUT_MS", 50, 120_000),
            outage_limit: self.secs("HANGAR_REDIS_OUTAGE_LIMIT_SECS", 1, 86_400),
        }
    }
}
