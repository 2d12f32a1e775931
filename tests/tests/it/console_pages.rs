//! The console's pages over real HTTP against the real API and PostgreSQL:
//! every page and form under every role (the route × role matrix), CSRF and
//! Origin on every form, and each page's own behaviour: schedules, the
//! inventory and a workspace's tabs, billing figures, audit, reports,
//! admin (keys and sessions), jobs filters and bulk actions.

use hangar_tests::{JobStatus, TestApp, token};
use reqwest::StatusCode;
use serde_json::json;

use crate::console::{
    audit_statuses, csrf_of, get_page, location, login, origin_of, post_as_page, post_form, post_page_form,
};

/// Every console page and the least role that sees it.
const PAGES: &[(&str, &str)] = &[
    ("/ui/", "viewer"),
    ("/ui/jobs", "viewer"),
    ("/ui/schedules", "viewer"),
    ("/ui/workers", "viewer"),
    ("/ui/workspaces", "viewer"),
    ("/ui/billing", "viewer"),
    ("/ui/audit", "viewer"),
    ("/ui/reports", "viewer"),
    ("/ui/models", "viewer"),
    ("/ui/schedules/new", "admin"),
    ("/ui/audit/hangar", "admin"),
    ("/ui/admin", "admin"),
];

/// Every state-changing console route (with a target that need not exist:
/// the role is checked first) and the least role it needs.
const FORMS: &[(&str, &str)] = &[
    ("/ui/syncs/workspaces", "operator"),
    ("/ui/jobs/01J0000000000000000000000Z/retry", "admin"),
    ("/ui/jobs/01J0000000000000000000000Z/cancel", "admin"),
    ("/ui/jobs/01J0000000000000000000000Z/delete", "admin"),
    ("/ui/jobs/bulk", "admin"),
    ("/ui/schedules", "admin"),
    ("/ui/schedules/nightly", "admin"),
    ("/ui/schedules/nightly/run", "operator"),
    ("/ui/schedules/nightly/enable", "admin"),
    ("/ui/schedules/nightly/disable", "admin"),
    ("/ui/reports", "operator"),
    ("/ui/models/chat", "operator"),
    ("/ui/admin/keys", "admin"),
    ("/ui/admin/keys/01J0000000000000000000000Z/revoke", "admin"),
    ("/ui/admin/sessions/01J0000000000000000000000Z/revoke", "admin"),
];

const ROLES: &[&str] = &["viewer", "operator", "admin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// The `<form method="post" action="…">` targets of a page.
fn post_targets(html: &str) -> Vec<String> {
    html.match_indices("<form method=\"post\" action=\"")
        .map(|(at, m)| html[at + m.len()..].split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_console_page_and_form_under_every_role_with_csrf_and_origin_checked() {
    let app = TestApp::builder().without_worker().spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    // Without a session, every page and form goes to the login form.
    for (path, _) in PAGES {
        let r = get_page(base, path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/ui/login", "{path}");
    }
    for (path, _) in FORMS {
        let r = post_form(base, path, "csrf=x", Some(&origin_of(base)), None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
    }
    for role in ROLES {
        let (cookie, _) = login(base, &token(&format!("m-{role}"), role)).await;
        let mut csrf = String::new();
        for (path, least) in PAGES {
            let r = get_page(base, path, Some(&cookie)).await;
            let allowed = rank(role) >= rank(least);
            let want = if allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status(), want, "{role} GET {path}");
            let html = r.text().await.unwrap();
            if allowed {
                csrf = csrf_of(&html);
                // Each page offers only the forms this role may send.
                for target in post_targets(&html) {
                    let needed = FORMS
                        .iter()
                        .find(|(f, _)| {
                            let pattern: Vec<&str> = f.split('/').collect();
                            let got: Vec<&str> = target.split('/').collect();
                            pattern.len() == got.len()
                                && pattern.iter().zip(&got).all(|(p, g)| {
                                    p == g || p.starts_with("01J") || *p == "nightly" || *p == "workspaces"
                                })
                        })
                        .map_or("viewer", |(_, r)| r);
                    assert!(
                        target == "/ui/logout" || rank(role) >= rank(needed),
                        "{role} is offered {target} on {path}"
                    );
                }
            }
        }
        if *role == "viewer" {
            let html = get_page(base, "/ui/jobs", Some(&cookie))
                .await
                .text()
                .await
                .unwrap();
            assert_eq!(
                post_targets(&html),
                ["/ui/logout"],
                "a viewer has no write control"
            );
        }
        for (path, least) in FORMS {
            // Missing or wrong CSRF token, another origin, no origin: 403.
            for (body, from) in [
                ("csrf=".to_owned(), Some(origin_of(base))),
                ("csrf=forged".to_owned(), Some(origin_of(base))),
                (format!("csrf={csrf}"), Some("https://evil.example".to_owned())),
                (format!("csrf={csrf}"), None),
            ] {
                let r = post_form(base, path, &body, from.as_deref(), Some(&cookie)).await;
                assert_eq!(
                    r.status(),
                    StatusCode::FORBIDDEN,
                    "{role} POST {path} {body} from {from:?}"
                );
            }
            // With both, a role below the route's is still refused.
            if rank(role) < rank(least) {
                let r = post_as_page(base, path, &csrf, &cookie).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role} POST {path}");
            }
        }
    }
    // Nothing was done by any of it.
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    let refused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE status = 403 AND action LIKE 'console_%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        refused >= (FORMS.len() * 4 * ROLES.len()) as i64,
        "{refused} refusals audited"
    );
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn schedules_are_created_edited_disabled_and_run_from_the_console_with_the_apis_field_messages() {
    let app = TestApp::builder()
        .without_worker()
        .env(
            "HANGAR_AWS_ACCOUNTS",
            r#"[{"name": "prod", "regions": ["us-east-1"]}]"#,
        )
        .spawn()
        .await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    let (cookie, _) = login(base, &token("sam", "admin")).await;
    let html = get_page(base, "/ui/schedules", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("No schedules yet"), "{html}");
    let csrf = csrf_of(&html);
    let form = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        serde_urlencoded::to_string(all).unwrap()
    };
    let good = [
        ("name", "nightly"),
        ("cron", "0 2 * * *"),
        ("timezone", "Europe/Berlin"),
        ("kind", "sync.workspaces"),
        ("payload", "{}"),
        ("enabled", "on"),
        ("catch_up", "fire_once"),
        ("overlap", "skip_if_running"),
        ("jitter_secs", "0"),
    ];
    // A bad cron: the form again, 422, the API's message at the field, the
    // typed values kept.
    let mut bad = good;
    bad[1] = ("cron", "every night");
    let r = post_page_form(base, "/ui/schedules", &form(&bad), &cookie).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"cron-error\""), "{html}");
    assert!(
        html.contains("value=\"every night\"") && html.contains("aria-invalid=\"true\""),
        "{html}"
    );
    // A payload that is not JSON: named too.
    let mut bad = good;
    bad[4] = ("payload", "{nope");
    let r = post_page_form(base, "/ui/schedules", &form(&bad), &cookie).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"payload-error\""));

    // Created: listed with its next five fire times in Berlin and UTC.
    let r = post_page_form(base, "/ui/schedules", &form(&good), &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(location(&r), "/ui/schedules#s-nightly");
    let html = get_page(base, "/ui/schedules", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    let row = &html[html.find("id=\"s-nightly\"").unwrap()..];
    let times = row[..row.find("</ol>").unwrap()].matches("<li>").count();
    assert_eq!(times, 5, "{row}");
    assert!(
        row.contains(" 02:00</time> · 01:00 UTC"),
        "02:00 in Berlin is 01:00 UTC in winter: {row}"
    );

    // Edited (disabled through the form), then enabled again by its button.
    let edit = get_page(base, "/ui/schedules/nightly/edit", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        edit.contains("value=\"0 2 * * *\"") && edit.contains("Europe/Berlin"),
        "{edit}"
    );
    let mut off: Vec<(&str, &str)> = good
        .iter()
        .filter(|(k, _)| *k != "name" && *k != "enabled")
        .copied()
        .collect();
    off[0] = ("cron", "30 3 * * *");
    let r = post_page_form(base, "/ui/schedules/nightly", &form(&off), &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let spec: serde_json::Value = sqlx::query_scalar("SELECT spec FROM schedules WHERE name = 'nightly'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        (spec["cron"].as_str(), spec["enabled"].as_bool()),
        (Some("30 3 * * *"), Some(false))
    );
    let html = get_page(base, "/ui/schedules", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("does not fire while disabled"), "{html}");
    let r = post_as_page(base, "/ui/schedules/nightly/enable", &csrf, &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let enabled: bool =
        sqlx::query_scalar("SELECT (spec->>'enabled')::bool FROM schedules WHERE name = 'nightly'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(enabled);

    // Run now: one job per target; again while open: "already running".
    let r = post_as_page(base, "/ui/schedules/nightly/run", &csrf, &cookie).await;
    let job: String = sqlx::query_scalar("SELECT id FROM job_runs WHERE kind = 'sync.workspaces'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(location(&r), format!("/ui/schedules?ran=nightly&jobs={job}"));
    let r = post_as_page(base, "/ui/schedules/nightly/run", &csrf, &cookie).await;
    assert_eq!(
        location(&r),
        format!("/ui/schedules?ran=nightly&jobs={job}&already=1")
    );
    let html = get_page(base, &location(&r), Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("already running"), "{html}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE kind = 'sync.workspaces'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    // An unknown schedule: the API's 404 on a page.
    let r = post_as_page(base, "/ui/schedules/nope/run", &csrf, &cookie).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        audit_statuses(&pool, "console_create_schedule").await,
        [422, 422, 303]
    );
    assert_eq!(
        audit_statuses(&pool, "console_run_schedule").await,
        [303, 303, 404]
    );
    pool.close().await;
    app.shutdown().await;
}

/// A small synced estate: two workspaces (one with tags, usage, history
/// and a CloudTrail event), costs over two months.
async fn seed_estate(pool: &sqlx::PgPool) {
    sqlx::query(
        "INSERT INTO workspaces (account, region, workspace_id, user_name, state, computer_name, running_mode,
                                 compute_type, tags, directory_id, bundle_id)
         VALUES ('prod', 'us-east-1', 'ws-aaa111', 'alice', 'AVAILABLE', 'PC-ALICE', 'AUTO_STOP', 'STANDARD',
                 '{\"team\": \"finance\"}', 'd-1', 'wsb-1'),
                ('prod', 'us-east-1', 'ws-bbb222', 'bob', 'STOPPED', 'PC-BOB', 'ALWAYS_ON', 'PERFORMANCE',
                 '{}', 'd-1', 'wsb-1')",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO workspace_connections (account, region, workspace_id, connection_state, last_user_connection_at)
         VALUES ('prod', 'us-east-1', 'ws-aaa111', 'CONNECTED', now() - interval '2 hours')",
    )
    .execute(pool)
    .await
    .unwrap();
    // 90 minutes connected yesterday (18 five-minute periods over two hours).
    sqlx::query(
        "INSERT INTO workspace_usage (account, region, workspace_id, hour, periods)
         VALUES ('prod', 'us-east-1', 'ws-aaa111', date_trunc('day', now()) - interval '1 day' + interval '9 hours', 4095),
                ('prod', 'us-east-1', 'ws-aaa111', date_trunc('day', now()) - interval '1 day' + interval '10 hours', 63)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (event_id, account, region, event_time, event_name, event_source, username, resources)
         VALUES ('e1', 'prod', 'us-east-1', now() - interval '1 hour', 'RebootWorkspaces', 'workspaces.amazonaws.com',
                 'ops-bot', '[{\"type\": \"AWS::WorkSpaces::Workspace\", \"name\": \"ws-aaa111\"}]'),
                ('e2', 'prod', 'us-east-1', now() - interval '2 hours', 'CreateWorkspaces', 'workspaces.amazonaws.com',
                 'admin', '[{\"type\": \"AWS::WorkSpaces::Workspace\", \"name\": \"ws-bbb222\"}]')",
    )
    .execute(pool)
    .await
    .unwrap();
    // Costs: today 10 + 2.50 (WorkSpaces, CloudWatch), and on the 1st of
    // this and of last month 100 each (WorkSpaces).
    sqlx::query(
        "INSERT INTO cost_daily (account, view, day, service, usage_type, amount, currency, estimated) VALUES
           ('prod', 'all', current_date, 'Amazon WorkSpaces', 'USE1-UserStorage', 10, 'USD', true),
           ('prod', 'all', current_date, 'AmazonCloudWatch', 'USE1-Metrics', 2.5, 'USD', true),
           ('prod', 'all', date_trunc('month', current_date)::date, 'Amazon WorkSpaces', 'USE1-AutoStop-Standard', 100, 'USD', false),
           ('prod', 'all', (date_trunc('month', current_date) - interval '1 month')::date, 'Amazon WorkSpaces',
            'USE1-AutoStop-Standard', 100, 'USD', false)
         ON CONFLICT DO NOTHING",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_inventory_filters_and_a_workspaces_tabs_billing_and_audit_show_what_was_synced() {
    let app = TestApp::builder().without_worker().spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    seed_estate(&pool).await;
    let base = app.base.as_str();
    let (cookie, _) = login(base, &token("vic", "viewer")).await;
    let page = |path: &'static str| {
        let cookie = cookie.clone();
        async move { get_page(base, path, Some(&cookie)).await.text().await.unwrap() }
    };

    // The inventory, filtered by state and by search; empty fields are "any".
    let html = page("/ui/workspaces?q=&state=STOPPED&account=").await;
    assert!(
        html.contains("ws-bbb222") && !html.contains("ws-aaa111"),
        "{html}"
    );
    let html = page("/ui/workspaces?q=alice").await;
    assert!(
        html.contains("ws-aaa111") && !html.contains("ws-bbb222"),
        "{html}"
    );
    // A bad filter: the API's message, naming the field.
    let r = get_page(base, "/ui/workspaces?state=ASLEEP", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("state: "));
    // Paged with a limit of 1: the next link keeps the filter.
    let html = page("/ui/workspaces?account=prod&limit=1").await;
    assert!(
        html.contains("href=\"/ui/workspaces?account=prod&amp;limit=1&amp;cursor="),
        "{html}"
    );

    // A workspace's tabs.
    let html = page("/ui/workspaces/ws-aaa111?account=prod").await;
    for want in ["PC-ALICE", "AUTO_STOP", "CONNECTED", "tab=usage"] {
        assert!(html.contains(want), "{want}: {html}");
    }
    let html = page("/ui/workspaces/ws-aaa111?account=prod&tab=tags").await;
    assert!(
        html.contains("<th scope=\"row\">team</th><td>finance</td>"),
        "{html}"
    );
    let html = page("/ui/workspaces/ws-aaa111?account=prod&tab=connections").await;
    assert_eq!(
        html.matches("<time class=\"at\"").count(),
        1,
        "one connection seen: {html}"
    );
    let html = page("/ui/workspaces/ws-aaa111?account=prod&tab=usage").await;
    assert!(html.contains("<strong>1.5 hours</strong>"), "90 minutes: {html}");
    assert!(html.contains("role=\"img\"") && html.contains("1.50"), "{html}");
    let html = page("/ui/workspaces/ws-aaa111?account=prod&tab=events").await;
    assert!(
        html.contains("RebootWorkspaces") && !html.contains("CreateWorkspaces"),
        "{html}"
    );
    let html = page("/ui/workspaces/ws-bbb222?account=prod&tab=usage").await;
    assert!(html.contains("No usage data"), "{html}");
    let r = get_page(base, "/ui/workspaces/ws-nope?account=prod", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = get_page(base, "/ui/workspaces/ws-aaa111?tab=secrets", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Billing: the range's total, by service, month to date against the
    // same days of last month (100 on each 1st), and the chart.
    let html = page("/ui/billing").await;
    assert!(
        html.contains("<strong>212.50 USD</strong>") || html.contains("<strong>112.50 USD</strong>"),
        "{html}"
    );
    assert!(
        html.contains("AmazonCloudWatch") && html.contains("role=\"img\""),
        "{html}"
    );
    assert!(html.contains("Whole of last month</dt><dd>100.00 USD"), "{html}");
    assert!(html.contains("Same days last month</dt><dd>100.00 USD"), "{html}");
    assert!(
        html.contains("This month</dt><dd><strong>112.50 USD</strong> (+12.5 % against"),
        "{html}"
    );
    let r = get_page(base, "/ui/billing?start=2026-12-10&end=2026-12-01", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("end: must be after start"));
    let html = page("/ui/billing?start=2001-01-01&end=2001-02-01").await;
    assert!(html.contains("No cost data in this range"), "{html}");

    // Audit: CloudTrail events with a filter; Hangar's log is for admins.
    let html = page("/ui/audit?event_name=CreateWorkspaces").await;
    assert!(
        html.contains("ws-bbb222") && !html.contains("RebootWorkspaces"),
        "{html}"
    );
    assert!(
        !html.contains("/ui/audit/hangar"),
        "no link to the admin log for a viewer: {html}"
    );
    let r = get_page(base, "/ui/audit?start=yesterday", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (admin, _) = login(base, &token("ada", "admin")).await;
    let html = get_page(base, "/ui/audit/hangar?outcome=allowed", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("console_login") && html.contains("jwt:vic"),
        "{html}"
    );
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn admins_create_api_keys_shown_once_and_revoke_keys_and_other_sessions() {
    let app = TestApp::builder().without_worker().spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    let (admin, _) = login(base, &token("ada", "admin")).await;
    let (victim, _) = login(base, &token("vic", "viewer")).await;
    let html = get_page(base, "/ui/admin", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("jwt:vic") && html.contains("this session"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    // A bad name: the API's message, naming it.
    let r = post_page_form(
        base,
        "/ui/admin/keys",
        &format!("csrf={csrf}&name=no+spaces&role=viewer"),
        &admin,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("name: must be 1-64 of"));
    // Created: the token once, never cached; it works against the API.
    let r = post_page_form(
        base,
        "/ui/admin/keys",
        &format!("csrf={csrf}&name=ci-deploy&role=operator&expires_on=2099-01-01"),
        &admin,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let at = html.find("id=\"new-token\"").unwrap();
    let token_value = html[at..]
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(token_value.starts_with("hangar_"), "{token_value}");
    let me = reqwest::Client::new()
        .get(format!("{base}/api/v1/jobs"))
        .bearer_auth(&token_value)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let html = get_page(base, "/ui/admin", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&token_value), "shown once only");
    assert!(
        html.contains("ci-deploy") && html.contains("2099-01-01"),
        "{html}"
    );
    // Revoked: the API refuses it.
    let key_id: String = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'ci-deploy'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let r = post_as_page(base, &format!("/ui/admin/keys/{key_id}/revoke"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let me = reqwest::Client::new()
        .get(format!("{base}/api/v1/jobs"))
        .bearer_auth(&token_value)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // Another's session revoked: their next page is the login form.
    let id: String = sqlx::query_scalar("SELECT id FROM console_sessions WHERE actor = 'jwt:vic'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        get_page(base, "/ui/", Some(&victim)).await.status(),
        StatusCode::OK
    );
    let r = post_as_page(base, &format!("/ui/admin/sessions/{id}/revoke"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&get_page(base, "/ui/", Some(&victim)).await),
        "/ui/login"
    );
    let r = post_as_page(base, &format!("/ui/admin/sessions/{id}/revoke"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "already revoked");
    assert_eq!(audit_statuses(&pool, "console_create_api_key").await, [422, 201]);
    assert_eq!(audit_statuses(&pool, "console_revoke_session").await, [303, 404]);
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn reports_are_asked_for_from_the_console_with_the_apis_parameter_messages() {
    let app = TestApp::builder().without_worker().spawn().await;
    let base = app.base.as_str();
    let (cookie, _) = login(base, &token("otto", "operator")).await;
    let html = get_page(base, "/ui/reports", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("No reports yet") && html.contains("value=\"inventory\""),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let r = post_page_form(
        base,
        "/ui/reports",
        &format!("csrf={csrf}&type=inventory&format=csv&params=%7B%22state%22%3A%22ASLEEP%22%7D"),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("params.state: "), "{html}");
    let r = post_page_form(
        base,
        "/ui/reports",
        &format!("csrf={csrf}&type=inventory&format=csv&params=nope"),
        &cookie,
    )
    .await;
    assert!(r.text().await.unwrap().contains("params: is not JSON"));
    // audit_log needs the admin role: the API's 403 on the page.
    let r = post_page_form(
        base,
        "/ui/reports",
        &format!("csrf={csrf}&type=audit_log&format=csv&params="),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_page_form(
        base,
        "/ui/reports",
        &format!("csrf={csrf}&type=inventory&format=xlsx&params=%7B%22state%22%3A%22STOPPED%22%7D"),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = get_page(base, "/ui/reports", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("inventory (xlsx)") && html.contains("data-live-job="),
        "{html}"
    );
    assert!(
        html.contains("not yet"),
        "no file before a worker runs it: {html}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn jobs_filter_by_requester_time_and_payload_and_bulk_actions_preview_then_act_on_every_match() {
    let app = TestApp::builder()
        .without_worker()
        .env(
            "HANGAR_AWS_ACCOUNTS",
            r#"[{"name": "prod", "regions": ["us-east-1", "eu-west-1", "ap-south-1"]}, {"name": "dev", "regions": ["us-east-1"]}]"#,
        )
        .spawn()
        .await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    // Three dead syncs of prod (one per region: syncs are one open job per
    // target), one of dev, two queued noops.
    let mut dead = Vec::new();
    for (account, region) in [
        ("prod", "us-east-1"),
        ("prod", "eu-west-1"),
        ("prod", "ap-south-1"),
        ("dev", "us-east-1"),
    ] {
        dead.push(
            app.enqueue(
                json!({"kind": "sync.workspaces", "payload": {"account": account, "region": region}}),
            )
            .await,
        );
    }
    hangar_tests::kill_jobs(&app, &dead).await;
    let open = [
        app.enqueue(json!({"kind": "system.noop"})).await,
        app.enqueue(json!({"kind": "system.noop"})).await,
    ];
    let (cookie, _) = login(base, &token("ada", "admin")).await;

    // Payload filter, as pairs: the three of prod, and the capped count.
    let html = get_page(base, "/ui/jobs?payload=account%3Dprod", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<strong>3</strong> jobs match"), "{html}");
    assert!(
        dead[..3].iter().all(|id| html.contains(id.as_str())) && !html.contains(dead[3].as_str()),
        "{html}"
    );
    // The same as JSON, through the API.
    let (status, page) = app
        .get("/api/v1/jobs?payload=%7B%22account%22%3A%22dev%22%7D")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    let (status, err) = app.get("/api/v1/jobs?payload=%5B1%5D").await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("payload")));
    // Requester and time range: everything here is by jwt:test (the test
    // app's caller) and from today; nothing before 2001.
    let html = get_page(base, "/ui/jobs?created_before=2001-01-01", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<strong>0</strong> jobs match"), "{html}");
    let r = get_page(base, "/ui/jobs?created_after=soon", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("created_after: "));
    let r = get_page(base, "/ui/jobs?payload=account", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // "Retry all matching" on the prod filter: first a preview of the 3
    // dead ones, nothing done yet.
    let csrf = csrf_of(&html);
    let r = post_page_form(
        base,
        "/ui/jobs/bulk",
        &format!("csrf={csrf}&do=retry-matching&f_payload=account%3Dprod"),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("Retry 3 dead jobs"), "{html}");
    assert!(html.contains("name=\"confirmed\" value=\"3\""), "{html}");
    assert_eq!(app.record(&dead[0]).await.state, JobStatus::Dead);
    // Confirmed: a system.bulk_jobs job on the control queue, capped at 3.
    let r = post_page_form(
        base,
        "/ui/jobs/bulk",
        &format!("csrf={csrf}&do=retry-matching&f_payload=account%3Dprod&confirmed=3"),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let bulk_id = location(&r).trim_start_matches("/ui/jobs/").to_owned();
    let run = app.record(&bulk_id).await;
    assert_eq!(
        (run.kind.as_str(), run.queue.as_str()),
        ("system.bulk_jobs", "control")
    );
    assert_eq!(run.payload["max_jobs"], 3);
    // A worker serving only the control queue runs it, even though no
    // worker serves the jobs' own queue.
    let mut cfg = app.config();
    cfg.worker.queues = vec![("control".to_owned(), 1)];
    let worker = hangar_tests::spawn_worker(cfg);
    let done = app.wait_record(&bulk_id, JobStatus::Succeeded).await;
    assert_eq!(done.result.as_ref().unwrap()["done"], 3, "{:?}", done.result);
    for id in &dead[..3] {
        assert_eq!(app.record(id).await.state, JobStatus::Queued, "{id} retried");
    }
    assert_eq!(app.record(&dead[3]).await.state, JobStatus::Dead, "dev untouched");

    // Cancel on the ticked jobs: at once, without a preview.
    let ticked = format!("csrf={csrf}&do=cancel-selected&ids={}&ids={}", open[0], open[1]);
    let r = post_page_form(base, "/ui/jobs/bulk", &ticked, &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let bulk_id = location(&r).trim_start_matches("/ui/jobs/").to_owned();
    let done = app.wait_record(&bulk_id, JobStatus::Succeeded).await;
    assert_eq!(done.result.as_ref().unwrap()["done"], 2, "{:?}", done.result);
    for id in &open {
        assert_eq!(app.record(id).await.state, JobStatus::Cancelled);
    }
    // Nothing ticked, or a filter naming a state the action cannot apply to.
    let r = post_page_form(
        base,
        "/ui/jobs/bulk",
        &format!("csrf={csrf}&do=cancel-selected"),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post_page_form(
        base,
        "/ui/jobs/bulk",
        &format!("csrf={csrf}&do=retry-matching&f_state=succeeded&confirmed=5"),
        &cookie,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("payload.filter.state"));
    assert_eq!(
        audit_statuses(&pool, "console_bulk_jobs").await,
        [303, 303, 422, 422]
    );
    worker.stop().await.unwrap();
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn console_requests_count_against_the_users_api_rate_limit() {
    let app = TestApp::builder()
        .without_worker()
        .env("HANGAR_RATE_LIMIT_READ", "3/min")
        .spawn()
        .await;
    let base = app.base.as_str();
    let (cookie, _) = login(base, &token("rita", "viewer")).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = get_page(base, "/ui/jobs", Some(&cookie)).await;
        let status = r.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry >= 1, "{retry}");
            let html = r.text().await.unwrap();
            assert!(html.contains("rate limit for read requests exceeded"), "{html}");
        }
        statuses.push(status.as_u16());
    }
    assert!(
        statuses.starts_with(&[200]) && statuses.ends_with(&[429]),
        "{statuses:?}"
    );
    // The same user's API calls share the budget: the console is not a way around it.
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/jobs"))
        .bearer_auth(token("rita", "viewer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    app.shutdown().await;
}

#[tokio::test]
async fn a_dead_jobs_page_lists_each_attempts_error_and_deletes_it_from_the_dead_set() {
    let app = TestApp::builder().without_worker().spawn().await;
    let base = app.base.as_str();
    let id = app.enqueue(json!({"kind": "system.noop"})).await;
    hangar_tests::kill_jobs(&app, std::slice::from_ref(&id)).await;
    let (admin, _) = login(base, &token("ada", "admin")).await;
    let html = get_page(base, &format!("/ui/jobs/{id}"), Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Attempts' errors"), "{html}");
    let table = &html[html.find("Attempts' errors").unwrap()..];
    assert!(
        table.contains("<td class=\"num\">1</td>") && table.contains("simulated bad credentials"),
        "{table}"
    );
    let csrf = csrf_of(&html);
    let r = post_as_page(base, &format!("/ui/jobs/{id}/delete"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, dead) = app.get("/api/v1/queues/sync/dead").await;
    assert_eq!(status, 200);
    assert!(!dead.to_string().contains(&id), "{dead}");
    // Its record stays, dead.
    assert_eq!(app.record(&id).await.state, JobStatus::Dead);
    let r = post_as_page(base, &format!("/ui/jobs/{id}/delete"), &csrf, &admin).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "gone from the dead set already"
    );
    app.shutdown().await;
}
