//! Test fixtures: [`TestApp`] boots exactly what the binaries boot (the API on
//! port 0, the worker, the scheduler's repair pass) against a fresh
//! PostgreSQL database and a fresh Redis key prefix; [`OwnPostgres`] and
//! [`OwnRedis`] are private servers for tests that stop or flush them.
//!
//! One file on purpose: it is the fixture surface every test crate imports,
//! and keeping it in one place keeps `use hangar_tests::…` lines short.
#![allow(missing_docs, clippy::missing_panics_doc)]

pub mod fake_model;
pub mod fake_otlp;
pub mod fake_sentry;
pub mod llama;
/// Job states, for typed assertions (`wait_state(&id, JobStatus::Succeeded, ..)`).
pub use hangar_queue::JobStatus;
use std::{
    collections::HashMap,
    net::TcpListener as StdListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub mod moto;

use hangar_shared::{Config, db};
use serde_json::Value;
use tokio::sync::oneshot;

/// The shared PostgreSQL server for tests (never stopped by tests).
pub fn postgres_admin_url() -> String {
    std::env::var("HANGAR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The shared Redis for tests (never flushed by tests).
pub fn redis_url() -> String {
    std::env::var("HANGAR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database created for one test and dropped after it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDb {
    pub async fn create(admin_url: &str) -> Self {
        let db = Self::create_empty(admin_url).await;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        db::migrate(&pool).await.unwrap();
        pool.close().await;
        db
    }

    /// A database without Hangar's migrations applied.
    pub async fn create_empty(admin_url: &str) -> Self {
        let name = format!("hangar_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        let admin = sqlx::PgPool::connect(admin_url)
            .await
            .expect("postgres for tests");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        let url = format!("{base}/{name}");
        Self {
            name,
            url,
            admin: admin_url.to_owned(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The HS256 secret, issuer and audience every test app accepts.
pub const TEST_JWT_SECRET: &str = "hangar-test-secret-not-for-production-0123456789";
/// Issuer of test tokens.
pub const TEST_JWT_ISSUER: &str = "hangar-tests";
/// Audience of test tokens.
pub const TEST_JWT_AUDIENCE: &str = "hangar-api";

/// An HS256 token for `sub` with `role`, valid for an hour.
pub fn token(sub: &str, role: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    sign_hs256(
        &serde_json::json!({"sub": sub, "role": role, "iss": TEST_JWT_ISSUER, "aud": TEST_JWT_AUDIENCE,
            "iat": now, "exp": now + 3600}),
        TEST_JWT_SECRET,
    )
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign_hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token signs")
}

/// An HTTP client that sends `Authorization: Bearer <token>`.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A `hangar-worker` process a test started: used as the [`Child`] it is,
/// and killed (SIGKILL) and reaped when dropped, so a failed assertion does
/// not leave the worker running against the shared Redis.
pub struct WorkerProcess(Child);

impl std::ops::Deref for WorkerProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for WorkerProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Already killed and reaped by the test: both fail harmlessly.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `hangar-worker` process logging JSON lines at `info` into a file, for
/// tests that read what it logged ([`LoggedWorker::stop_and_read_log`]).
pub struct LoggedWorker {
    process: WorkerProcess,
    log: std::path::PathBuf,
}

impl LoggedWorker {
    /// Stops the worker (SIGTERM, so it drains and flushes) and returns its
    /// log. A worker still running 60 s later is killed and the test fails
    /// with its log: a drain that hangs is a bug, not a slow test.
    pub async fn stop_and_read_log(self) -> String {
        let Self { mut process, log } = self;
        let _ = Command::new("kill")
            .args(["-TERM", &process.id().to_string()])
            .status();
        let exited = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if matches!(process.try_wait(), Ok(Some(_))) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = process.kill();
            let _ = process.wait();
            false
        })
        .await
        .unwrap();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        assert!(
            exited,
            "the worker did not stop within 60 s of SIGTERM; its log:\n{text}"
        );
        text
    }
}

/// `HANGAR_AWS_RATES` of every TestApp: WorkSpaces calls at 1,000/s, the
/// rest (CloudTrail, CloudWatch, Cost Explorer...) at their defaults.
pub const TEST_AWS_RATES: &str = "workspaces=1000/s";

/// Settings every TestApp starts with; tests override single variables.
pub fn test_env(db_url: &str, redis_url: &str, prefix: &str) -> HashMap<String, String> {
    // Report files of this app only, under the system's temporary directory.
    let reports = format!(
        "file://{}/hangar-test-reports/{prefix}",
        std::env::temp_dir().display()
    );
    [
        ("HANGAR_REPORTS_URL", reports.as_str()),
        ("HANGAR_DATABASE_URL", db_url),
        ("HANGAR_REDIS_URL", redis_url),
        ("HANGAR_REDIS_PREFIX", prefix),
        ("HANGAR_BIND", "127.0.0.1:0"),
        ("HANGAR_QUEUES", "sync=4,reports=1,inference=1"),
        ("HANGAR_LEASE_SECS", "2"),
        ("HANGAR_DRAIN_TIMEOUT_SECS", "5"),
        ("HANGAR_REPAIR_INTERVAL_SECS", "1"),
        ("HANGAR_REPAIR_MIN_AGE_SECS", "0"),
        ("HANGAR_REDIS_OUTAGE_LIMIT_SECS", "30"),
        ("HANGAR_DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ("HANGAR_READY_TIMEOUT_MS", "1000"),
        ("HANGAR_LOG_LEVEL", "warn"),
        // Tests that run the scheduler fire only the schedules they define.
        ("HANGAR_SCHEDULES_FILE", "none"),
        ("HANGAR_JWT_HS256_SECRET", TEST_JWT_SECRET),
        ("HANGAR_JWT_ISSUER", TEST_JWT_ISSUER),
        ("HANGAR_JWT_AUDIENCE", TEST_JWT_AUDIENCE),
        // Rate limits are tested on their own; other tests push bursts.
        ("HANGAR_RATE_LIMIT_READ", "off"),
        ("HANGAR_RATE_LIMIT_WRITE", "off"),
        ("HANGAR_RATE_LIMIT_AUTH_FAILURES", "off"),
        // WorkSpaces calls are paced at 1.8/s per account and region by
        // default (AWS documents 2/s): a 1,000-workspace sync would spend
        // ten minutes in DescribeTags alone. Tests still go through the
        // shared limiter, at a rate the emulator answers; pacing at the
        // defaults is tested on its own (and measured in bench/fleet.sh).
        ("HANGAR_AWS_RATES", TEST_AWS_RATES),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn config(env: &HashMap<String, String>) -> Config {
    Config::from_lookup(&|k| env.get(k).cloned()).expect("valid test configuration")
}

/// A running component and the switch that stops it.
pub struct Component {
    stop: Option<oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Component {
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.join).await??
    }
}

fn signal() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel();
    (tx, async move {
        let _ = rx.await;
    })
}

/// The API in this process, on a free port.
pub async fn spawn_api(config: Config) -> (String, Component) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, shutdown) = signal();
    let join = tokio::spawn(hangar_api::run(config, listener, shutdown));
    (base, Component { stop: Some(tx), join })
}

/// The worker in this process.
pub fn spawn_worker(config: Config) -> Component {
    let (tx, shutdown) = signal();
    let join = tokio::spawn(hangar_worker::run(config, shutdown));
    Component { stop: Some(tx), join }
}

/// The booted system: API (and optionally worker) on a fresh database and prefix.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub env: HashMap<String, String>,
    pub api: Option<Component>,
    pub worker: Option<Component>,
    pub db: TestDb,
    pub prefix: String,
    pub redis_url: String,
}

/// How to start a [`TestApp`]: the shared Redis and an in-process worker
/// unless told otherwise, on a fresh database and key prefix every time.
///
/// ```ignore
/// let app = TestApp::builder().without_worker().env("HANGAR_RATE_LIMIT_READ", "5/min").spawn().await;
/// ```
#[derive(Debug, Clone)]
pub struct TestAppBuilder {
    redis: String,
    worker: bool,
    env: Vec<(String, String)>,
}

impl TestAppBuilder {
    /// Against this Redis (a private one, for tests that stop or flush it).
    #[must_use]
    pub fn redis(mut self, url: &str) -> Self {
        url.clone_into(&mut self.redis);
        self
    }

    /// Without the in-process worker: jobs stay queued.
    #[must_use]
    pub fn without_worker(self) -> Self {
        self.worker(false)
    }

    /// With or without the in-process worker.
    #[must_use]
    pub fn worker(mut self, on: bool) -> Self {
        self.worker = on;
        self
    }

    /// One variable on top of [`test_env`].
    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several variables on top of [`test_env`].
    #[must_use]
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        self.env
            .extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }

    /// Creates the database and starts the API (and the worker); returns
    /// once the API answers.
    pub async fn spawn(self) -> TestApp {
        let db = TestDb::create(&postgres_admin_url()).await;
        let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
        let mut env = test_env(&db.url, &self.redis, &prefix);
        env.extend(self.env);
        let (base, api) = spawn_api(config(&env)).await;
        let worker = self.worker.then(|| spawn_worker(config(&env)));
        let app = TestApp {
            base,
            http: client_with_token(&token("test-admin", "admin")),
            env,
            api: Some(api),
            worker,
            db,
            prefix,
            redis_url: self.redis,
        };
        app.wait_ready().await;
        app
    }
}

impl TestApp {
    /// How to start one; see [`TestAppBuilder`].
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            redis: redis_url(),
            worker: true,
            env: Vec::new(),
        }
    }

    /// API and worker against the shared servers.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    pub fn config(&self) -> Config {
        config(&self.env)
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "api did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST {path}` with a JSON body: status and JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A `hangar-worker` process (`bin`: the test's `CARGO_BIN_EXE_hangar-worker`)
    /// with this app's environment plus `extra`, output discarded unless
    /// `HANGAR_TEST_WORKER_LOGS` is set; killed when dropped.
    pub fn worker_process(&self, bin: &str, queues: &str, extra: &[(String, String)]) -> WorkerProcess {
        let output = || {
            if std::env::var_os("HANGAR_TEST_WORKER_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        Command::new(bin)
            .env_clear()
            .envs(self.env.iter())
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .args(["--queues", queues])
            .stdout(output())
            .stderr(output())
            .spawn()
            .map(WorkerProcess)
            .expect("hangar-worker starts")
    }

    /// Starts `bin` (hangar-worker) with this app's variables and `extra`,
    /// `args`, and its JSON log (at `info` unless `extra` sets
    /// `HANGAR_LOG_LEVEL`) going to a file.
    pub fn logged_worker(&self, bin: &str, args: &[&str], extra: &[(String, String)]) -> LoggedWorker {
        let log = std::env::temp_dir().join(format!("hangar-worker-{}.log", ulid::Ulid::new()));
        let child = Command::new(bin)
            .env_clear()
            .envs(self.env.iter())
            .env("HANGAR_LOG_FORMAT", "json")
            .env("HANGAR_LOG_LEVEL", "info")
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file created"))
            .spawn()
            .expect("hangar-worker starts");
        LoggedWorker {
            process: WorkerProcess(child),
            log,
        }
    }

    pub async fn post_job(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/jobs", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Posts a job, expects 202, returns its id.
    pub async fn enqueue(&self, body: Value) -> String {
        let r = self.post_job(body.clone()).await;
        assert_eq!(r.status(), 202, "{body}");
        let v: Value = r.json().await.unwrap();
        v["job"]["id"].as_str().expect("the job's id").to_owned()
    }

    /// One queue's row of `GET /api/v1/queues`.
    pub async fn queue_row(&self, name: &str) -> Value {
        let (_, queues) = self.get("/api/v1/queues").await;
        queues["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE {path}`: the status.
    pub async fn delete(&self, path: &str) -> u16 {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// The API's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// Polls the job until `state`; panics after `within`.
    pub async fn wait_state(&self, id: &str, state: JobStatus, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (_, job) = self.get(&format!("/api/v1/jobs/{id}")).await;
            if job["state"] == state.as_str() {
                return job;
            }
            assert!(
                start.elapsed() < within,
                "job {id} did not reach {} within {within:?}; last: {job}",
                state.as_str()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The job's row as PostgreSQL has it.
    pub async fn record(&self, id: &str) -> db::JobRun {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let row = db::get_job(&pool, id).await.unwrap().expect("recorded");
        pool.close().await;
        row
    }

    /// Polls the record until PostgreSQL has `state`.
    pub async fn wait_record(&self, id: &str, state: JobStatus) -> db::JobRun {
        let start = Instant::now();
        loop {
            let row = self.record(id).await;
            if row.state == state {
                return row;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "record of {id} never reached {}: {row:?}",
                state.as_str()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await.expect("worker drains cleanly");
        }
        if let Some(a) = self.api.take() {
            a.stop().await.expect("api stops cleanly");
        }
        let _ = redis_cleanup(&self.redis_url, &self.prefix).await;
    }
}

/// Deletes every key under `prefix` (on a cluster, KEYS asks every master
/// and DEL is split by slot).
pub async fn redis_cleanup(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = hangar_queue::RedisSettings::new(url).connect().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

/// Locates a PostgreSQL server program (initdb, pg_ctl).
fn pg_bin(name: &str) -> PathBuf {
    let candidates = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists());
    candidates.max().unwrap_or_else(|| PathBuf::from(name))
}

/// A private PostgreSQL (initdb + pg_ctl) on a free port, for tests that
/// stop it. Runs as the `postgres` user when the tests run as root.
pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    as_root: bool,
}

impl OwnPostgres {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hangar-pg-{port}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        // initdb refuses to run as root: as root, the cluster belongs to `postgres`.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        if as_root {
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap();
        }
        let pg = Self { port, dir, as_root };
        let data = pg.dir.join("data");
        let ok = pg
            .command(&pg_bin("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "initdb failed");
        pg.ctl("start");
        pg
    }

    fn command(&self, program: &std::path::Path) -> Command {
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn ctl(&self, action: &str) {
        let mut cmd = self.command(&pg_bin("pg_ctl"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "immediate"]);
        if action == "start" {
            cmd.arg("-l").arg(self.dir.join("log")).arg("-o").arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {}",
                self.port,
                self.dir.display()
            ));
        }
        let ok = cmd
            .arg(action)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl {action} failed");
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        self.ctl("stop");
    }

    pub fn restart(&self) {
        self.ctl("start");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let mut cmd = self.command(&pg_bin("pg_ctl"));
        let _ = cmd
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts that `bin --help` succeeds and lists each of `commands` as a
/// command with a description (not merely mentions the word somewhere).
pub fn assert_help_lists(bin: &str, commands: &[&str]) {
    let out = Command::new(bin).arg("--help").output().expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{bin} --help failed:\n{text}");
    for command in commands {
        let listed = text.lines().any(|l| {
            l.trim_start()
                .strip_prefix(command)
                .is_some_and(|rest| rest.starts_with("  ") && rest.trim().len() > 5)
        });
        assert!(listed, "{command} is not listed as a command in --help:\n{text}");
    }
}

/// The Prometheus text served at `http://{addr}/metrics` (a worker's or
/// scheduler's `*_METRICS_BIND`), or why it could not be read.
async fn try_scrape(addr: &str) -> Result<String, reqwest::Error> {
    reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await
}

/// The Prometheus text served at `http://{addr}/metrics` (a worker's or
/// scheduler's `*_METRICS_BIND`).
pub async fn scrape(addr: &str) -> String {
    try_scrape(addr)
        .await
        .unwrap_or_else(|e| panic!("metrics at {addr}: {e}"))
}

/// Waits until a line of the metrics at `addr` starts with `prefix` (a
/// whole `name{labels} value` line to wait for a value); returns the line.
/// A process still starting (not listening yet) is waited for too.
pub async fn wait_metric(addr: &str, prefix: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = try_scrape(addr).await.unwrap_or_else(|e| e.to_string());
        if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
            return line.to_owned();
        }
        assert!(
            start.elapsed() < within,
            "no {prefix} at {addr} within {within:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A private redis-server on a free port, for tests that flush or stop it.
pub struct OwnRedis {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hangar-redis-{port}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "own redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child, dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Loses every key, as a Redis restarted without persistence does.
    pub async fn flush_all(&self) {
        let mut conn = redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn always_fails(_: Value) -> Result<(), apalis_core::error::BoxDynError> {
    Err(hangar_queue::permanent("simulated bad credentials"))?
}

/// Runs a worker on the `sync` queue whose every job fails permanently
/// (recording outcomes as hangar-worker does) until each of `ids` is dead.
pub async fn kill_jobs(app: &TestApp, ids: &[String]) {
    use apalis_core::worker::builder::WorkerBuilder;
    let cfg = app.config();
    let queue = hangar_queue::Queue::connect(&cfg.redis_settings(), &cfg.redis.prefix, "sync")
        .await
        .expect("queue");
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let pool = db::pool(&cfg.database).expect("pool");
    let persister = tokio::spawn(hangar_worker::persist::run(pool, rx, std::sync::Arc::default()));
    let backend = hangar_queue::HangarBackend::<Value>::new(queue, hangar_worker::queue_options(&cfg, 2))
        .expect("backend")
        .with_outcome_sink(tx);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let failing = tokio::spawn(
        WorkerBuilder::new("failing")
            .backend(backend)
            .build(always_fails)
            .run_until(async move {
                let _ = stop_rx.await;
                Ok::<(), apalis_core::error::WorkerError>(())
            }),
    );
    for id in ids {
        app.wait_record(id, JobStatus::Dead).await;
    }
    let _ = stop_tx.send(());
    failing.await.expect("worker task").expect("worker");
    persister.await.expect("persister");
}
