//! The AWS emulator for tests: moto's server wrapped by
//! `tests/moto/hangar_moto.py` (pagination, the operations moto lacks,
//! fault injection, a LookupEvents rate limit), one process per test on a
//! free loopback port, stopped (by its PID) when dropped.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The account moto assigns to the fake credentials tests use.
pub const MOTO_ACCOUNT: &str = "123456789012";

/// A running emulator.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    http: reqwest::Client,
}

impl Moto {
    /// Starts the emulator and waits until it answers.
    pub async fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/moto/hangar_moto.py");
        let (child, port) = tokio::task::spawn_blocking(move || {
            let mut child = Command::new("python3")
                .args([script, "--port", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("python3 runs tests/moto/hangar_moto.py (scripts/test installs moto)");
            let stdout = child.stdout.take().expect("piped stdout");
            let mut port = None;
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("emulator stdout");
                if let Some(p) = line.strip_prefix("HANGAR_MOTO_PORT=") {
                    port = Some(p.trim().to_owned());
                    break;
                }
            }
            (child, port.expect("the emulator printed its port"))
        })
        .await
        .expect("emulator start");
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = moto.http.get(format!("{}/_hangar/health", moto.url)).send().await
                && r.status().is_success()
            {
                return moto;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "emulator did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn answer(r: reqwest::Response, what: &str) -> Value {
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "emulator {what}: {status} {body}");
        body
    }

    /// `POST /_hangar/{path}` with a JSON body; panics unless 2xx.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/_hangar/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::answer(r, path).await
    }

    /// `GET /_hangar/{path}`.
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/_hangar/{path}", self.url))
            .send()
            .await
            .unwrap();
        Self::answer(r, path).await
    }

    /// Adds a fault (see the launcher's docstring); returns its id.
    pub async fn fault(&self, spec: Value) -> u64 {
        self.post("faults", spec).await["id"].as_u64().expect("fault id")
    }

    /// Removes every fault.
    pub async fn clear_faults(&self) {
        let r = self
            .http
            .delete(format!("{}/_hangar/faults", self.url))
            .send()
            .await
            .unwrap();
        Self::answer(r, "clear faults").await;
    }

    /// Requests and throttles counted per operation.
    pub async fn stats(&self) -> Value {
        self.get("stats").await
    }

    /// The environment an AWS SDK process needs to use this emulator: one
    /// endpoint for every service, fake credentials, a region, and no
    /// instance metadata or config files from the machine.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        aws_env_at(&self.url)
    }
}

/// [`Moto::aws_env`] with `endpoint` for every service: also for a test
/// that points the SDK at a port nothing listens on.
pub fn aws_env_at(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
