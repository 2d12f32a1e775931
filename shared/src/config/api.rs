//! The HTTP API section: [`ApiConfig`], where the API listens and how long
//! its readiness checks wait. Authentication and HTTP hardening, also read
//! here, have their own sections (`jwt`, `security`).

use std::{net::SocketAddr, time::Duration};

use super::{
    reader::{Reader, Var},
    security::SecurityConfig,
};

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the API listens.
    pub bind: SocketAddr,
    /// How long readiness checks wait for PostgreSQL and Redis.
    pub ready_timeout: Duration,
    /// Authentication, rate limits and HTTP hardening.
    pub security: SecurityConfig,
    /// The web console's sessions.
    pub console: ConsoleConfig,
}

/// How long a web console session lasts (issue 16: idle 30 minutes,
/// absolute 12 hours, configurable).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// A session unused this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after login, however busy.
    pub max_age: Duration,
}

/// The API's own variables, in `.env.example` order (the JWT and security
/// variables follow them there).
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_BIND",
        default: Some("127.0.0.1:8080"),
        doc: "API listen address",
    },
    Var {
        name: "HANGAR_READY_TIMEOUT_MS",
        default: Some("1000"),
        doc: "readiness check timeout per dependency (ms)",
    },
    Var {
        name: "HANGAR_CONSOLE_IDLE_TIMEOUT_SECS",
        default: Some("1800"),
        doc: "web console: a session unused this long ends (seconds)",
    },
    Var {
        name: "HANGAR_CONSOLE_SESSION_MAX_SECS",
        default: Some("43200"),
        doc: "web console: a session ends this long after login, however busy (seconds)",
    },
];

impl Reader<'_> {
    /// Reads the HTTP API section, its security settings included.
    pub(super) fn api(&mut self) -> ApiConfig {
        ApiConfig {
            bind: self
                .addr("HANGAR_BIND", false)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            ready_timeout: self.millis("HANGAR_READY_TIMEOUT_MS", 10, 60_000),
            security: self.security(),
            console: ConsoleConfig {
                idle_timeout: self.secs("HANGAR_CONSOLE_IDLE_TIMEOUT_SECS", 1, 86_400),
                max_age: self.secs("HANGAR_CONSOLE_SESSION_MAX_SECS", 1, 30 * 86_400),
            },
        }
    }
}
