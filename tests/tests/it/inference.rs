//! Inference jobs end to end: the API validates and enqueues, a worker
//! runs the job against a model server, results, tokens and conversations
//! come back. `llama_*` tests use a real llama.cpp server with a tiny
//! generated model (run one at a time: see .config/nextest.toml);
//! `fake_*` tests use a scripted server for the failures a real one will
//! not produce on demand.

use std::time::{Duration, Instant};

use hangar_tests::{
    TestApp,
    fake_model::{FakeModel, Script},
    llama::{LlamaServer, models_file},
    redis_url, spawn_worker,
};
use serde_json::{Value, json};

const TINY: &str = "context_size = 512\nmax_in_flight = 2\nmax_tokens_cap = 256\nrequest_attempts = 3\nstall_timeout_secs = 2\nrequest_timeout_secs = 30";

async fn app_with(models: &[(&str, &str, &str)], probe_secs: &str) -> TestApp {
    let file = models_file(models);
    TestApp::builder()
        .envs(&[
            ("HANGAR_MODELS_FILE", file.to_str().unwrap()),
            ("HANGAR_MODEL_PROBE_SECS", probe_secs),
        ])
        .spawn()
        .await
}

/// A scripted fake model server (`fake`, answering `fallback` unless told
/// otherwise) and an app using it, the model warmed up.
async fn fake_app(fallback: Script) -> (FakeModel, TestApp) {
    let fake = FakeModel::start(fallback).await;
    let app = app_with(&[("fake", &fake.url, TINY)], "1").await;
    wait_model(&app, "fake", "healthy").await;
    (fake, app)
}

/// Enqueues a chat; returns the job id.
async fn chat(app: &TestApp, body: Value) -> String {
    let (status, answer) = app.post("/api/v1/inference/chat", body).await;
    assert_eq!(status, 202, "{answer}");
    answer["job"]["id"].as_str().unwrap().to_owned()
}

/// Enqueues a chat and waits until it has finished; returns the job.
async fn ask(app: &TestApp, body: Value) -> Value {
    let id = chat(app, body).await;
    finished(app, &id).await
}

/// Waits until the job is succeeded or dead; returns it.
async fn finished(app: &TestApp, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
        if matches!(job["state"].as_str(), Some("succeeded" | "dead" | "cancelled")) {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {id} never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_model(app: &TestApp, name: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, m) = app.get(&format!("/api/models/{name}")).await;
        assert_eq!(code, 200, "{m}");
        if m["health"]["status"] == status {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "model {name} never {status}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The SSE events of a stream: (event, data) pairs until it ends.
async fn sse_events(app: &TestApp, id: &str) -> Vec<(String, Value)> {
    sse_from(app, id, None)
        .await
        .into_iter()
        .map(|(_, e, d)| (e, d))
        .collect()
}

/// The SSE events (id, event, data) after `last_event_id`.
async fn sse_from(app: &TestApp, id: &str, last_event_id: Option<&str>) -> Vec<(String, String, Value)> {
    let mut req = app.http.get(format!("{}/api/v1/jobs/{id}/stream", app.base));
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    let mut r = req.send().await.unwrap();
    if r.status() == 204 {
        return Vec::new();
    }
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), r.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            let mut event_id = String::new();
            for line in block.lines() {
                if let Some(i) = line.strip_prefix("id: ") {
                    event_id = i.to_owned();
                }
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                }
                if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((event_id, event?, data?))
        })
        .collect()
}

#[tokio::test]
async fn llama_greedy_output_is_repeatable_and_max_tokens_and_stop_are_respected() {
    let server = LlamaServer::start(2, 512).await;
    let app = app_with(&[("tiny", &server.url(), TINY)], "1").await;
    wait_model(&app, "tiny", "healthy").await;
    let request = json!({"model": "tiny", "messages": user("hello"), "temperature": 0, "max_tokens": 16});
    let first = ask(&app, request.clone()).await;
    let second = ask(&app, request).await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let r1 = &first["result"];
    assert!(!r1["content"].as_str().unwrap().is_empty());
    assert_eq!(
        r1["content"], second["result"]["content"],
        "greedy decoding is deterministic"
    );
    assert_eq!(r1["usage"]["completion_tokens"], 16, "max_tokens respected: {r1}");
    assert_eq!(r1["finish_reason"], "length");
    assert!(r1["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(r1["timings"]["generation_ms"].is_u64());

    // A stop string from the middle of the greedy answer ends it there.
    let full = r1["content"].as_str().unwrap();
    let mid = full.char_indices().nth(full.chars().count() / 2).unwrap().0;
    let stop: String = full[mid..].chars().take(3).collect();
    let stopped = ask(&app, json!({"model": "tiny", "messages": user("hello"), "temperature": 0, "max_tokens": 16, "stop": [stop]})).await;
    assert_eq!(stopped["result"]["finish_reason"], "stop", "{stopped}");
    assert_eq!(
        stopped["result"]["content"].as_str().unwrap(),
        &full[..full.find(&stop).unwrap()]
    );

    // The model as the API shows it (outcomes reach job_runs a moment after
    // the job's state in Redis: poll).
    let start = Instant::now();
    let models = loop {
        let (_, models) = app.get("/api/models").await;
        if models["items"][0]["jobs"]["last_hour"]["succeeded"] == 3 {
            break models;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{models}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let m = &models["items"][0];
    assert_eq!(m["name"], "tiny");
    assert_eq!(m["health"]["warmed_up"], true);
    assert_eq!(m["parameters"]["max_in_flight"], 2);
    assert_eq!(m["jobs"]["last_hour"]["succeeded"], 3);
    assert_eq!(m["jobs"]["last_hour"]["success_rate"], 1.0);
    assert_eq!(m["in_flight"], 0);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hangar_model_ready{model=\"tiny\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hangar_model_consecutive_failures{model=\"tiny\"} 0"));
    app.shutdown().await;
}

#[tokio::test]
async fn llama_a_prompt_over_the_context_fails_permanently_saying_what_to_shorten() {
    let server = LlamaServer::start(1, 512).await;
    let app = app_with(&[("tiny", &server.url(), TINY)], "1").await;
    wait_model(&app, "tiny", "healthy").await;
    let long = "word ".repeat(2_000);
    let job = ask(
        &app,
        json!({"model": "tiny", "messages": user(&long), "max_tokens": 8}),
    )
    .await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 1, "not retried: {job}");
    let error = job["error"].to_string();
    assert!(error.contains("does not fit model tiny's context"), "{error}");
    assert!(error.contains("shorten"), "{error}");
    app.shutdown().await;
}

#[tokio::test]
async fn llama_streaming_relays_tokens_in_order_then_the_result() {
    let server = LlamaServer::start(1, 512).await;
    let app = app_with(&[("tiny", &server.url(), TINY)], "1").await;
    wait_model(&app, "tiny", "healthy").await;
    let id = chat(
        &app,
        json!({"model": "tiny", "messages": user("stream please"), "temperature": 0, "max_tokens": 24}),
    )
    .await;
    let events = sse_events(&app, &id).await;
    let (last, result) = events.last().unwrap();
    assert_eq!(last, "result", "{events:?}");
    let tokens: Vec<&str> = events
        .iter()
        .filter(|(e, _)| e == "token")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(tokens.len() > 1, "{events:?}");
    assert_eq!(
        tokens.concat(),
        result["content"].as_str().unwrap(),
        "tokens in order make the answer"
    );
    // A late client gets the same events again from the start.
    let again = sse_from(&app, &id, None).await;
    assert_eq!(
        again
            .iter()
            .map(|(_, e, d)| (e.clone(), d.clone()))
            .collect::<Vec<_>>(),
        events
    );
    // Every event has an id; reconnecting after the second resumes exactly after it.
    assert!(again.iter().all(|(i, _, _)| !i.is_empty()), "{again:?}");
    let rest = sse_from(&app, &id, Some(&again[1].0)).await;
    assert_eq!(rest, again[2..].to_vec());
    // After the final event there is nothing more: 204 ends EventSource's reconnects.
    let (last_id, _, _) = again.last().unwrap();
    let r = app
        .http
        .get(format!("{}/api/v1/jobs/{id}/stream", app.base))
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Non-inference jobs do not stream.
    let noop = app.enqueue(json!({"kind": "system.noop"})).await;
    let r = app
        .http
        .get(format!("{}/api/v1/jobs/{noop}/stream", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    app.shutdown().await;
}

#[tokio::test]
async fn llama_a_conversations_second_turn_includes_the_first() {
    let server = LlamaServer::start(1, 1024).await;
    let app = app_with(
        &[("tiny", &server.url(), TINY.replace("512", "1024").as_str())],
        "1",
    )
    .await;
    wait_model(&app, "tiny", "healthy").await;
    let system = json!({"role": "system", "content": "You are terse."});
    let first_id = chat(
        &app,
        json!({"model": "tiny", "messages": [system, {"role": "user", "content": "first question"}], "temperature": 0, "max_tokens": 12}),
    )
    .await;
    let first = finished(&app, &first_id).await;
    let conversation = first["result"]["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(conversation, first_id);
    let second = ask(&app, json!({"model": "tiny", "conversation_id": conversation, "message": "second question", "temperature": 0, "max_tokens": 12})).await;
    assert_eq!(second["state"], "succeeded", "{second}");
    let p1 = first["result"]["usage"]["prompt_tokens"].as_u64().unwrap();
    let c1 = first["result"]["usage"]["completion_tokens"].as_u64().unwrap();
    let p2 = second["result"]["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        p2 > p1 + c1,
        "the second prompt ({p2}) carries the first turn ({p1} + {c1})"
    );
    let (_, convo) = app.get(&format!("/api/v1/conversations/{conversation}")).await;
    let roles: Vec<&str> = convo["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(convo["messages"][2]["content"], first["result"]["content"]);
    assert_eq!(convo["messages"][3]["content"], "second question");
    // Every turn keeps its token count, so later turns are not counted again.
    for m in convo["messages"].as_array().unwrap() {
        assert!(m["tokens"].as_i64().unwrap_or(0) > 0, "{m}");
    }
    assert_eq!(
        convo["messages"][4]["tokens"],
        second["result"]["usage"]["completion_tokens"]
    );
    // Unknown conversations are refused before anything is queued.
    let (status, err) = app
        .post(
            "/api/v1/inference/chat",
            json!({"model": "tiny", "conversation_id": "01KB0000000000000000000000", "message": "x"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("conversation_id")),
        "{err}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn llama_server_stopped_retries_then_dead_and_health_follows_the_server() {
    let mut server = LlamaServer::start(1, 512).await;
    // The API probes every second; the worker only hourly, so it still
    // believes the model is up when the job arrives: the job must find out.
    let file = models_file(&[("tiny", &server.url(), TINY)]);
    let mut app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_MODELS_FILE", file.to_str().unwrap()),
            ("HANGAR_MODEL_PROBE_SECS", "1"),
        ])
        .spawn()
        .await;
    let mut worker_env = app.env.clone();
    worker_env.insert("HANGAR_MODEL_PROBE_SECS".into(), "3600".into());
    app.worker = Some(spawn_worker(hangar_tests::config(&worker_env)));
    wait_model(&app, "tiny", "healthy").await;
    let ok = ask(
        &app,
        json!({"model": "tiny", "messages": user("hi"), "max_tokens": 4}),
    )
    .await;
    assert_eq!(ok["state"], "succeeded", "{ok}");
    server.stop();
    let job = ask(
        &app,
        json!({"model": "tiny", "messages": user("hi"), "max_tokens": 4}),
    )
    .await;
    assert_eq!(job["state"], "dead", "{job}");
    let error = job["error"].to_string();
    assert!(
        error.contains("could not connect") && error.contains("gave up after 3 tries"),
        "{error}"
    );
    // The API's own probes see it too (unhealthy within seconds; it probes a sick model every second).
    let down = wait_model(&app, "tiny", "unhealthy").await;
    assert!(down["health"]["consecutive_failures"].as_u64().unwrap() >= 1);
    assert!(
        down["health"]["last_error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{down}"
    );
    assert_eq!(down["health"]["ready"], false);
    // Queued while down: waits (the worker stops leasing), then runs once the server is back.
    let waiting = chat(
        &app,
        json!({"model": "tiny", "messages": user("hi"), "max_tokens": 4}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, still) = app.get(&format!("/api/v1/jobs/{waiting}")).await;
    assert_eq!(still["state"], "queued", "{still}");
    server.restart().await;
    let up = wait_model(&app, "tiny", "healthy").await;
    assert_eq!(up["health"]["consecutive_failures"], 0);
    let done = finished(&app, &waiting).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    app.shutdown().await;
}

#[tokio::test]
async fn fake_transient_failures_are_retried_and_a_repeated_500_is_not_retried_forever() {
    let (fake, app) = fake_app(Script::Stream {
        tokens: 3,
        delay: Duration::ZERO,
    })
    .await;
    // A stall, a malformed event and a cut-off stream, then success.
    fake.then([
        Script::Stall { after: 2 },
        Script::Malformed { after: 1 },
        Script::Disconnect { after: 2 },
    ]);
    let app_job = chat(
        &app,
        json!({"model": "fake", "messages": user("x"), "max_tokens": 8}),
    )
    .await;
    let job = finished(&app, &app_job).await;
    // request_attempts = 3: the third failure is the last try.
    assert_eq!(job["state"], "dead", "{job}");
    let error = job["error"].to_string();
    assert!(
        error.contains("closed the stream before it finished") && error.contains("gave up after 3 tries"),
        "{error}"
    );
    assert_eq!(fake.requests(), 3);

    // Busy (503), then a good answer: retried, succeeds; the stream says it restarted nothing (no tokens before).
    fake.then([Script::Status {
        status: 503,
        body: json!({"error": {"message": "Loading model"}}),
    }]);
    let ok = ask(
        &app,
        json!({"model": "fake", "messages": user("x"), "max_tokens": 8}),
    )
    .await;
    assert_eq!(ok["state"], "succeeded", "{ok}");
    assert_eq!(ok["result"]["content"], "t0 t1 t2 ");
    assert_eq!(ok["result"]["tries"], 2);

    // The same 500 twice: the request is the problem; dead after two tries, not three.
    let bad = json!({"error": {"code": 500, "message": "[json.exception.parse_error.101] parse error"}});
    fake.then([
        Script::Status {
            status: 500,
            body: bad.clone(),
        },
        Script::Status {
            status: 500,
            body: bad,
        },
    ]);
    let before = fake.requests();
    let dead = ask(
        &app,
        json!({"model": "fake", "messages": user("x"), "max_tokens": 8}),
    )
    .await;
    assert_eq!(dead["state"], "dead");
    assert!(
        dead["error"].to_string().contains("the same answer twice"),
        "{dead}"
    );
    assert_eq!(fake.requests() - before, 2);

    // A 400 is permanent at once.
    fake.then([Script::Status {
        status: 400,
        body: json!({"error": {"message": "bad sampling"}}),
    }]);
    let before = fake.requests();
    let rejected = ask(
        &app,
        json!({"model": "fake", "messages": user("x"), "max_tokens": 8}),
    )
    .await;
    assert_eq!(rejected["state"], "dead");
    assert!(
        rejected["error"]
            .to_string()
            .contains("rejected the request (400): bad sampling"),
        "{rejected}"
    );
    assert_eq!(fake.requests() - before, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn fake_a_retry_mid_stream_is_announced_on_the_stream() {
    let (fake, app) = fake_app(Script::Stream {
        tokens: 4,
        delay: Duration::from_millis(30),
    })
    .await;
    fake.then([Script::Disconnect { after: 2 }]);
    let id = chat(
        &app,
        json!({"model": "fake", "messages": user("x"), "max_tokens": 8}),
    )
    .await;
    let events = sse_events(&app, &id).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "token", "token", "retry", "token", "token", "token", "token", "result"
        ],
        "{events:?}"
    );
    assert_eq!(events.last().unwrap().1["content"], "t0 t1 t2 t3 ");
    app.shutdown().await;
}

#[tokio::test]
async fn fake_cancelling_a_job_drops_the_upstream_request() {
    let (fake, app) = fake_app(Script::Stream {
        tokens: 1_000,
        delay: Duration::from_millis(20),
    })
    .await;
    let id = chat(
        &app,
        json!({"model": "fake", "messages": user("x"), "max_tokens": 200}),
    )
    .await;
    let start = Instant::now();
    while fake.max_in_flight() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the request never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = app.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 202);
    let job = finished(&app, &id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let start = Instant::now();
    while fake.hung_up() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the upstream request was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.completed(), 0);
    let events = sse_events(&app, &id).await;
    assert_eq!(events.last().unwrap().0, "error");
    assert_eq!(events.last().unwrap().1["state"], "cancelled");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_chat_requests_get_422_naming_the_field_and_nothing_is_queued() {
    // The model server is never reached: validation needs only the registry.
    let app = app_with(&[("tiny", "http://127.0.0.1:9", TINY)], "60").await;
    let cases = [
        (
            json!({"model": "tiny", "messages": user("x"), "temperature": 3}),
            "temperature",
        ),
        (
            json!({"model": "tiny", "messages": user("x"), "top_p": 0}),
            "top_p",
        ),
        (
            json!({"model": "tiny", "messages": user("x"), "max_tokens": 257}),
            "max_tokens",
        ),
        (
            json!({"model": "tiny", "messages": user("x"), "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"model": "tiny", "messages": user("x"), "stream": true}),
            "stream",
        ),
        (json!({"model": "nope", "messages": user("x")}), "model"),
        (
            json!({"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (json!({"model": "tiny"}), "messages"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/api/v1/inference/chat", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
    }
    // The generic jobs route applies the same checks.
    let (status, err) = app
        .post("/api/v1/jobs", json!({"kind": "inference.chat", "payload": {"model": "tiny", "messages": user("x"), "max_tokens": 999}}))
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("payload.max_tokens")),
        "{err}"
    );
    let (_, jobs) = app.get("/api/v1/jobs?kind=inference.chat").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);
    let (status, _) = app.get("/api/models/nope").await;
    assert_eq!(status, 404);
    let (_, m) = app.get("/api/models/tiny").await;
    assert_eq!(m["health"]["ready"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn fake_a_job_for_a_model_that_is_down_waits_uncounted_while_other_models_serve() {
    let up = FakeModel::start(Script::Stream {
        tokens: 2,
        delay: Duration::ZERO,
    })
    .await;
    let down_port = hangar_tests::free_port();
    let down_url = format!("http://127.0.0.1:{down_port}");
    let app = app_with(&[("up", &up.url, TINY), ("down", &down_url, TINY)], "1").await;
    wait_model(&app, "up", "healthy").await;
    let waiting = chat(
        &app,
        json!({"model": "down", "messages": user("x"), "max_tokens": 4}),
    )
    .await;
    // The model that is up serves meanwhile (the worker leases: one model is ready).
    let ok = ask(
        &app,
        json!({"model": "up", "messages": user("x"), "max_tokens": 4}),
    )
    .await;
    assert_eq!(ok["state"], "succeeded", "{ok}");
    // The other job is given back, again and again, without using its one attempt.
    let start = Instant::now();
    loop {
        let (_, job) = app.get(&format!("/api/v1/jobs/{waiting}")).await;
        assert!(
            !matches!(job["state"].as_str(), Some("dead" | "succeeded")),
            "{job}"
        );
        assert_eq!(job["attempts"], 0, "{job}");
        if job["deliveries"].as_u64().unwrap_or(0) >= 2 {
            assert!(
                job["error"].to_string().contains("model down is not ready"),
                "{job}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never deferred: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its server comes up: the job runs, as its first attempt.
    let _server = FakeModel::start_on(
        down_port,
        Script::Stream {
            tokens: 3,
            delay: Duration::ZERO,
        },
    )
    .await;
    let done = finished(&app, &waiting).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["result"]["content"], "t0 t1 t2 ");
    app.shutdown().await;
}

#[tokio::test]
async fn fake_a_postgres_restart_mid_generation_loses_neither_the_answer_nor_the_turn() {
    let fake = FakeModel::start(Script::Stream {
        tokens: 30,
        delay: Duration::from_millis(50),
    })
    .await;
    let pg = hangar_tests::OwnPostgres::start();
    let db = hangar_tests::TestDb::create(&pg.admin_url()).await;
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let file = models_file(&[("fake", &fake.url, TINY)]);
    let mut env = hangar_tests::test_env(&db.url, &redis_url(), &prefix);
    env.insert("HANGAR_MODELS_FILE".into(), file.to_str().unwrap().into());
    env.insert("HANGAR_MODEL_PROBE_SECS".into(), "1".into());
    let (base, api) = hangar_tests::spawn_api(hangar_tests::config(&env)).await;
    let worker = spawn_worker(hangar_tests::config(&env));
    let http = hangar_tests::client_with_token(&hangar_tests::token("ops", "admin"));
    let get = |path: String| {
        let http = http.clone();
        async move {
            match http.get(path).send().await {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        }
    };
    let start = Instant::now();
    while get(format!("{base}/api/models/fake")).await["health"]["ready"] != true {
        assert!(start.elapsed() < Duration::from_secs(20), "model never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{base}/api/v1/inference/chat"))
        .json(&json!({"model": "fake", "messages": user("x"), "max_tokens": 40}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    while fake.requests() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "generation never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // PostgreSQL goes away while the answer is being generated, and comes
    // back after the generation has ended (the turn waits to be stored).
    pg.stop();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    pg.restart();
    let job = loop {
        let job = get(format!("{base}/api/v1/jobs/{id}")).await;
        if job["state"] == "succeeded" {
            break job;
        }
        assert!(job["state"] != "dead", "{job}");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never succeeded: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: String = (0..30).map(|i| format!("t{i} ")).collect();
    assert_eq!(job["result"]["content"], expected.as_str());
    let convo = get(format!("{base}/api/v1/conversations/{id}")).await;
    let roles: Vec<&str> = convo["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"], "{convo}");
    assert_eq!(convo["messages"][1]["content"], expected.as_str());
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    let _ = hangar_tests::redis_cleanup(&redis_url(), &prefix).await;
}
