//! AWS sync jobs end to end: the API, the real `hangar-worker` binary with the
//! official AWS SDK, over HTTP to moto's server extended by
//! `tests/moto/hangar_moto.py`, into PostgreSQL.

use std::time::{Duration, Instant};

use hangar_tests::{TestApp, moto::Moto};
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_hangar-worker");
const ACCOUNTS: &str = r#"[{"name":"main","regions":["us-east-1"]}]"#;

/// An app (no worker in it) for syncs of account `main` in us-east-1,
/// with fast in-job retries; `extra` adds or overrides variables.
pub(super) async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("HANGAR_AWS_ACCOUNTS", ACCOUNTS),
        // Fast in-job retries so throttling tests take milliseconds.
        ("HANGAR_AWS_BACKOFF_MS", "20"),
        ("HANGAR_AWS_BACKOFF_CAP_MS", "200"),
    ];
    env.extend_from_slice(extra);
    TestApp::builder().without_worker().envs(&env).spawn().await
}

async fn sync_now(app: &TestApp, kind: &str, body: Value) -> (u16, Value) {
    app.post(&format!("/api/v1/syncs/{kind}"), body).await
}

/// Starts a sync of `kind` for account `main` and returns its job id.
pub(super) async fn start_sync(app: &TestApp, kind: &str, body: Value) -> String {
    let (status, v) = sync_now(app, kind, body).await;
    assert_eq!(status, 202, "{v}");
    v["jobs"][0]["job"]["id"].as_str().expect("job id").to_owned()
}

/// Waits until the job has ended (succeeded or dead) and returns it.
async fn finished(app: &TestApp, id: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
        if job["state"] == "succeeded" || job["state"] == "dead" {
            return job;
        }
        assert!(start.elapsed() < within, "job {id} still {}: {job}", job["state"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of the inventory tables, all columns, in key order.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let mut rows = Vec::new();
    for (table, key) in [
        ("directories", "account, region, directory_id"),
        ("bundles", "account, region, bundle_id"),
        ("workspaces", "account, region, workspace_id"),
        ("workspace_connections", "account, region, workspace_id"),
        ("audit_events", "event_id"),
        ("cost_daily", "account, view, day, service, usage_type"),
    ] {
        let sql = format!("SELECT '{table} ' || to_jsonb(t)::text FROM {table} t ORDER BY {key}");
        let part: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&pool).await.unwrap();
        rows.extend(part);
    }
    pool.close().await;
    rows
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

async fn seed_workspaces(moto: &Moto, n: u64) -> Value {
    moto.post(
        "seed/workspaces",
        json!({"directories": 3, "workspaces": n, "bundles": 4, "tags_per_workspace": 2}),
    )
    .await
}

#[tokio::test]
async fn workspaces_sync_pages_through_everything_and_a_second_run_changes_nothing() {
    let moto = Moto::start().await;
    let seeded = seed_workspaces(&moto, 1000).await;
    let app = app_with(&[]).await;
    let mut worker = app.worker_process(WORKER, "sync=2", &moto.aws_env());

    let id = start_sync(
        &app,
        "workspaces",
        json!({"account": "main", "region": "us-east-1"}),
    )
    .await;
    // "Sync now" again while it runs: the same job, not a second one.
    let (status, again) = sync_now(&app, "workspaces", json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["jobs"][0]["already"], true);
    assert_eq!(again["jobs"][0]["job"]["id"], id.as_str());

    let job = finished(&app, &id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["workspaces"], 1000);
    assert_eq!(result["directories"], 3);
    assert_eq!(result["bundles"], 4);
    // 40 pages of 25; one statement per page plus a handful per run.
    let stats = &result["stats"];
    assert_eq!(
        stats["pages"], 41,
        "1 directory page + 40 workspace pages: {stats}"
    );
    let trips = stats["db_round_trips"].as_u64().unwrap();
    assert!(trips <= 44, "round trips grow with pages, not rows: {trips}");
    let calls = moto.stats().await;
    assert_eq!(calls["calls"]["DescribeWorkspaces"], 40, "{calls}");
    assert_eq!(calls["calls"]["DescribeWorkspacesConnectionStatus"], 40);
    assert_eq!(calls["calls"]["DescribeTags"], 1000);

    assert_eq!(count(&app, "SELECT count(*) FROM workspaces").await, 1000);
    assert_eq!(
        count(&app, "SELECT count(*) FROM workspace_connections").await,
        1000
    );
    assert_eq!(count(&app, "SELECT count(*) FROM directories").await, 3);
    assert_eq!(count(&app, "SELECT count(*) FROM bundles").await, 4);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM workspaces WHERE jsonb_typeof(tags) = 'object' AND tags <> '{}'"
        )
        .await,
        1000,
        "every workspace has its tags"
    );

    // A second run rewrites nothing: every row, every column, identical;
    // and it reads no tags (all fresh, nothing changed).
    let before = snapshot(&app).await;
    let second = start_sync(&app, "workspaces", json!({})).await;
    let job = finished(&app, &second, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["stats"]["rows_written"], 0, "{job}");
    assert_eq!(job["result"]["stats"]["tags_kept"], 1000, "{job}");
    assert_eq!(
        moto.stats().await["calls"]["DescribeTags"],
        1000,
        "no DescribeTags the second time"
    );
    assert_eq!(snapshot(&app).await, before);

    // Reading it back: keyset pages cover every workspace exactly once.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/workspaces?limit=300&cursor={c}"),
            None => "/api/v1/workspaces?limit=300".to_owned(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for w in page["workspaces"].as_array().unwrap() {
            assert!(seen.insert(w["workspace_id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: std::collections::BTreeSet<String> = seeded["workspace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);

    // Filters.
    let stopped = count(&app, "SELECT count(*) FROM workspaces WHERE state = 'STOPPED'").await;
    let (_, page) = app.get("/api/v1/workspaces?state=stopped&limit=1000").await;
    assert_eq!(page["workspaces"].as_array().unwrap().len() as i64, stopped);
    assert!(stopped > 0);
    let dir = seeded["directory_ids"][0].as_str().unwrap();
    let (_, page) = app
        .get(&format!("/api/v1/workspaces?directory={dir}&limit=1000"))
        .await;
    assert_eq!(page["workspaces"].as_array().unwrap().len(), 334);
    let (_, page) = app.get("/api/v1/workspaces?q=user0007&limit=10").await;
    assert_eq!(page["workspaces"][0]["user_name"], "user0007", "{page}");
    let (_, dirs) = app.get("/api/v1/directories").await;
    let total: i64 = dirs["directories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["workspaces"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 1000, "{dirs}");
    let ws = seeded["workspace_ids"][0].as_str().unwrap();
    let (status, one) = app.get(&format!("/api/v1/workspaces/{ws}")).await;
    assert_eq!(status, 200, "{one}");
    assert!(one["tags"].as_object().is_some_and(|t| t.len() == 2), "{one}");
    assert!(one["last_connection"]["state"].is_string(), "{one}");
    assert!(one["bundle"]["name"].is_string(), "{one}");
    let (status, _) = app.get("/api/v1/workspaces/ws-nope").await;
    assert_eq!(status, 404);

    // Terminated in AWS: marked deleted (with the time) by the next complete listing.
    let gone: Vec<Value> = seeded["workspace_ids"].as_array().unwrap()[..10].to_vec();
    moto.post("workspaces/terminate", json!({"workspace_ids": gone}))
        .await;
    let third = start_sync(&app, "workspaces", json!({})).await;
    let job = finished(&app, &third, Duration::from_secs(120)).await;
    assert_eq!(job["result"]["marked_deleted"], 10, "{job}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM workspaces WHERE deleted_at IS NOT NULL"
        )
        .await,
        10
    );
    let (_, page) = app.get("/api/v1/workspaces?limit=1000").await;
    assert_eq!(page["workspaces"].as_array().unwrap().len(), 990);

    // A listing that fails half-way marks nothing deleted.
    let more: Vec<Value> = seeded["workspace_ids"].as_array().unwrap()[10..15].to_vec();
    moto.post("workspaces/terminate", json!({"workspace_ids": more}))
        .await;
    moto.fault(
        json!({"operation": "DescribeWorkspaces", "after": 3, "status": 400,
                      "code": "AccessDeniedException", "message": "not allowed"}),
    )
    .await;
    let fourth = start_sync(&app, "workspaces", json!({})).await;
    let job = finished(&app, &fourth, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM workspaces WHERE deleted_at IS NOT NULL"
        )
        .await,
        10
    );

    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn throttled_calls_are_retried_inside_the_job_and_counted() {
    let moto = Moto::start().await;
    seed_workspaces(&moto, 60).await;
    let metrics_port = hangar_tests::free_port().to_string();
    let bind = format!("127.0.0.1:{metrics_port}");
    let app = app_with(&[]).await;
    let mut env = moto.aws_env();
    env.push(("HANGAR_WORKER_METRICS_BIND".into(), bind.clone()));
    let mut worker = app.worker_process(WORKER, "sync=1", &env);
    moto.fault(
        json!({"operation": "DescribeWorkspaces", "times": 2, "status": 400,
                      "code": "ThrottlingException", "message": "Rate exceeded"}),
    )
    .await;
    moto.fault(
        json!({"operation": "DescribeWorkspacesConnectionStatus", "times": 1, "status": 503,
                      "code": "ServiceUnavailable", "message": "try later"}),
    )
    .await;
    let id = start_sync(&app, "workspaces", json!({})).await;
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "retried inside the one attempt: {job}");
    assert_eq!(job["result"]["stats"]["aws_retries"], 3, "{job}");
    assert_eq!(job["result"]["stats"]["aws_throttled"], 2, "{job}");
    assert_eq!(count(&app, "SELECT count(*) FROM workspaces").await, 60);

    let body = hangar_tests::scrape(&bind).await;
    let line = |needle: &str| {
        body.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in metrics:\n{body}"))
            .to_owned()
    };
    assert!(
        line(r#"hangar_aws_requests_total{service="workspaces",operation="DescribeWorkspaces",account="main",outcome="throttled"}"#)
            .ends_with(" 2")
    );
    assert!(
        line(r#"hangar_aws_request_retries_total{service="workspaces",operation="DescribeWorkspaces"}"#)
            .ends_with(" 2")
    );
    assert!(line(r#"outcome="server_error""#).ends_with(" 1"));
    // The rates in force are published beside the requests they limit.
    assert!(line(r#"hangar_aws_rate_limit_per_second{bucket="workspaces"}"#).ends_with(" 1000.0"));
    assert!(line(r#"hangar_aws_rate_limit_per_second{bucket="cloudtrail:LookupEvents"}"#).ends_with(" 1.8"));
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn refused_credentials_end_dead_at_once_with_a_message_naming_account_region_and_fix() {
    let moto = Moto::start().await;
    let accounts = r#"[{"name":"locked","role_arn":"arn:aws:iam::222222222222:role/hangar-refused","regions":["eu-west-1"]}]"#;
    let app = app_with(&[("HANGAR_AWS_ACCOUNTS", accounts)]).await;
    let mut worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    moto.fault(json!({"operation": "AssumeRole", "match": "hangar-refused", "status": 403,
                      "code": "AccessDenied", "message": "User is not authorized to perform: sts:AssumeRole"}))
        .await;
    let id = start_sync(&app, "workspaces", json!({"account": "locked"})).await;
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 1, "no retries: {job}");
    let error = job["error"].as_str().unwrap();
    for expected in ["account locked", "eu-west-1", "AccessDenied", "Fix:"] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    let stats = moto.stats().await;
    assert!(
        stats["calls"]["DescribeWorkspaceDirectories"].is_null(),
        "no WorkSpaces call was made: {stats}"
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn an_account_behind_a_role_is_synced_with_the_assumed_credentials() {
    let moto = Moto::start().await;
    // The ambient credentials' account has 5 workspaces, the role's account 40.
    seed_workspaces(&moto, 5).await;
    moto.post(
        "seed/workspaces",
        json!({"account": "111111111111", "directories": 2, "workspaces": 40, "bundles": 2}),
    )
    .await;
    let accounts = r#"[{"name":"member","role_arn":"arn:aws:iam::111111111111:role/hangar-reader","regions":["us-east-1"]}]"#;
    let app = app_with(&[("HANGAR_AWS_ACCOUNTS", accounts)]).await;
    let mut worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    let id = start_sync(&app, "workspaces", json!({"account": "member"})).await;
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["result"]["workspaces"], 40,
        "the role's account, not the caller's: {job}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM workspaces WHERE account = 'member'").await,
        40
    );
    assert_eq!(
        moto.stats().await["calls"]["AssumeRole"],
        1,
        "credentials are cached across calls"
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn accounts_found_in_the_organization_are_synced_through_its_role_and_the_own_account_with_its_credentials()
 {
    let moto = Moto::start().await;
    seed_workspaces(&moto, 5).await;
    moto.post(
        "seed/workspaces",
        json!({"account": "111111111111", "directories": 1, "workspaces": 12, "bundles": 1}),
    )
    .await;
    // No listed accounts: only what the organization holds.
    let app = app_with(&[
        ("HANGAR_AWS_ACCOUNTS", ""),
        ("HANGAR_AWS_ORGANIZATION_ROLE", "hangar-reader"),
    ])
    .await;
    let mut worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    // What the scheduler stores after ListAccounts (its discovery is tested
    // in scheduler/tests/it/organization.rs), written after the worker and
    // the API started: both look the list up again for an account they do
    // not know yet.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO aws_org_accounts (account_id, name, role_arn) VALUES
         ('111111111111', 'member-a', 'arn:aws:iam::111111111111:role/hangar-reader'),
         ('123456789012', 'management', NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let member = start_sync(&app, "workspaces", json!({"account": "111111111111"})).await;
    let own = start_sync(&app, "workspaces", json!({"account": "123456789012"})).await;
    let member = finished(&app, &member, Duration::from_secs(60)).await;
    let own = finished(&app, &own, Duration::from_secs(60)).await;
    assert_eq!(member["state"], "succeeded", "{member}");
    assert_eq!(
        member["result"]["workspaces"], 12,
        "the member's, through its role: {member}"
    );
    assert_eq!(own["state"], "succeeded", "{own}");
    assert_eq!(
        own["result"]["workspaces"], 5,
        "the caller's own, without a role: {own}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM workspaces WHERE account = '111111111111'"
        )
        .await,
        12
    );
    assert_eq!(
        moto.stats().await["calls"]["AssumeRole"],
        1,
        "one role assumed: the member's"
    );
    let (status, v) = sync_now(&app, "workspaces", json!({"account": "999999999999"})).await;
    assert_eq!(status, 422, "an account in neither list is refused: {v}");
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn tags_are_read_again_only_for_changed_or_stale_workspaces_or_every_time_with_a_zero_refresh() {
    let moto = Moto::start().await;
    let seeded = seed_workspaces(&moto, 100).await;
    let ids: Vec<String> = seeded["workspace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let app = app_with(&[]).await;
    let mut worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    let sync = || async {
        let id = start_sync(&app, "workspaces", json!({})).await;
        let job = finished(&app, &id, Duration::from_secs(60)).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        job
    };
    let tag_calls = || async { moto.stats().await["calls"]["DescribeTags"].as_u64().unwrap_or(0) };
    sync().await;
    assert_eq!(tag_calls().await, 100);

    // Three workspaces change state in AWS; four have tags past the refresh.
    moto.post(
        "workspaces/state",
        json!({"workspace_ids": &ids[..3], "state": "STOPPED"}),
    )
    .await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query(
        "UPDATE workspaces SET tags_refreshed_at = now() - interval '2 days' WHERE workspace_id = ANY($1)",
    )
    .bind(&ids[10..14])
    .execute(&pool)
    .await
    .unwrap();
    let job = sync().await;
    assert_eq!(tag_calls().await, 107, "3 changed + 4 stale: {job}");
    assert_eq!(job["result"]["stats"]["tags_kept"], 93, "{job}");
    // The three stopped workspaces and their connection rows (the emulator
    // derives the connection state from the workspace's); the four whose
    // tags were read again and found the same are not writes.
    assert_eq!(job["result"]["stats"]["rows_written"], 6, "{job}");
    let refreshed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workspaces WHERE workspace_id = ANY($1) AND tags_refreshed_at > now() - interval '1 minute'",
    )
    .bind(&ids[10..14])
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(refreshed, 4, "the stale ones are fresh again");
    let tagged: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces WHERE tags <> '{}'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tagged, 100, "kept tags stay");
    pool.close().await;

    // HANGAR_TAGS_REFRESH_SECS=0: every workspace's tags, every sync.
    worker.kill().unwrap();
    worker.wait().unwrap();
    let mut env = moto.aws_env();
    env.push(("HANGAR_TAGS_REFRESH_SECS".into(), "0".into()));
    let mut worker = app.worker_process(WORKER, "sync=1", &env);
    sync().await;
    assert_eq!(tag_calls().await, 207);
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn a_worker_killed_mid_sync_leaves_identical_tables_after_redelivery() {
    let moto = Moto::start().await;
    seed_workspaces(&moto, 1000).await;
    let app = app_with(&[]).await;
    // Slow pages so the kill lands mid-listing.
    let slow = moto
        .fault(json!({"operation": "DescribeWorkspaces", "status": null, "delay_ms": 250}))
        .await;
    let mut victim = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    let id = start_sync(&app, "workspaces", json!({})).await;
    let start = Instant::now();
    loop {
        let (_, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
        if job["progress"]["pages"].as_u64().unwrap_or(0) >= 6 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "sync never got going: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let partial = count(&app, "SELECT count(*) FROM workspaces").await;
    assert!(
        partial > 0 && partial < 1000,
        "killed mid-listing: {partial} rows"
    );

    let response = reqwest::Client::new()
        .delete(format!("{}/_hangar/faults/{slow}", moto.url))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let mut rescuer = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    let job = finished(&app, &id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["deliveries"].as_u64().unwrap() >= 2, "{job}");
    assert_eq!(count(&app, "SELECT count(*) FROM workspaces").await, 1000);
    assert_eq!(
        count(&app, "SELECT count(*) FROM workspace_connections").await,
        1000
    );

    // A clean run over the redelivered result changes nothing.
    let after_redelivery = snapshot(&app).await;
    let again = start_sync(&app, "workspaces", json!({})).await;
    let job = finished(&app, &again, Duration::from_secs(120)).await;
    assert_eq!(job["result"]["stats"]["rows_written"], 0, "{job}");
    assert_eq!(snapshot(&app).await, after_redelivery);
    rescuer.kill().unwrap();
    rescuer.wait().unwrap();
}

#[tokio::test]
async fn cloudtrail_sync_reads_every_page_under_the_shared_rate_limit_and_never_duplicates() {
    let moto = Moto::start().await;
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::days(2)).to_rfc3339();
    let end = (now - chrono::Duration::minutes(1)).to_rfc3339();
    moto.post(
        "seed/cloudtrail",
        json!({"count": 300, "start": start, "end": end, "other_sources": 60}),
    )
    .await;
    let app = app_with(&[]).await;
    let mut worker = app.worker_process(WORKER, "sync=2", &moto.aws_env());

    let id = start_sync(&app, "cloudtrail", json!({"region": "us-east-1"})).await;
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["events"], 300, "{job}");
    assert_eq!(job["result"]["inserted"], 300);
    assert_eq!(job["result"]["stats"]["pages"], 6);
    let stats = moto.stats().await;
    // The emulator throttles past 2 calls per second: the limiter kept us under.
    assert!(
        stats["throttled"]["LookupEvents"].as_u64().unwrap_or(0) == 0,
        "no LookupEvents call was throttled: {stats}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM audit_events").await, 300);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE event_source <> 'workspaces.amazonaws.com'"
        )
        .await,
        0
    );

    // Again: the cursor (minus the overlap) re-reads the newest events; none twice.
    let before = snapshot(&app).await;
    let second = start_sync(&app, "cloudtrail", json!({})).await;
    let job = finished(&app, &second, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["inserted"], 0, "{job}");
    assert!(
        job["result"]["events"].as_u64().unwrap() < 300,
        "resumed from the cursor: {job}"
    );
    assert_eq!(
        snapshot(&app).await,
        before,
        "the second run left every row as it was"
    );

    // Reading them: newest first, keyset pages, filters.
    let (status, page) = app.get("/api/v1/audit-events?limit=200").await;
    assert_eq!(status, 200, "{page}");
    let first = page["events"].as_array().unwrap();
    assert_eq!(first.len(), 200);
    let (_, rest) = app
        .get(&format!(
            "/api/v1/audit-events?limit=200&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 100);
    assert!(rest["next_cursor"].is_null());
    let name = first[0]["event_name"].as_str().unwrap();
    let (_, named) = app
        .get(&format!("/api/v1/audit-events?event_name={name}&limit=1000"))
        .await;
    let expected = count(
        &app,
        &format!("SELECT count(*) FROM audit_events WHERE event_name = '{name}'"),
    )
    .await;
    assert_eq!(named["events"].as_array().unwrap().len() as i64, expected);
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn without_the_limiter_lookup_events_are_throttled_and_retried_inside_the_job() {
    let moto = Moto::start().await;
    let now = chrono::Utc::now();
    moto.post(
        "seed/cloudtrail",
        json!({"count": 250, "start": (now - chrono::Duration::hours(20)).to_rfc3339(),
               "end": (now - chrono::Duration::minutes(1)).to_rfc3339()}),
    )
    .await;
    // Not paced: far faster than the 2/s CloudTrail allows.
    let app = app_with(&[
        ("HANGAR_AWS_RATES", "cloudtrail:LookupEvents=off"),
        ("HANGAR_AWS_CALL_ATTEMPTS", "20"),
    ])
    .await;
    let mut worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    let id = start_sync(&app, "cloudtrail", json!({})).await;
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["inserted"], 250);
    let stats = moto.stats().await;
    let throttled = stats["throttled"]["LookupEvents"].as_u64().unwrap_or(0);
    assert!(throttled > 0, "the emulator throttled: {stats}");
    assert_eq!(job["result"]["stats"]["aws_retries"].as_u64().unwrap(), throttled);
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn billing_sync_stores_exact_decimals_resettles_late_costs_and_respects_the_budget() {
    let moto = Moto::start().await;
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| (today + chrono::Duration::days(d)).to_string();
    moto.post(
        "seed/costs",
        json!({"account": hangar_tests::moto::MOTO_ACCOUNT, "start": day(-20), "end": day(1)}),
    )
    .await;
    // 15 days in pages of 5 days: 3 requests per view, 2 views; then 2 more.
    let app = app_with(&[("HANGAR_CE_MONTHLY_REQUEST_BUDGET", "9")]).await;
    let mut worker = app.worker_process(WORKER, "sync=1", &moto.aws_env());
    let id = start_sync(&app, "billing", json!({})).await;
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["window"]["start"], day(-14), "{job}");
    assert_eq!(job["result"]["stats"]["pages"], 6, "{job}");

    // Exact: PostgreSQL's sums equal the emulator's cells to the last decimal.
    let cells = moto
        .get(&format!("costs?account={}", hangar_tests::moto::MOTO_ACCOUNT))
        .await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let mut expected = rust_decimal::Decimal::ZERO;
    let mut expected_ws = rust_decimal::Decimal::ZERO;
    for (d, day_cells) in cells["days"].as_object().expect("days") {
        if d.as_str() < day(-14).as_str() {
            continue;
        }
        for c in day_cells.as_array().unwrap() {
            let amount: rust_decimal::Decimal = c["UnblendedCost"].as_str().unwrap().parse().unwrap();
            expected += amount;
            if c["service"] == "Amazon WorkSpaces" {
                expected_ws += amount;
            }
        }
    }
    let stored: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(amount) FROM cost_daily WHERE view = 'all'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, expected);
    let ws: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(amount) FROM cost_daily WHERE view = 'workspaces'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(ws, expected_ws);
    let (status, costs) = app
        .get(&format!("/api/v1/costs?start={}&group_by=service", day(-14)))
        .await;
    assert_eq!(status, 200, "{costs}");
    assert_eq!(costs["total"]["USD"], expected.to_string(), "{costs}");

    // Nothing changed in Cost Explorer: a second sync (re-reading the last
    // days, one page per view) leaves every row as it was.
    let before = snapshot(&app).await;
    let unchanged = start_sync(&app, "billing", json!({})).await;
    let job = finished(&app, &unchanged, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["window"]["start"], day(-3), "{job}");
    assert_eq!(job["result"]["stats"]["pages"], 2, "{job}");
    assert_eq!(snapshot(&app).await, before);

    // A cost settles late: the next sync re-reads the last days and picks it up...
    let bumped = moto
        .post(
            "costs/bump",
            json!({"account": hangar_tests::moto::MOTO_ACCOUNT, "date": day(-2),
                                   "service": "Amazon WorkSpaces", "usage_type": "USE1-AutoStop-Standard",
                                   "amount": "123.4567890123"}),
        )
        .await;
    assert!(bumped.is_object());
    let second = start_sync(&app, "billing", json!({})).await;
    let job = finished(&app, &second, Duration::from_secs(60)).await;
    let amount: rust_decimal::Decimal = sqlx::query_scalar(
        "SELECT amount FROM cost_daily WHERE view = 'all' AND day = $1::date AND usage_type = 'USE1-AutoStop-Standard'",
    )
    .bind(day(-2))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(amount.to_string(), "123.4567890123");
    // ...but the budget (9 requests) ran out for the WorkSpaces view: dead, no retries, clear message.
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 1);
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("budget exhausted for account main: 9 of 9"),
        "{error}"
    );
    assert!(error.contains("HANGAR_CE_MONTHLY_REQUEST_BUDGET"), "{error}");
    let calls = moto.stats().await;
    assert_eq!(
        calls["calls"]["GetCostAndUsage"], 9,
        "never past the budget: {calls}"
    );
    pool.close().await;
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn usage_sync_reads_1000_workspaces_500_per_call_through_every_page_and_a_rerun_changes_nothing() {
    let moto = Moto::start().await;
    seed_workspaces(&moto, 1000).await;
    let app = app_with(&[]).await;
    let mut worker = app.worker_process(WORKER, "sync=2", &moto.aws_env());
    let ws = start_sync(&app, "workspaces", json!({})).await;
    assert_eq!(
        finished(&app, &ws, Duration::from_secs(120)).await["state"],
        "succeeded"
    );

    // Three days of generated office usage, and one session we know exactly:
    // yesterday 09:02-10:10 UTC, then two idle periods before auto-stop.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let known: String = sqlx::query_scalar("SELECT min(workspace_id) FROM workspaces")
        .fetch_one(&pool)
        .await
        .unwrap();
    let generated = moto
        .post(
            "seed/usage",
            json!({"account": hangar_tests::moto::MOTO_ACCOUNT, "days": 3, "idle_periods": 2}),
        )
        .await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let exact = moto
        .post(
            "seed/usage",
            json!({"account": hangar_tests::moto::MOTO_ACCOUNT, "idle_periods": 2, "sessions": [
                {"workspace_id": known, "start": format!("{yesterday}T09:02:00Z"), "end": format!("{yesterday}T10:10:00Z")}
            ]}),
        )
        .await;
    // Small pages, so every call pages; and two throttled answers, retried
    // inside the job.
    moto.post("config", json!({"metric_page_points": 20_000})).await;
    moto.post(
        "faults",
        json!({"operation": "GetMetricData", "code": "Throttling", "times": 2}),
    )
    .await;

    let id = start_sync(&app, "usage", json!({})).await;
    let job = finished(&app, &id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["workspaces"], 1000);
    assert_eq!(result["metrics_requested"], 1000);
    assert_eq!(result["stats"]["aws_retries"], 2, "{result}");
    let connected = generated["connected"].as_u64().unwrap() + exact["connected"].as_u64().unwrap();
    let calls = moto.stats().await;
    let pages = result["stats"]["pages"].as_u64().unwrap();
    assert_eq!(calls["calls"]["GetMetricData"], pages + 2, "{calls}");
    let points = result["datapoints"].as_u64().unwrap();
    assert!(
        pages >= points.div_ceil(20_000).max(3),
        "two batches of 500 workspaces, each paged: {pages} pages for {points} points"
    );

    // Every connected period is one bit, in its workspace's hour; the idle
    // periods after a session (UserConnected 0) set none.
    let bits: i64 =
        sqlx::query_scalar("SELECT sum(bit_count(periods::bit(12)))::bigint FROM workspace_usage")
            .fetch_one(&pool)
            .await
            .unwrap();
    // The exact session may overlap a generated one: count distinct periods.
    assert!(bits as u64 <= connected && bits as u64 >= connected - exact["connected"].as_u64().unwrap());
    assert_eq!(
        result["connected_periods"].as_u64().unwrap(),
        bits as u64,
        "one datapoint per period"
    );
    let hours: Vec<(String, i32, i16)> = sqlx::query_as(
        "SELECT to_char(hour AT TIME ZONE 'UTC', 'HH24:MI'), periods, connected_minutes FROM workspace_usage
         WHERE workspace_id = $1 AND hour >= $2::date AND hour < $2::date + 1 AND hour::time BETWEEN '09:00' AND '10:00'
         ORDER BY hour",
    )
    .bind(&known)
    .bind(yesterday)
    .fetch_all(&pool)
    .await
    .unwrap();
    // 09:00-09:55 all twelve periods; 10:00 and 10:05 (session to 10:10).
    assert_eq!(
        hours.first().map(|h| (h.0.as_str(), h.2)),
        Some(("09:00", 60)),
        "{hours:?}"
    );
    assert_eq!(hours.last().map(|h| h.0.as_str()), Some("10:00"), "{hours:?}");
    assert_eq!(hours.last().unwrap().1 & 0b11, 0b11, "{hours:?}");

    // A second run re-reads only the overlap: nothing changes.
    let before: Vec<String> = sqlx::query_scalar(
        "SELECT to_jsonb(t)::text FROM (SELECT account, region, workspace_id, hour, periods FROM workspace_usage) t ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let again = start_sync(&app, "usage", json!({})).await;
    let job = finished(&app, &again, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["hours_written"], 0, "{job}");
    let window = &job["result"]["window"];
    let start = chrono::DateTime::parse_from_rfc3339(window["start"].as_str().unwrap()).unwrap();
    assert!(
        chrono::Utc::now() - start.to_utc() < chrono::Duration::minutes(25),
        "{window}"
    );
    let after: Vec<String> = sqlx::query_scalar(
        "SELECT to_jsonb(t)::text FROM (SELECT account, region, workspace_id, hour, periods FROM workspace_usage) t ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(before, after);
    pool.close().await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn apply_billing_mode_is_admin_only_dry_by_default_changes_aws_and_is_audited() {
    let moto = Moto::start().await;
    let seeded = seed_workspaces(&moto, 30).await;
    // The last one is a standby of a primary in us-west-2: the sync records it.
    let standby = seeded["workspace_ids"][29].as_str().unwrap().to_owned();
    moto.post(
        "workspaces/standby",
        json!({"account": hangar_tests::moto::MOTO_ACCOUNT, "workspace_ids": [standby],
               "primary_region": "us-west-2", "primary_workspace_id": "ws-primary1"}),
    )
    .await;
    let app = app_with(&[]).await;
    let mut worker = app.worker_process(WORKER, "sync=2", &moto.aws_env());
    let ws = start_sync(&app, "workspaces", json!({})).await;
    assert_eq!(
        finished(&app, &ws, Duration::from_secs(60)).await["state"],
        "succeeded"
    );
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let standbys: Vec<(String, String)> =
        sqlx::query_as("SELECT workspace_id, standby_of FROM workspaces WHERE standby_of IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(standbys, [(standby.clone(), "us-west-2/ws-primary1".to_owned())]);
    let (target, mode): (String, String) = sqlx::query_as(
        "SELECT workspace_id, running_mode FROM workspaces WHERE state IN ('AVAILABLE', 'STOPPED')
         AND standby_of IS NULL ORDER BY workspace_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let to = if mode == "AUTO_STOP" {
        "ALWAYS_ON"
    } else {
        "AUTO_STOP"
    };
    let payload = json!({"account": "main", "region": "us-east-1", "changes": [
        {"workspace_id": target, "running_mode": to},
        {"workspace_id": "ws-notthere1", "running_mode": "AUTO_STOP"},
    ]});

    // Operators may read the advice but not act on it.
    let operator = hangar_tests::client_with_token(&hangar_tests::token("olivia", "operator"));
    let r = operator
        .post(format!("{}/api/v1/jobs", app.base))
        .json(&json!({"kind": "workspaces.apply_billing_mode", "payload": payload}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, v) = app
        .post(
            "/api/v1/jobs",
            json!({"kind": "workspaces.apply_billing_mode", "payload": {"account": "main", "region": "us-east-1",
                   "changes": [{"workspace_id": "i-123", "running_mode": "AUTO_STOP"}]}}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (422, Some("payload.changes[0].workspace_id")),
        "{v}"
    );

    // A dry run says what it would do and changes nothing.
    let (status, v) = app
        .post(
            "/api/v1/jobs",
            json!({"kind": "workspaces.apply_billing_mode", "payload": payload}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let job = finished(&app, v["job"]["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["dry_run"], true);
    assert_eq!(job["result"]["changes"][0]["outcome"], "would_change");
    assert_eq!(job["result"]["changes"][1]["outcome"], "not_found");
    assert_eq!(
        moto.stats().await["calls"]["ModifyWorkspaceProperties"],
        Value::Null
    );

    // For real: AWS changes (a fresh sync reads it back), and the audit log
    // names the admin, the workspace and the change.
    let mut real = payload.clone();
    real["dry_run"] = json!(false);
    let (_, v) = app
        .post(
            "/api/v1/jobs",
            json!({"kind": "workspaces.apply_billing_mode", "payload": real}),
        )
        .await;
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    let job = finished(&app, &id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["changes"][0]["outcome"], "changed", "{job}");
    assert_eq!(job["result"]["counts"], json!({"changed": 1, "not_found": 1}));
    assert_eq!(moto.stats().await["calls"]["ModifyWorkspaceProperties"], 1);
    let again = start_sync(&app, "workspaces", json!({})).await;
    assert_eq!(
        finished(&app, &again, Duration::from_secs(60)).await["state"],
        "succeeded"
    );
    let now: String = sqlx::query_scalar("SELECT running_mode FROM workspaces WHERE workspace_id = $1")
        .bind(&target)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(now, to, "AWS (the emulator) holds the new running mode");
    let audit: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, action, target FROM audit_log WHERE request_id = $1")
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].1, "workspaces.apply_billing_mode");
    assert_eq!(audit[0].2, format!("main/us-east-1/{target}: {mode} -> {to}"));
    pool.close().await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    app.shutdown().await;
}

/// Starts a `workspaces.apply_billing_mode` job (for real) switching these
/// workspaces to the other running mode; returns its id.
async fn apply_other_mode(app: &TestApp, pool: &sqlx::PgPool, n: i64) -> String {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT workspace_id, running_mode FROM workspaces WHERE state IN ('AVAILABLE', 'STOPPED')
         ORDER BY workspace_id LIMIT $1",
    )
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap();
    let changes: Vec<Value> = rows
        .iter()
        .map(|(id, mode)| {
            let to = if mode == "AUTO_STOP" {
                "ALWAYS_ON"
            } else {
                "AUTO_STOP"
            };
            json!({"workspace_id": id, "running_mode": to})
        })
        .collect();
    let (status, v) = app
        .post(
            "/api/v1/jobs",
            json!({"kind": "workspaces.apply_billing_mode",
                   "payload": {"account": "main", "region": "us-east-1", "dry_run": false, "changes": changes}}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    v["job"]["id"].as_str().unwrap().to_owned()
}

/// Throttled answers the workers whose metrics listen on `binds` counted
/// (`hangar_aws_requests_total{outcome="throttled"}`, every operation).
async fn throttles_counted(binds: &[String]) -> u64 {
    let mut n = 0;
    for bind in binds {
        let body = hangar_tests::scrape(bind).await;
        n += body
            .lines()
            .filter(|l| l.starts_with("hangar_aws_requests_total{") && l.contains(r#"outcome="throttled""#))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>();
    }
    n
}

#[tokio::test]
async fn two_workers_share_the_accounts_workspaces_rate_so_aws_throttles_none_and_throttles_are_counted_without_it()
 {
    let moto = Moto::start().await;
    seed_workspaces(&moto, 10).await;
    // AWS's documented WorkSpaces rate: 2 calls per second with bursts of 5,
    // every operation of an account and region together.
    moto.post(
        "config",
        json!({"operation_rates": {"workspaces": {"rate": 2, "burst": 5}}}),
    )
    .await;
    let calls = |stats: &Value| -> u64 {
        stats["calls"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(op, _)| op.contains("Workspace") || *op == "DescribeTags")
            .map(|(_, n)| n.as_u64().unwrap())
            .sum()
    };
    let throttled = |stats: &Value| -> u64 {
        stats["throttled"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    for (rates, paced) in [("", true), ("workspaces=off", false)] {
        // "": the defaults (workspaces=1.8/s burst 4). Tags are read every
        // sync so each sync makes a call per workspace. Unpaced, calls back
        // off long enough to get through within their attempts.
        let app = app_with(&[
            ("HANGAR_AWS_RATES", rates),
            ("HANGAR_TAGS_REFRESH_SECS", "0"),
            ("HANGAR_AWS_CALL_ATTEMPTS", "20"),
            ("HANGAR_AWS_BACKOFF_MS", "250"),
            ("HANGAR_AWS_BACKOFF_CAP_MS", "2000"),
        ])
        .await;
        let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
        let worker = |metrics: &str| {
            let mut env = moto.aws_env();
            env.push(("HANGAR_WORKER_METRICS_BIND".into(), metrics.to_owned()));
            app.worker_process(WORKER, "sync=1", &env)
        };
        let binds = [1, 2].map(|_| format!("127.0.0.1:{}", hangar_tests::free_port()));
        let mut first = worker(&binds[0]);
        let id = start_sync(&app, "workspaces", json!({})).await;
        assert_eq!(
            finished(&app, &id, Duration::from_secs(60)).await["state"],
            "succeeded"
        );

        // A sync on the first worker and a running-mode change on a second
        // one (the first is busy), of the same account and region, at once.
        moto.post("stats/reset", json!({})).await;
        let thrown_before = throttles_counted(&binds[..1]).await;
        let started = Instant::now();
        let sync = start_sync(&app, "workspaces", json!({})).await;
        app.wait_state(&sync, hangar_queue::JobStatus::Running, Duration::from_secs(30))
            .await;
        let mut second = worker(&binds[1]);
        let apply = apply_other_mode(&app, &pool, 8).await;
        let sync = finished(&app, &sync, Duration::from_secs(120)).await;
        let apply = finished(&app, &apply, Duration::from_secs(120)).await;
        let elapsed = started.elapsed();
        assert_eq!(
            (sync["state"].as_str(), apply["state"].as_str()),
            (Some("succeeded"), Some("succeeded")),
            "{sync} {apply}"
        );
        assert_eq!(apply["result"]["counts"], json!({"changed": 8}), "{apply}");
        let stats = moto.stats().await;
        let made = calls(&stats);
        assert_eq!(
            throttles_counted(&binds).await - thrown_before,
            throttled(&stats),
            "the workers' hangar_aws_requests_total{{outcome=\"throttled\"}} counts every throttle: {stats}"
        );
        if paced {
            assert_eq!(
                throttled(&stats),
                0,
                "the shared limiter kept both workers under AWS's rate: {stats}"
            );
            // 4 at once, then one per 1/1.8 s: the pace, not the emulator, set the time.
            let least = Duration::from_secs_f64((made - 4) as f64 / 1.8 * 0.95);
            assert!(
                elapsed >= least,
                "{made} calls in {elapsed:?}, expected at least {least:?}"
            );
            let waited: f64 = [&sync, &apply]
                .iter()
                .map(|j| j["result"]["stats"]["rate_limit_wait_ms"].as_f64().unwrap())
                .sum();
            assert!(
                waited > 1000.0,
                "the jobs report their wait for a turn: {waited} ms"
            );
        } else {
            assert!(
                throttled(&stats) > 0,
                "unpaced, AWS throttled some calls: {stats}"
            );
            let counted = |j: &Value| j["result"]["stats"]["aws_throttled"].as_u64().unwrap();
            assert!(
                counted(&sync) + counted(&apply) > 0,
                "the jobs' results show their throttles: {sync} {apply}"
            );
        }
        for w in [&mut first, &mut second] {
            w.kill().unwrap();
            w.wait().unwrap();
        }
        pool.close().await;
        moto.post("stats/reset", json!({})).await;
    }
}
