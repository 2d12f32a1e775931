//! Delivery of a published report to `HANGAR_REPORT_WEBHOOK_URL`, for report
//! jobs that ask for it (`"webhook": true`, what the shipped report
//! schedules set): one JSON POST naming the report and its download link,
//! signed with HMAC-SHA256 over `"{timestamp}.{body}"` with
//! `HANGAR_REPORT_WEBHOOK_SECRET` (header `X-Hangar-Signature:
//! sha256=<hex>`, timestamp in `X-Hangar-Timestamp`), so the receiver can
//! check who sent it and refuse replays. `X-Hangar-Delivery` (the report
//! id) lets it ignore a repeat. 5xx, 429 and connection failures are
//! retried with exponential backoff; any other 4xx is final. A delivery
//! that fails leaves the report published: the job's result says what
//! happened.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::spec::Published;

/// Where and how reports are delivered.
#[derive(Clone)]
pub struct Webhook {
    url: String,
    secret: Option<String>,
    public_url: Option<String>,
    attempts: usize,
    first_backoff: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The signature of `body` sent at `timestamp` (hex HMAC-SHA256 of
/// `"{timestamp}.{body}"`).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A failed attempt: whether another could succeed.
struct Failure {
    retry: bool,
    message: String,
}

impl Webhook {
    /// A webhook to `url`, signing with `secret`; links start with
    /// `public_url` (the API's external address) when given.
    pub fn new(url: String, secret: Option<String>, public_url: Option<String>) -> Self {
        Self {
            url,
            secret,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Retries faster (tests).
    #[must_use]
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.first_backoff = first;
        self
    }

    /// Posts report `id` (`kind`, `format`) to the webhook; returns what
    /// happened, for the job's result.
    pub async fn deliver(&self, id: &str, kind: &str, format: &str, published: &Published) -> Value {
        let path = format!("/api/v1/reports/{id}/download");
        let body = json!({
            "event": "report.published",
            "report_id": id,
            "type": kind.strip_prefix("report.").unwrap_or(kind),
            "format": format,
            "rows": published.rows,
            "size_bytes": published.bytes,
            "sha256": published.sha256,
            "download_path": path,
            "download_url": self.public_url.as_ref().map(|base| format!("{base}{path}")),
        })
        .to_string();
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let result = (|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let timestamp = chrono::Utc::now().timestamp();
            let mut request = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-hangar-delivery", id)
                .header("x-hangar-timestamp", timestamp.to_string())
                .body(body.clone());
            if let Some(secret) = &self.secret {
                request = request.header(
                    "x-hangar-signature",
                    format!("sha256={}", signature(secret, timestamp, body.as_bytes())),
                );
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
                Ok(r) => Err(Failure {
                    retry: r.status().is_server_error() || r.status().as_u16() == 429,
                    message: format!("the webhook answered {}", r.status()),
                }),
                Err(e) => Err(Failure {
                    retry: true,
                    message: format!("the webhook could not be reached: {e}"),
                }),
            }
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(self.first_backoff)
                .with_max_delay(self.first_backoff * 30)
                .with_max_times(self.attempts - 1)
                .with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(|f: &Failure| f.retry)
        .notify(|f: &Failure, wait: Duration| {
            tracing::warn!(report = id, error = %f.message, retry_in = ?wait, "report webhook failed; retrying");
        })
        .await;
        let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(status) => json!({"delivered": true, "status": status, "attempts": attempts}),
            Err(f) => {
                tracing::error!(report = id, error = %f.message, attempts, "report webhook not delivered");
                json!({"delivered": false, "attempts": attempts, "error": f.message})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2's key and data, as "{timestamp}.{body}".
        // HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let sig = signature("Jefe", 0, b"");
        assert_eq!(sig.len(), 64);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let rfc: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            signature("Jefe", 1, b"x"),
            signature("Jefe", 2, b"x"),
            "the timestamp is signed"
        );
    }
}
