//! The web console's sessions, over real HTTP against the real API:
//! login with a JWT or an API key, the cookie's attributes, CSRF and Origin
//! checks on every state-changing request, idle and absolute expiry,
//! logout revoking, a path prefix, and hashed assets.

use std::time::Duration;

use hangar_tests::{TestApp, token};
use reqwest::{StatusCode, header};

/// A browser-like client: no automatic redirects, no credentials.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The origin `base` is served from.
pub(crate) fn origin_of(base: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap();
    format!("{scheme}://{}", rest.split('/').next().unwrap())
}

/// `POST {base}{path}` as a form from `origin`, with `cookie`.
pub(crate) async fn post_form(
    base: &str,
    path: &str,
    body: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut r = browser()
        .post(format!("{base}{path}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(o) = origin {
        r = r.header(header::ORIGIN, o);
    }
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("hangar_session={c}"));
    }
    r.send().await.unwrap()
}

pub(crate) async fn get_page(base: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut r = browser().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("hangar_session={c}"));
    }
    r.send().await.unwrap()
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    r.headers()[header::LOCATION].to_str().unwrap().to_owned()
}

/// A console form posted as its page posts it: from the console's origin,
/// with the session's cookie; `body` is the form's fields (CSRF included).
pub(crate) async fn post_page_form(base: &str, path: &str, body: &str, cookie: &str) -> reqwest::Response {
    post_form(base, path, body, Some(&origin_of(base)), Some(cookie)).await
}

/// [`post_page_form`] with only the session's CSRF token.
pub(crate) async fn post_as_page(base: &str, path: &str, csrf: &str, cookie: &str) -> reqwest::Response {
    post_page_form(base, path, &format!("csrf={csrf}"), cookie).await
}

/// Logs in with `credential`; the cookie's value and its whole `Set-Cookie`.
pub(crate) async fn login(base: &str, credential: &str) -> (String, String) {
    let r = post_form(
        base,
        "/ui/login",
        &format!("credential={credential}"),
        Some(&origin_of(base)),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let set = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    let value = set
        .strip_prefix("hangar_session=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    (value, set)
}

/// The CSRF token a signed-in page carries in its forms.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with the CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn audit_statuses(pool: &sqlx::PgPool, action: &str) -> Vec<i32> {
    sqlx::query_scalar("SELECT status::int FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_console_session_is_opened_with_a_credential_checked_on_every_write_and_revoked_by_logout() {
    let app = TestApp::builder().without_worker().spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    let origin = origin_of(base);

    // Without a session, pages send the browser to the login form.
    let r = get_page(base, "/ui/", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/login");
    let r = get_page(base, "/ui/login", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"credential\"") && !html.contains("<script>"),
        "{html}"
    );

    // Bad logins name the field and open nothing.
    let r = post_form(base, "/ui/login", "credential=", Some(&origin), None).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("credential: paste an API key or a JWT")
    );
    let r = post_form(
        base,
        "/ui/login",
        "credential=hangar_nope_nope",
        Some(&origin),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8",
        "a page, not JSON"
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<p class=\"error\" role=\"alert\">credential: ")
    );
    // A login posted from another site (login CSRF), or with no Origin.
    let jwt = token("olivia", "operator");
    for bad in [Some("https://evil.example"), None] {
        let r = post_form(base, "/ui/login", &format!("credential={jwt}"), bad, None).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{bad:?}");
        assert!(r.headers().get(header::SET_COOKIE).is_none());
    }
    let opened: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(opened, 0);

    // A JWT logs in: an HttpOnly, SameSite=Strict cookie for /ui only (not
    // Secure: this server is plain HTTP), and only its digest is stored.
    let (cookie, set) = login(base, &jwt).await;
    assert_eq!(
        set,
        format!("hangar_session={cookie}; Path=/ui; Max-Age=43200; HttpOnly; SameSite=Strict")
    );
    let (stored, actor, role): (Vec<u8>, String, String) =
        sqlx::query_as("SELECT token_sha256, actor, role FROM console_sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&cookie));
    assert_eq!((actor.as_str(), role.as_str()), ("jwt:olivia", "operator"));

    let r = get_page(base, "/ui/", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::REFERRER_POLICY], "same-origin");
    let html = r.text().await.unwrap();
    for want in [
        "jwt:olivia (operator)",
        "Queues",
        ">sync<",
        ">reports<",
        ">inference<",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let csrf = csrf_of(&html);

    // Logout without the CSRF token, with another's, or from another
    // origin: 403, audited, and the session stays open.
    for (body, from) in [
        (String::new(), Some(origin.as_str())),
        ("csrf=forged".to_owned(), Some(origin.as_str())),
        (format!("csrf={csrf}"), Some("https://evil.example")),
        (format!("csrf={csrf}"), None),
    ] {
        let r = post_form(base, "/ui/logout", &body, from, Some(&cookie)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{body} from {from:?}");
    }
    assert_eq!(
        get_page(base, "/ui/", Some(&cookie)).await.status(),
        StatusCode::OK
    );

    // With both: revoked, the cookie cleared, and the old cookie is worth nothing.
    let r = post_as_page(base, "/ui/logout", &csrf, &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/login");
    assert!(
        r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("hangar_session=; Path=/ui; Max-Age=0")
    );
    let r = get_page(base, "/ui/", Some(&cookie)).await;
    assert_eq!(location(&r), "/ui/login");
    let revoked: bool = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(revoked);

    // An API key logs in too, with its own role.
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            serde_json::json!({"name": "viewer-desk", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let (cookie, _) = login(base, key["token"].as_str().unwrap()).await;
    let html = get_page(base, "/ui/", Some(&cookie)).await.text().await.unwrap();
    assert!(html.contains("key:viewer-desk (viewer)"), "{html}");

    // Every console action is in the audit log, refusals included.
    assert_eq!(audit_statuses(&pool, "console_login").await, [303, 303]);
    assert_eq!(
        audit_statuses(&pool, "console_logout").await,
        [403, 403, 403, 403, 303]
    );
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn console_sessions_end_after_the_idle_timeout_and_after_the_absolute_limit() {
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_CONSOLE_IDLE_TIMEOUT_SECS", "1"),
            ("HANGAR_CONSOLE_SESSION_MAX_SECS", "3"),
        ])
        .spawn()
        .await;
    let base = app.base.as_str();
    let jwt = token("ida", "viewer");

    // Busy (a page every 0.5 s, never idle for 1 s) and still ended at 3 s.
    let (cookie, set) = login(base, &jwt).await;
    assert!(set.contains("Max-Age=3;"), "{set}");
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2_500) {
        let r = get_page(base, "/ui/", Some(&cookie)).await;
        assert_eq!(r.status(), StatusCode::OK, "at {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = get_page(base, "/ui/", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "past the absolute limit");

    // Idle for longer than 1 s: ended.
    let (cookie, _) = login(base, &jwt).await;
    assert_eq!(
        get_page(base, "/ui/", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = get_page(base, "/ui/", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "idle past the timeout");
    assert_eq!(location(&r), "/ui/login");
    app.shutdown().await;
}

#[tokio::test]
async fn behind_a_path_prefix_links_cookies_and_origins_follow_the_public_url() {
    let app = TestApp::builder()
        .without_worker()
        .env("HANGAR_PUBLIC_URL", "https://console.example/hangar/")
        .spawn()
        .await;
    let base = app.base.as_str();
    let public = "https://console.example";
    let r = get_page(base, "/ui/", None).await;
    assert_eq!(location(&r), "/hangar/ui/login");
    let html = get_page(base, "/ui/login", None).await.text().await.unwrap();
    assert!(html.contains("action=\"/hangar/ui/login\""), "{html}");
    assert!(html.contains("href=\"/hangar/ui/assets/console."), "{html}");

    // The Origin must be the public URL's, not the address the proxy used.
    let jwt = token("pat", "admin");
    let r = post_form(
        base,
        "/ui/login",
        &format!("credential={jwt}"),
        Some(&origin_of(base)),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(
        base,
        "/ui/login",
        &format!("credential={jwt}"),
        Some(public),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/hangar/ui/");
    let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("; Path=/hangar/ui;") && set.ends_with("; Secure"),
        "over TLS: {set}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn assets_are_served_under_hashed_names_for_a_year() {
    let app = TestApp::builder().without_worker().spawn().await;
    let base = app.base.as_str();
    let html = get_page(base, "/ui/login", None).await.text().await.unwrap();
    let at = html.find("/ui/assets/").unwrap();
    let path = html[at..].split('"').next().unwrap();
    assert!(regex_like_hashed(path), "a content hash in the name: {path}");
    let r = get_page(base, path, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert_eq!(
        r.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(r.text().await.unwrap().contains("--accent"));
    let r = get_page(base, "/ui/assets/console.000000000000.css", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}

/// `/ui/assets/console.<12 hex digits>.css`.
fn regex_like_hashed(path: &str) -> bool {
    path.strip_prefix("/ui/assets/console.")
        .and_then(|rest| rest.strip_suffix(".css"))
        .is_some_and(|hash| hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The console in a real headless Chromium (tests/console/browser.py, with
/// selenium, Debian's chromium and chromedriver, and axe-core from npm; all
/// installed by scripts/services.sh). Screenshots land in
/// tests/console/screenshots/.
#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let app = TestApp::builder()
        .without_worker()
        .env("HANGAR_AWS_ACCOUNTS", ACCOUNTS)
        .spawn()
        .await;
    // A dead job to retry, then a queued one to cancel.
    let dead = app.enqueue(serde_json::json!({"kind": "system.noop"})).await;
    hangar_tests::kill_jobs(&app, &[dead]).await;
    app.enqueue(serde_json::json!({"kind": "system.noop"})).await;
    // A week of costs for the billing page's chart.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO cost_daily (account, view, day, service, usage_type, amount, currency, estimated)
         SELECT 'prod', 'all', current_date - d, s.service, 'usage', 10 + d * s.k, 'USD', d < 2
         FROM generate_series(0, 6) d,
              (VALUES ('Amazon WorkSpaces', 3), ('AmazonCloudWatch', 1), ('AWS Directory Service', 2)) s(service, k)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(root.join("browser.py"))
            .arg(&base)
            .arg(token("browser-operator", "operator"))
            .arg(token("browser-viewer", "viewer"))
            .arg(token("browser-admin", "admin"))
            .arg(root.join("screenshots"))
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.shutdown().await;
}

const ACCOUNTS: &str = r#"[{"name": "prod", "regions": ["us-east-1", "eu-west-1"]}]"#;

#[tokio::test]
async fn sync_now_starts_one_job_per_target_says_already_running_and_refuses_viewers() {
    let app = TestApp::builder()
        .without_worker()
        .env("HANGAR_AWS_ACCOUNTS", ACCOUNTS)
        .spawn()
        .await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    let (cookie, _) = login(base, &token("otto", "operator")).await;
    let html = get_page(base, "/ui/", Some(&cookie)).await.text().await.unwrap();
    assert!(html.contains("action=\"/ui/syncs/workspaces\""), "{html}");
    assert!(html.contains("never"), "nothing synced yet: {html}");
    let csrf = csrf_of(&html);

    let r = post_as_page(base, "/ui/syncs/workspaces", &csrf, &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/?sync=workspaces");
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM job_runs WHERE kind = 'sync.workspaces' AND requested_by = 'jwt:otto' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ids.len(), 2, "one job per region");
    let html = get_page(base, &location(&r), Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sync workspaces started"), "{html}");
    for id in &ids {
        assert!(
            html.contains(&format!("href=\"/ui/jobs/{id}\"")),
            "{id} linked: {html}"
        );
    }

    // Pressed again while those are open: the same jobs, "already running".
    let r = post_as_page(base, "/ui/syncs/workspaces", &csrf, &cookie).await;
    assert_eq!(location(&r), "/ui/?sync=workspaces&already=1");
    let html = get_page(base, &location(&r), Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("already running"), "{html}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2);

    // The job's page.
    let html = get_page(base, &format!("/ui/jobs/{}", ids[0]), Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    for want in [
        "sync.workspaces",
        "&quot;account&quot;: &quot;prod&quot;",
        "jwt:otto",
        "queued",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let r = get_page(base, "/ui/jobs/01J0000000000000000000000Z", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An unknown kind: the API's own message.
    let r = post_as_page(base, "/ui/syncs/nope", &csrf, &cookie).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no sync called &quot;nope&quot;")
    );

    // A viewer sees no button, and a forged POST with its own valid CSRF
    // token is still refused.
    let (viewer, _) = login(base, &token("vera", "viewer")).await;
    let html = get_page(base, "/ui/", Some(&viewer)).await.text().await.unwrap();
    assert!(!html.contains("/ui/syncs/"), "{html}");
    let csrf = csrf_of(&html);
    let r = post_as_page(base, "/ui/syncs/billing", &csrf, &viewer).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        audit_statuses(&pool, "console_start_sync").await,
        [303, 303, 404, 403]
    );
    // Each entry names the path the form was posted to and the peer.
    let (path, ip): (String, Option<String>) = sqlx::query_as(
        "SELECT path, client_ip FROM audit_log WHERE action = 'console_start_sync' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (path.as_str(), ip.as_deref()),
        ("/ui/syncs/workspaces", Some("127.0.0.1"))
    );
    pool.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_jobs_page_filters_and_pages_and_admins_retry_dead_jobs_and_cancel_open_ones() {
    let app = TestApp::builder().without_worker().spawn().await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let base = app.base.as_str();
    // One dead job (the failing worker takes everything queued), then two open ones.
    let mut ids = vec![app.enqueue(serde_json::json!({"kind": "system.noop"})).await];
    let dead = ids[0].clone();
    hangar_tests::kill_jobs(&app, std::slice::from_ref(&dead)).await;
    for _ in 0..2 {
        ids.push(app.enqueue(serde_json::json!({"kind": "system.noop"})).await);
    }

    let (admin, _) = login(base, &token("ada", "admin")).await;
    // Filtered by state: only the dead one; the filter form keeps the choice.
    let html = get_page(base, "/ui/jobs?kind=&state=dead", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&dead) && !html.contains(&ids[1]) && !html.contains(&ids[2]),
        "{html}"
    );
    assert!(html.contains("<option value=\"dead\" selected>"), "{html}");
    // Paged: a limit of 1 links the next page, which holds the next job.
    let html = get_page(base, "/ui/jobs?kind=system.noop&limit=1", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&ids[2]) && !html.contains(&format!("/ui/jobs/{}\"", ids[1])),
        "{html}"
    );
    let at = html.find("rel=\"next\"").is_some();
    assert!(at, "{html}");
    let next = html[html.find("href=\"/ui/jobs?").unwrap() + 6..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let html2 = get_page(base, &next, Some(&admin)).await.text().await.unwrap();
    assert!(html2.contains(&ids[1]), "{next}: {html2}");
    // A bad filter: the API's message, naming the field.
    let r = get_page(base, "/ui/jobs?state=sleeping", Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("state: must be one of"));

    // The dead job's page offers Retry (not Cancel); retrying reopens it.
    let html = get_page(base, &format!("/ui/jobs/{dead}"), Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("/retry\"") && !html.contains("/cancel\""), "{html}");
    assert!(
        html.contains("simulated bad credentials"),
        "the last error shown: {html}"
    );
    let csrf = csrf_of(&html);
    let r = post_as_page(base, &format!("/ui/jobs/{dead}/retry"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/ui/jobs/{dead}"));
    assert_eq!(app.record(&dead).await.state, hangar_tests::JobStatus::Queued);
    // Retrying it again: the API's 409, on a page.
    let r = post_as_page(base, &format!("/ui/jobs/{dead}/retry"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("only dead jobs can be retried"));

    // A queued job's page offers Cancel; cancelling it ends it.
    let open = &ids[1];
    let r = post_as_page(base, &format!("/ui/jobs/{open}/cancel"), &csrf, &admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.record(open).await.state, hangar_tests::JobStatus::Cancelled);

    // An operator sees neither button and is refused a forged POST.
    let (operator, _) = login(base, &token("olga", "operator")).await;
    let html = get_page(base, &format!("/ui/jobs/{}", ids[2]), Some(&operator))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("/cancel\"") && !html.contains("/retry\""),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let r = post_as_page(base, &format!("/ui/jobs/{}/cancel", ids[2]), &csrf, &operator).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.record(&ids[2]).await.state, hangar_tests::JobStatus::Queued);
    assert_eq!(audit_statuses(&pool, "console_retry_job").await, [303, 409]);
    assert_eq!(audit_statuses(&pool, "console_cancel_job").await, [303, 403]);
    pool.close().await;
    app.shutdown().await;
}
