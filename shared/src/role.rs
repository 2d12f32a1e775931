//! The three roles a caller can hold. They live here, not in the API,
//! because a job kind names the least role that may submit it (see
//! [`crate::kinds::KindSpec::role`]) and every path that submits a job, the
//! API's routes and the scheduler's checks alike, reads it from there.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a caller may do; each role includes the ones below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything except the audit log and API keys.
    Viewer,
    /// Also triggers syncs, reports, inference and jobs.
    Operator,
    /// Also manages schedules, API keys, dead jobs, cancel/retry, and reads the audit log.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name (exact, lower case).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
