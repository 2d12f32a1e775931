//! What the inventory tables hold that several layers check: the states a
//! WorkSpace can be in (the API's filters and the report kinds' payloads
//! refuse any other).

/// The states a WorkSpace can be in (the WorkSpaces API's `WorkspaceState`).
pub const WORKSPACE_STATES: &[&str] = &[
    "PENDING",
    "AVAILABLE",
    "IMPAIRED",
    "UNHEALTHY",
    "REBOOTING",
    "STARTING",
    "REBUILDING",
    "RESTORING",
    "MAINTENANCE",
    "ADMIN_MAINTENANCE",
    "TERMINATING",
    "TERMINATED",
    "SUSPENDED",
    "UPDATING",
    "STOPPING",
    "STOPPED",
    "ERROR",
];

/// The state named `text` in any case, upper-cased as AWS writes it.
pub fn workspace_state(text: &str) -> Option<&'static str> {
    let upper = text.to_ascii_uppercase();
    WORKSPACE_STATES.iter().copied().find(|s| *s == upper)
}

/// Longest free-text search accepted (it becomes an ILIKE pattern).
pub const MAX_SEARCH_CHARS: usize = 200;

/// `%term%` for ILIKE with the caller's wildcards taken literally.
pub fn like_pattern(q: &str) -> String {
    let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}
