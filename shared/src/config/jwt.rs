//! The JWT section: [`JwtConfig`], its `HANGAR_JWT_*` variables, the code
//! that reads them, and [`check_jwks_url`], the rule a JWKS URL must follow.

use std::{path::PathBuf, time::Duration};

use super::reader::{Reader, Var};
use crate::secret::Secret;

/// How JWTs are verified. Any combination may be set; a token is checked
/// against the key its header's algorithm belongs to, never another.
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// HS256 shared secret (at least 32 bytes).
    pub hs256_secret: Option<Secret>,
    /// PEM file with an RSA (RS256) or P-256 (ES256) public key.
    pub public_key_file: Option<PathBuf>,
    /// JWKS URL (RS256/ES256 keys by `kid`), cached and refreshed.
    pub jwks_url: Option<String>,
    /// How often the JWKS is refetched (also on an unknown `kid`, at most this often / 10).
    pub jwks_refresh: Duration,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim holding the role (a string, or a list whose highest role wins).
    pub role_claim: String,
}

impl JwtConfig {
    /// Whether any JWT verification key is configured.
    pub fn enabled(&self) -> bool {
        self.hs256_secret.is_some() || self.public_key_file.is_some() || self.jwks_url.is_some()
    }
}

/// Keys fetched over plain HTTP could be swapped on the way: a JWKS URL
/// must be `https://`, or `http://` to a loopback host (a local sidecar,
/// the tests). The URL is parsed (not matched as text), so
/// `http://localhost:@evil/` names the host `evil` and is refused; user
/// info is refused outright (credentials do not belong in a URL).
pub fn check_jwks_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user info (user:password@)".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host".into()),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must start with https:// (http:// only for 127.0.0.1, localhost or [::1])".into()),
    }
}

/// The JWT variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_JWT_HS256_SECRET",
        default: Some(""),
        doc: "shared secret for HS256 JWTs (32+ bytes); empty: HS256 off",
    },
    Var {
        name: "HANGAR_JWT_PUBLIC_KEY_FILE",
        default: Some(""),
        doc: "PEM public key (RSA: RS256, P-256: ES256) for JWTs; empty: off",
    },
    Var {
        name: "HANGAR_JWT_JWKS_URL",
        default: Some(""),
        doc: "JWKS URL with RS256/ES256 keys by kid; empty: off",
    },
    Var {
        name: "HANGAR_JWT_JWKS_REFRESH_SECS",
        default: Some("300"),
        doc: "refetch the JWKS this often (s); an unknown kid refetches sooner",
    },
    Var {
        name: "HANGAR_JWT_ISSUER",
        default: Some(""),
        doc: "required iss claim (required when any JWT key is set)",
    },
    Var {
        name: "HANGAR_JWT_AUDIENCE",
        default: Some(""),
        doc: "required aud claim (required when any JWT key is set)",
    },
    Var {
        name: "HANGAR_JWT_LEEWAY_SECS",
        default: Some("30"),
        doc: "clock skew tolerated on exp and nbf (s, 0-300)",
    },
    Var {
        name: "HANGAR_JWT_ROLE_CLAIM",
        default: Some("role"),
        doc: "claim holding viewer|operator|admin (or a list of them)",
    },
];

impl Reader<'_> {
    /// Reads the JWT section: the keys, and the claims every token must carry.
    pub(super) fn jwt(&mut self) -> JwtConfig {
        let hs256_secret = self.optional("HANGAR_JWT_HS256_SECRET").map(Secret::new);
        if hs256_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            self.problem("HANGAR_JWT_HS256_SECRET", "must be at least 32 bytes".into());
        }
        let public_key_file = self.optional("HANGAR_JWT_PUBLIC_KEY_FILE").map(PathBuf::from);
        if let Some(f) = &public_key_file
            && !f.is_file()
        {
            self.problem(
                "HANGAR_JWT_PUBLIC_KEY_FILE",
                format!("{} is not a readable file", f.display()),
            );
        }
        let jwks_url = self.optional("HANGAR_JWT_JWKS_URL");
        if let Some(u) = &jwks_url
            && let Err(why) = check_jwks_url(u)
        {
            self.problem("HANGAR_JWT_JWKS_URL", why);
        }
        let jwt = JwtConfig {
            hs256_secret,
            public_key_file,
            jwks_url,
            jwks_refresh: self.secs("HANGAR_JWT_JWKS_REFRESH_SECS", 10, 86_400),
            issuer: self.raw("HANGAR_JWT_ISSUER").unwrap_or_default(),
            audience: self.raw("HANGAR_JWT_AUDIENCE").unwrap_or_default(),
            leeway: self.secs("HANGAR_JWT_LEEWAY_SECS", 0, 300),
            role_claim: self.raw("HANGAR_JWT_ROLE_CLAIM").unwrap_or_default(),
        };
        if jwt.enabled() {
            // A token minted for another service must not work here.
            for (var, value) in [
                ("HANGAR_JWT_ISSUER", &jwt.issuer),
                ("HANGAR_JWT_AUDIENCE", &jwt.audience),
            ] {
                if value.is_empty() {
                    self.problem(var, "required when a JWT key is configured".into());
                }
            }
        }
        if jwt.role_claim.is_empty() {
            self.problem("HANGAR_JWT_ROLE_CLAIM", "must name a claim".into());
        }
        jwt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    #[test]
    fn jwks_urls_are_parsed_not_matched_as_text() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8181/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9/jwks",
            "http://127.0.0.2/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            // The review's bypass: user info "localhost:" before the real host.
            "http://localhost:@192.0.2.2:18557/jwks.json",
            "http://127.0.0.1@192.0.2.2/jwks.json",
            "https://user:pw@idp.example.com/jwks.json",
            "http://localhost.evil.example/jwks.json",
            "http://127.0.0.1.evil.example/jwks.json",
            "http://192.0.2.2/jwks.json",
            "ftp://localhost/jwks.json",
            "localhost/jwks.json",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad} must be refused");
        }
        let refused = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            (
                "HANGAR_JWT_JWKS_URL",
                "http://localhost:@192.0.2.2:18557/jwks.json",
            ),
            ("HANGAR_JWT_ISSUER", "i"),
            ("HANGAR_JWT_AUDIENCE", "a"),
        ])
        .unwrap_err();
        assert!(refused.to_string().contains("HANGAR_JWT_JWKS_URL"), "{refused}");
    }
}
