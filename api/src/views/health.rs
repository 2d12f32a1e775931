//! What the health probes answer: liveness, and readiness with each
//! dependency's check (what failed, never why in detail: the probes are
//! unauthenticated, the cause goes to the log).

use serde::Serialize;
use utoipa::ToSchema;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// One dependency's readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// Whether it answered.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&Result<(), String>> for Check {
    fn from(outcome: &Result<(), String>) -> Self {
        Self {
            ok: outcome.is_ok(),
            error: outcome.as_ref().err().cloned(),
        }
    }
}

/// Readiness of the dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// PostgreSQL reachable with every migration applied.
    pub postgres: Check,
    /// Redis reachable.
    pub redis: Check,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The dependencies that failed.
    pub failed: Vec<&'static str>,
    /// Each dependency.
    pub checks: ReadyChecks,
}
