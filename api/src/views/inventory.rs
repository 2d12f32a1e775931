//! What the inventory routes answer: the rows of synced data and their
//! pages, serialized as they are and documented by the same types (so the
//! OpenAPI document cannot describe something the handlers do not send).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
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

/// Directory of a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceDirectory {
    /// Directory id.
    pub id: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// Bundle of a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceBundle {
    /// Bundle id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Compute type.
    pub compute_type: Option<String>,
}

/// Workspace properties.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceProperties {
    /// ALWAYS_ON or AUTO_STOP.
    pub running_mode: Option<String>,
    /// Minutes before an AUTO_STOP workspace stops.
    pub auto_stop_timeout_minutes: Option<i32>,
    /// Root volume size.
    pub root_volume_gib: Option<i32>,
    /// User volume size.
    pub user_volume_gib: Option<i32>,
    /// Compute type.
    pub compute_type: Option<String>,
}

/// Last connection of a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceConnection {
    /// CONNECTED, DISCONNECTED or UNKNOWN.
    pub state: Option<String>,
    /// When AWS checked it.
    pub checked_at: Option<DateTime<Utc>>,
    /// When a user last connected.
    pub last_user_connection_at: Option<DateTime<Utc>>,
}

/// One workspace with its directory, bundle and last connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceDetail {
    /// Account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// Workspace id.
    pub workspace_id: String,
    /// Directory.
    pub directory: WorkspaceDirectory,
    /// Bundle.
    pub bundle: WorkspaceBundle,
    /// User.
    pub user_name: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
    /// AWS state.
    pub state: Option<String>,
    /// Subnet.
    pub subnet_id: Option<String>,
    /// Computer name.
    pub computer_name: Option<String>,
    /// Properties.
    pub properties: WorkspaceProperties,
    /// Tags, key to value.
    pub tags: Value,
    /// Last connection.
    pub last_connection: WorkspaceConnection,
    /// First synced at.
    pub first_seen_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// Gone from AWS since.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Costs grouped, with the total per currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostReport {
    /// `all` or `workspaces`.
    pub view: String,
    /// `service`, `usage_type` or `day`.
    pub group_by: String,
    /// First day.
    pub start: NaiveDate,
    /// Day after the last.
    pub end: NaiveDate,
    /// Sums per group, in key order.
    pub groups: Vec<CostGroup>,
    /// Total per currency (decimal strings).
    #[schema(value_type = std::collections::HashMap<String, String>, example = json!({"USD": "1234.5600000000"}))]
    pub total: BTreeMap<String, Decimal>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}
