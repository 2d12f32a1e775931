//! API keys for automation: `hangar_<prefix>_<secret>`, 192 random bits of
//! secret. Only the SHA-256 of the whole token is stored; the 12-character
//! prefix (random, not secret) finds its row. A key shows its secret once,
//! when created.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::principal::{AuthError, Method, Principal, Role};

/// Every API key starts with this, so a leaked one is recognisable (and
/// secret scanners can match it).
pub const TOKEN_PREFIX: &str = "hangar_";

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Key id (ULID).
    #[schema(example = "01JD3Q6W8Y4N2M5K7P9R1T3V5X")]
    pub id: String,
    /// Unique name among keys in use.
    #[schema(example = "ci-deploy")]
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// The token's public prefix (`hangar_<prefix>_…`), to recognise it.
    #[schema(example = "3f9a1c0b2e4d")]
    pub prefix: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// After this it is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last authenticated request (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked (refused from then on).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a whole token: what is stored, and what caches key on.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token and its lookup prefix.
fn generate() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 30];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    let prefix = hex(&bytes[..6]);
    Ok((format!("{TOKEN_PREFIX}{prefix}_{}", hex(&bytes[6..])), prefix))
}

/// Compares without an early exit, so timing does not reveal how much of
/// a hash matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The lookup prefix of an API key token (`hangar_<prefix>_<secret>`).
pub fn prefix_of(token: &str) -> Option<&str> {
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(p, _)| p)
        .filter(|p| p.len() == 12)
}

/// A key that verified: who it makes the caller, and what a cache of it
/// must still check on each use.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    /// The caller.
    pub principal: Principal,
    /// The key's id (for recording its use).
    pub id: String,
    /// After this it is refused.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Checks `token` against the stored keys (one PostgreSQL query). Callers
/// go through [`super::key_cache::KeyCache::verify`], which asks this only
/// for keys it has not verified recently.
pub async fn verify(pool: &PgPool, token: &str) -> Result<VerifiedKey, AuthError> {
    let invalid = || AuthError::Invalid("unknown API key".into());
    let prefix = prefix_of(token).ok_or_else(invalid)?;
    let row = sqlx::query!(
        "SELECT id, name, role, token_sha256, expires_at, revoked_at FROM api_keys WHERE prefix = $1",
        prefix
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "API key lookup failed");
        AuthError::Unavailable("postgres")
    })?
    .ok_or_else(invalid)?;
    // The prefix matched a stored key: refusals name its id for the audit
    // log (the message a caller sees does not, for a wrong secret).
    let refused = |message: String| AuthError::RefusedKey {
        id: row.id.clone(),
        message,
    };
    if !same(&row.token_sha256, &digest(token)) {
        return Err(refused("unknown API key".into()));
    }
    if row.revoked_at.is_some() {
        return Err(refused(format!("API key {:?} has been revoked", row.name)));
    }
    if let Some(at) = row.expires_at
        && at <= Utc::now()
    {
        return Err(refused(expired_message(&row.name, at)));
    }
    let role =
        Role::parse(&row.role).ok_or_else(|| AuthError::NoRole("the API key has no valid role".into()))?;
    Ok(VerifiedKey {
        principal: Principal {
            actor: format!("key:{}", row.name),
            rate_key: format!("key:{}", row.id),
            role,
            method: Method::ApiKey,
        },
        id: row.id,
        expires_at: row.expires_at,
    })
}

/// What a caller is told when its key has expired.
pub fn expired_message(name: &str, at: DateTime<Utc>) -> String {
    format!("API key {name:?} expired at {}", at.to_rfc3339())
}

/// Records the key's use, at most once a minute, off the request path.
pub fn touch(pool: PgPool, id: String) {
    tokio::spawn(async move {
        let result = sqlx::query!(
            "UPDATE api_keys SET last_used_at = now()
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')",
            id
        )
        .execute(&pool)
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not record API key use");
        }
    });
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A key in use already has this name.
    #[error("an API key named {0:?} is already in use; revoke it first or pick another name")]
    NameTaken(String),
    /// The database refused.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// No randomness.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Creates a key; returns it and its token (shown once).
pub async fn create(
    pool: &PgPool,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    created_by: &str,
) -> Result<(ApiKey, String), CreateError> {
    let (token, prefix) = generate()?;
    let id = ulid::Ulid::new().to_string();
    let row = sqlx::query_as!(
        ApiKeyRow,
        r#"INSERT INTO api_keys (id, name, role, prefix, token_sha256, created_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
           RETURNING id, name, role, prefix, created_by, created_at, expires_at, last_used_at, revoked_at, revoked_by"#,
        id,
        name,
        role.as_str(),
        prefix,
        digest(&token),
        created_by,
        expires_at,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| CreateError::NameTaken(name.to_owned()))?;
    Ok((row.into(), token))
}

struct ApiKeyRow {
    id: String,
    name: String,
    role: String,
    prefix: String,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    revoked_by: Option<String>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        Self {
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            revoked_by: r.revoked_by,
        }
    }
}

/// Keys, newest first; revoked ones only when asked.
pub async fn list(pool: &PgPool, include_revoked: bool) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows = sqlx::query_as!(
        ApiKeyRow,
        "SELECT id, name, role, prefix, created_by, created_at, expires_at, last_used_at, revoked_at, revoked_by
         FROM api_keys WHERE $1 OR revoked_at IS NULL ORDER BY id DESC",
        include_revoked
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// Revokes key `id`; `None` if there is no such key. Revoking twice keeps
/// the first revocation.
pub async fn revoke(pool: &PgPool, id: &str, by: &str) -> Result<Option<ApiKey>, sqlx::Error> {
    let row = sqlx::query_as!(
        ApiKeyRow,
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $2)
         WHERE id = $1
         RETURNING id, name, role, prefix, created_by, created_at, expires_at, last_used_at, revoked_at, revoked_by",
        id,
        by
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(ApiKey::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_carry_their_prefix() {
        let (a, pa) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("hangar_{pa}_")), "{a}");
        assert_eq!(a.len(), "hangar_".len() + 12 + 1 + 48);
        assert_eq!(prefix_of(&a), Some(pa.as_str()));
        assert_eq!(prefix_of("hangar_short_x"), None);
    }

    #[test]
    fn the_stored_digest_is_sha256_and_compared_whole() {
        // FIPS 180-2's test vector: what is stored is the token's SHA-256.
        assert_eq!(
            hex(&digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let stored = digest("hangar_0123456789ab_secret");
        let mut last_byte_off = stored.clone();
        *last_byte_off.last_mut().unwrap() ^= 1;
        assert!(same(&stored, &digest("hangar_0123456789ab_secret")));
        assert!(
            !same(&stored, &last_byte_off),
            "a difference in the last byte counts"
        );
        assert!(
            !same(&stored, &stored[..31]),
            "a prefix of the digest is not the digest"
        );
        assert!(!same(&stored, &[]));
    }
}
