//! HTTP hardening: security headers on every answer, JSON-only bodies,
//! CORS for configured origins only.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{error::ApiError, state::AppState};

/// The interactive docs load Swagger UI's scripts and styles from this
/// server only; everything else is JSON and may load nothing.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The console: its own scripts and styles only (no inline code), forms
/// posted back to itself.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's forms post URL-encoded bodies.
fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether the request carries a body, however it is framed: a length,
/// chunked transfer, or (HTTP/2) DATA frames with no length announced, which
/// only the body stream itself tells.
fn has_body(req: &Request) -> bool {
    use http_body::Body as _;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Methods whose handlers read bodies: an HTTP/2 stream still open after
    // its headers carries one. (A GET may end its stream with an empty DATA
    // frame; that is no body to refuse.)
    let reads_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    match length {
        Some(n) => n > 0,
        None => {
            req.headers().contains_key(header::TRANSFER_ENCODING)
                || (reads_body && !req.body().is_end_stream())
        }
    }
}

/// Refuses non-JSON bodies (415; the console's forms excepted) and sets
/// the security headers.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let docs = req.uri().path() == "/docs" || req.uri().path().starts_with("/docs/");
    let console = crate::console::is_console(req.uri().path());
    // Every request that carries a body, whatever its method: handlers of
    // reads ignore bodies today, but the rule must not depend on that.
    let mut response = if req.method() != Method::OPTIONS && has_body(&req) {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if content_type.is_some_and(|c| is_json(c) || (console && is_form(c))) {
            next.run(req).await
        } else {
            ApiError::UnsupportedMediaType(format!(
                "the body must be JSON: send Content-Type: application/json (got {})",
                content_type.map_or("none".to_owned(), |c| format!("{c:?}"))
            ))
            .into_response()
        }
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The console's own POSTs must carry their Origin, which browsers
    // replace with "null" under `no-referrer`.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(if console { "same-origin" } else { "no-referrer" }),
    );
    let csp = match (docs, console) {
        (true, _) => DOCS_CSP,
        (_, true) => CONSOLE_CSP,
        _ => API_CSP,
    };
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    // Hashed console assets carry their own long-lived caching.
    if !docs && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.config.api.security.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// CORS for the configured origins; `None` when there are none (browsers
/// then refuse cross-origin calls, the safe default).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static("ratelimit-limit"),
                header::HeaderName::from_static("ratelimit-remaining"),
                header::HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
    }
}
