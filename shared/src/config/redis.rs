//! The Redis section: [`RedisConfig`], its `HANGAR_REDIS_*` variables, and
//! the code that reads them.

use std::time::Duration;

use super::reader::{Reader, Var};
use crate::secret::Secret;

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://…`
    pub url: Secret,
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
        doc: "Redis URL, redis://[user:password@]host:port[/db] (no TLS in this build)",
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
        // The scheme alone is not enough: "redis://a,redis://b" has one and
        // yet no process can open it. Judge it as connecting will.
        let refused = self.problems.iter().any(|(v, _)| v == "HANGAR_REDIS_URL");
        if !refused && let Some(why) = hangar_queue::RedisSettings::url_problem(url.expose()) {
            self.problem(
                "HANGAR_REDIS_URL",
                format!(
                    "Redis cannot open it ({why}); give one server, redis://[user:password@]host:port[/db]"
                ),
            );
        }
        RedisConfig {
            url,
            prefix,
            response_timeout: self.millis("HANGAR_REDIS_RESPONSE_TIMEOUT_MS", 50, 120_000),
            outage_limit: self.secs("HANGAR_REDIS_OUTAGE_LIMIT_SECS", 1, 86_400),
        }
    }
}
