//! JWT verification. Each accepted algorithm is bound to its own key:
//! HS256 only to the shared secret, RS256/ES256 only to the configured PEM
//! key or to a JWKS key of that type. A token's header picks the algorithm,
//! but never the key family, so an RS256 public key can never be used as an
//! HS256 secret ("algorithm confusion"), and `alg: none` is refused before
//! any key is looked at.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use hangar_shared::config::JwtConfig;
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use serde_json::{Map, Value};

use super::principal::{AuthError, Method, Principal, Role};

/// Verifies bearer JWTs against the configured keys.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: Duration,
    role_claim: String,
    hs256: Option<DecodingKey>,
    pem: Option<(DecodingKey, Algorithm)>,
    jwks: Option<Jwks>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.issuer)
            .field("hs256", &self.inner.hs256.is_some())
            .field("pem", &self.inner.pem.as_ref().map(|(_, a)| *a))
            .field("jwks", &self.inner.jwks.as_ref().map(|j| &j.url))
            .finish()
    }
}

/// RS256/ES256 keys of a JWKS endpoint by `kid`, refetched every `refresh`
/// and, for an unknown `kid` (the issuer rotated its keys), at most once
/// per `refresh / 10`.
struct Jwks {
    url: String,
    http: reqwest::Client,
    refresh: Duration,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    async fn fetch(&self) -> Result<usize, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("fetching {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| format!("{} is not a JWKS: {e}", self.url))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let Some(kid) = &jwk.common.key_id else { continue };
            // Only public-key types: a symmetric ("oct") key published in a
            // JWKS would let anyone who read it mint tokens.
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                    if p.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), (key, alg));
                }
                Err(e) => tracing::warn!(kid = %kid, error = %e, "JWKS key skipped"),
            }
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(n)
    }

    /// Refetches unless another request did so within `min_gap`. With
    /// `wait` false (a request meeting an unknown `kid`), a fetch already
    /// under way is not waited for: an unknown-kid flood then costs each
    /// request nothing, not a place in a queue behind a slow JWKS endpoint.
    async fn refetch(&self, min_gap: Duration, wait: bool) {
        let mut fetched = if wait {
            self.fetched.lock().await
        } else {
            match self.fetched.try_lock() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        if fetched.is_some_and(|t| t.elapsed() < min_gap) {
            return;
        }
        *fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(n) => tracing::debug!(url = %self.url, keys = n, "JWKS fetched"),
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys we have"),
        }
    }

    fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }
}

impl JwtVerifier {
    /// Loads the configured keys; an unreadable PEM file is an error (the
    /// operator asked for it). The JWKS is fetched in the background.
    pub fn new(config: &JwtConfig) -> anyhow::Result<Self> {
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        let pem = match &config.public_key_file {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("HANGAR_JWT_PUBLIC_KEY_FILE {}: {e}", path.display()))?;
                let key = DecodingKey::from_rsa_pem(&bytes)
                    .map(|k| (k, Algorithm::RS256))
                    .or_else(|_| DecodingKey::from_ec_pem(&bytes).map(|k| (k, Algorithm::ES256)))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "HANGAR_JWT_PUBLIC_KEY_FILE {}: not an RSA or P-256 public key in PEM",
                            path.display()
                        )
                    })?;
                Some(key)
            }
        };
        let jwks = config.jwks_url.as_ref().map(|url| Jwks {
            url: url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            refresh: config.jwks_refresh,
            keys: RwLock::default(),
            fetched: tokio::sync::Mutex::default(),
        });
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                leeway: config.leeway,
                role_claim: config.role_claim.clone(),
                hs256,
                pem,
                jwks,
            }),
        })
    }

    /// Keeps the JWKS fresh (no-op without one). Call once at start.
    pub fn spawn_refresh(&self) {
        if self.inner.jwks.is_none() {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let Some(jwks) = &inner.jwks else { return };
            loop {
                jwks.refetch(Duration::ZERO, true).await;
                tokio::time::sleep(jwks.refresh).await;
            }
        });
    }

    /// Whether any JWT key is configured.
    pub fn enabled(&self) -> bool {
        self.inner.hs256.is_some() || self.inner.pem.is_some() || self.inner.jwks.is_some()
    }

    async fn key_for(&self, header: &jsonwebtoken::Header) -> Result<DecodingKey, AuthError> {
        let refused = |m: &str| AuthError::Invalid(m.to_owned());
        match header.alg {
            Algorithm::HS256 => self
                .inner
                .hs256
                .clone()
                .ok_or_else(|| refused("HS256 tokens are not accepted by this deployment")),
            alg @ (Algorithm::RS256 | Algorithm::ES256) => {
                if let (Some(jwks), Some(kid)) = (&self.inner.jwks, &header.kid) {
                    let found = match jwks.key(kid) {
                        Some(k) => Some(k),
                        None => {
                            jwks.refetch(jwks.refresh / 10, false).await;
                            jwks.key(kid)
                        }
                    };
                    return match found {
                        Some((key, key_alg)) if key_alg == alg => Ok(key),
                        Some(_) => Err(refused("the token's algorithm does not match its key")),
                        None => Err(refused("the token's key id (kid) is not in the JWKS")),
                    };
                }
                match &self.inner.pem {
                    Some((key, key_alg)) if *key_alg == alg => Ok(key.clone()),
                    _ => Err(AuthError::Invalid(format!(
                        "{alg:?} tokens are not accepted by this deployment"
                    ))),
                }
            }
            other => Err(AuthError::Invalid(format!(
                "algorithm {other:?} is not accepted; use HS256, RS256 or ES256"
            ))),
        }
    }

    /// Verifies `token` and maps it to a principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Err(AuthError::Invalid(
                "JWTs are not accepted by this deployment; use an API key".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::Invalid("not a JWT with a supported algorithm (HS256, RS256, ES256)".into())
        })?;
        let key = self.key_for(&header).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.leeway = self.inner.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(explain(e.kind())))?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| (1..=256).contains(&s.len()))
            .ok_or_else(|| {
                AuthError::Invalid("the token's sub claim must be a string of 1-256 characters".into())
            })?;
        let role = role_from(&claims, &self.inner.role_claim).ok_or_else(|| {
            AuthError::NoRole(format!(
                "the token carries no viewer, operator or admin role in its {:?} claim",
                self.inner.role_claim
            ))
        })?;
        Ok(Principal {
            actor: format!("jwt:{sub}"),
            rate_key: format!("jwt:{sub}"),
            role,
            method: Method::Jwt,
        })
    }
}

/// Why a token was refused, for the caller.
fn explain(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired (exp)".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the token's signature is invalid".into(),
        ErrorKind::InvalidIssuer => "the token was issued by another issuer (iss)".into(),
        ErrorKind::InvalidAudience => "the token is meant for another audience (aud)".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the {c} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("the token's {c} claim has the wrong type"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        _ => "the token is malformed".into(),
    }
}

/// The role in `claim` (a dotted path such as `realm_access.roles`): a
/// role name, or a list whose highest role wins; other values are ignored.
fn role_from(claims: &Map<String, Value>, claim: &str) -> Option<Role> {
    let mut parts = claim.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    match value {
        Value::String(s) => Role::parse(s),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Role::parse)
            .max(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_come_from_a_string_a_list_or_a_nested_claim() {
        let claims = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            role_from(&claims(json!({"role": "operator"})), "role"),
            Some(Role::Operator)
        );
        assert_eq!(
            role_from(&claims(json!({"roles": ["viewer", "admin", "other"]})), "roles"),
            Some(Role::Admin)
        );
        assert_eq!(
            role_from(
                &claims(json!({"realm_access": {"roles": ["viewer"]}})),
                "realm_access.roles"
            ),
            Some(Role::Viewer)
        );
        assert_eq!(role_from(&claims(json!({"role": "Admin"})), "role"), None);
        assert_eq!(role_from(&claims(json!({"role": 3})), "role"), None);
        assert_eq!(role_from(&claims(json!({})), "role"), None);
    }
}
