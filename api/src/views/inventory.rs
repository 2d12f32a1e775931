//! What the inventory routes answer: the rows of synced data and their
//! pages, serialized as they are and documented by the same types (so the
//! OpenAPI document cannot describe something the handlers do not send).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A synced workspace with its last connection state.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceRow {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Workspace id.
    pub workspace_id: String,
    /// Directory id.
    pub directory_id: Option<String>,
    /// User name.
    pub user_name: Option<String>,
    /// Ip address.
    pub ip_address: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Bundle id.
    pub bundle_id: Option<String>,
    /// Computer name.
    pub computer_name: Option<String>,
    /// Running mode.
    pub running_mode: Option<String>,
    /// Compute type.
    pub compute_type: Option<String>,
    /// Tags.
    pub tags: Value,
    /// Connection state.
    pub connection_state: Option<String>,
    /// Last user connection at.
    pub last_user_connection_at: Option<DateTime<Utc>>,
    /// First seen at.
    pub first_seen_at: DateTime<Utc>,
    /// Updated at.
    pub updated_at: DateTime<Utc>,
    /// Deleted at.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A synced directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryRow {
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Directory id.
    pub directory_id: String,
    /// Alias.
    pub alias: Option<String>,
    /// Directory name.
    pub directory_name: Option<String>,
    /// Directory type.
    pub directory_type: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Registration code.
    pub registration_code: Option<String>,
    /// Subnet ids.
    pub subnet_ids: Vec<String>,
    /// Dns ip addresses.
    pub dns_ip_addresses: Vec<String>,
    /// Workspaces.
    pub workspaces: i64,
    /// First seen at.
    pub first_seen_at: DateTime<Utc>,
    /// Updated at.
    pub updated_at: DateTime<Utc>,
    /// Deleted at.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A CloudTrail event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRow {
    /// Event id.
    pub event_id: String,
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Event time.
    pub event_time: DateTime<Utc>,
    /// Event name.
    pub event_name: String,
    /// Event source.
    pub event_source: String,
    /// Username.
    pub username: Option<String>,
    /// Read only.
    pub read_only: Option<bool>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Resources.
    pub resources: Value,
    /// Cloudtrail event.
    pub cloudtrail_event: Option<Value>,
}

/// The sum of one group.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostGroup {
    /// Key.
    pub key: String,
    /// Currency.
    pub currency: String,
    /// Amount.
    #[schema(value_type = String, example = "12.3400000000")]
    pub amount: Decimal,
    /// Estimated.
    pub estimated: bool,
}

/// A page of workspaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspacePage {
    /// By workspace id.
    pub workspaces: Vec<WorkspaceRow>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of directories.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryPage {
    /// By directory id.
    pub directories: Vec<DirectoryRow>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of CloudTrail events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventPage {
    /// Newest first.
    pub events: Vec<AuditRow>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}
