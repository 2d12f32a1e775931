//! Shared test fixtures: a fresh key prefix per test against a real Redis,
//! short worker timings, a spawned apalis worker, and polling helpers.
#![allow(dead_code, missing_docs)]

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apalis_core::error::WorkerError;
use hangar_queue::{BackendHandle, Queue, RedisSettings, WorkerOptions};

/// The shared Redis the suite talks to (never flushed, never stopped): one
/// server, or a Redis Cluster when it names several comma-separated nodes
/// (`scripts/redis-cluster` runs the whole suite that way).
pub fn redis_url() -> String {
    std::env::var("HANGAR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A queue under a prefix no other test uses; its keys are deleted on drop.
pub struct TestQueue {
    pub queue: Queue,
    pub prefix: String,
    url: String,
}

impl TestQueue {
    pub async fn new(name: &str) -> Self {
        Self::on(&redis_url(), name).await
    }

    pub async fn on(url: &str, name: &str) -> Self {
        let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
        let settings = RedisSettings::new(url);
        let queue = Queue::connect(&settings, &prefix, name)
            .await
            .expect("connect to redis");
        Self {
            queue,
            prefix,
            url: url.to_owned(),
        }
    }

    /// Another queue under the same prefix.
    pub async fn sibling(&self, name: &str) -> Queue {
        Queue::connect(&RedisSettings::new(&self.url), &self.prefix, name)
            .await
            .unwrap()
    }

    /// A connection of its own, routed by slot when the suite runs on a cluster.
    pub async fn conn(&self) -> hangar_queue::RedisConn {
        RedisSettings::new(&self.url).connect().await.unwrap()
    }
}

/// Deletes every key under `prefix` (on a cluster, KEYS asks every master
/// and DEL is split by slot).
pub async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut settings = RedisSettings::new(url);
    settings.connect_retry_for = Duration::ZERO;
    let Ok(mut conn) = settings.connect().await else {
        return Ok(());
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        // Drop cannot await: clean up on a runtime of its own.
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(delete_prefix(&url, &prefix))
                .map_err(std::io::Error::other)
        })
        .join();
    }
}

/// Timings short enough for tests.
pub fn fast_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        lease: Duration::from_millis(1500),
        heartbeat: Duration::from_millis(200),
        maintenance_interval: Duration::from_millis(50),
        idle_wait: Duration::from_secs(1),
        ..WorkerOptions::default()
    }
}

/// A worker running in the background.
pub struct Running {
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub join: tokio::task::JoinHandle<Result<(), WorkerError>>,
    pub handle: BackendHandle,
}

impl Running {
    /// Asks the worker to stop and waits for it (running jobs finish first).
    pub async fn stop(mut self) -> Result<(), WorkerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.join)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task did not panic")
    }
}

/// Spawns an apalis worker over `$backend` running `$handler`; builder calls
/// may follow (data, layers): `spawn_worker!(backend, handler, .data(x))`.
#[macro_export]
macro_rules! spawn_worker {
    ($backend:expr, $handler:expr $(, $($chain:tt)+)?) => {{
        let backend = $backend;
        let handle = backend.handle();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let worker = apalis_core::worker::builder::WorkerBuilder::new("test")
            .backend(backend)
            $($($chain)+)?
            .build($handler);
        let join = tokio::spawn(worker.run_until(async move {
            let _ = rx.await;
            Ok::<(), apalis_core::error::WorkerError>(())
        }));
        $crate::common::Running {
            stop: Some(tx),
            join,
            handle,
        }
    }};
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private redis-server (for tests that stop or restart Redis), with AOF
/// fsync'd on every write so a restart keeps every acknowledged write.
pub struct OwnRedis {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl OwnRedis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with further server arguments (later ones win), e.g.
    /// `["--maxmemory-policy", "allkeys-lru"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hangar-redis-{port}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            port,
            dir,
            child: None,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and data directory.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "own redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (SIGKILL, by PID) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis Cluster (3 masters, 1 replica each) started by
/// `scripts/redis-cluster` on free ports, for tests that kill its nodes.
/// Stopped (by the PIDs the script recorded) on drop.
pub struct OwnCluster {
    pub url: String,
    pub dir: PathBuf,
}

/// `scripts/redis-cluster` of the checkout under test. Read at run time
/// (cargo and nextest set CARGO_MANIFEST_DIR for test processes): a test
/// binary reused from another checkout of the workspace must not run that
/// checkout's script.
fn cluster_script() -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    PathBuf::from(dir).join("../scripts/redis-cluster")
}

impl OwnCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hangar-cluster-{}", ulid::Ulid::new()));
        let out = Command::new("bash")
            .arg(cluster_script())
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs scripts/redis-cluster");
        assert!(out.status.success(), "scripts/redis-cluster start failed");
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Self { url, dir }
    }

    /// The ports of the nodes, as the script recorded them.
    pub fn ports(&self) -> Vec<u16> {
        std::fs::read_to_string(self.dir.join("ports"))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }

    /// `redis-cli -p PORT ARGS...`, its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the master serving `key`'s slot, and of its replica.
    pub fn master_and_replica_of(&self, key: &str) -> (u16, u16) {
        let any = self.ports()[0];
        let slot: u16 = self
            .cli(any, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        let nodes = self.cli(any, &["cluster", "nodes"]);
        let port_of = |addr: &str| -> u16 { addr.split(['@', ':']).nth(1).unwrap().parse().unwrap() };
        let master = nodes
            .lines()
            .find(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f[2].contains("master")
                    && f[8..].iter().any(|r| match r.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).contains(&slot),
                        None => r.parse::<u16>().ok() == Some(slot),
                    })
            })
            .expect("a master serves every slot");
        let id = master.split_whitespace().next().unwrap();
        let replica = nodes
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(id))
            .expect("every master has a replica");
        (
            port_of(master.split_whitespace().nth(1).unwrap()),
            port_of(replica.split_whitespace().nth(1).unwrap()),
        )
    }

    /// SIGKILLs the node on `port` (by the PID the script recorded).
    pub fn kill_9(&self, port: u16) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{port}.pid"))).unwrap();
        let ok = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -9 {pid}");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(cluster_script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
