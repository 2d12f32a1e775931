#![doc = include_str!("../README.md")]

mod connection;
mod coordination;
mod error;
mod identity;
mod job;
mod keys;
mod options;
mod queue;
mod retry;
mod scripts;
#[cfg(feature = "sqlx")]
mod sql;
pub mod trace_context;
mod worker;

pub use connection::{RedisConn, RedisSettings};
pub use coordination::{DistributedSemaphore, LeaseLock, LockOutcome, Rate, RateDecision, RateLimiter};
pub use error::{QueueError, Result};
pub use identity::WorkerId;
pub use job::{CancelOutcome, Enqueued, ErrorRecord, JobState, JobStatus, NewJob, QueueCounts};
pub use keys::{InvalidQueueName, QueueKeys, QueueName};
pub use options::{Retention, WorkerOptions};
pub use queue::{DEFAULT_MAX_CRASHES, DeadCursor, DeadPage, Queue, ReapReport, STEP, WorkerReport};
pub use retry::{RetryPolicies, RetryPolicy};
pub use worker::{
    AckLayer, AckService, BackendHandle, Deferred, DiedWith, HangarBackend, JobContext, RecordedOutcome,
    WorkerStats, defer, permanent,
};
