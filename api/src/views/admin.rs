//! What the admin routes answer: API keys (never their secrets, except a
//! new key's token, once) and pages of the audit log.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{audit::AuditRecord, auth::api_keys::ApiKey};

/// A new key and its token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    pub api_key: ApiKey,
    /// `hangar_<prefix>_<secret>`: send as `Authorization: Bearer <token>`. Not retrievable later.
    pub token: String,
}

/// API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Newest first.
    pub api_keys: Vec<ApiKey>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogPage {
    /// Newest first.
    pub entries: Vec<AuditRecord>,
    /// Next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}
