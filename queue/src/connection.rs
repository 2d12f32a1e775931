//! Redis connections: one server or a Redis Cluster, plain or TLS, with
//! configured timeouts and reconnects with exponential backoff.
//!
//! Every Hangar process talks to Redis through [`RedisConn`], so the queue
//! engine, the coordination primitives, the API and the workers work the
//! same against one server and against a cluster (ElastiCache Serverless,
//! cluster-mode Valkey/Redis, MemoryDB). What makes that safe is that no
//! command or script spans two hash slots: a queue's keys share the tag
//! `{queue}`, token streams share `{tokens}`, and every other key is used
//! by single-key commands only.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::{
    Cmd, Pipeline, RedisFuture, TlsCertificates, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};

use crate::error::Result;

/// A connection to Redis: one server (reconnecting on its own) or a Redis
/// Cluster (following slot moves and failovers on its own). Cheap to clone;
/// clones share the connection.
#[derive(Clone)]
pub enum RedisConn {
    /// One server, through redis-rs's reconnecting manager.
    Single(ConnectionManager),
    /// A cluster: commands are routed by their key's hash slot.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConn::Single",
            Self::Cluster(_) => "RedisConn::Cluster",
        })
    }
}

impl RedisConn {
    /// Whether this talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How to reach Redis. Cheap to clone: every worker component opens its own
/// connection from it, so a blocked runtime never stalls another's traffic.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db` or `rediss://` for TLS; several
    /// comma-separated URLs name the seed nodes of a cluster. May carry a
    /// password, so it is never printed.
    pub url: String,
    /// Talk the cluster protocol even when `url` names one node (a cluster's
    /// configuration endpoint, as ElastiCache gives). Several URLs imply it.
    pub cluster: bool,
    /// PEM certificates to trust for `rediss://` instead of the system's
    /// roots (a private CA); `None` uses the system's trust store.
    pub tls_ca_pem: Option<Vec<u8>>,
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
            .field("cluster", &self.is_cluster())
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(|_| "<pem>"))
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
            cluster: false,
            tls_ca_pem: None,
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            connect_retry_for: Duration::from_secs(30),
        }
    }

    /// The URLs of the nodes named by `url` (one unless a cluster).
    pub fn nodes(&self) -> Vec<&str> {
        split_nodes(&self.url)
    }

    /// Whether connecting opens a cluster connection.
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.nodes().len() > 1
    }

    /// Why these settings cannot be used, judged by the same code
    /// [`connect`](Self::connect) builds its client with (without
    /// connecting): `check-config` asks this, so settings it accepts are
    /// settings the processes can open.
    pub fn problem(&self) -> Option<String> {
        match self.client() {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        self.tls_ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }

    /// The redis-rs client for these settings; the one place URLs are parsed.
    fn client(&self) -> redis::RedisResult<Client> {
        // rustls needs a process-wide crypto provider and cannot pick one
        // when a build enables two; name ring (an error only means one is
        // installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nodes = self.nodes();
        if nodes.is_empty() {
            return Err((redis::ErrorKind::InvalidClientConfig, "no Redis URL given").into());
        }
        if self.is_cluster() {
            let mut b = ClusterClientBuilder::new(nodes.iter().copied())
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.response_timeout)
                .retries(6)
                .min_retry_wait(50)
                .max_retry_wait(2_000);
            if let Some(certs) = self.certificates() {
                b = b.certs(certs);
            }
            return Ok(Client::Cluster(Box::new(b.build()?)));
        }
        let client = match self.certificates() {
            Some(certs) => redis::Client::build_with_tls(nodes[0], certs)?,
            None => redis::Client::open(nodes[0])?,
        };
        Ok(Client::Single(Box::new(client)))
    }

    /// Opens a multiplexed connection that reconnects on its own, retrying the
    /// first connection with exponential backoff for `connect_retry_for`.
    pub async fn connect(&self) -> Result<RedisConn> {
        self.connect_with_timeout(self.response_timeout).await
    }

    /// Like [`connect`](Self::connect) with another response timeout, for
    /// connections that block (BLPOP) longer than ordinary commands may.
    pub async fn connect_with_timeout(&self, response_timeout: Duration) -> Result<RedisConn> {
        let client = {
            let mut s = self.clone();
            s.response_timeout = response_timeout;
            s.client()?
        };
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let open = || {
            let client = client.clone();
            let config = config.clone();
            async move {
                match client {
                    Client::Single(c) => ConnectionManager::new_with_config(*c, config)
                        .await
                        .map(RedisConn::Single),
                    Client::Cluster(c) => c.get_async_connection().await.map(RedisConn::Cluster),
                }
            }
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

/// A parsed client, before any connection.
#[derive(Clone)]
enum Client {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// The comma-separated URLs of `url`, blanks dropped.
fn split_nodes(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
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
    fn several_urls_name_a_cluster() {
        assert!(!RedisSettings::new("redis://127.0.0.1:6379").is_cluster());
        let s = RedisSettings::new("redis://127.0.0.1:7000, redis://127.0.0.1:7001");
        assert!(s.is_cluster());
        assert_eq!(
            s.nodes(),
            vec!["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        let mut one = RedisSettings::new("rediss://cfg.cache.example:6379");
        one.cluster = true;
        assert!(one.is_cluster());
        assert_eq!(RedisSettings::new("redis://a:1,redis://b:2").problem(), None);
        assert_eq!(
            RedisSettings::new("rediss://user:pw@cache.example:6380").problem(),
            None
        );
        assert!(RedisSettings::new("redis://a:1,http://b:2").problem().is_some());
        assert!(RedisSettings::new(" , ").problem().is_some());
    }

    #[test]
    fn debug_never_prints_the_url() {
        let s = RedisSettings::new("redis://:hunter2@localhost");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
