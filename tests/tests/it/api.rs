//! The walking system end to end: the real API and worker against real
//! PostgreSQL and Redis.

use std::time::Duration;

use hangar_tests::JobStatus;
use hangar_tests::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn an_enqueued_job_is_run_by_the_worker_and_its_result_is_shown() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .post(format!("{}/api/v1/jobs", app.base))
        .header("x-request-id", "req-e2e-1")
        .json(&json!({"kind": "system.sleep", "payload": {"ms": 50, "steps": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The server chooses the id (a client cannot pose as another request).
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(rid != "req-e2e-1" && rid.parse::<ulid::Ulid>().is_ok(), "{rid}");
    let body: Value = r.json().await.unwrap();
    let id = body["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["job"]["status_url"], format!("/api/v1/jobs/{id}"));
    assert_eq!(body["job"]["state"], "queued");

    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(15))
        .await;
    assert_eq!(job["result"], json!({"slept_ms": 50}));
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["request_id"], rid.as_str());
    assert!(
        job["started_at"].is_string() && job["finished_at"].is_string(),
        "{job}"
    );
    // The durable record gets the outcome too (written in batches, just after).
    let row = app.wait_record(&id, JobStatus::Succeeded).await;
    assert_eq!(
        (row.state.as_str(), row.attempts, row.deliveries),
        ("succeeded", 1, 1)
    );
    assert_eq!(row.result, Some(json!({"slept_ms": 50})));
    assert_eq!(
        row.progress,
        Some(json!({"done": 2, "total": 2})),
        "progress at the end is kept"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_the_envelope_naming_the_field() {
    let app = TestApp::builder().without_worker().spawn().await;
    let cases = [
        (
            json!({"kind": "system.sleep", "payload": {"ms": "soon"}}),
            "payload.ms",
        ),
        (json!({"kind": "system.sleep", "payload": {}}), "payload.ms"),
        (
            json!({"kind": "system.sleep", "payload": {"ms": 1, "color": "red"}}),
            "payload.color",
        ),
        (json!({"kind": "system.nope"}), "kind"),
        (json!({"payload": {}}), "kind"),
        (json!({"kind": "system.noop", "run_at": "tomorrow"}), "run_at"),
        (json!({"kind": "system.noop", "priority": 1}), "priority"),
    ];
    for (body, field) in cases {
        let r = app.post_job(body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], field, "{body} -> {e}");
        assert_eq!(e["error"]["code"], "invalid_field");
        assert_eq!(
            e["error"]["request_id"],
            rid.as_str(),
            "the envelope carries the request id"
        );
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    let r = app
        .http
        .post(format!("{}/api/v1/jobs", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_json");

    let (status, e) = app.get("/api/v1/jobs/01JUNKNOWN00000000000000000").await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "not_found");
    let (status, e) = app.get("/api/v1/jobs?limit=0").await;
    assert_eq!((status, e["error"]["field"].as_str()), (422, Some("limit")));
    let (status, e) = app.get("/api/v1/jobs?state=flying").await;
    assert_eq!((status, e["error"]["field"].as_str()), (422, Some("state")));
    let (status, _) = app.get("/api/v1/nowhere").await;
    assert_eq!(status, 404);
    // axum's own rejections and 405 come in the envelope too.
    for (status, path) in [(400, "/api/v1/jobs?limit=1&limit=2"), (400, "/api/v1/jobs/%FF")] {
        let (got, e) = app.get(path).await;
        assert_eq!(got, status, "{path}: {e}");
        assert!(
            e["error"]["code"].is_string() && e["error"]["request_id"].is_string(),
            "{path}: {e}"
        );
    }
    let r = app
        .http
        .delete(format!("{}/api/v1/jobs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    let (_, list) = app.get("/api/v1/jobs").await;
    assert_eq!(list["jobs"], json!([]), "nothing was recorded by bad requests");
    app.shutdown().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_job() {
    let app = TestApp::builder().without_worker().spawn().await;
    let post = || {
        app.http
            .post(format!("{}/api/v1/jobs", app.base))
            .header("idempotency-key", "sync-now-7")
            .json(&json!({"kind": "system.noop"}))
            .send()
    };
    let first: Value = post().await.unwrap().json().await.unwrap();
    let second = post().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["job"]["id"], first["job"]["id"]);
    let (_, list) = app.get("/api/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let sync = app.queue_row("sync").await;
    assert_eq!(sync["queued"], 1, "one job in redis too: {sync}");
    app.shutdown().await;
}

/// Requests that arrive together are recorded in several batches at once
/// (`api/src/enqueue.rs`): the same idempotency key in two concurrent
/// batches still makes one job, and every request is answered.
#[tokio::test]
async fn concurrent_requests_with_shared_idempotency_keys_record_one_job_per_key() {
    let app = TestApp::builder().without_worker().spawn().await;
    let keyed = (0..160).map(|i| {
        let req = app
            .http
            .post(format!("{}/api/v1/jobs", app.base))
            .header("idempotency-key", format!("shared-{}", i % 8))
            .json(&json!({"kind": "system.noop"}));
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (
                i % 8,
                status,
                body["job"]["id"].as_str().unwrap_or_default().to_owned(),
            )
        }
    });
    let plain = (0..100).map(|_| {
        let req = app
            .http
            .post(format!("{}/api/v1/jobs", app.base))
            .json(&json!({"kind": "system.noop"}));
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let (keyed, plain) = tokio::join!(
        futures_util::future::join_all(keyed),
        futures_util::future::join_all(plain)
    );
    assert!(plain.iter().all(|s| *s == 202), "{plain:?}");
    let mut per_key: std::collections::BTreeMap<u32, std::collections::BTreeSet<String>> = Default::default();
    for (key, status, id) in &keyed {
        assert!(matches!(status, 200 | 202), "key {key}: {status}");
        per_key.entry(*key).or_default().insert(id.clone());
    }
    assert_eq!(per_key.len(), 8);
    assert!(per_key.values().all(|ids| ids.len() == 1), "{per_key:?}");
    let created = keyed.iter().filter(|(_, s, _)| *s == 202).count();
    assert_eq!(created, 8, "one 202 per key, the rest 200");
    let sync = app.queue_row("sync").await;
    assert_eq!(sync["queued"], 108, "every job once in redis: {sync}");
    app.shutdown().await;
}

#[tokio::test]
async fn jobs_are_listed_newest_first_in_keyset_pages() {
    let app = TestApp::builder().without_worker().spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.enqueue(json!({"kind": "system.noop"})).await);
    }
    app.post_job(json!({"kind": "system.sleep", "payload": {"ms": 1}}))
        .await;
    let (_, page1) = app.get("/api/v1/jobs?kind=system.noop&limit=2").await;
    let got: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    let cursor = page1["next_cursor"].as_str().unwrap().to_lowercase(); // any case is accepted
    let (_, page2) = app
        .get(&format!("/api/v1/jobs?kind=system.noop&limit=2&cursor={cursor}"))
        .await;
    let got: Vec<&str> = page2["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let (_, queued) = app.get("/api/v1/jobs?state=queued").await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 6);
    app.shutdown().await;
}

#[tokio::test]
async fn cancel_and_retry_through_the_api() {
    let app = TestApp::builder().without_worker().spawn().await;
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    let r = app
        .http
        .post(format!("{}/api/v1/jobs/{id}/cancel", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.record(&id).await.state, JobStatus::Cancelled);
    let r = app
        .http
        .post(format!("{}/api/v1/jobs/{id}/cancel", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "already cancelled");
    let r = app
        .http
        .post(format!("{}/api/v1/jobs/{id}/retry", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "only dead jobs can be retried");
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("only dead jobs"),
        "{e}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failed"], json!([]));
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    app.wait_state(&id, JobStatus::Succeeded, Duration::from_secs(15))
        .await;
    let text = app.metrics().await;
    for needle in [
        "hangar_http_requests_total{",
        "hangar_http_request_duration_seconds_bucket{",
        "hangar_jobs_enqueued_total{kind=\"system.noop\"} 1",
        "hangar_queue_depth{",
        "hangar_workers_alive{queue=\"sync\"} 1",
        "hangar_db_pool_connections{",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_request_never_leaves_a_recorded_job_out_of_the_queue() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::builder().without_worker().spawn().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = r#"{"kind":"system.noop"}"#;
    let request = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        hangar_tests::token("hang-up", "operator"),
        body.len()
    );
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        drop(s); // hang up without reading the response
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, list) = app.get("/api/v1/jobs?limit=200").await;
    let recorded = list["jobs"].as_array().unwrap().len();
    let sync = app.queue_row("sync").await;
    assert!(recorded > 0, "some requests were served");
    assert_eq!(
        sync["queued"].as_u64().unwrap() as usize,
        recorded,
        "every recorded job is queued"
    );
    app.shutdown().await;
}
