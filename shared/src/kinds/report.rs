//! The `report.*` kinds: files built from the synced tables on the `reports`
//! queue, kept in the report store (`hangar-reports`). Their handlers are in
//! `hangar-worker`'s `jobs::report`.

use std::time::Duration;

use hangar_queue::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{
    job_kind::{JobKind, QUEUE_REPORTS},
    payload::{PayloadError, invalid},
};
use crate::inventory::{MAX_SEARCH_CHARS, WORKSPACE_STATES, workspace_state};

/// `report.inventory`: every workspace, filtered like `GET /api/v1/workspaces`.
pub const REPORT_INVENTORY: &str = "report.inventory";

/// A report reads PostgreSQL and writes one file: a few retries, spaced out
/// (the usual cause is the store or the database being briefly away).
const REPORT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base: Duration::from_secs(5),
    cap: Duration::from_secs(60),
};

/// The file a report is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// RFC 4180, UTF-8, a header row.
    Csv,
    /// One object: `columns`, `rows`, `generated_at`, `params`, `freshness`.
    Json,
    /// A spreadsheet: the data sheet and an "About" sheet.
    Xlsx,
}

impl ReportFormat {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Xlsx => "xlsx",
        }
    }

    /// The `Content-Type` it is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// `report.inventory` arguments: the format, and the filters of
/// `GET /api/v1/workspaces` (each optional; all of them together narrow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    /// `csv`, `json` or `xlsx`.
    pub format: ReportFormat,
    /// Only this configured account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only this WorkSpaces state (any case; stored upper-case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only this directory id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Only this user name (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this bundle id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Free text in the id, user, computer name or IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Also workspaces gone from AWS.
    #[serde(default)]
    pub include_deleted: bool,
}

impl JobKind for InventoryReport {
    const NAME: &'static str = REPORT_INVENTORY;
    const QUEUE: &'static str = QUEUE_REPORTS;
    const RETRY: RetryPolicy = REPORT_RETRY;

    fn check(&self) -> Result<(), PayloadError> {
        for (field, value) in [
            ("account", &self.account),
            ("region", &self.region),
            ("directory", &self.directory),
            ("user", &self.user),
            ("bundle", &self.bundle),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.chars().count() > 256)
            {
                return Err(invalid(field, "must be 1-256 characters"));
            }
        }
        if let Some(s) = &self.state
            && workspace_state(s).is_none()
        {
            return Err(invalid(
                "state",
                format!(
                    "{s:?} is not a WorkSpaces state; one of {}",
                    WORKSPACE_STATES.join(", ")
                ),
            ));
        }
        if self
            .q
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(invalid("q", format!("at most {MAX_SEARCH_CHARS} characters")));
        }
        Ok(())
    }
}
