//! What a report is ([`ReportSpec`]) and what publishing one gives
//! ([`Published`]): the plain types every report module shares.

use serde_json::{Value, json};

use crate::table;

/// What a report is: its kind, sheet title, columns and the syncs it reads.
#[derive(Debug, Clone, Copy)]
pub struct ReportSpec {
    /// `report.<name>`.
    pub kind: &'static str,
    /// The data sheet's name.
    pub title: &'static str,
    /// Its columns.
    pub columns: &'static [table::Column],
    /// The sync kinds its rows come from (their freshness is recorded).
    pub sources: &'static [&'static str],
}

/// A published report, as recorded.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its key in the store.
    pub key: String,
    /// Data rows.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// When each source was last synced.
    pub freshness: Value,
}

impl Published {
    /// The job's result.
    pub fn result(&self) -> Value {
        json!({
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "freshness": self.freshness,
        })
    }
}
