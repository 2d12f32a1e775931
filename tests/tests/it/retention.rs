//! `system.retention` (shipped as a daily schedule): deletes finished job
//! records and CloudTrail events past their age, nothing else.

use std::time::Duration;

use hangar_tests::JobStatus;
use hangar_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn retention_deletes_only_old_finished_jobs_and_old_events() {
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    // Ids as the API makes them: a ULID begins with its creation time, and
    // job_runs is partitioned by it.
    for (tag, state, age_days) in [
        ("old-done", "succeeded", 40),
        ("old-dead", "dead", 40),
        ("old-queued", "queued", 40),
        ("new-done", "succeeded", 2),
    ] {
        sqlx::query(
            "INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, requested_by, created_at, finished_at)
             VALUES (left(hangar_id_at(now() - make_interval(days => $3)), 10) || lpad(md5($1), 16, '0'),
                     'system.noop', 'sync', '{}', $2, 3, $1, now() - make_interval(days => $3),
                     CASE WHEN $2 = 'queued' THEN NULL ELSE now() - make_interval(days => $3) END)",
        )
        .bind(tag)
        .bind(state)
        .bind(age_days)
        .execute(&pool)
        .await
        .unwrap();
    }
    for (id, age_days) in [("old-event", 500), ("new-event", 10)] {
        sqlx::query(
            "INSERT INTO audit_events (event_id, account, region, event_time, event_name, event_source)
             VALUES ($1, 'a', 'us-east-1', now() - make_interval(days => $2), 'X', 'workspaces.amazonaws.com')",
        )
        .bind(id)
        .bind(age_days)
        .execute(&pool)
        .await
        .unwrap();
    }
    let (status, bad) = app
        .post(
            "/api/v1/jobs",
            json!({"kind": "system.retention", "payload": {"job_runs_days": 0}}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["field"].clone()),
        (422, json!("payload.job_runs_days")),
        "{bad}"
    );

    let id = app.enqueue(json!({"kind": "system.retention"})).await;
    let job = app
        .wait_state(&id, JobStatus::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(
        job["result"],
        json!({"job_runs_deleted": 2, "job_runs_partitions_dropped": [], "audit_events_deleted": 1, "reports_deleted": 0}),
        "{job}"
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT requested_by FROM job_runs WHERE requested_by IN ('old-done', 'old-dead', 'old-queued', 'new-done')
          ORDER BY requested_by",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(left, ["new-done", "old-queued"], "open and recent jobs stay");
    let events: Vec<String> = sqlx::query_scalar("SELECT event_id FROM audit_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(events, ["new-event"]);
    pool.close().await;
    app.shutdown().await;
}

/// A cancelled retention job stops between batches, is recorded as
/// cancelled (not succeeded) and does not go on to the next table.
#[tokio::test]
async fn a_cancelled_retention_stops_between_batches_and_ends_cancelled() {
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    // Enough old rows for dozens of batches of 5,000.
    sqlx::query(
        "INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, created_at, finished_at)
         SELECT left(hangar_id_at(now() - interval '40 days'), 10) || lpad(i::text, 16, '0'),
                'system.noop', 'sync', '{}', 'succeeded', 3,
                now() - interval '40 days', now() - interval '40 days'
         FROM generate_series(1, 300000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (event_id, account, region, event_time, event_name, event_source)
         VALUES ('old-event', 'a', 'us-east-1', now() - interval '500 days', 'X', 'workspaces.amazonaws.com')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let id = app.enqueue(json!({"kind": "system.retention"})).await;
    // One at a time: asking again while it is open answers the open one.
    let (status, again) = app
        .post("/api/v1/jobs", json!({"kind": "system.retention"}))
        .await;
    assert_eq!(
        (status, again["duplicate"].as_bool(), again["job"]["id"].as_str()),
        (200, Some(true), Some(id.as_str())),
        "{again}"
    );
    // Once it has deleted a batch, ask it to stop.
    let start = std::time::Instant::now();
    loop {
        let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
        if job["progress"]["deleted"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no batch deleted: {job}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, answer) = app.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 202, "{answer}");
    let job = app
        .wait_state(&id, JobStatus::Cancelled, Duration::from_secs(30))
        .await;
    assert!(job["result"].is_null(), "{job}");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE created_at < now() - interval '39 days'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(left > 0 && left < 300_000, "stopped part way: {left} left");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 1, "the next step did not start");
    pool.close().await;
    app.shutdown().await;
}
