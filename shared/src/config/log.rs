//! The logging section: [`LogConfig`] and [`LogFormat`], the
//! `HANGAR_LOG_*` variables, and the code that reads them. `crate::telemetry`
//! installs the subscriber they describe.

use super::reader::{Reader, Var};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for production.
    Json,
    /// Human-readable, for local work.
    Pretty,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `info,hangar_queue=debug`.
    pub level: String,
}

/// The logging variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_LOG_FORMAT",
        default: Some("pretty"),
        doc: "pretty or json",
    },
    Var {
        name: "HANGAR_LOG_LEVEL",
        default: Some("info"),
        doc: "tracing filter, e.g. info,hangar_queue=debug",
    },
];

impl Reader<'_> {
    /// Reads the logging section. The level is parsed as a `tracing` filter
    /// here, so a typo is reported at start instead of telemetry quietly
    /// falling back to `info`.
    pub(super) fn log(&mut self) -> LogConfig {
        let format = match self.raw("HANGAR_LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") | None => LogFormat::Pretty,
            Some(other) => {
                self.problem("HANGAR_LOG_FORMAT", format!("{other:?} is not pretty or json"));
                LogFormat::Pretty
            }
        };
        let level = self.raw("HANGAR_LOG_LEVEL").unwrap_or_default();
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            self.problem("HANGAR_LOG_LEVEL", format!("{level:?} is not a tracing filter"));
        }
        LogConfig { format, level }
    }
}
