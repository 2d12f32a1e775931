//! The shipped monitoring, run for real: Debian's Prometheus scrapes a real
//! API, a real `hangar-worker` process and a scheduler, loads the rules in
//! `deploy/prometheus/rules/`, and evaluates every query of the Grafana
//! dashboard in `deploy/grafana/hangar.json`.
//!
//! `promtool test rules` (scripts/check-monitoring) checks each alert's
//! `for:` duration and thresholds against fixtures. Here the question is
//! whether the expressions fire on the series Hangar really exports, so the
//! rules are loaded with `for:` set to 0s and the queue-latency threshold
//! lowered (see [`TEST_RULE_CHANGES`]); nothing else in them is changed.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hangar_tests::{TestApp, free_port};
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");

/// Where the monitoring files live, from this crate.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The one change to the shipped rules besides `for:` (whose values
/// promtool's fixtures test): the sync queue's latency threshold, so a job
/// waiting a few seconds counts as late.
const TEST_RULE_CHANGES: &[(&str, &str)] = &[(
    r#"label_replace(vector(300), "queue", "sync", "", "")"#,
    r#"label_replace(vector(1), "queue", "sync", "", "")"#,
)];

/// A Prometheus server of our own, on a free loopback port; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped rule file `name` with every `for:` at 0s and
/// [`TEST_RULE_CHANGES`] applied (each must match, or the test says which
/// did not: the rules changed and this test must follow).
fn test_rules(name: &str) -> String {
    let shipped = std::fs::read_to_string(deploy().join("prometheus/rules").join(name)).unwrap();
    let mut text: String = shipped
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    for (from, to) in TEST_RULE_CHANGES {
        if text.contains(from) {
            text = text.replace(from, to);
        }
    }
    text
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job name, host:port) every
    /// second, with the shipped rules evaluated every second.
    async fn start(targets: &[(&str, String)]) -> Self {
        let bin = which("prometheus").unwrap_or_else(|| {
            panic!("prometheus is not installed: run `bash scripts/check-monitoring` (installs Debian's prometheus package)")
        });
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hangar-prometheus-{port}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        let mut rule_files = Vec::new();
        let mut changed = 0;
        for entry in std::fs::read_dir(deploy().join("prometheus/rules")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let rules = test_rules(&name);
            changed += TEST_RULE_CHANGES
                .iter()
                .filter(|(_, to)| rules.contains(to))
                .count();
            let path = dir.join("rules").join(&name);
            std::fs::write(&path, rules).unwrap();
            rule_files.push(path);
        }
        assert_eq!(
            changed,
            TEST_RULE_CHANGES.len(),
            "every change in TEST_RULE_CHANGES applies to the shipped rules"
        );
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n");
        for f in &rule_files {
            config.push_str(&format!("  - {}\n", f.display()));
        }
        config.push_str("scrape_configs:\n");
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("HANGAR_TEST_WORKER_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        // Prometheus accepts connections before its storage is open and
        // answers 503 in plain text until then: wait for `/-/ready`.
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return prometheus;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus did not become ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} answered {status} with no JSON ({e}): {body}"))
    }

    /// Evaluates `expr` now: Prometheus's answer (`status` success or error).
    async fn query(&self, expr: &str) -> Value {
        self.get("/api/v1/query", &[("query", expr)]).await
    }

    /// The alerts firing now, as (alertname, queue label).
    async fn firing(&self) -> Vec<(String, String)> {
        let body = self.get("/api/v1/alerts", &[]).await;
        body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["queue"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Waits until every target is scraped and up.
    async fn wait_targets_up(&self, n: usize) {
        let started = Instant::now();
        loop {
            let body = self.get("/api/v1/targets", &[]).await;
            let active = body["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if active.len() == n && active.iter().all(|t| t["health"] == "up") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "targets not up: {active:#?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until `want` fires (or `fire` is false and it does not).
    async fn wait_alert(&self, want: (&str, &str), fire: bool, within: Duration) {
        let started = Instant::now();
        loop {
            let firing = self.firing().await;
            let is = firing.iter().any(|(a, q)| a == want.0 && q == want.1);
            if is == fire {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{want:?} {} within {within:?}; firing: {firing:?}",
                if fire { "did not fire" } else { "did not resolve" }
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Every panel's queries in the dashboard, with Grafana's variables
/// replaced the way Grafana would for "all queues, last hour".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy().join("grafana/hangar.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$queue", ".*");
            out.push((panel["title"].as_str().unwrap_or("?").to_owned(), expr));
        }
    }
    out
}

#[tokio::test]
async fn prometheus_fires_workers_gone_and_queue_latency_and_evaluates_every_dashboard_query() {
    let worker_port = free_port();
    let scheduler_port = free_port();
    let app = TestApp::builder()
        .without_worker()
        .envs(&[(
            "HANGAR_SCHEDULER_METRICS_BIND",
            &format!("127.0.0.1:{scheduler_port}"),
        )])
        .spawn()
        .await;
    let (stop_scheduler, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(hangar_scheduler::run(app.config(), async move {
        let _ = stopped.await;
    }));
    let worker_env = [(
        "HANGAR_WORKER_METRICS_BIND".to_owned(),
        format!("127.0.0.1:{worker_port}"),
    )];
    let mut worker = app.worker_process(WORKER, "sync=2,reports=1,inference=1", &worker_env);
    let api = app.base.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&[
        ("hangar-api", api),
        ("hangar-worker", format!("127.0.0.1:{worker_port}")),
        ("hangar-scheduler", format!("127.0.0.1:{scheduler_port}")),
    ])
    .await;
    prometheus.wait_targets_up(3).await;

    // Work flows: jobs succeed, so the throughput panels have data.
    for _ in 0..5 {
        let id = app.enqueue(json!({"kind": "system.noop"})).await;
        app.wait_state(&id, hangar_tests::JobStatus::Succeeded, Duration::from_secs(30))
            .await;
    }
    // Two scrapes of everything, so rate() has two samples.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !prometheus
            .firing()
            .await
            .iter()
            .any(|(a, _)| a == "HangarWorkersGone"),
        "workers are alive"
    );

    // Every dashboard query evaluates without an error.
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 20,
        "the dashboard has its panels: {}",
        queries.len()
    );
    let mut with_data = 0;
    for (title, expr) in &queries {
        let answer = prometheus.query(expr).await;
        assert_eq!(answer["status"], "success", "panel {title:?}: {expr}\n{answer}");
        if answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
            with_data += 1;
        }
    }
    eprintln!(
        "dashboard: {} queries, {with_data} returned series",
        queries.len()
    );

    // The workers go away while jobs wait.
    worker.kill().unwrap();
    worker.wait().unwrap();
    for _ in 0..3 {
        app.enqueue(json!({"kind": "system.noop"})).await;
    }
    // A worker counts as alive for 30 s after its last report.
    prometheus
        .wait_alert(("HangarWorkersGone", "sync"), true, Duration::from_secs(60))
        .await;
    prometheus
        .wait_alert(("HangarQueueLatencyHigh", "sync"), true, Duration::from_secs(30))
        .await;

    // A worker comes back: the queue drains and both alerts resolve.
    let _worker = app.worker_process(WORKER, "sync=2,reports=1,inference=1", &worker_env);
    prometheus
        .wait_alert(("HangarWorkersGone", "sync"), false, Duration::from_secs(30))
        .await;
    prometheus
        .wait_alert(("HangarQueueLatencyHigh", "sync"), false, Duration::from_secs(30))
        .await;

    let _ = stop_scheduler.send(());
    scheduler.await.unwrap().unwrap();
    drop(prometheus);
    app.shutdown().await;
}
