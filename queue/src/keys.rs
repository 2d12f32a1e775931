//! Queue names and the Redis keys derived from them.
//!
//! Every key of queue `sync` under prefix `hangar` starts with `hangar:{sync}`;
//! the braces make Redis Cluster place all of a queue's keys in one slot, which
//! the Lua scripts need. Names are explicit and validated, never derived from a
//! Rust type path (apalis's default), so renaming a type never orphans a queue.

use std::fmt;

/// A validated queue name: 1–64 characters of `a-z`, `0-9`, `-`, `_`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName(String);

/// Why a queue name or prefix was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid queue name or prefix {value:?}: {reason}")]
pub struct InvalidQueueName {
    value: String,
    reason: &'static str,
}

fn validate(value: &str) -> Result<(), InvalidQueueName> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > 64 {
        Some("must be at most 64 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("only a-z, 0-9, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidQueueName {
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl QueueName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidQueueName> {
        let name = name.into();
        validate(&name)?;
        Ok(Self(name))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The keys of one queue.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    base: String,
}

impl QueueKeys {
    /// Keys for `queue` under `prefix` (validated like a queue name).
    pub fn new(prefix: &str, queue: &QueueName) -> Result<Self, InvalidQueueName> {
        validate(prefix)?;
        Ok(Self {
            base: format!("{prefix}:{{{queue}}}"),
        })
    }

    /// The base every other key starts with; passed to scripts as `KEYS[1]`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The hash holding one job's state.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.base)
    }

    /// A queue-level key such as `ready`, `scheduled`, `leases`, `done`, `dead`, `wake`.
    pub fn part(&self, part: &str) -> String {
        format!("{}:{part}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(QueueName::new("sync").is_ok());
        assert!(QueueName::new("reports.v2-x_y").is_ok());
        let err = QueueName::new("Sync").unwrap_err().to_string();
        assert!(err.contains("only a-z"), "{err}");
        assert!(QueueName::new("").is_err());
        assert!(QueueName::new("a".repeat(65)).is_err());
        assert!(QueueName::new("my_app::jobs::Sync").is_err());
    }

    #[test]
    fn keys_share_a_hash_tag() {
        let keys = QueueKeys::new("hangar", &QueueName::new("sync").unwrap()).unwrap();
        assert_eq!(keys.base(), "hangar:{sync}");
        assert_eq!(keys.job("01J"), "hangar:{sync}:job:01J");
        assert_eq!(keys.part("ready"), "hangar:{sync}:ready");
    }
}
