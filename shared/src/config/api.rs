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
        }
    }
}
