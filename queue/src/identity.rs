//! Worker identity: unique per process start, readable by an operator.

use std::fmt;

/// `host:pid:random`, recorded on every job the worker claims. Unique per
/// process start, so replicas sharing a configured name never share leases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId(String);

impl WorkerId {
    /// A fresh identity for this process.
    pub fn generate() -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        Self(format!("{host}:{}:{suffix}", std::process::id()))
    }

    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique_and_name_the_process() {
        let a = WorkerId::generate();
        let b = WorkerId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().contains(&format!(":{}:", std::process::id())));
    }
}
