//! The PostgreSQL section: [`DatabaseConfig`], its `HANGAR_DATABASE_URL` and
//! `HANGAR_DB_*` variables, and the code that reads them.

use std::time::Duration;

use super::reader::{Reader, Var};
use crate::secret::Secret;

/// PostgreSQL pool settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `postgres://…`
    pub url: Secret,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Connections are replaced after this long.
    pub max_lifetime: Duration,
}

/// The PostgreSQL variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_DATABASE_URL",
        default: None,
        doc: "PostgreSQL URL, postgres://user@host:port/db",
    },
    Var {
        name: "HANGAR_DB_MAX_CONNECTIONS",
        default: Some("10"),
        doc: "most pooled connections (1-1000)",
    },
    Var {
        name: "HANGAR_DB_MIN_CONNECTIONS",
        default: Some("1"),
        doc: "idle connections kept open (0-max)",
    },
    Var {
        name: "HANGAR_DB_ACQUIRE_TIMEOUT_MS",
        default: Some("3000"),
        doc: "wait for a free connection (ms)",
    },
    Var {
        name: "HANGAR_DB_MAX_LIFETIME_SECS",
        default: Some("1800"),
        doc: "replace connections after (s)",
    },
];

impl Reader<'_> {
    /// Reads the PostgreSQL section.
    pub(super) fn database(&mut self) -> DatabaseConfig {
        let database = DatabaseConfig {
            url: self.url("HANGAR_DATABASE_URL", &["postgres", "postgresql"]),
            max_connections: self.number("HANGAR_DB_MAX_CONNECTIONS", 1, 1000),
            min_connections: self.number("HANGAR_DB_MIN_CONNECTIONS", 0, 1000),
            acquire_timeout: self.millis("HANGAR_DB_ACQUIRE_TIMEOUT_MS", 10, 600_000),
            max_lifetime: self.secs("HANGAR_DB_MAX_LIFETIME_SECS", 1, 86_400),
        };
        if database.min_connections > database.max_connections {
            self.problem(
                "HANGAR_DB_MIN_CONNECTIONS",
                "must not exceed HANGAR_DB_MAX_CONNECTIONS".into(),
            );
        }
        database
    }
}
