//! The API hardening section: [`SecurityConfig`] (JWT verification, rate
//! limits, CORS, HSTS, body, time and connection limits, token streams),
//! its variables, and the code that reads them.

use std::time::Duration;

use super::{
    jwt::JwtConfig,
    reader::{Reader, Var},
};

/// Authentication, rate limiting and HTTP hardening of the API.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// JWT verification.
    pub jwt: JwtConfig,
    /// Whether `/metrics` is served without credentials.
    pub metrics_public: bool,
    /// Per-user limit on reads (`GET`); `None`: unlimited.
    pub read_rate: Option<hangar_queue::Rate>,
    /// Per-user limit on state-changing requests; `None`: unlimited.
    pub write_rate: Option<hangar_queue::Rate>,
    /// Refuse requests (503) when Redis cannot be asked, instead of letting them through.
    pub rate_limit_fail_closed: bool,
    /// Origins allowed by CORS (empty: no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (clients reach the API over TLS).
    pub hsts: bool,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout: Duration,
    /// Deepest nesting of objects and arrays accepted in a JSON body.
    pub json_max_depth: usize,
    /// Per client address, refused credentials (bad tokens, unknown or
    /// revoked keys); past it the address is refused before any credential
    /// lookup. `None`: unlimited.
    pub auth_failure_rate: Option<hangar_queue::Rate>,
    /// Most open client connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this (slow-header clients are cut off).
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this, or the connection is closed.
    pub body_read_timeout: Duration,
    /// A connection without a byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Open token streams (`GET /api/v1/jobs/{id}/stream`) per caller.
    pub streams_per_caller: usize,
    /// Open token streams per API process.
    pub streams_max: usize,
    /// A token stream of a job that has not started yet ends after this
    /// (the client reconnects with `Last-Event-ID`).
    pub stream_wait: Duration,
    /// Furthest `run_at` a job may ask for.
    pub run_at_horizon: Duration,
}

/// The hardening variables, in `.env.example` order (the JWT variables,
/// read first, are the `jwt` section's).
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_METRICS_PUBLIC",
        default: Some("true"),
        doc: "serve /metrics without credentials (false: viewer role needed)",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_READ",
        default: Some("600/min"),
        doc: "per-user limit on GET requests, N/s|min|hour (a burst of N), or off",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_WRITE",
        default: Some("120/min"),
        doc: "per-user limit on enqueues and other changes, N/s|min|hour, or off",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_FAIL_CLOSED",
        default: Some("false"),
        doc: "when Redis cannot be asked: true refuses (503), false lets requests through",
    },
    Var {
        name: "HANGAR_CORS_ORIGINS",
        default: Some(""),
        doc: "comma-separated origins allowed by CORS (https://ops.example.com); empty: none",
    },
    Var {
        name: "HANGAR_HSTS",
        default: Some("false"),
        doc: "send Strict-Transport-Security (set when clients reach the API over TLS)",
    },
    Var {
        name: "HANGAR_MAX_BODY_BYTES",
        default: Some("262144"),
        doc: "largest request body (bytes)",
    },
    Var {
        name: "HANGAR_REQUEST_TIMEOUT_SECS",
        default: Some("30"),
        doc: "requests taking longer are answered 408 (s)",
    },
    Var {
        name: "HANGAR_JSON_MAX_DEPTH",
        default: Some("32"),
        doc: "deepest nesting of objects/arrays accepted in a JSON body",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_AUTH_FAILURES",
        default: Some("20/min"),
        doc: "per client address, refused credentials before the address is refused unchecked (429), or off",
    },
    Var {
        name: "HANGAR_MAX_CONNECTIONS",
        default: Some("1024"),
        doc: "most open client connections per API process; more wait in the backlog",
    },
    Var {
        name: "HANGAR_HEADER_READ_TIMEOUT_SECS",
        default: Some("10"),
        doc: "a request's headers must arrive within this, else the connection is closed (s)",
    },
    Var {
        name: "HANGAR_BODY_READ_TIMEOUT_SECS",
        default: Some("10"),
        doc: "a request's body must arrive within this, else 408 and the connection is closed (s)",
    },
    Var {
        name: "HANGAR_IDLE_TIMEOUT_SECS",
        default: Some("60"),
        doc: "a connection (HTTP/1 or HTTP/2) without a byte either way for this long is closed (s)",
    },
    Var {
        name: "HANGAR_STREAMS_PER_CALLER",
        default: Some("8"),
        doc: "open token streams per caller (429 beyond)",
    },
    Var {
        name: "HANGAR_STREAMS_MAX",
        default: Some("512"),
        doc: "open token streams per API process (429 beyond)",
    },
    Var {
        name: "HANGAR_STREAM_WAIT_SECS",
        default: Some("30"),
        doc: "a token stream of a job not started yet ends after this; the client reconnects (s)",
    },
    Var {
        name: "HANGAR_RUN_AT_HORIZON_DAYS",
        default: Some("30"),
        doc: "furthest run_at a job may ask for (days ahead)",
    },
];

impl Reader<'_> {
    /// Reads the hardening section, JWT verification first.
    pub(super) fn security(&mut self) -> SecurityConfig {
        let jwt = self.jwt();
        let cors_origins: Vec<String> = self
            .raw("HANGAR_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| !(o.starts_with("https://") || o.starts_with("http://")) || o.matches('/').count() != 2)
        {
            self.problem(
                "HANGAR_CORS_ORIGINS",
                format!("{bad:?} is not an origin like https://ops.example.com (no path, no *)"),
            );
        }
        SecurityConfig {
            jwt,
            metrics_public: self.boolean("HANGAR_METRICS_PUBLIC"),
            read_rate: self.rate("HANGAR_RATE_LIMIT_READ"),
            write_rate: self.rate("HANGAR_RATE_LIMIT_WRITE"),
            rate_limit_fail_closed: self.boolean("HANGAR_RATE_LIMIT_FAIL_CLOSED"),
            cors_origins,
            hsts: self.boolean("HANGAR_HSTS"),
            max_body_bytes: self.number("HANGAR_MAX_BODY_BYTES", 1024, 64 * 1024 * 1024),
            request_timeout: self.secs("HANGAR_REQUEST_TIMEOUT_SECS", 1, 3600),
            json_max_depth: self.number("HANGAR_JSON_MAX_DEPTH", 2, 128),
            auth_failure_rate: self.rate("HANGAR_RATE_LIMIT_AUTH_FAILURES"),
            max_connections: self.number("HANGAR_MAX_CONNECTIONS", 16, 1_000_000),
            header_read_timeout: self.secs("HANGAR_HEADER_READ_TIMEOUT_SECS", 1, 300),
            body_read_timeout: self.secs("HANGAR_BODY_READ_TIMEOUT_SECS", 1, 3600),
            idle_timeout: self.secs("HANGAR_IDLE_TIMEOUT_SECS", 1, 86_400),
            streams_per_caller: self.number("HANGAR_STREAMS_PER_CALLER", 1, 10_000),
            streams_max: self.number("HANGAR_STREAMS_MAX", 1, 1_000_000),
            stream_wait: self.secs("HANGAR_STREAM_WAIT_SECS", 1, 3600),
            run_at_horizon: Duration::from_secs(
                86_400 * self.number("HANGAR_RUN_AT_HORIZON_DAYS", 1u64, 3650),
            ),
        }
    }
}
