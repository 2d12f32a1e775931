//! Who may call what. What each route requires is read from the OpenAPI
//! document the routes are built with: an operation's `security` names the
//! minimum role as the scope of the `bearer` scheme (`{"bearer":
//! ["operator"]}`), or `{}` for a public route. So the documentation and
//! the enforcement cannot disagree, and a route whose operation declares no
//! security at all is refused to everyone (fail closed) and caught by a
//! test. The middleware that enforces it is [`crate::middleware::access`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::Method;
use serde_json::Value;

use crate::auth::{Role, api_keys};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Callers with at least this role.
    Role(Role),
    /// The operation declared no security: nobody (a bug, logged).
    Undeclared,
}

/// One operation's rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Who may call it.
    pub access: Access,
    /// Its OpenAPI operation id (the audit log's action).
    pub action: String,
}

/// Rules by (method, route template).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: HashMap<(Method, String), Rule>,
}

impl Policy {
    /// Reads the rules off an OpenAPI document. `metrics_public` decides
    /// operations that allow both anonymous and authenticated callers.
    pub fn from_openapi(spec: &utoipa::openapi::OpenApi, metrics_public: bool) -> Self {
        let doc = serde_json::to_value(spec).unwrap_or_default();
        let mut rules = HashMap::new();
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Self { rules };
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for (method, op) in item {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let action = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("unnamed")
                    .to_owned();
                rules.insert(
                    (method, path.clone()),
                    Rule {
                        access: access_of(op.get("security"), metrics_public),
                        action,
                    },
                );
            }
        }
        Self { rules }
    }

    /// The rule of `method` on `route` (HEAD follows GET).
    pub fn rule(&self, method: &Method, route: &str) -> Option<&Rule> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.rules.get(&(method.clone(), route.to_owned()))
    }

    /// Every (method, route) and its access, for tests and documentation.
    pub fn rules(&self) -> impl Iterator<Item = (&Method, &str, &Rule)> {
        self.rules.iter().map(|((m, p), r)| (m, p.as_str(), r))
    }
}

fn access_of(security: Option<&Value>, metrics_public: bool) -> Access {
    let Some(reqs) = security.and_then(Value::as_array) else {
        return Access::Undeclared;
    };
    let anonymous = reqs.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()));
    let role = reqs
        .iter()
        .filter_map(|r| r.get("bearer")?.as_array()?.first()?.as_str())
        .filter_map(Role::parse)
        .min();
    match (anonymous, role) {
        (true, None) => Access::Public,
        (true, Some(_)) if metrics_public => Access::Public,
        (_, Some(r)) => Access::Role(r),
        (false, None) => Access::Undeclared,
    }
}

/// Routes outside the OpenAPI document that are public by design.
pub(crate) fn is_docs(route: &str) -> bool {
    route == "/openapi.json" || route == "/docs" || route.starts_with("/docs/")
}

/// `read` for GET and HEAD, `write` for everything else.
pub(crate) fn class_of(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        "read"
    } else {
        "write"
    }
}

/// Client addresses that sent too many refused credentials, and until
/// when their API keys are refused without being looked up. Held in memory
/// per replica: checking it costs no Redis or PostgreSQL round trip, which
/// is the point (an address flooding invented API keys reaches PostgreSQL
/// at most a burst's worth of times per replica and window).
///
/// Only lookups are spared: JWTs are checked as usual (verifying one costs
/// no query), and an API key whose prefix this replica has recently seen
/// verified is looked up as usual, so valid callers behind the same address
/// (a proxy, a NAT) keep working while invented keys are refused.
#[derive(Debug, Default, Clone)]
pub struct BlockedAddresses(Arc<Mutex<Blocked>>);

#[derive(Debug, Default)]
struct Blocked {
    until: HashMap<String, Instant>,
    /// Prefixes of API keys that verified here (random, not secret).
    known_keys: std::collections::HashSet<String>,
}

/// Most verified key prefixes remembered (then the set starts over).
const KNOWN_KEYS_MAX: usize = 100_000;

impl BlockedAddresses {
    /// How long `ip` is still refused for `token`, if it is.
    pub(crate) fn remaining(&self, ip: &str, token: &str) -> Option<Duration> {
        let prefix = api_keys::prefix_of(token)?;
        let mut blocked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.known_keys.contains(prefix) {
            return None;
        }
        let until = *blocked.until.get(ip)?;
        let left = until.checked_duration_since(Instant::now());
        if left.is_none() {
            blocked.until.remove(ip);
        }
        left
    }

    pub(crate) fn block(&self, ip: &str, wait: Duration) {
        let mut blocked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget expired entries now and then so the map stays small.
        if blocked.until.len() > 10_000 {
            let now = Instant::now();
            blocked.until.retain(|_, until| *until > now);
        }
        blocked.until.insert(ip.to_owned(), Instant::now() + wait);
    }

    /// Remembers that the key with this token's prefix verified.
    pub(crate) fn verified(&self, token: &str) {
        let Some(prefix) = api_keys::prefix_of(token) else {
            return;
        };
        let mut blocked = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !blocked.known_keys.contains(prefix) {
            if blocked.known_keys.len() >= KNOWN_KEYS_MAX {
                blocked.known_keys.clear();
            }
            blocked.known_keys.insert(prefix.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn access_is_read_from_security_requirements() {
        assert_eq!(access_of(Some(&json!([{}])), false), Access::Public);
        assert_eq!(
            access_of(Some(&json!([{"bearer": ["operator"]}])), false),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            access_of(Some(&json!([{}, {"bearer": ["viewer"]}])), true),
            Access::Public
        );
        assert_eq!(
            access_of(Some(&json!([{}, {"bearer": ["viewer"]}])), false),
            Access::Role(Role::Viewer)
        );
        assert_eq!(access_of(None, true), Access::Undeclared);
        assert_eq!(
            access_of(Some(&json!([{"bearer": ["root"]}])), true),
            Access::Undeclared
        );
        assert_eq!(
            access_of(Some(&json!([{"bearer": []}])), true),
            Access::Undeclared
        );
    }
}
