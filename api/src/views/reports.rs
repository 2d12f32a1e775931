//! What the report routes answer: a report (its job's state, its
//! parameters, and once published its file's size, rows, digest and data
//! freshness) and pages of them.

use chrono::{DateTime, Utc};
use hangar_queue::JobStatus;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A report: the job that makes it and, once published, its file.
#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    /// The report's id (its job's id).
    pub id: String,
    /// Report type, e.g. `inventory`.
    #[schema(example = "inventory")]
    pub r#type: String,
    /// `csv`, `json` or `xlsx`.
    pub format: String,
    /// The parameters it was asked with.
    pub params: Value,
    /// Its job's state.
    #[schema(value_type = String, example = "succeeded")]
    pub state: JobStatus,
    /// Who asked for it.
    pub requested_by: Option<String>,
    /// Asked at.
    pub created_at: DateTime<Utc>,
    /// Its job ended at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why its job failed, if it did.
    pub error: Option<String>,
    /// Rows written so far while it runs (its job's progress).
    pub progress: Option<Value>,
    /// The file, once published.
    pub file: Option<ReportFile>,
    /// Where to poll it.
    pub status_url: String,
}

/// A published report file.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportFile {
    /// Data rows (the header not counted).
    pub rows: i64,
    /// Size in bytes.
    pub size_bytes: i64,
    /// SHA-256 of the file, hex (also its download's ETag).
    pub sha256: String,
    /// Served as.
    pub content_type: String,
    /// When each source table was last synced, per account and region, as
    /// the report read it.
    pub freshness: Value,
    /// Written at.
    pub generated_at: DateTime<Utc>,
    /// Removed after (downloads then answer 410).
    pub expires_at: DateTime<Utc>,
    /// Where to download it.
    pub download_url: String,
}

/// A page of reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportPage {
    /// Newest first.
    pub reports: Vec<Report>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
