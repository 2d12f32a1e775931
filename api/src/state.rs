//! What every handler can reach.

use std::{collections::BTreeMap, sync::Arc};

use hangar_queue::Queue;
use hangar_shared::Config;
use sqlx::PgPool;

use crate::{access::Policy, audit::AuditLog, auth::Authenticator, enqueue::Enqueuer, metrics::Metrics};

/// Shared application state: one pointer, because every layer and handler
/// that extracts it clones it (a struct of a dozen `Arc`s and handles
/// showed up at several percent of the API's CPU in `bench/api.sh`'s
/// profile).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Wraps `services`.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What every handler can reach, through [`AppState`].
#[derive(Debug)]
pub struct Services {
    /// PostgreSQL.
    pub pool: PgPool,
    /// Every queue, by name.
    pub queues: Arc<BTreeMap<String, Queue>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Records and enqueues new jobs in groups.
    pub enqueuer: Enqueuer,
    /// The schedules of the deployment's schedules file (read-only here).
    pub file_schedules: Arc<Vec<hangar_shared::schedule::Schedule>>,
    /// Who may call what, read off the OpenAPI document.
    pub policy: Arc<Policy>,
    /// Resolves callers (JWTs, API keys through the verified-key cache).
    pub auth: Authenticator,
    /// Per-caller rate limits, shared by every replica through Redis.
    pub rate_limiter: hangar_queue::RateLimiter,
    /// The audit log writer.
    pub audit: AuditLog,
    /// Model health, probed in the background.
    pub models: hangar_inference::ModelMonitor,
    /// A shared Redis connection (semaphore counts).
    pub redis: hangar_queue::RedisConn,
    /// Token streams: one reader for all, admission per caller.
    pub streams: crate::streams::StreamHub,
    /// Client addresses refused for failed credentials, until when.
    pub blocked: crate::access::BlockedAddresses,
    /// Where report files are kept (downloads read them).
    pub reports: hangar_reports::ReportStore,
    /// The console overview's jobs-finished chart, counted at most once a
    /// minute per replica.
    pub activity: crate::console::ActivityCache,
}

impl Services {
    /// The queue called `name`.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.get(name)
    }
}
