//! The error-reporting section: [`ErrorReportConfig`], Sentry's own
//! `SENTRY_*` variables (the names every Sentry SDK reads), and the code
//! that reads them. `crate::error_reports` sends what they describe.

use super::reader::{Reader, Var};

/// Where errors are reported (Sentry, or a Sentry-compatible service).
#[derive(Debug, Clone)]
pub struct ErrorReportConfig {
    /// The project's DSN; `None`: reporting is off.
    pub dsn: Option<crate::secret::Secret>,
    /// `environment` of every event (production, staging, ...).
    pub environment: String,
    /// `release` of every event.
    pub release: String,
}

/// The error-reporting variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "SENTRY_DSN",
        default: Some(""),
        doc: "report panics, dead jobs and 5xx answers to Sentry (or GlitchTip, ...): the project's DSN, https://<key>@<host>/<project>; empty: off",
    },
    Var {
        name: "SENTRY_ENVIRONMENT",
        default: Some("production"),
        doc: "the environment events are filed under",
    },
    Var {
        name: "SENTRY_RELEASE",
        default: Some(""),
        doc: "the release events are filed under; empty: hangar@<version>",
    },
];

impl Reader<'_> {
    /// Reads the error-reporting section; a DSN Sentry's SDK would not
    /// accept is a problem here, not a silent loss of every report.
    pub(super) fn errors(&mut self) -> ErrorReportConfig {
        let dsn = self.raw("SENTRY_DSN").unwrap_or_default();
        if !dsn.is_empty() && dsn.parse::<sentry::types::Dsn>().is_err() {
            self.problem(
                "SENTRY_DSN",
                "not a Sentry DSN (https://<public key>@<host>/<project id>)".into(),
            );
        }
        let release = self.raw("SENTRY_RELEASE").unwrap_or_default();
        ErrorReportConfig {
            dsn: (!dsn.is_empty()).then(|| crate::secret::Secret::new(dsn)),
            environment: self.raw("SENTRY_ENVIRONMENT").unwrap_or_default(),
            release: if release.is_empty() {
                concat!("hangar@", env!("CARGO_PKG_VERSION")).to_owned()
            } else {
                release
            },
        }
    }
}
