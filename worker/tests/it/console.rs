//! The console's "Sync now", watched in a real headless Chromium while the
//! real hangar-worker binary runs the jobs against the AWS emulator
//! (tests/console/live.py): the overview follows each job to succeeded over
//! server-sent events, without a reload.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use hangar_tests::{TestApp, moto::Moto, token};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");
const ACCOUNTS: &str = r#"[{"name":"main","regions":["us-east-1","eu-west-1"]}]"#;

#[tokio::test]
async fn sync_now_in_the_console_is_followed_live_to_succeeded() {
    let moto = Moto::start().await;
    let app = TestApp::builder()
        .without_worker()
        .env("HANGAR_AWS_ACCOUNTS", ACCOUNTS)
        .spawn()
        .await;
    let console = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console");
    let mut browser = Command::new("python3")
        .arg(console.join("live.py"))
        .arg(&app.base)
        .arg(token("live-operator", "operator"))
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
    let mut worker = app.worker_process(WORKER, "sync=2", &moto.aws_env());
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
    app.shutdown().await;
}
