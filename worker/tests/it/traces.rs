//! Traces (OpenTelemetry) end to end, against a real OTLP/HTTP receiver
//! (`hangar_tests::fake_otlp`, which decodes what the exporter sends with
//! the `opentelemetry-proto` types): one "sync now" request followed from
//! the caller's `traceparent` through the API, Redis and a real
//! `hangar-worker` process out to the AWS emulator and PostgreSQL; and a
//! collector that is down or stuck, which must change no job outcome.
//!
//! Each test installs this process's tracing subscriber (the in-process
//! API's), so each needs a process of its own: nextest runs them so.

use std::time::{Duration, Instant};

use hangar_tests::{
    JobStatus, OwnRedis, TestApp,
    fake_model::{FakeModel, Script},
    fake_otlp::{FakeOtlp, ReceivedSpan, kind},
    llama::models_file,
    moto::{Moto, aws_env_at},
};
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");
const ACCOUNTS: &str = r#"[{"name":"main","regions":["us-east-1"]}]"#;
/// The caller's own trace, as a service in front of Hangar would send it.
const CALLER_TRACE: &str = "5b8aa5a2d2c872e8321cf37308d69df2";
const CALLER_SPAN: &str = "051581bf3cb55c13";

fn find<'a>(spans: &'a [ReceivedSpan], what: &str, pred: impl Fn(&ReceivedSpan) -> bool) -> &'a ReceivedSpan {
    spans.iter().find(|s| pred(s)).unwrap_or_else(|| {
        panic!(
            "no {what} among: {:#?}",
            spans
                .iter()
                .map(|s| format!(
                    "{} {:?} kind {} parent {}",
                    s.service, s.name, s.kind, s.parent_span_id
                ))
                .collect::<Vec<_>>()
        )
    })
}

/// Whether `span` descends from the span `ancestor` (by parent ids).
fn descends(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &str) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(p) => parent = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

/// POSTs `body` to `path` as a caller in trace [`CALLER_TRACE`] would
/// (its `traceparent` header); asserts a 202 and returns the answer.
async fn post_in_callers_trace(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

/// "Sync now" for account main in us-east-1, in the caller's trace; the
/// sync job's id.
async fn sync_in_callers_trace(app: &TestApp) -> String {
    let body = post_in_callers_trace(
        app,
        "/api/v1/syncs/workspaces",
        json!({"account": "main", "region": "us-east-1"}),
    )
    .await;
    body["jobs"][0]["job"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_sync_request_is_one_trace_from_the_callers_span_through_redis_to_the_workers_aws_and_sql_spans() {
    let collector = FakeOtlp::start();
    let moto = Moto::start().await;
    moto.post(
        "seed/workspaces",
        json!({"directories": 1, "workspaces": 30, "bundles": 1, "tags_per_workspace": 1}),
    )
    .await;
    let app = TestApp::builder()
        .without_worker()
        .envs(&[("HANGAR_AWS_ACCOUNTS", ACCOUNTS)])
        .envs(&collector.env())
        .spawn()
        .await;
    // This process is the API: its spans go out as hangar-api's would.
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "api");
    assert!(traces.enabled());

    // The worker is a real process: the JSON protocol, to show both encodings decode.
    let mut worker_env = moto.aws_env();
    worker_env.push(("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/json".into()));
    let worker = app.logged_worker(WORKER, &["--queues", "sync=1"], &worker_env);

    let id = sync_in_callers_trace(&app).await;
    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(60))
        .await;
    assert_eq!(job["result"]["workspaces"], 30, "{job}");
    traces.flush();

    let spans = collector
        .wait_until("the worker's spans", Duration::from_secs(20), |spans| {
            spans
                .iter()
                .any(|s| s.service == "hangar-worker" && s.name == "process sync")
                && spans.iter().any(|s| s.name == "workspaces.DescribeWorkspaces")
                && spans
                    .iter()
                    .any(|s| s.service == "hangar-api" && s.name == "INSERT job_runs")
        })
        .await;
    let ours: Vec<ReceivedSpan> = spans.into_iter().filter(|s| s.trace_id == CALLER_TRACE).collect();

    // The API's server span continues the caller's trace.
    let request = find(&ours, "the API's request span", |s| {
        s.service == "hangar-api" && s.kind == kind::SERVER && s.name == "POST /api/v1/syncs/{kind}"
    });
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.attr("http.response.status_code"), "202");
    // Its messaging producer span, whose context the job recorded.
    let send = find(&ours, "send sync", |s| {
        s.name == "send sync" && s.kind == kind::PRODUCER
    });
    assert_eq!(send.parent_span_id, request.span_id);
    assert_eq!(send.attr("messaging.destination.name"), "sync");
    assert_eq!(send.attr("messaging.message.id"), id);
    let (_, recorded) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(
        recorded["traceparent"],
        format!("00-{CALLER_TRACE}-{}-01", send.span_id).as_str(),
        "the job records its send span's context"
    );
    // The group commit's SQL, in the same trace (a batch of one continues it).
    let insert = find(&ours, "INSERT job_runs", |s| s.name == "INSERT job_runs");
    assert_eq!(insert.kind, kind::CLIENT);
    assert_eq!(insert.attr("db.system.name"), "postgresql");
    assert!(descends(&ours, insert, &send.span_id), "{insert:?}");
    let enqueue = find(&ours, "the enqueue script", |s| s.name == "EVALSHA enqueue");
    assert_eq!(enqueue.attr("db.system.name"), "redis");

    // The worker's consumer span: a child of the send span and linked to it.
    let process = find(&ours, "process sync", |s| {
        s.service == "hangar-worker" && s.name == "process sync"
    });
    assert_eq!(process.kind, kind::CONSUMER);
    assert_eq!(process.parent_span_id, send.span_id);
    assert!(
        process
            .links
            .contains(&(CALLER_TRACE.to_owned(), send.span_id.clone())),
        "{:?}",
        process.links
    );
    assert_eq!(process.attr("messaging.system"), "redis");
    assert_eq!(process.attr("messaging.destination.name"), "sync");
    assert_eq!(process.attr("messaging.message.id"), id);
    assert_eq!(process.attr("hangar.job.attempt"), "1");
    assert_eq!(process.attr("hangar.job.delivery"), "1");
    assert_eq!(process.content_type, "application/json");

    // Each AWS call, under the process span, named Service.Operation.
    for op in [
        "workspaces.DescribeWorkspaceDirectories",
        "workspaces.DescribeWorkspaceBundles",
        "workspaces.DescribeWorkspaces",
    ] {
        let call = find(&ours, op, |s| s.name == op);
        assert_eq!(call.kind, kind::CLIENT, "{op}");
        assert!(
            descends(&ours, call, &process.span_id),
            "{op} is under the process span"
        );
        assert_eq!(call.attr("rpc.system"), "aws-api");
        assert_eq!(call.attr("cloud.region"), "us-east-1");
        assert_eq!(call.attr("hangar.aws.account"), "main");
        assert_eq!(call.attr("hangar.aws.attempts"), "1", "{op}");
    }
    // The sync's writes to PostgreSQL, under the process span too.
    let writes: Vec<&ReceivedSpan> = ours
        .iter()
        .filter(|s| s.service == "hangar-worker" && s.attr("db.system.name") == "postgresql")
        .collect();
    assert!(!writes.is_empty(), "the worker's SQL spans");
    assert!(writes.iter().all(|w| descends(&ours, w, &process.span_id)));

    // The worker's JSON log lines inside the job carry the same trace.
    let log = worker.stop_and_read_log().await;
    let traced: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["span"]["job.id"] == id.as_str())
        .collect();
    assert!(!traced.is_empty(), "the job's log lines:\n{log}");
    for line in &traced {
        assert_eq!(line["trace_id"], CALLER_TRACE, "{line}");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
    }
    // And the API counts what it exported.
    let metrics = app.metrics().await;
    let exported = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hangar_trace_spans_exported_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(exported > 0.0, "{metrics}");
    drop(traces);
    app.shutdown().await;
}

/// An operator who quiets the logs to `warn` keeps the traces, and the
/// warn lines (the ones that matter) still carry the trace of their job,
/// although the log layer no longer sees the info-level job span.
#[tokio::test]
async fn at_log_level_warn_a_jobs_warnings_still_carry_its_trace() {
    let collector = FakeOtlp::start();
    let app = TestApp::builder()
        .without_worker()
        .envs(&[("HANGAR_AWS_ACCOUNTS", ACCOUNTS)])
        .envs(&collector.env())
        .spawn()
        .await;
    // AWS on a port nothing listens on: the attempt fails with a warning.
    let mut worker_env = aws_env_at(&format!("http://127.0.0.1:{}", hangar_tests::free_port()));
    worker_env.push(("HANGAR_LOG_LEVEL".into(), "warn".into()));
    let worker = app.logged_worker(WORKER, &["--queues", "sync=1"], &worker_env);
    let id = sync_in_callers_trace(&app).await;
    app.wait_state(&id, JobStatus::Retrying, Duration::from_secs(60))
        .await;
    collector
        .wait_until("the worker's process span", Duration::from_secs(20), |spans| {
            spans.iter().any(|s| {
                s.service == "hangar-worker" && s.name == "process sync" && s.trace_id == CALLER_TRACE
            })
        })
        .await;
    let log = worker.stop_and_read_log().await;
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    assert!(
        lines.iter().all(|l| l["level"] != "INFO"),
        "HANGAR_LOG_LEVEL=warn:\n{log}"
    );
    let warning = lines
        .iter()
        .find(|l| l["message"] == "sync attempt failed")
        .unwrap_or_else(|| panic!("the attempt's warning:\n{log}"));
    assert_eq!(warning["trace_id"], CALLER_TRACE, "{warning}");
    let spans = collector.spans();
    let process = find(&spans, "process sync", |s| {
        s.service == "hangar-worker" && s.name == "process sync"
    });
    assert_eq!(warning["span_id"], process.span_id.as_str(), "{warning}");
    assert_eq!(process.status, 2, "a failed attempt is an error: {process:?}");
    assert_eq!(process.attr("hangar.job.outcome"), "retry");
    app.shutdown().await;
}

/// Sums `hangar_trace_spans_dropped_total{reason="<reason>"}`.
fn dropped(metrics: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("hangar_trace_spans_dropped_total") && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_stuck_collector_changes_no_job_outcome_and_its_lost_spans_are_counted() {
    // A collector that accepts connections and never answers: each export
    // waits out its timeout, the queue of 8 spans fills, and the rest is
    // dropped at once instead of waiting.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", stuck.local_addr().unwrap());
    let app = TestApp::builder()
        .envs(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ])
        .spawn()
        .await;
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "api");
    assert!(traces.enabled());

    let mut ids = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        ids.push(app.enqueue(json!({"kind": "system.noop"})).await);
        slowest = slowest.max(started.elapsed());
    }
    for id in &ids {
        app.wait_state(id, JobStatus::Succeeded, Duration::from_secs(30))
            .await;
    }
    let metrics = app.metrics().await;
    assert!(dropped(&metrics, "queue_full") > 0.0, "{metrics}");
    // Not a latency test (bench/traces.sh measures that): this only shows
    // that no request waited for the stuck export (5 s here).
    assert!(
        slowest < Duration::from_millis(2500),
        "a request waited for the collector: {slowest:?}"
    );
    drop(stuck);
    drop(traces);
    app.shutdown().await;
}

#[tokio::test]
async fn a_collector_that_is_down_costs_no_job_and_its_failed_exports_are_counted() {
    let port = hangar_tests::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let app = TestApp::builder()
        .envs(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ])
        .spawn()
        .await;
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "api");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.enqueue(json!({"kind": "system.noop"})).await);
    }
    for id in &ids {
        let job = app
            .wait_state(id, JobStatus::Succeeded, Duration::from_secs(30))
            .await;
        assert_eq!(job["state"], "succeeded");
    }
    traces.flush();
    let started = Instant::now();
    loop {
        let metrics = app.metrics().await;
        if dropped(&metrics, "export_failed") > 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no failed export counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(traces);
    app.shutdown().await;
}

#[tokio::test]
async fn a_repair_redispatch_starts_its_own_trace_linked_to_the_job_whose_run_still_joins_its_first_trace() {
    let collector = FakeOtlp::start();
    let redis = OwnRedis::start();
    let app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .envs(&collector.env())
        .spawn()
        .await;
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "scheduler");
    let body = post_in_callers_trace(&app, "/api/v1/jobs", json!({"kind": "system.noop"})).await;
    let id = body["job"]["id"].as_str().unwrap().to_owned();
    let record = app.record(&id).await;
    let recorded = record
        .traceparent
        .clone()
        .expect("the job records its traceparent");
    assert!(recorded.starts_with(&format!("00-{CALLER_TRACE}-")), "{recorded}");

    // Redis loses everything; the repair pass dispatches the job again.
    redis.flush_all().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let queues = hangar_scheduler::queues(&config).await.unwrap();
    let report = hangar_scheduler::repair::repair_once(&pool, &queues, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.redispatched, 1);
    let state = queues[&record.queue].state(&id).await.unwrap().unwrap();
    assert_eq!(
        state.traceparent.as_deref(),
        Some(recorded.as_str()),
        "Redis has it again"
    );
    traces.flush();
    let spans = collector
        .wait_until("the repair span", Duration::from_secs(10), |spans| {
            spans.iter().any(|s| s.name == "repair redispatch")
        })
        .await;
    let repair = find(&spans, "repair redispatch", |s| s.name == "repair redispatch");
    assert!(repair.parent_span_id.is_empty(), "a trace of its own: {repair:?}");
    assert_ne!(repair.trace_id, CALLER_TRACE);
    let send_span = recorded.split('-').nth(2).unwrap().to_owned();
    assert_eq!(repair.links, vec![(CALLER_TRACE.to_owned(), send_span.clone())]);
    let script = find(&spans, "its enqueue script", |s| {
        s.name == "EVALSHA enqueue" && s.trace_id == repair.trace_id
    });
    assert_eq!(script.parent_span_id, repair.span_id);

    // The run joins the job's first trace, under its send span.
    let _worker = app.worker_process(
        WORKER,
        &format!("{}=1", record.queue),
        &[("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())],
    );
    app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    let spans = collector
        .wait_until("the worker's process span", Duration::from_secs(15), |spans| {
            spans
                .iter()
                .any(|s| s.service == "hangar-worker" && s.kind == kind::CONSUMER)
        })
        .await;
    let process = find(&spans, "the process span", |s| {
        s.service == "hangar-worker" && s.kind == kind::CONSUMER
    });
    assert_eq!(process.trace_id, CALLER_TRACE);
    assert_eq!(process.parent_span_id, send_span);
    drop(traces);
    app.shutdown().await;
}

#[tokio::test]
async fn a_model_request_is_a_client_span_with_gen_ai_attributes_under_its_job() {
    let collector = FakeOtlp::start();
    let model = FakeModel::start(Script::Stream {
        tokens: 5,
        delay: Duration::from_millis(20),
    })
    .await;
    let file = models_file(&[("phi", &model.url, "context_size = 512")]);
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_MODELS_FILE", file.to_str().unwrap()),
            ("HANGAR_MODEL_PROBE_SECS", "1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .envs(&collector.env())
        .spawn()
        .await;
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "api");
    let _worker = app.worker_process(WORKER, "inference=1", &[]);
    let body = post_in_callers_trace(
        &app,
        "/api/v1/inference/chat",
        json!({"model": "phi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}),
    )
    .await;
    let id = body["job"]["id"].as_str().unwrap().to_owned();
    app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(60))
        .await;
    traces.flush();
    let spans = collector
        .wait_until("the model request span", Duration::from_secs(15), |spans| {
            spans.iter().any(|s| s.name == "chat phi") && spans.iter().any(|s| s.name == "process inference")
        })
        .await;
    let process = find(&spans, "process inference", |s| s.name == "process inference");
    assert_eq!(process.trace_id, CALLER_TRACE);
    let chat = find(&spans, "chat phi", |s| s.name == "chat phi");
    assert_eq!(chat.trace_id, CALLER_TRACE);
    assert!(descends(&spans, chat, &process.span_id), "{chat:?}");
    assert_eq!(chat.kind, kind::CLIENT);
    assert_eq!(chat.attr("gen_ai.operation.name"), "chat");
    assert_eq!(chat.attr("gen_ai.request.model"), "phi");
    assert_eq!(chat.attr("gen_ai.request.max_tokens"), "40");
    // The fake server reports 7 prompt tokens and one per delta.
    assert_eq!(chat.attr("gen_ai.usage.input_tokens"), "7");
    assert_eq!(chat.attr("gen_ai.usage.output_tokens"), "5");
    assert_eq!(
        chat.content_encoding, "gzip",
        "OTEL_EXPORTER_OTLP_COMPRESSION=gzip"
    );
    assert_eq!(chat.attr("gen_ai.response.finish_reasons"), "[length]");
    assert_eq!(chat.attr("server.address"), "127.0.0.1");
    assert!(
        chat.attr("server.port").parse::<u16>().is_ok_and(|p| p > 0),
        "{chat:?}"
    );
    let first_token_ms: f64 = chat.attr("hangar.gen_ai.time_to_first_token_ms").parse().unwrap();
    assert!(first_token_ms > 0.0, "{chat:?}");
    drop(traces);
    app.shutdown().await;
}

#[tokio::test]
async fn each_scheduler_tick_starts_a_trace_its_job_continues_and_a_skipped_tick_links_the_open_job() {
    let collector = FakeOtlp::start();
    let app = TestApp::builder()
        .envs(&[
            ("HANGAR_SCHEDULER_TICK_MS", "100"),
            ("HANGAR_SCHEDULER_LEASE_SECS", "5"),
        ])
        .envs(&collector.env())
        .spawn()
        .await;
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "scheduler");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(hangar_scheduler::run(app.config(), async move {
        let _ = stopped.await;
    }));
    // Every second, a job that runs 3 s: the ticks meanwhile are skipped.
    let (status, v) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "slow-every-second", "cron": "* * * * * *", "kind": "system.sleep",
                   "payload": {"ms": 3000, "steps": 3}, "overlap": "skip_if_running"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let spans = collector
        .wait_until(
            "a fired tick, its job's run and a skipped tick",
            Duration::from_secs(30),
            |spans| {
                let ticks: Vec<&ReceivedSpan> = spans
                    .iter()
                    .filter(|s| s.name == "tick slow-every-second")
                    .collect();
                ticks.iter().any(|t| {
                    spans
                        .iter()
                        .any(|p| p.kind == kind::CONSUMER && p.trace_id == t.trace_id)
                }) && ticks.iter().any(|t| !t.links.is_empty())
            },
        )
        .await;
    let fired = spans
        .iter()
        .find(|t| {
            t.name == "tick slow-every-second"
                && spans
                    .iter()
                    .any(|p| p.kind == kind::CONSUMER && p.trace_id == t.trace_id)
        })
        .unwrap();
    assert!(fired.parent_span_id.is_empty(), "a trace of its own: {fired:?}");
    let send = find(&spans, "the tick's send span", |s| {
        s.kind == kind::PRODUCER && s.parent_span_id == fired.span_id
    });
    let process = find(&spans, "the job's run", |s| {
        s.kind == kind::CONSUMER && s.trace_id == fired.trace_id
    });
    assert_eq!(process.parent_span_id, send.span_id);
    let job_id = process.attr("messaging.message.id").to_owned();
    let record = app.record(&job_id).await;
    assert_eq!(
        record.traceparent.as_deref(),
        Some(format!("00-{}-{}-01", send.trace_id, send.span_id).as_str())
    );
    // A tick skipped while a job is open links that job's trace.
    let skipped = spans
        .iter()
        .find(|t| t.name == "tick slow-every-second" && !t.links.is_empty())
        .unwrap();
    assert_ne!(skipped.trace_id, fired.trace_id);
    let open_traces: Vec<&str> = spans
        .iter()
        .filter(|s| s.kind == kind::PRODUCER && s.name.starts_with("send "))
        .map(|s| s.trace_id.as_str())
        .collect();
    assert!(
        skipped
            .links
            .iter()
            .all(|(trace, _)| open_traces.contains(&trace.as_str())),
        "links go to jobs' send spans: {skipped:?}"
    );
    let _ = stop.send(());
    scheduler.await.unwrap().unwrap();
    drop(traces);
    app.shutdown().await;
}

/// An idempotent repeat is answered with the job already recorded: its
/// `send` span names that job, not the id the repeat would have used.
#[tokio::test]
async fn a_repeated_idempotency_key_names_the_existing_job_on_its_send_span() {
    let collector = FakeOtlp::start();
    let app = TestApp::builder()
        .without_worker()
        .envs(&collector.env())
        .spawn()
        .await;
    let config = app.config();
    let traces = hangar_shared::telemetry::init(&config.log, &config.traces, "api");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app
            .http
            .post(format!("{}/api/v1/jobs", app.base))
            .header("idempotency-key", "deploy-2026-12-07")
            .json(&json!({"kind": "system.noop"}))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        ids.push(body["job"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1], "the repeat is answered with the first job");
    traces.flush();
    let spans = collector
        .wait_until("two send spans", Duration::from_secs(15), |spans| {
            spans.iter().filter(|s| s.name == "send sync").count() == 2
        })
        .await;
    let sends: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "send sync").collect();
    assert!(
        sends.iter().all(|s| s.attr("messaging.message.id") == ids[0]),
        "{sends:#?}"
    );
    assert_eq!(
        sends
            .iter()
            .filter(|s| s.attr("hangar.job.existing") == "true")
            .count(),
        1,
        "{sends:#?}"
    );
    drop(traces);
    app.shutdown().await;
}
