//! The console with work being done, in a real headless Chromium
//! (tests/console/live.py): the real hangar-worker binary runs the jobs
//! against the AWS emulator and a real llama.cpp model server. Sync now is
//! followed live to succeeded without a reload; the inventory it brought in
//! is filtered and a workspace's tabs opened; a bulk retry of every dead
//! job matching a filter runs to succeeded; a running job is cancelled; the
//! playground streams an answer token by token.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use hangar_tests::{
    TestApp,
    llama::{LlamaServer, models_file},
    moto::Moto,
    token,
};
use serde_json::json;

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");
const ACCOUNTS: &str = r#"[{"name":"main","regions":["us-east-1","eu-west-1"]}]"#;
const MODEL: &str = "context_size = 512\nmax_in_flight = 1\nmax_tokens_cap = 64\nrequest_attempts = 2\nrequest_timeout_secs = 120";

#[tokio::test]
async fn the_console_follows_real_work_live_syncs_bulk_retries_cancels_and_streams_a_chat() {
    let moto = Moto::start().await;
    moto.post(
        "seed/workspaces",
        json!({"directories": 1, "workspaces": 12, "bundles": 2, "tags_per_workspace": 2,
               "states": {"AVAILABLE": 2, "STOPPED": 1}}),
    )
    .await;
    let llama = LlamaServer::start(1, 512).await;
    let models = models_file(&[("tiny", &llama.url(), MODEL)]);
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_AWS_ACCOUNTS", ACCOUNTS),
            ("HANGAR_MODELS_FILE", models.to_str().unwrap()),
            ("HANGAR_MODEL_PROBE_SECS", "1"),
        ])
        .spawn()
        .await;
    // Three dead jobs to retry in bulk, and a long job to cancel while it runs.
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(app.enqueue(json!({"kind": "system.noop"})).await);
    }
    hangar_tests::kill_jobs(&app, &dead).await;
    app.enqueue(json!({"kind": "system.sleep", "payload": {"ms": 600000, "steps": 100}}))
        .await;

    let console = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console");
    let mut browser = Command::new("python3")
        .arg(console.join("live.py"))
        .arg(&app.base)
        .arg(token("live-operator", "operator"))
        .arg(token("live-admin", "admin"))
        .arg(console.join("screenshots"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (line, lines)
    })
    .await
    .unwrap();
    let (line, lines) = first;
    assert_eq!(
        line.and_then(Result::ok).as_deref(),
        Some("pressed"),
        "the browser did not get to press Sync now (its error is above)"
    );
    // Only now does a worker run: the page must notice without a reload.
    // It serves the control queue too (bulk actions), as every worker does.
    let mut env = moto.aws_env();
    env.push((
        "HANGAR_MODELS_FILE".to_owned(),
        models.to_str().unwrap().to_owned(),
    ));
    let mut worker = app.worker_process(WORKER, "sync=2,inference=1", &env);
    let mut stdin = browser.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (browser.wait().unwrap(), rest)
    })
    .await
    .unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(status.0.success(), "live browser test failed: {:?}", status.1);
    assert_eq!(status.1.last().map(String::as_str), Some("live console test: ok"));
    for id in &dead {
        let run = app.record(id).await;
        assert_eq!(
            run.state,
            hangar_tests::JobStatus::Succeeded,
            "{id} retried by the bulk job and run"
        );
    }
    drop(llama);
    app.shutdown().await;
}
