//! Authentication, roles, API keys, rate limits, hardening and the audit
//! log, against the real API (in process, and as `hangar-api` processes
//! where replicas or captured logs matter), Redis and PostgreSQL.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use hangar_tests::{
    OwnRedis, TEST_JWT_AUDIENCE, TEST_JWT_ISSUER, TEST_JWT_SECRET, TestApp, client_with_token, free_port,
    sign_hs256, token,
};
use reqwest::Method;
use serde_json::{Value, json};

const API: &str = env!("CARGO_BIN_EXE_hangar-api");

fn claims(sub: &str, role: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "role": role, "iss": TEST_JWT_ISSUER, "aud": TEST_JWT_AUDIENCE, "iat": now, "exp": now + exp_offset})
}

async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = client.request(method, url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

/// Creates an API key through the API (as admin); returns (id, token).
async fn create_key(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let (status, body) = app
        .post("/api/v1/api-keys", json!({"name": name, "role": role}))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["api_key"]["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

fn role_rank(r: &str) -> u8 {
    match r {
        "viewer" => 1,
        "operator" => 2,
        "admin" => 3,
        other => panic!("unknown role {other}"),
    }
}

/// A concrete path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{kind}", "workspaces")
        .replace("{queue}", "sync")
        .replace("{id}", "01JD3Q6W8Y4N2M5K7P9R1T3V5X")
        .replace("{name}", "no-such-schedule")
}

#[tokio::test]
async fn every_route_answers_each_credential_as_its_declared_role_says() {
    let app = TestApp::builder().without_worker().spawn().await;
    let anonymous = reqwest::Client::new();
    let (status, _, spec) = send(
        &anonymous,
        Method::GET,
        &format!("{}/openapi.json", app.base),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, revoked_token) = create_key(&app, "revoked", "admin").await;
    let (revoked_id, _) = {
        let (_, keys) = app.get("/api/v1/api-keys").await;
        (keys["api_keys"][0]["id"].as_str().unwrap().to_owned(), ())
    };
    let (status, _) = {
        let r = app
            .http
            .delete(format!("{}/api/v1/api-keys/{revoked_id}", app.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 200);
    let (_, viewer_key) = create_key(&app, "viewer-key", "viewer").await;

    // Credentials that must be refused with 401.
    let refused: Vec<(&str, reqwest::Client)> = vec![
        ("none", anonymous.clone()),
        (
            "expired",
            client_with_token(&sign_hs256(&claims("a", "admin", -3600), TEST_JWT_SECRET)),
        ),
        (
            "bad signature",
            client_with_token(&sign_hs256(
                &claims("a", "admin", 3600),
                "another-secret-another-secret-xx",
            )),
        ),
        ("revoked key", client_with_token(&revoked_token)),
        ("garbage", client_with_token("not-a-token")),
    ];
    // Credentials with a role.
    let roles: Vec<(&str, reqwest::Client)> = vec![
        ("viewer", client_with_token(&token("v", "viewer"))),
        ("viewer", client_with_token(&viewer_key)),
        ("operator", client_with_token(&token("o", "operator"))),
        ("admin", client_with_token(&token("a", "admin"))),
    ];
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let url = format!("{}{}", app.base, concrete(path));
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} declares no security"));
            let public = security
                .iter()
                .any(|s| s.as_object().is_some_and(|o| o.is_empty()));
            let needed = security
                .iter()
                .find_map(|s| s["bearer"][0].as_str())
                .map(role_rank);
            for (what, client) in &refused {
                let (status, headers, answer) = send(client, method.clone(), &url, body.clone()).await;
                if public {
                    assert!(
                        ![401, 403].contains(&status),
                        "{what} on public {method} {path}: {status}"
                    );
                } else {
                    assert_eq!(status, 401, "{what} on {method} {path}: {answer}");
                    assert_eq!(answer["error"]["code"], "unauthorized");
                    assert!(headers.contains_key("www-authenticate"));
                }
                checked += 1;
            }
            for (role, client) in &roles {
                let (status, _, answer) = send(client, method.clone(), &url, body.clone()).await;
                let allowed = public || needed.is_some_and(|n| role_rank(role) >= n);
                if allowed {
                    assert!(
                        ![401, 403].contains(&status) && status < 500,
                        "{role} on {method} {path}: {status} {answer}"
                    );
                    assert_ne!(
                        answer["error"]["message"], "no such route",
                        "{method} {path} is documented but not routed"
                    );
                } else {
                    assert_eq!(status, 403, "{role} on {method} {path}: {answer}");
                    assert_eq!(answer["error"]["code"], "forbidden");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "walked {checked} combinations");
}

#[tokio::test]
async fn jwts_are_checked_for_issuer_audience_time_and_algorithm() {
    let app = TestApp::builder().without_worker().spawn().await;
    let url = format!("{}/api/v1/jobs", app.base);
    let try_token = |t: String| {
        let url = url.clone();
        async move { send(&client_with_token(&t), Method::GET, &url, None).await }
    };
    let now = chrono::Utc::now().timestamp();
    let mut c = claims("alice", "viewer", 3600);
    assert_eq!(try_token(sign_hs256(&c, TEST_JWT_SECRET)).await.0, 200);
    // Expired 10 s ago: inside the 30 s leeway.
    c["exp"] = json!(now - 10);
    assert_eq!(try_token(sign_hs256(&c, TEST_JWT_SECRET)).await.0, 200);
    c["exp"] = json!(now - 120);
    let (status, _, body) = try_token(sign_hs256(&c, TEST_JWT_SECRET)).await;
    assert_eq!(
        (status, body["error"]["message"].as_str().unwrap()),
        (401, "the token has expired (exp)")
    );
    let mut c = claims("alice", "viewer", 3600);
    c["nbf"] = json!(now + 600);
    assert!(
        try_token(sign_hs256(&c, TEST_JWT_SECRET)).await.2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nbf")
    );
    for (field, value, word) in [("iss", "someone-else", "iss"), ("aud", "another-api", "aud")] {
        let mut c = claims("alice", "viewer", 3600);
        c[field] = json!(value);
        let (status, _, body) = try_token(sign_hs256(&c, TEST_JWT_SECRET)).await;
        assert_eq!(status, 401);
        assert!(
            body["error"]["message"].as_str().unwrap().contains(word),
            "{body}"
        );
    }
    for missing in ["exp", "sub"] {
        let mut c = claims("alice", "viewer", 3600);
        c.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            try_token(sign_hs256(&c, TEST_JWT_SECRET)).await.0,
            401,
            "without {missing}"
        );
    }
    // No Hangar role: authenticated, but forbidden.
    let (status, _, body) = try_token(sign_hs256(&claims("alice", "superuser", 3600), TEST_JWT_SECRET)).await;
    assert_eq!(status, 403, "{body}");
    // alg: none, with and without a signature.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("eve", "admin", 3600))
    );
    assert_eq!(try_token(unsigned).await.0, 401);
    // HS512 with the right secret: not an accepted algorithm.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims("eve", "admin", 3600),
        &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(try_token(hs512).await.0, 401);
}

/// An RSA and a P-256 key pair made with openssl in `dir`.
fn keypairs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl {args:?}");
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa.pem",
    ]);
    run(&["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec.pem",
    ]);
    run(&["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"]);
    run(&[
        "pkey",
        "-in",
        "ec.pem",
        "-pubout",
        "-outform",
        "DER",
        "-out",
        "ec.pub.der",
    ]);
}

fn sign(
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    key: &jsonwebtoken::EncodingKey,
    c: &Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, c, key).unwrap()
}

#[tokio::test]
async fn rs256_from_a_pem_file_and_es256_from_a_jwks_with_no_algorithm_confusion() {
    let dir = std::env::temp_dir().join(format!("hangar-keys-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    keypairs(&dir);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    // The JWKS: the P-256 public key's x and y are the last 64 bytes of its DER.
    let der = read("ec.pub.der");
    let point = &der[der.len() - 64..];
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "x": b64(&point[..32]), "y": b64(&point[32..])},
        // A symmetric key in a JWKS must never be used.
        {"kty": "oct", "kid": "oct-1", "k": b64(b"published-secret-published-secret")},
    ]});
    let jwks_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", jwks_listener.local_addr().unwrap());
    let served = jwks.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || async move { axum::Json(served) }),
        );
        axum::serve(jwks_listener, app).await.unwrap();
    });
    let pem_path = dir.join("rsa.pub.pem");
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_JWT_PUBLIC_KEY_FILE", pem_path.to_str().unwrap()),
            ("HANGAR_JWT_JWKS_URL", &jwks_url),
        ])
        .spawn()
        .await;
    let url = format!("{}/api/v1/jobs", app.base);
    let status = |t: String| {
        let url = url.clone();
        async move { send(&client_with_token(&t), Method::GET, &url, None).await.0 }
    };
    use jsonwebtoken::{Algorithm, EncodingKey};
    let c = claims("svc", "viewer", 3600);
    let rsa = EncodingKey::from_rsa_pem(&read("rsa.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&read("ec.pem")).unwrap();
    assert_eq!(
        status(sign(Algorithm::RS256, None, &rsa, &c)).await,
        200,
        "RS256, PEM key"
    );
    assert_eq!(
        status(sign(Algorithm::ES256, Some("ec-1"), &ec, &c)).await,
        200,
        "ES256, JWKS key"
    );
    assert_eq!(
        status(sign(Algorithm::ES256, Some("unknown"), &ec, &c)).await,
        401,
        "unknown kid"
    );
    assert_eq!(
        status(sign(Algorithm::ES256, None, &ec, &c)).await,
        401,
        "ES256 without kid, PEM is RSA"
    );
    // Algorithm confusion: HS256 "signed" with the public key or the JWKS
    // secret is verified only against the HS256 secret, and fails.
    let public_as_secret = EncodingKey::from_secret(&read("rsa.pub.pem"));
    assert_eq!(
        status(sign(Algorithm::HS256, None, &public_as_secret, &c)).await,
        401
    );
    let oct = EncodingKey::from_secret(b"published-secret-published-secret");
    assert_eq!(status(sign(Algorithm::HS256, Some("oct-1"), &oct, &c)).await, 401);
    // The RSA key signing as ES256's kid: the key type does not match.
    assert_eq!(status(sign(Algorithm::RS256, Some("ec-1"), &rsa, &c)).await, 401);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn api_keys_are_created_once_listed_without_secrets_revoked_and_expire() {
    let app = TestApp::builder().without_worker().spawn().await;
    let (id, token) = create_key(&app, "ci-deploy", "operator").await;
    assert!(token.starts_with("hangar_"), "{token}");
    let (status, body) = app
        .post("/api/v1/api-keys", json!({"name": "ci-deploy", "role": "viewer"}))
        .await;
    assert_eq!(status, 409, "{body}");
    for (body, field) in [
        (json!({"role": "viewer"}), "name"),
        (json!({"name": "has space", "role": "viewer"}), "name"),
        (json!({"name": "x", "role": "root"}), "role"),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": "x", "role": "viewer", "extra": 1}), "extra"),
    ] {
        let (status, answer) = app.post("/api/v1/api-keys", body.clone()).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {answer}"
        );
    }
    let (_, listed) = app.get("/api/v1/api-keys").await;
    let text = listed.to_string();
    assert!(!text.contains(&token) && !text.contains("token_sha256"), "{text}");
    assert_eq!(listed["api_keys"][0]["name"], "ci-deploy");

    let key = client_with_token(&token);
    let (status, _, job) = send(
        &key,
        Method::POST,
        &format!("{}/api/v1/jobs", app.base),
        Some(json!({"kind": "system.noop"})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(job["job"]["requested_by"], "key:ci-deploy");
    let (status, _, _) = send(&key, Method::GET, &format!("{}/api/v1/api-keys", app.base), None).await;
    assert_eq!(status, 403, "an operator key cannot manage keys");
    // last_used_at is recorded (off the request path).
    let mut used = Value::Null;
    for _ in 0..50 {
        let (_, listed) = app.get("/api/v1/api-keys").await;
        used = listed["api_keys"][0]["last_used_at"].clone();
        if !used.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(used.is_string(), "last_used_at not recorded");

    let r = app
        .http
        .delete(format!("{}/api/v1/api-keys/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, body) = send(&key, Method::GET, &format!("{}/api/v1/jobs", app.base), None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (_, listed) = app.get("/api/v1/api-keys").await;
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 0);
    let (_, listed) = app.get("/api/v1/api-keys?include_revoked=true").await;
    assert_eq!(listed["api_keys"][0]["revoked_by"], "jwt:test-admin");
    // The name is free again once revoked.
    let (_, expiring) = create_key(&app, "ci-deploy", "viewer").await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE name = 'ci-deploy' AND revoked_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    let (status, _, body) = send(
        &client_with_token(&expiring),
        Method::GET,
        &format!("{}/api/v1/jobs", app.base),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // A token with a known prefix but a wrong secret.
    let forged = format!("{}{}", &expiring[..20], "0".repeat(expiring.len() - 20));
    assert_eq!(
        send(
            &client_with_token(&forged),
            Method::GET,
            &format!("{}/api/v1/jobs", app.base),
            None
        )
        .await
        .0,
        401
    );
}

/// `hangar-api` as a process on a free port with `env`; stderr to `log`.
fn api_process(
    env: &std::collections::HashMap<String, String>,
    extra: &[(&str, &str)],
    log: Option<&std::path::Path>,
) -> (Child, String) {
    let port = free_port();
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    let child = Command::new(API)
        .env_clear()
        .envs(env.iter())
        .envs(extra.iter().map(|(k, v)| (*k, *v)))
        .env("HANGAR_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("hangar-api starts");
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_up(base: &str) {
    for _ in 0..300 {
        if reqwest::get(format!("{base}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not come up");
}

#[tokio::test]
async fn the_rate_limit_holds_across_two_api_processes() {
    let app = TestApp::builder().without_worker().spawn().await;
    let limits = [
        ("HANGAR_RATE_LIMIT_WRITE", "5/min"),
        ("HANGAR_RATE_LIMIT_READ", "4/hour"),
    ];
    let (mut a, base_a) = api_process(&app.env, &limits, None);
    let (mut b, base_b) = api_process(&app.env, &limits, None);
    wait_up(&base_a).await;
    wait_up(&base_b).await;
    let alice = client_with_token(&token("alice", "operator"));
    let bob = client_with_token(&token("bob", "operator"));
    let mut allowed = 0;
    let mut last = None;
    for i in 0..8 {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        let (status, headers, body) = send(
            &alice,
            Method::POST,
            &format!("{base}/api/v1/jobs"),
            Some(json!({"kind": "system.noop"})),
        )
        .await;
        assert_eq!(headers["ratelimit-limit"], "5");
        match status {
            202 => {
                allowed += 1;
                assert_eq!(
                    headers["ratelimit-remaining"].to_str().unwrap(),
                    (5 - allowed).to_string()
                );
            }
            429 => last = Some((headers, body)),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(allowed, 5, "5 of 8 writes across both replicas");
    let (headers, body) = last.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["request_id"].is_string());
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    assert!(headers.contains_key("ratelimit-reset"));
    // Another user has their own budget; reads have theirs.
    assert_eq!(
        send(
            &bob,
            Method::POST,
            &format!("{base_b}/api/v1/jobs"),
            Some(json!({"kind": "system.noop"}))
        )
        .await
        .0,
        202
    );
    assert_eq!(
        send(&alice, Method::GET, &format!("{base_a}/api/v1/jobs"), None)
            .await
            .0,
        200
    );
    // Without credentials the client address is limited (4 reads an hour), before the 401.
    let anonymous = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        statuses.push(
            send(&anonymous, Method::GET, &format!("{base}/api/v1/jobs"), None)
                .await
                .0,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    // Health and docs are never limited.
    for _ in 0..10 {
        assert_eq!(
            reqwest::get(format!("{base_a}/health/live"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}

/// The `hangar_api_key_cache_lookups` count of `result` on the API at `base`.
async fn key_cache_count(base: &str, result: &str) -> u64 {
    let admin = client_with_token(&token("metrics-reader", "admin"));
    let text = admin
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("hangar_api_key_cache_lookups_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Polls `base` with `key` until it answers 401; how long that took.
async fn time_until_refused(key: &reqwest::Client, base: &str, within: Duration) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let (status, _, body) = send(key, Method::GET, &format!("{base}/api/v1/jobs"), None).await;
        if status == 401 {
            assert!(
                body["error"]["message"].as_str().unwrap().contains("revoked"),
                "{body}"
            );
            return start.elapsed();
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            start.elapsed() < within,
            "{base} still accepts the revoked key after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_replica_within_a_second_despite_their_caches() {
    let app = TestApp::builder().without_worker().spawn().await;
    let (mut a, base_a) = api_process(&app.env, &[], None);
    let (mut b, base_b) = api_process(&app.env, &[], None);
    wait_up(&base_a).await;
    wait_up(&base_b).await;
    let (id, token) = create_key(&app, "replicated", "operator").await;
    let key = client_with_token(&token);
    // Both replicas verify the key and then answer it from their caches.
    for base in [&base_a, &base_b] {
        for _ in 0..5 {
            let (status, _, body) = send(&key, Method::GET, &format!("{base}/api/v1/jobs"), None).await;
            assert_eq!(status, 200, "{body}");
        }
        assert!(
            key_cache_count(base, "hit").await >= 3,
            "{base} did not use its cache"
        );
    }
    // Revoked through a third replica (the test's own API).
    let r = app
        .http
        .delete(format!("{}/api/v1/api-keys/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let on_a = time_until_refused(&key, &base_a, Duration::from_secs(1)).await;
    let on_b = time_until_refused(&key, &base_b, Duration::from_secs(1)).await;
    eprintln!("revocation reached replica a in {on_a:?}, b in {on_b:?}");
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}

#[tokio::test]
async fn a_replica_that_cannot_hear_revocations_stops_trusting_its_cache() {
    let redis = OwnRedis::start();
    let app = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .spawn()
        .await;
    let (mut a, base_a) = api_process(&app.env, &[], None);
    wait_up(&base_a).await;
    let (id, token) = create_key(&app, "unheard", "operator").await;
    let key = client_with_token(&token);
    for _ in 0..5 {
        assert_eq!(
            send(&key, Method::GET, &format!("{base_a}/api/v1/jobs"), None)
                .await
                .0,
            200
        );
    }
    assert!(key_cache_count(&base_a, "hit").await >= 3);
    // Redis goes away: no revocation can be announced any more...
    drop(redis);
    // ...and one is made behind every replica's back, in PostgreSQL only.
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE api_keys SET revoked_at = now(), revoked_by = 'test' WHERE id = $1")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    // The replica stops trusting its cache (750 ms after it last heard
    // from Redis) and asks PostgreSQL. Each request in between also waits
    // out the rate limiter's 500 ms Redis timeout, hence the 2 s allowance.
    let took = time_until_refused(&key, &base_a, Duration::from_secs(2)).await;
    eprintln!("unannounced revocation refused after {took:?}");
    assert!(key_cache_count(&base_a, "bypass").await >= 1);
    let _ = a.kill();
    let _ = a.wait();
}

#[tokio::test]
async fn with_redis_down_the_limiter_fails_open_or_closed_as_configured() {
    let redis = OwnRedis::start();
    let open = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .envs(&[("HANGAR_RATE_LIMIT_READ", "100/min")])
        .spawn()
        .await;
    let closed = TestApp::builder()
        .redis(&redis.url())
        .without_worker()
        .envs(&[
            ("HANGAR_RATE_LIMIT_READ", "100/min"),
            ("HANGAR_RATE_LIMIT_FAIL_CLOSED", "true"),
        ])
        .spawn()
        .await;
    assert_eq!(open.get("/api/v1/jobs").await.0, 200);
    assert_eq!(closed.get("/api/v1/jobs").await.0, 200);
    drop(redis);
    let (status, _) = open.get("/api/v1/jobs").await;
    assert_eq!(status, 200, "fail open: PostgreSQL answers the list");
    let (status, body) = closed.get("/api/v1/jobs").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let metrics = reqwest::get(format!("{}/metrics", open.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("hangar_api_rate_limit_errors_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "{metrics}");
}

#[tokio::test]
/// Security headers on API answers; the docs page keeps a strict CSP.
async fn security_headers_are_on_every_answer_and_the_docs_page_keeps_its_csp() {
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_CORS_ORIGINS", "https://ops.example.com"),
            ("HANGAR_HSTS", "true"),
            ("HANGAR_MAX_BODY_BYTES", "4096"),
        ])
        .spawn()
        .await;
    let jobs = format!("{}/api/v1/jobs", app.base);
    let r = app.http.get(&jobs).send().await.unwrap();
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let docs = reqwest::get(format!("{}/docs/", app.base)).await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
}

#[tokio::test]
/// A CORS preflight is answered for configured origins only.
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_CORS_ORIGINS", "https://ops.example.com"),
            ("HANGAR_HSTS", "true"),
            ("HANGAR_MAX_BODY_BYTES", "4096"),
        ])
        .spawn()
        .await;
    let jobs = format!("{}/api/v1/jobs", app.base);
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(Method::OPTIONS, &jobs)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let ok = preflight("https://ops.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
/// Malformed, oversized, too deep and misdirected requests: 4xx in the JSON envelope.
async fn malformed_requests_get_the_json_envelope_with_the_right_status() {
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_CORS_ORIGINS", "https://ops.example.com"),
            ("HANGAR_HSTS", "true"),
            ("HANGAR_MAX_BODY_BYTES", "4096"),
        ])
        .spawn()
        .await;
    let jobs = format!("{}/api/v1/jobs", app.base);
    let raw = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(&jobs)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let envelope = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON envelope");
        assert!(body["error"]["request_id"].is_string(), "{body}");
        (
            status,
            body["error"]["code"].as_str().unwrap_or_default().to_owned(),
            body,
        )
    };
    assert_eq!(
        envelope(raw(b"{\"kind\":".to_vec(), "application/json").await.unwrap())
            .await
            .1,
        "invalid_json"
    );
    let (status, code, _) = envelope(
        raw(b"{\"kind\":\"system.noop\"}".to_vec(), "text/plain")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    let big = format!(
        "{{\"kind\":\"system.noop\",\"payload\":{{\"x\":\"{}\"}}}}",
        "a".repeat(8192)
    );
    assert_eq!(
        envelope(raw(big.into_bytes(), "application/json").await.unwrap())
            .await
            .0,
        413
    );
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let (status, code, _) = envelope(raw(deep.into_bytes(), "application/json").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "json_too_deep"));
    let (status, _, body) = envelope(
        raw(
            b"{\"kind\":\"system.noop\",\"bogus\":1}".to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("bogus")));
    for path in [
        "/api/v1/jobs/%00",
        "/api/v1/workspaces/%FF%FE",
        "/api/v1/queues/nope/dead?limit=-1",
        "/api/v1/jobs?limit=abc",
    ] {
        let r = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        let (status, _, body) = envelope(r).await;
        assert!((400..500).contains(&status), "{path}: {status} {body}");
    }
    let r = app.http.put(&jobs).json(&json!({})).send().await.unwrap();
    assert_eq!(envelope(r).await.0, 405);
}

/// A route added with a plain `.route(..)` (outside `OpenApiRouter`, so
/// outside the document the access policy is read from) is refused to
/// every caller, whatever its role: access control fails closed.
#[tokio::test]
async fn a_route_outside_the_document_is_refused_to_everyone() {
    let app = TestApp::builder().without_worker().spawn().await;
    let state = hangar_api::state(app.config()).await.unwrap();
    let router = axum::Router::new()
        .route("/api/v1/undocumented", axum::routing::get(|| async { "leaked" }))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            hangar_api::middleware::access::middleware,
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    for role in ["viewer", "operator", "admin"] {
        let (status, _, body) = send(
            &client_with_token(&token("anyone", role)),
            Method::GET,
            &format!("{base}/api/v1/undocumented"),
            None,
        )
        .await;
        assert_eq!(status, 405, "{role}: {body}");
        assert!(body.to_string().contains("not allowed"), "{body}");
    }
}

#[tokio::test]
async fn a_job_and_its_audit_entry_are_committed_together_or_not_at_all() {
    let app = TestApp::builder().without_worker().spawn().await;
    let operator = client_with_token(&token("tx-olga", "operator"));
    let url = format!("{}/api/v1/jobs", app.base);
    // Accepted: the entry is there the moment the 202 is, with its status
    // and the job as target.
    let (status, _, body) = send(
        &operator,
        Method::POST,
        &url,
        Some(json!({"kind": "system.noop"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job"]["id"].as_str().unwrap().to_owned();
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let (entry_status, action): (i16, String) =
        sqlx::query_as("SELECT status, action FROM audit_log WHERE target = $1 AND actor = 'jwt:tx-olga'")
            .bind(&job_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((entry_status, action.as_str()), (202, "create_job"));
    // The audit log refuses the entry: the job is not recorded either, and
    // the caller is told to retry rather than given a 202.
    for statement in [
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'audit log refuses entries (test)'; END $$",
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (status, _, body) = send(
        &operator,
        Method::POST,
        &url,
        Some(json!({"kind": "system.noop"})),
    )
    .await;
    assert!(status >= 500, "{status}: {body}");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, before, "a job was recorded without its audit entry");
}

#[tokio::test]
async fn state_changes_are_audited_with_actor_action_target_and_request_id() {
    let app = TestApp::builder().without_worker().spawn().await;
    let operator = client_with_token(&token("olga", "operator"));
    let viewer = client_with_token(&token("vic", "viewer"));
    let r = operator
        .post(format!("{}/api/v1/jobs", app.base))
        .header("x-request-id", "audit-req-1")
        .json(&json!({"kind": "system.noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job_id = job["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(job["job"]["requested_by"], "jwt:olga");
    assert_eq!(
        send(
            &viewer,
            Method::POST,
            &format!("{}/api/v1/jobs", app.base),
            Some(json!({"kind": "system.noop"}))
        )
        .await
        .0,
        403
    );
    let (status, _) = app
        .post(&format!("/api/v1/jobs/{job_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (key_id, _) = create_key(&app, "auditor", "viewer").await;
    app.http
        .delete(format!("{}/api/v1/api-keys/{key_id}", app.base))
        .send()
        .await
        .unwrap();
    let (status, _) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "audited", "cron": "0 3 * * *", "kind": "system.noop"}),
        )
        .await;
    assert_eq!(status, 201);
    // Reads are not audited.
    app.get("/api/v1/jobs").await;

    let (status, log) = app.get("/api/v1/audit-log").await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "create_schedule",
            "revoke_api_key",
            "create_api_key",
            "cancel_job",
            "create_job",
            "create_job"
        ],
        "{log}"
    );
    let created = &entries[5];
    assert_eq!(created["actor"], "jwt:olga");
    assert_eq!(created["role"], "operator");
    assert_eq!(created["auth"], "jwt");
    assert_eq!(created["target"], job_id.as_str());
    assert_eq!(created["client_request_id"], "audit-req-1");
    assert_ne!(created["request_id"], "audit-req-1", "the server's own id");
    assert_eq!(created["status"], 202);
    assert_eq!(created["client_ip"], "127.0.0.1");
    assert_eq!(entries[4]["actor"], "jwt:vic");
    assert_eq!(entries[4]["status"], 403);
    assert_eq!(entries[2]["target"], key_id.as_str());
    assert_eq!(entries[0]["target"], "audited");

    let (_, denied) = app.get("/api/v1/audit-log?outcome=denied").await;
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1);
    let (_, by_actor) = app.get("/api/v1/audit-log?actor=jwt:olga").await;
    assert_eq!(by_actor["entries"].as_array().unwrap().len(), 1);
    let (_, page) = app.get("/api/v1/audit-log?limit=4").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = app
        .get(&format!("/api/v1/audit-log?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());
    assert_eq!(app.get("/api/v1/audit-log?outcome=maybe").await.0, 422);
    assert_eq!(
        send(
            &operator,
            Method::GET,
            &format!("{}/api/v1/audit-log", app.base),
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let app = TestApp::builder().without_worker().spawn().await;
    let dir = std::env::temp_dir().join(format!("hangar-logs-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    // The CLI creates the first key; its token goes to stdout only.
    let out = Command::new(API)
        .env_clear()
        .envs(app.env.iter())
        .env("HANGAR_LOG_LEVEL", "trace")
        .args(["create-api-key", "--name", "bootstrap", "--role", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("hangar_"), "{key}");
    let cli_log = String::from_utf8_lossy(&out.stderr).into_owned();

    let log = dir.join("api.log");
    let (mut api, base) = api_process(&app.env, &[("HANGAR_LOG_LEVEL", "trace")], Some(&log));
    wait_up(&base).await;
    let jwt = token("logger", "admin");
    let bad = sign_hs256(
        &claims("x", "admin", 3600),
        "a-wrong-secret-that-must-not-be-logged-123",
    );
    let as_key = client_with_token(&key);
    let (status, _, created) = send(
        &as_key,
        Method::POST,
        &format!("{base}/api/v1/api-keys"),
        Some(json!({"name": "second", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201);
    let second = created["token"].as_str().unwrap().to_owned();
    for t in [&jwt, &bad, &key, &second] {
        send(
            &client_with_token(t),
            Method::GET,
            &format!("{base}/api/v1/jobs"),
            None,
        )
        .await;
        send(
            &client_with_token(t),
            Method::POST,
            &format!("{base}/api/v1/jobs"),
            Some(json!({"kind": "system.noop"})),
        )
        .await;
    }
    let _ = api.kill();
    let _ = api.wait();
    let text = std::fs::read_to_string(&log).unwrap() + &cli_log;
    assert!(
        text.contains("request"),
        "the log captured requests at trace level"
    );
    for secret in [
        jwt.as_str(),
        bad.as_str(),
        key.as_str(),
        second.as_str(),
        TEST_JWT_SECRET,
    ] {
        // The signature part alone must not appear either.
        let tail = &secret[secret.len() - 24..];
        assert!(!text.contains(tail), "a secret reached the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_served_openapi_document_is_valid_openapi_3_1_and_describes_every_operation() {
    let app = TestApp::builder().without_worker().spawn().await;
    let spec: Value = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let file = std::env::temp_dir().join(format!("hangar-openapi-{}.json", ulid::Ulid::new()));
    std::fs::write(&file, spec.to_string()).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator (scripts/services.sh installs it)");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let what = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what} has no summary"
            );
            assert!(op["operationId"].is_string(), "{what} has no operationId");
            assert!(op["security"].is_array(), "{what} declares no security");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|c| c.starts_with('2')),
                "{what} has no success response"
            );
            if op["security"] != json!([{}]) {
                for code in ["401", "403", "422", "429", "500", "503"] {
                    assert!(responses.contains_key(code), "{what} does not document {code}");
                }
            }
        }
    }
    assert!(operations > 0);
    // And every documented operation is served: asked with sample path
    // parameters, none answers the router's own "no such route" (404) or
    // 405. (The other way round holds by construction: routes are added
    // with their documentation, and the access layer refuses any route the
    // document does not declare.)
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "01JD3Q6W8Y4N2M5K7P9R1T3V5X")
            .replace("{queue}", "sync")
            .replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .http
                .request(m, format!("{}{concrete}", app.base))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}: {body}");
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

/// Issue 13 ("also"): a slow JWKS endpoint held the refetch lock for each
/// unknown `kid`, and every such request waited behind it.
#[tokio::test]
async fn unknown_kids_never_queue_behind_a_slow_jwks_endpoint() {
    let dir = std::env::temp_dir().join(format!("hangar-keys-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    keypairs(&dir);
    let ec = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(dir.join("ec.pem")).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                axum::Json(json!({"keys": []}))
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_JWT_JWKS_URL", &jwks_url),
            ("HANGAR_JWT_JWKS_REFRESH_SECS", "10"),
        ])
        .spawn()
        .await;
    // Past the first fetch and the minimum gap between refetches.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let url = format!("{}/api/v1/jobs", app.base);
    let c = claims("svc", "viewer", 3600);
    let requests = (0..20).map(|i| {
        let t = sign(
            jsonwebtoken::Algorithm::ES256,
            Some(&format!("rotated-{i}")),
            &ec,
            &c,
        );
        let url = url.clone();
        async move {
            let start = std::time::Instant::now();
            let status = send(&client_with_token(&t), Method::GET, &url, None).await.0;
            (status, start.elapsed())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|(s, _)| *s == 401), "{answers:?}");
    let quick = answers
        .iter()
        .filter(|(_, t)| *t < Duration::from_secs(1))
        .count();
    assert!(quick >= 19, "only {quick} of 20 answered within 1 s: {answers:?}");
    let _ = std::fs::remove_dir_all(&dir);
    app.shutdown().await;
}
