//! "Sync now" and the inventory read endpoints: fan-out, one open sync per
//! (kind, account, region), and every bad input answered 4xx naming the field.

use hangar_tests::TestApp;
use serde_json::{Value, json};

const ACCOUNTS: &str = r#"[
  {"name": "prod", "role_arn": "arn:aws:iam::111122223333:role/hangar", "regions": ["us-east-1", "eu-west-1"]},
  {"name": "dev"}
]"#;

async fn app() -> TestApp {
    TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_AWS_ACCOUNTS", ACCOUNTS),
            ("HANGAR_AWS_REGIONS", "us-west-2"),
        ])
        .spawn()
        .await
}

fn targets(v: &Value) -> Vec<(String, String, bool)> {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["account"].as_str().unwrap().to_owned(),
                j["region"].as_str().unwrap().to_owned(),
                j["already"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn sync_all_fans_out_per_account_and_region_and_asking_again_returns_the_open_jobs() {
    let app = app().await;
    let (status, first) = app.post("/api/v1/syncs/workspaces", json!({})).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        targets(&first),
        vec![
            ("prod".into(), "us-east-1".into(), false),
            ("prod".into(), "eu-west-1".into(), false),
            ("dev".into(), "us-west-2".into(), false),
        ]
    );
    for j in first["jobs"].as_array().unwrap() {
        assert_eq!(j["job"]["kind"], "sync.workspaces");
        assert_eq!(j["job"]["payload"]["account"], j["account"]);
    }
    // One account and region, while its sync is still queued: the same job.
    let (status, again) = app
        .post(
            "/api/v1/syncs/workspaces",
            json!({"account": "prod", "region": "eu-west-1"}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(targets(&again), vec![("prod".into(), "eu-west-1".into(), true)]);
    assert_eq!(again["jobs"][0]["job"]["id"], first["jobs"][1]["job"]["id"]);
    assert_eq!(app.queue_row("sync").await["queued"], 3, "nothing new was queued");

    // The generic jobs route keeps the same rule.
    let r = app
        .post_job(json!({"kind": "sync.workspaces", "payload": {"account": "dev", "region": "us-west-2"}}))
        .await;
    assert_eq!(r.status(), 200);
    let dup: Value = r.json().await.unwrap();
    assert_eq!(dup["duplicate"], true, "{dup}");
    assert_eq!(dup["job"]["id"], first["jobs"][2]["job"]["id"]);

    // Billing is account-wide: one job per account; other kinds are separate.
    let (status, billing) = app
        .post("/api/v1/syncs/billing", json!({"start": "2026-11-01"}))
        .await;
    assert_eq!(status, 202, "{billing}");
    assert_eq!(
        targets(&billing),
        vec![
            ("prod".into(), "global".into(), false),
            ("dev".into(), "global".into(), false)
        ]
    );
    assert_eq!(
        billing["jobs"][0]["job"]["payload"],
        json!({"account": "prod", "start": "2026-11-01"})
    );

    // Once the open job ends (here: cancelled), a new sync starts.
    let id = first["jobs"][2]["job"]["id"].as_str().unwrap();
    let (status, _) = app.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    let (status, fresh) = app
        .post("/api/v1/syncs/workspaces", json!({"account": "dev"}))
        .await;
    assert_eq!(status, 202, "{fresh}");
    assert_ne!(fresh["jobs"][0]["job"]["id"].as_str().unwrap(), id);
    app.shutdown().await;
}

/// Many "sync now" at once (their jobs recorded in concurrent batches):
/// still one open job per (kind, account, region), every request answered.
#[tokio::test]
async fn concurrent_sync_now_requests_share_one_open_job_per_target() {
    let app = app().await;
    let requests = (0..20).map(|_| app.post("/api/v1/syncs/workspaces", json!({})));
    let answers = futures_util::future::join_all(requests).await;
    let mut ids = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        assert!(matches!(status, 200 | 202), "{status} {body}");
        for j in body["jobs"].as_array().unwrap() {
            ids.insert(j["job"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 3, "one job per target: {ids:?}");
    assert_eq!(app.queue_row("sync").await["queued"], 3);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_sync_requests_name_the_field() {
    let app = app().await;
    for (kind, body, field) in [
        ("workspaces", json!({"account": "nope"}), "account"),
        (
            "workspaces",
            json!({"account": "prod", "region": "ap-south-1"}),
            "region",
        ),
        ("workspaces", json!({"region": "ap-south-1"}), "region"),
        ("workspaces", json!({"account": 7}), "account"),
        ("workspaces", json!({"since": "yesterday"}), "since"),
        ("workspaces", json!({"start": "2026-11-01"}), "start"),
        ("cloudtrail", json!({"start": "last week"}), "start"),
        (
            "cloudtrail",
            json!({"start": "2026-11-21T00:00:00Z", "end": "2026-11-20T00:00:00Z"}),
            "end",
        ),
        ("billing", json!({"region": "us-east-1"}), "region"),
        ("billing", json!({"start": "2026-11-31"}), "start"),
        (
            "billing",
            json!({"start": "2026-11-10", "end": "2026-11-01"}),
            "end",
        ),
        ("billing", json!({"end": "2100-01-01"}), "end"),
        ("billing", json!({"start": "0999-01-01"}), "start"),
        ("cloudtrail", json!({"end": "2100-01-01T00:00:00Z"}), "end"),
    ] {
        let (status, v) = app.post(&format!("/api/v1/syncs/{kind}"), body.clone()).await;
        assert_eq!(status, 422, "{kind} {body}: {v}");
        assert_eq!(v["error"]["field"], field, "{kind} {body}: {v}");
        assert!(v["error"]["request_id"].is_string());
    }
    let (status, v) = app.post("/api/v1/syncs/everything", json!({})).await;
    assert_eq!(status, 404, "{v}");
    let r = app
        .http
        .post(format!("{}/api/v1/syncs/workspaces", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(app.queue_row("sync").await["queued"], 0, "nothing was queued");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_inventory_queries_name_the_field() {
    let app = app().await;
    for (path, field) in [
        ("/api/v1/workspaces?limit=0", Some("limit")),
        ("/api/v1/workspaces?limit=5000", Some("limit")),
        ("/api/v1/workspaces?cursor=garbage", Some("cursor")),
        (
            "/api/v1/workspaces?include_deleted=maybe",
            Some("include_deleted"),
        ),
        ("/api/v1/workspaces?colour=red", Some("colour")),
        ("/api/v1/costs?colour=red", Some("colour")),
        ("/api/v1/workspaces?state=BOGUS", Some("state")),
        ("/api/v1/directories?limit=x", Some("limit")),
        ("/api/v1/audit-events?start=monday", Some("start")),
        (
            "/api/v1/audit-events?start=2026-11-02&end=2026-11-01",
            Some("end"),
        ),
        ("/api/v1/audit-events?cursor=a~b", Some("cursor")),
        ("/api/v1/costs?group_by=colour", Some("group_by")),
        ("/api/v1/costs?view=some", Some("view")),
        ("/api/v1/costs?start=2026-13-01", Some("start")),
        ("/api/v1/audit-events?start=-5000-01-01", Some("start")),
        ("/api/v1/costs?end=10000-01-01", Some("end")),
        ("/api/v1/workspaces?user=a%00b", None),
        ("/api/v1/workspaces/ws-%00", None),
    ] {
        let (status, v) = app.get(path).await;
        assert!(status == 400 || status == 422, "{path}: {status} {v}");
        assert!(v["error"]["message"].is_string(), "{path}: {v}");
        if let Some(field) = field {
            assert_eq!(v["error"]["field"], field, "{path}: {v}");
        }
    }
    let long = "x".repeat(20_000);
    let (status, v) = app.get(&format!("/api/v1/workspaces?q={long}")).await;
    assert_eq!((status, v["error"]["field"].as_str()), (422, Some("q")), "{v}");
    // Known states in any case are filters, not errors.
    assert_eq!(app.get("/api/v1/workspaces?state=stopped").await.0, 200);
    // Empty tables answer empty pages, not errors.
    for path in [
        "/api/v1/workspaces",
        "/api/v1/directories",
        "/api/v1/audit-events",
        "/api/v1/costs",
    ] {
        let (status, v) = app.get(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert!(v["next_cursor"].is_null(), "{path}: {v}");
    }
    app.shutdown().await;
}
