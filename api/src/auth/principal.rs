//! Who a caller is once authenticated, and why credentials are refused: a
//! leaf the verifiers (JWT, API keys) and the access middleware share.

use axum::http::HeaderMap;

pub use hangar_shared::Role;

/// How a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A verified JWT.
    Jwt,
    /// An API key.
    ApiKey,
}

impl Method {
    /// `jwt` or `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Jwt => "jwt",
            Method::ApiKey => "api_key",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// For people: `jwt:<sub>`; for automation: `key:<name>`. Shown in job
    /// records (`requested_by`) and the audit log.
    pub actor: String,
    /// Stable identity the rate limiter counts against (`jwt:<sub>`, `key:<id>`).
    pub rate_key: String,
    /// What it may do.
    pub role: Role,
    /// How it authenticated.
    pub method: Method,
}

/// Why a request's credentials were refused. Messages say what to fix and
/// never echo the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("authentication required: send Authorization: Bearer <JWT or API key>")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be \"Bearer <JWT or API key>\"")]
    Malformed,
    /// The token was refused; the reason is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// An API key whose prefix names a stored key, refused (wrong secret,
    /// revoked, expired); `id` is that key's, for the audit log only.
    #[error("{message}")]
    RefusedKey {
        /// The stored key the prefix names.
        id: String,
        /// Safe to show.
        message: String,
    },
    /// Valid credentials, but no Hangar role in them.
    #[error("{0}")]
    NoRole(String),
    /// The credential store could not be asked (PostgreSQL or the JWKS endpoint).
    #[error("{0} is unavailable; retry later")]
    Unavailable(&'static str),
}

/// The bearer token of `headers`, if any.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 8192 {
        return Err(AuthError::Malformed);
    }
    Ok(Some(token))
}
