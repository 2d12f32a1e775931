//! Redis connections: configured timeouts, reconnects with exponential backoff.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::Result;

/// How to reach Redis. Cheap to clone: every worker component opens its own
/// connection from it, so a blocked runtime never stalls another's traffic.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`; may carry a password, so it is never printed.
    pub url: String,
    /// How long a command may wait for its reply before it fails (default 5 s;
    /// redis-rs's 500 ms default ended apalis-redis workers on a slow reply).
    pub response_timeout: Duration,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long `connect` keeps retrying at start before giving up.
    pub connect_retry_for: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl RedisSettings {
    /// Settings with Hangar's defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            connect_retry_for: Duration::from_secs(30),
        }
    }

    /// Why `url` cannot be used, judged by the same parser [`connect`]
    /// uses (without connecting): `check-config` asks this, so a URL it
    /// accepts is one the processes can open.
    ///
    /// [`connect`]: Self::connect
    pub fn url_problem(url: &str) -> Option<String> {
        redis::Client::open(url).err().map(|e| e.to_string())
    }

    /// Opens a multiplexed connection that reconnects on its own, retrying the
    /// first connection with exponential backoff for `connect_retry_for`.
    pub async fn connect(&self) -> Result<ConnectionManager> {
        self.connect_with_timeout(self.response_timeout).await
    }

    /// Like [`connect`](Self::connect) with another response timeout, for
    /// connections that block (BLPOP) longer than ordinary commands may.
    pub async fn connect_with_timeout(&self, response_timeout: Duration) -> Result<ConnectionManager> {
        let client = redis::Client::open(self.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let open = || {
            let client = client.clone();
            let config = config.clone();
            async move { ConnectionManager::new_with_config(client, config).await }
        };
        let max_times = backoff_steps(self.connect_retry_for);
        let conn = open
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(2))
                    .with_max_times(max_times)
                    .with_jitter(),
            )
            .notify(|err, wait| {
                tracing::warn!(error = %err, retry_in = ?wait, "redis not reachable yet; retrying");
            })
            .await?;
        Ok(conn)
    }
}

/// Number of backoff steps (100 ms doubling to 2 s) that fit in `total`.
fn backoff_steps(total: Duration) -> usize {
    let mut spent = Duration::ZERO;
    let mut step = Duration::from_millis(100);
    let mut n = 0;
    while spent < total {
        spent += step;
        step = (step * 2).min(Duration::from_secs(2));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_budget_covers_the_requested_time() {
        assert_eq!(backoff_steps(Duration::ZERO), 0);
        // 100+200+400+800+1600 = 3.1 s >= 3 s
        assert_eq!(backoff_steps(Duration::from_secs(3)), 5);
        // then 2 s steps
        assert_eq!(backoff_steps(Duration::from_secs(30)), 19);
    }

    #[test]
    fn debug_never_prints_the_url() {
        let s = RedisSettings::new("redis://:hunter2@localhost");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
