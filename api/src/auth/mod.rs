//! Who is calling: a JWT (`Authorization: Bearer <jwt>`) or an API key
//! (`Authorization: Bearer hangar_…`), resolved to a [`Principal`] with one
//! of three [`Role`]s. What each role may do is declared on the routes
//! themselves (see [`crate::access`]).

pub mod api_keys;
pub mod jwt;
pub mod key_cache;
mod principal;

use axum::http::HeaderMap;
use sqlx::PgPool;

pub use self::principal::{AuthError, Method, Principal, Role, bearer};
use self::{jwt::JwtVerifier, key_cache::KeyCache};

/// Resolves callers: JWTs by their signature, API keys through a short
/// cache of verified keys in front of PostgreSQL (see [`key_cache`]).
#[derive(Clone, Debug)]
pub struct Authenticator {
    pool: PgPool,
    jwt: JwtVerifier,
    keys: KeyCache,
}

impl Authenticator {
    /// An authenticator over `pool` (API keys) and `jwt`, trusting cached
    /// keys only while `keys` hears from the revocation feed.
    pub fn new(pool: PgPool, jwt: JwtVerifier, keys: KeyCache) -> Self {
        Self { pool, jwt, keys }
    }

    /// The verified-key cache (revocations go through it).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Resolves the caller of a request: `Ok(None)` without credentials.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
        let Some(token) = bearer(headers)? else {
            return Ok(None);
        };
        if token.starts_with(api_keys::TOKEN_PREFIX) {
            self.keys.verify(&self.pool, token).await.map(Some)
        } else {
            self.jwt.verify(token).await.map(Some)
        }
    }
}
