//! Web console sessions: an API key or JWT, verified once at login, is
//! exchanged for a random token carried in an `HttpOnly; SameSite=Strict`
//! cookie. PostgreSQL keeps only the token's SHA-256, the caller's identity
//! and role as verified at login, a per-session CSRF token, and the idle
//! and absolute deadlines. Logging out (or an admin) revokes the row.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hangar_shared::config::ConsoleConfig;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::auth::{Method, Principal, Role};

/// The session cookie's name.
pub const COOKIE: &str = "hangar_session";

/// An open session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id (shown on the admin page; not a credential).
    pub id: String,
    /// Who logged in, with the role they had then.
    pub principal: Principal,
    /// What every state-changing request must carry.
    pub csrf_token: String,
    /// When it ends however busy.
    pub expires_at: DateTime<Utc>,
}

/// A session just created: the cookie's token (shown once, never stored).
#[derive(Debug)]
pub struct Opened {
    /// The cookie value.
    pub token: String,
    /// The session.
    pub session: Session,
}

/// 256 random bits, URL-safe base64 without padding.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Where a login came from (kept for the admin's session list).
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The peer's address.
    pub ip: Option<String>,
    /// Its `User-Agent`, cut to 200 characters.
    pub user_agent: Option<String>,
}

/// Opens a session for `principal`, ending at the latest after `config.max_age`.
pub async fn open(
    pool: &PgPool,
    config: &ConsoleConfig,
    principal: &Principal,
    client: &Client,
) -> anyhow::Result<Opened> {
    let token = random_token()?;
    let csrf_token = random_token()?;
    let id = ulid::Ulid::new().to_string();
    let max_age = chrono::Duration::from_std(config.max_age)?;
    let user_agent = client
        .user_agent
        .as_deref()
        .map(|ua| ua.chars().take(200).collect::<String>());
    let expires_at: DateTime<Utc> = sqlx::query_scalar!(
        "INSERT INTO console_sessions (id, token_sha256, csrf_token, actor, rate_key, role, method,
                                       client_ip, user_agent, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + $10::interval)
         RETURNING expires_at",
        id,
        digest(&token),
        csrf_token,
        principal.actor,
        principal.rate_key,
        principal.role.as_str(),
        principal.method.as_str(),
        client.ip,
        user_agent,
        sqlx::postgres::types::PgInterval::try_from(max_age).map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .fetch_one(pool)
    .await?;
    Ok(Opened {
        token,
        session: Session {
            id,
            principal: principal.clone(),
            csrf_token,
            expires_at,
        },
    })
}

/// The open session a cookie's `token` names, its idle deadline moved on;
/// `None` when there is none: unknown, revoked, idle longer than
/// `config.idle_timeout`, or past its absolute end.
pub async fn resume(pool: &PgPool, config: &ConsoleConfig, token: &str) -> sqlx::Result<Option<Session>> {
    let idle_ms = i64::try_from(config.idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let row = sqlx::query!(
        "UPDATE console_sessions SET last_seen_at = now()
         WHERE token_sha256 = $1 AND revoked_at IS NULL AND expires_at > now()
           AND last_seen_at > now() - make_interval(secs => $2::bigint / 1000.0)
         RETURNING id, csrf_token, actor, rate_key, role, method, expires_at",
        digest(token),
        idle_ms,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| {
        Some(Session {
            id: r.id,
            principal: Principal {
                actor: r.actor,
                rate_key: r.rate_key,
                role: Role::parse(&r.role)?,
                method: if r.method == "jwt" {
                    Method::Jwt
                } else {
                    Method::ApiKey
                },
            },
            csrf_token: r.csrf_token,
            expires_at: r.expires_at,
        })
    }))
}

/// Revokes session `id`; whether it was open.
pub async fn revoke(pool: &PgPool, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE console_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        id
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An open session as the admin page lists it.
#[derive(Debug, Clone)]
pub struct OpenSession {
    /// Its id.
    pub id: String,
    /// Who logged in.
    pub actor: String,
    /// Their role then.
    pub role: String,
    /// `jwt` or `api_key`.
    pub method: String,
    /// Where from.
    pub client_ip: Option<String>,
    /// Their browser.
    pub user_agent: Option<String>,
    /// Logged in.
    pub created_at: DateTime<Utc>,
    /// Last request.
    pub last_seen_at: DateTime<Utc>,
    /// Ends however busy.
    pub expires_at: DateTime<Utc>,
}

/// The sessions still open (not revoked, not past either deadline), newest
/// first, at most `limit`.
pub async fn open_sessions(
    pool: &PgPool,
    config: &ConsoleConfig,
    limit: i64,
) -> sqlx::Result<Vec<OpenSession>> {
    let idle_ms = i64::try_from(config.idle_timeout.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_as!(
        OpenSession,
        "SELECT id, actor, role, method, client_ip, user_agent, created_at, last_seen_at, expires_at
         FROM console_sessions
         WHERE revoked_at IS NULL AND expires_at > now()
           AND last_seen_at > now() - make_interval(secs => $1::bigint / 1000.0)
         ORDER BY created_at DESC LIMIT $2",
        idle_ms,
        limit,
    )
    .fetch_all(pool)
    .await
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token in a `Cookie` header, if any.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value carrying `token` for pages under `path`;
/// `secure` when served over TLS. `token` empty and `max_age` zero clear it.
pub fn set_cookie(token: &str, path: &str, secure: bool, max_age: std::time::Duration) -> String {
    format!(
        "{COOKIE}={token}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_empty_is_none() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; hangar_session=tok; b=2".parse().unwrap());
        assert_eq!(cookie_token(&h), Some("tok"));
        h.insert("cookie", "hangar_session=".parse().unwrap());
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let c = set_cookie("t", "/ui", true, std::time::Duration::from_secs(60));
        assert_eq!(
            c,
            "hangar_session=t; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!set_cookie("t", "/ui", false, std::time::Duration::ZERO).contains("Secure"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
