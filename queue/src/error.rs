//! The engine's error type: callers match on it, so it stays small and typed.

use crate::keys::InvalidQueueName;

/// What can go wrong in a queue operation.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused, timed out or dropped the connection. Worker loops retry
    /// these with backoff; a caller of the client API sees them directly.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A queue name that cannot be used as a key space.
    #[error(transparent)]
    QueueName(#[from] InvalidQueueName),
    /// A payload or result that does not (de)serialise.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A reply that does not have the shape the script promises: a bug or a
    /// foreign writer under our key prefix.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// A job argument the engine rejects before talking to Redis.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// The worker stopped fetching because Redis stayed unreachable for longer
    /// than the configured outage limit.
    #[error("redis unreachable for {0:?}; giving up as configured (outage limit)")]
    OutageLimit(std::time::Duration),
}

/// Shorthand used across the crate.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
