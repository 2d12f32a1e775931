//! `/api/v1/schedules`: CRUD with validation naming the field, the next fire
//! times, run-now, file schedules read-only, and the scheduler firing what
//! the API created.

use hangar_tests::TestApp;
use serde_json::{Value, json};

async fn request(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.http.request(method, format!("{}{path}", app.base));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn schedules_are_created_read_changed_run_and_deleted_with_clear_errors() {
    let app = TestApp::builder().without_worker().spawn().await;
    let nightly = json!({
        "name": "nightly-sleep",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "kind": "system.sleep",
        "payload": {"ms": 5},
        "catch_up": "fire_all",
        "catch_up_cap": 3,
        "overlap": "allow"
    });
    let (status, created) = app.post("/api/v1/schedules", nightly.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(
        created["payload"],
        json!({"ms": 5, "steps": 10}),
        "defaults filled in"
    );
    let next = created["next"].as_array().unwrap();
    assert_eq!(next.len(), 5);
    for t in next {
        let t: chrono::DateTime<chrono::Utc> = t.as_str().unwrap().parse().unwrap();
        let local = t.with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(local.format("%H:%M").to_string(), "02:30", "{t}");
    }
    assert!(created["last_run"].is_null());

    let (status, again) = app.post("/api/v1/schedules", nightly.clone()).await;
    assert_eq!(status, 409, "{again}");

    for (body, field) in [
        (
            json!({"name": "x", "cron": "61 * * * *", "kind": "system.noop"}),
            "cron",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "timezone": "Mars/Base", "kind": "system.noop"}),
            "timezone",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "kind": "system.nope"}),
            "kind",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "kind": "system.sleep", "payload": {"ms": -1}}),
            "payload.ms",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "kind": "system.noop", "catch_up": "sometimes"}),
            "catch_up",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "kind": "system.noop", "colour": 1}),
            "colour",
        ),
        (
            json!({"name": "Bad Name", "cron": "* * * * *", "kind": "system.noop"}),
            "name",
        ),
        (json!({"cron": "* * * * *", "kind": "system.noop"}), "name"),
        // Checked against the deployment as a job now would be: no model
        // called "phi3" is configured here.
        (
            json!({"name": "x", "cron": "* * * * *", "kind": "inference.chat",
                   "payload": {"model": "phi3", "messages": [{"role": "user", "content": "hi"}]}}),
            "payload.model",
        ),
    ] {
        let (status, v) = app.post("/api/v1/schedules", body.clone()).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }

    // Tick idempotency keys are the scheduler's: a client cannot claim one.
    let r = app
        .http
        .post(format!("{}/api/v1/jobs", app.base))
        .header("Idempotency-Key", "schedule:nightly-sleep:1795400000000")
        .json(&json!({"kind": "system.noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "Idempotency-Key", "{v}");

    let (status, one) = app.get("/api/v1/schedules/nightly-sleep").await;
    assert_eq!(status, 200, "{one}");
    let (status, _) = app.get("/api/v1/schedules/nope").await;
    assert_eq!(status, 404);

    // PATCH changes the given fields, validated like a create.
    let (status, changed) = request(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/schedules/nightly-sleep",
        Some(json!({"enabled": false, "cron": "0 4 * * *"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["enabled"], false);
    assert_eq!(
        changed["next"],
        json!([]),
        "a disabled schedule has no next fire times"
    );
    let (status, bad) = request(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/schedules/nightly-sleep",
        Some(json!({"timezone": "Nowhere"})),
    )
    .await;
    assert_eq!(
        (status, bad["error"]["field"].clone()),
        (422, json!("timezone")),
        "{bad}"
    );
    let (status, _) = request(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/schedules/nightly-sleep",
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(status, 422);

    // Run now: a job of the schedule's kind, right away.
    let (status, ran) = app.post("/api/v1/schedules/nightly-sleep/run", json!({})).await;
    assert_eq!(status, 202, "{ran}");
    assert_eq!(ran["jobs"][0]["job"]["kind"], "system.sleep");
    assert_eq!(ran["jobs"][0]["job"]["requested_by"], "schedule:nightly-sleep");
    assert_eq!(app.queue_row("sync").await["queued"], 1);

    let (status, listed) = app.get("/api/v1/schedules").await;
    assert_eq!(status, 200);
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);

    let (status, _) = request(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/schedules/nightly-sleep",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = request(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/schedules/nightly-sleep",
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn file_schedules_are_listed_read_only_and_their_names_are_reserved() {
    let dir = std::env::temp_dir().join(format!("hangar-sched-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schedules.toml");
    std::fs::write(
        &file,
        "[[schedule]]\nname = \"from-file\"\ncron = \"*/5 * * * *\"\nkind = \"system.noop\"\noverlap = \"skip_if_running\"\n",
    )
    .unwrap();
    let app = TestApp::builder()
        .without_worker()
        .envs(&[("HANGAR_SCHEDULES_FILE", file.to_str().unwrap())])
        .spawn()
        .await;
    let (_, listed) = app.get("/api/v1/schedules").await;
    assert_eq!(listed["schedules"][0]["name"], "from-file");
    assert_eq!(listed["schedules"][0]["source"], "file");
    let (status, _) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "from-file", "cron": "* * * * *", "kind": "system.noop"}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, v) = request(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/schedules/from-file",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HANGAR_SCHEDULES_FILE")
    );
    // Run now honours skip_if_running: the second run returns the open job.
    let (status, first) = app.post("/api/v1/schedules/from-file/run", json!({})).await;
    assert_eq!(status, 202, "{first}");
    let (status, second) = app.post("/api/v1/schedules/from-file/run", json!({})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["jobs"][0]["already"], true);
    assert_eq!(second["jobs"][0]["job"]["id"], first["jobs"][0]["job"]["id"]);
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_schedule_created_through_the_api_is_fired_by_the_running_scheduler_and_shows_its_last_run() {
    let app = TestApp::builder()
        .envs(&[
            ("HANGAR_SCHEDULER_TICK_MS", "100"),
            ("HANGAR_SCHEDULER_LEASE_SECS", "5"),
        ])
        .spawn()
        .await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(hangar_scheduler::run(app.config(), async move {
        let _ = rx.await;
    }));
    let (status, v) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "every-second", "cron": "* * * * * *", "kind": "system.noop", "overlap": "allow"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let start = std::time::Instant::now();
    let last = loop {
        let (_, s) = app.get("/api/v1/schedules/every-second").await;
        if s["last_run"]["state"] == "succeeded" {
            break s["last_run"].clone();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "never ran: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let id = last["job_id"].as_str().unwrap();
    let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["requested_by"], "schedule:every-second");
    let _ = tx.send(());
    scheduler.await.unwrap().unwrap();
    app.shutdown().await;
}
