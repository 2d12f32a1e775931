//! Typed response bodies: what handlers return (`Json<View>`), deriving
//! both `Serialize` and `ToSchema`, so the document and the answer are one
//! type. One module per resource family.

use chrono::{DateTime, Utc};

pub mod admin;
pub mod explain;
pub mod health;
pub mod inference;
pub mod inventory;
pub mod jobs;
pub mod queues;
pub mod reports;
pub mod schedules;

/// A time the queue keeps in milliseconds since the epoch (Redis server
/// time), as the API shows every time.
pub(crate) fn from_millis(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}
