//! What every handler can reach.

use std::{collections::BTreeMap, sync::Arc};

use hangar_queue::Queue;
use hangar_shared::Config;
use sqlx::PgPool;

use crate::metrics::Metrics;

/// Shared application state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState {
    /// PostgreSQL.
    pub pool: PgPool,
    /// Every queue, by name.
    pub queues: Arc<BTreeMap<String, Queue>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Configuration.
    pub config: Arc<Config>,
}

impl AppState {
    /// The queue called `name`.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.get(name)
    }
}
