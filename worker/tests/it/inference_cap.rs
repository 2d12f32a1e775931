//! The cross-replica in-flight cap: two `hangar-worker` processes, each
//! allowed three inference jobs at once, share a model whose
//! `max_in_flight` is 2; the (scripted) model server counts the requests
//! it has in flight at once. Then a worker killed with -9 mid-request: its
//! slot comes back when the lease lapses, and the job still completes.

use std::time::{Duration, Instant};

use hangar_tests::JobStatus;
use hangar_tests::{
    TestApp,
    fake_model::{FakeModel, Script},
    llama::models_file,
};
use serde_json::json;

/// Worker processes, killed with -9 together mid-test (each is also killed
/// when dropped, so a failed assertion leaves none running).
struct Killed(Vec<hangar_tests::WorkerProcess>);

impl Killed {
    fn kill_all(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn two_workers_never_exceed_the_models_slots_and_a_killed_one_leaks_none() {
    let fake = FakeModel::start(Script::Stream {
        tokens: 10,
        delay: Duration::from_millis(30),
    })
    .await;
    let file = models_file(&[(
        "capped",
        &fake.url,
        "context_size = 512\nmax_in_flight = 2\nmax_tokens_cap = 64",
    )]);
    let mut app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_MODELS_FILE", file.to_str().unwrap()),
            ("HANGAR_MODEL_PROBE_SECS", "1"),
        ])
        .spawn()
        .await;
    let bin = env!("CARGO_BIN_EXE_hangar-worker");
    let metrics_addr = format!("127.0.0.1:{}", hangar_tests::free_port());
    let mut workers = Killed(vec![
        app.worker_process(
            bin,
            "inference=3",
            &[("HANGAR_WORKER_METRICS_BIND".to_owned(), metrics_addr.clone())],
        ),
        app.worker_process(bin, "inference=3", &[]),
    ]);
    let mut ids = Vec::new();
    for i in 0..12 {
        let (status, body) = app
            .post(
                "/api/v1/inference/chat",
                json!({"model": "capped", "messages": [{"role": "user", "content": format!("q{i}")}], "max_tokens": 10}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["job"]["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let job = app
            .wait_state(id, JobStatus::Succeeded, Duration::from_secs(60))
            .await;
        assert_eq!(job["result"]["content"], "t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 ");
    }
    assert_eq!(fake.requests(), 12);
    // The first worker's metrics: its share of the jobs, per model.
    let metrics = hangar_tests::scrape(&metrics_addr).await;
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let succeeded = count("hangar_inference_requests_total{model=\"capped\",outcome=\"succeeded\"}");
    assert!((1..=12).contains(&succeeded), "{metrics}");
    assert_eq!(
        count("hangar_inference_completion_tokens_total{model=\"capped\"}"),
        succeeded * 10
    );
    assert!(metrics.contains("hangar_inference_slot_wait_seconds_count{model=\"capped\"}"));
    assert!(metrics.contains("hangar_model_ready{model=\"capped\"} 1"));
    assert_eq!(
        fake.max_in_flight(),
        2,
        "six worker slots, two model slots: the model's cap holds across processes"
    );

    // Kill one worker mid-request: its slot lapses with its lease (15 s), and the job is redelivered.
    fake.then([Script::Stream {
        tokens: 40,
        delay: Duration::from_millis(100),
    }]);
    let before = fake.requests();
    let (_, body) = app
        .post(
            "/api/v1/inference/chat",
            json!({"model": "capped", "messages": [{"role": "user", "content": "long"}], "max_tokens": 40}),
        )
        .await;
    let id = body["job"]["id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    while fake.requests() == before {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the job never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Whichever worker holds it dies: kill both, start a fresh one.
    workers.kill_all();
    let mut rescuer = Killed(vec![app.worker_process(bin, "inference=2", &[])]);
    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(60))
        .await;
    assert_eq!(job["deliveries"], 2, "{job}");
    let (_, model) = app.get("/api/models/capped").await;
    assert_eq!(model["in_flight"], 0, "no slot leaked: {model}");
    rescuer.kill_all();
    app.worker = None;
    app.shutdown().await;
}
