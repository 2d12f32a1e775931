//! What every Hangar binary shares: typed configuration from the environment,
//! telemetry, the job kinds and their payload validation, and database access.

pub mod chat;
pub mod config;
pub mod db;
pub mod error_reports;
pub mod inventory;
pub mod job_admin;
pub mod kinds;
pub mod models;
pub mod names;
pub mod role;
pub mod schedule;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod traces;

pub use config::{Config, ConfigError};
pub use role::Role;

use std::collections::BTreeMap;

/// Opens `names` under the configured prefix over one Redis connection
/// (retried with backoff at start), with the kinds' retry policies, and logs
/// once any Redis setting that can lose jobs.
pub async fn open_queues<'a>(
    config: &Config,
    names: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<BTreeMap<String, hangar_queue::Queue>> {
    let settings = config.redis_settings();
    let conn = settings.connect().await?;
    let mut queues = BTreeMap::new();
    for name in names {
        let q =
            hangar_queue::Queue::with_connection(conn.clone(), settings.clone(), &config.redis.prefix, name)?
                .with_policies(kinds::retry_policies().clone());
        queues.insert(name.to_owned(), q);
    }
    if let Some(q) = queues.values().next() {
        telemetry::warn_about_redis(q).await;
    }
    Ok(queues)
}
