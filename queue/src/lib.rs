//! Hangar's queue engine: Redis-backed job queues for apalis 1.0.
//!
//! Built to fix, by design, what stopped apalis-redis 1.0.0 in production:
//!
//! - **Bounded steps.** Every script handles at most 1,000 jobs per call and
//!   never unpacks an unbounded list, so a backlog of any size drains.
//! - **Leases per job**, renewed from a dedicated OS thread. A job whose worker
//!   is killed, frozen or partitioned goes back to its queue when its lease
//!   expires; every such crash is counted and a job that keeps crashing its
//!   worker is quarantined in dead. A stale worker's outcome is ignored, so
//!   a job records exactly one success.
//! - **Retries by policy**: max attempts, exponential backoff with cap and full
//!   jitter; [`permanent`] errors go straight to dead.
//! - **Wake-ups, not polling**: an idle worker blocks in `BLPOP` on the queue's
//!   wake list and starts a new job at once.
//! - **Redis failures are survived**: every loop retries with backoff; a worker
//!   either recovers or (with an outage limit) stops with an error.
//! - **Retention**: finished jobs are trimmed by age and count.
//!
//! Knows nothing about AWS, HTTP or PostgreSQL. See `README.md` for the key
//! layout and the state machine.

mod connection;
mod error;
mod identity;
mod job;
mod keys;
mod options;
mod queue;
mod retry;
mod scripts;
mod worker;

pub use connection::RedisSettings;
pub use error::{QueueError, Result};
pub use identity::WorkerId;
pub use job::{CancelOutcome, Enqueued, ErrorRecord, JobState, JobStatus, NewJob, QueueCounts};
pub use keys::{InvalidQueueName, QueueKeys, QueueName};
pub use options::{Retention, WorkerOptions};
pub use queue::{DEFAULT_MAX_CRASHES, DeadPage, Queue, ReapReport, STEP};
pub use retry::{RetryPolicies, RetryPolicy};
pub use worker::{AckLayer, AckService, BackendHandle, HangarBackend, JobContext, WorkerStats, permanent};
