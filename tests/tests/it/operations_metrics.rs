//! The gauges `/metrics` reads at scrape time for alerts and autoscaling:
//! queue latency, each sync target's last success, the Cost Explorer
//! budget left, whether a scheduler leads, whether PostgreSQL and Redis
//! answered, and the scheduler's repair re-dispatches.

use std::time::Duration;

use hangar_tests::{OwnRedis, TestApp};
use serde_json::json;

const ACCOUNTS: &str = r#"[
  {"name": "prod", "role_arn": "arn:aws:iam::111122223333:role/hangar", "regions": ["us-east-1", "eu-west-1"]},
  {"name": "dev"}
]"#;

/// The value of the series written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_show_queue_latency_sync_freshness_budget_and_the_scheduler_leader() {
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_AWS_ACCOUNTS", ACCOUNTS),
            ("HANGAR_AWS_REGIONS", "us-west-2"),
            ("HANGAR_CE_MONTHLY_REQUEST_BUDGET", "500"),
        ])
        .spawn()
        .await;
    let text = app.metrics().await;
    assert_eq!(
        value(&text, r#"hangar_queue_oldest_waiting_age_seconds{queue="sync"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value(&text, "hangar_scheduler_leader_present"), Some(0.0));
    assert_eq!(
        value(&text, r#"hangar_dependency_up{dependency="postgres"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"hangar_dependency_up{dependency="redis"}"#),
        Some(1.0)
    );
    assert!(
        !text.contains("hangar_sync_last_success_timestamp_seconds{"),
        "no target has succeeded yet:\n{text}"
    );

    // A job waits with no worker: the sync queue's latency grows with it.
    app.enqueue(json!({"kind": "system.noop"})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let text = app.metrics().await;
    let age = value(&text, r#"hangar_queue_oldest_waiting_age_seconds{queue="sync"}"#).unwrap();
    assert!((2.0..30.0).contains(&age), "age {age}");
    assert_eq!(
        value(
            &text,
            r#"hangar_queue_oldest_waiting_age_seconds{queue="reports"}"#
        ),
        Some(0.0)
    );

    // A scheduler replica takes the lease: the API sees a leader.
    let cfg = app.config();
    let redis = cfg.redis_settings().connect().await.unwrap();
    let lease = hangar_queue::LeaseLock::new(
        redis,
        &app.prefix,
        hangar_shared::schedule::LEADER_LOCK,
        "scheduler-test",
        0,
        Duration::from_secs(30),
    );
    assert_eq!(
        lease.try_acquire().await.unwrap(),
        hangar_queue::LockOutcome::Acquired
    );
    assert_eq!(
        value(&app.metrics().await, "hangar_scheduler_leader_present"),
        Some(1.0)
    );
    lease.release().await.unwrap();
    assert_eq!(
        value(&app.metrics().await, "hangar_scheduler_leader_present"),
        Some(0.0)
    );

    // One target's sync succeeded at a known time; the others never did.
    let (status, body) = app
        .post(
            "/api/v1/syncs/workspaces",
            json!({"account": "prod", "region": "eu-west-1"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["job"]["id"].as_str().unwrap().to_owned();
    let pool = hangar_shared::db::pool(&cfg.database).unwrap();
    let finished: chrono::DateTime<chrono::Utc> = "2026-12-07T05:00:00Z".parse().unwrap();
    sqlx::query("UPDATE job_runs SET state = 'succeeded', started_at = $2, finished_at = $2 WHERE id = $1")
        .bind(&id)
        .bind(finished)
        .execute(&pool)
        .await
        .unwrap();
    // And 123 Cost Explorer requests were spent by prod this month.
    sqlx::query(
        "INSERT INTO aws_request_budget (month, account, api, used)
         VALUES (date_trunc('month', now() AT TIME ZONE 'UTC')::date, 'prod', 'ce', 123)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let text = app.metrics().await;
    let last = |account: &str, region: &str| {
        value(
            &text,
            &format!(
                r#"hangar_sync_last_success_timestamp_seconds{{kind="sync.workspaces",account="{account}",region="{region}"}}"#
            ),
        )
    };
    assert_eq!(
        last("prod", "eu-west-1"),
        Some(finished.timestamp() as f64),
        "{text}"
    );
    assert_eq!(last("prod", "us-east-1"), None);
    assert_eq!(last("dev", "us-west-2"), None);
    assert_eq!(value(&text, "hangar_cost_explorer_budget_requests"), Some(500.0));
    assert_eq!(
        value(&text, r#"hangar_cost_explorer_budget_remaining{account="prod"}"#),
        Some(377.0)
    );
    assert_eq!(
        value(&text, r#"hangar_cost_explorer_budget_remaining{account="dev"}"#),
        Some(500.0)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn with_redis_stopped_metrics_still_answer_in_time_and_say_redis_is_down() {
    let redis = OwnRedis::start();
    let app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .spawn()
        .await;
    let text = app.metrics().await;
    assert_eq!(
        value(&text, r#"hangar_dependency_up{dependency="redis"}"#),
        Some(1.0)
    );
    drop(redis);
    let started = std::time::Instant::now();
    let text = app.metrics().await;
    // HANGAR_READY_TIMEOUT_MS is 1 s in tests; each Redis read is bounded by it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        value(&text, r#"hangar_dependency_up{dependency="redis"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, r#"hangar_dependency_up{dependency="postgres"}"#),
        Some(1.0)
    );
    assert!(
        text.contains("hangar_http_requests_total{"),
        "the rest is still served"
    );
    // Its Redis is gone with its keys: stop the API without the usual
    // cleanup (which would wait for Redis to connect).
    let mut app = app;
    app.api.take().unwrap().stop().await.unwrap();
}
