//! Account discovery through AWS Organizations, end to end: the real
//! `hangar-scheduler` binary reads the organization from the emulator
//! (moto's Organizations and STS) and keeps the active accounts in
//! PostgreSQL, where the API finds them for "sync all"; an explicit account
//! overrides a discovered one; an account that leaves is dropped at the
//! next refresh.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hangar_tests::{TestApp, moto::Moto};
use serde_json::{Value, json};

fn scheduler(app: &TestApp, moto: &Moto) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hangar-scheduler"))
        .env_clear()
        .envs(app.env.iter())
        .envs(moto.aws_env())
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hangar-scheduler starts")
}

async fn stored(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT account_id, name, role_arn FROM aws_org_accounts ORDER BY account_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows
}

async fn wait_stored(app: &TestApp, want: usize) -> Vec<(String, String, Option<String>)> {
    let start = Instant::now();
    loop {
        let rows = stored(app).await;
        if rows.len() == want {
            return rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "expected {want} accounts stored, have {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn targets(v: &Value) -> Vec<String> {
    let mut t: Vec<String> = v["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {v}"))
        .iter()
        .map(|j| j["account"].as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn the_scheduler_discovers_the_organizations_active_accounts_and_explicit_ones_override() {
    let moto = Moto::start().await;
    let org = |members: Value| moto.post("seed/organization", json!({ "accounts": members }));
    org(json!([
        {"id": "111111111111", "name": "member-a"},
        {"id": "222222222222", "name": "suspended", "state": "SUSPENDED"},
        {"id": "333333333333", "name": "member-c"},
    ]))
    .await;
    let explicit =
        r#"[{"name":"prod","role_arn":"arn:aws:iam::333333333333:role/explicit","regions":["us-east-1"]}]"#;
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_AWS_ORGANIZATION_ROLE", "hangar-reader"),
            ("HANGAR_AWS_ORGANIZATION_REFRESH_SECS", "60"),
            ("HANGAR_AWS_ACCOUNTS", explicit),
            ("HANGAR_AWS_REGIONS", "us-east-1"),
            ("HANGAR_SCHEDULES_FILE", "none"),
            ("HANGAR_SCHEDULER_TICK_MS", "200"),
        ])
        .spawn()
        .await;
    let mut first = scheduler(&app, &moto);

    // The management account (Hangar's own credentials, no role), and the
    // active members through the organization's role; not the suspended one.
    let rows = wait_stored(&app, 3).await;
    assert_eq!(
        rows,
        vec![
            (
                "111111111111".into(),
                "member-a".into(),
                Some("arn:aws:iam::111111111111:role/hangar-reader".into())
            ),
            ("123456789012".into(), "master".into(), None),
            (
                "333333333333".into(),
                "member-c".into(),
                Some("arn:aws:iam::333333333333:role/hangar-reader".into())
            ),
        ]
    );

    // "Sync all" fans out over the listed account and the discovered ones
    // (333... is "prod"). An API started now reads the list at start; the
    // running one within a minute.
    let (base, api) = hangar_tests::spawn_api(app.config()).await;
    let post = |body: Value| {
        let (http, url) = (app.http.clone(), format!("{base}/api/v1/syncs/workspaces"));
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let start = Instant::now();
    let jobs = loop {
        let (status, v) = post(json!({})).await;
        assert!(status == 202 || status == 200, "{status} {v}");
        if targets(&v).len() == 3 {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fan-out never covered the organization: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(targets(&jobs), vec!["111111111111", "123456789012", "prod"]);
    let (status, v) = post(json!({"account": "222222222222"})).await;
    assert_eq!(status, 422, "a suspended account is not synced: {v}");
    api.stop().await.unwrap();

    // A member leaves: the next refresh (a restart forces one) drops it.
    first.kill().unwrap();
    first.wait().unwrap();
    org(json!([{"id": "111111111111", "name": "member-a"}])).await;
    let mut second = scheduler(&app, &moto);
    let rows = wait_stored(&app, 2).await;
    assert_eq!(rows[0].0, "111111111111");
    assert_eq!(rows[1].0, "123456789012");
    second.kill().unwrap();
    second.wait().unwrap();
}
