//! Error reports to Sentry (or a Sentry-compatible service such as
//! GlitchTip) when `SENTRY_DSN` is set: panics, jobs that die (a permanent
//! failure, or out of attempts), and the API's 5xx answers. Each event is
//! tagged with what an on-call engineer searches by (component, job id,
//! kind, queue, attempt, request id) and scrubbed before it leaves the
//! process: credentials in URLs, bearer tokens and API keys in text, and
//! every field named like a secret in payloads and extras. Off, and free,
//! when `SENTRY_DSN` is unset.
//!
//! Events go out from one background thread through a bounded queue: a
//! slow or unreachable Sentry never blocks a request or a job, and events
//! it cannot take are dropped and counted ([`dropped`]).

use std::{
    sync::{Arc, LazyLock, mpsc},
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;

use sentry::{
    Envelope, Level, TransportOptions,
    protocol::{Event, Value},
};
use serde_json::Map;

use crate::config::ErrorReportConfig;

/// Events waiting to be sent, at most: past it, new ones are dropped.
const QUEUE: usize = 100;

/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Events dropped because the queue to Sentry was full or Sentry refused
/// them or could not be reached (each failed send is also logged). Each
/// process registers it as `hangar_error_reports_dropped_total`.
pub fn dropped_counter() -> Counter {
    DROPPED.clone()
}

/// Keeps reporting on while held; dropping it sends what is queued (up to
/// 2 s) and stops.
#[must_use = "reporting stops when this is dropped"]
pub struct ErrorReports(Option<sentry::ClientInitGuard>);

impl ErrorReports {
    /// Whether events are sent.
    pub fn enabled(&self) -> bool {
        self.0.as_ref().is_some_and(|g| g.is_enabled())
    }
}

/// Starts reporting for `component` (api, worker, scheduler) if a DSN is set.
pub fn init(config: &ErrorReportConfig, component: &'static str) -> ErrorReports {
    let Some(dsn) = config
        .dsn
        .as_ref()
        .and_then(|d| d.expose().parse::<sentry::types::Dsn>().ok())
    else {
        return ErrorReports(None);
    };
    let host = dsn.host().to_owned();
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(config.release.clone().into());
    options.environment = Some(config.environment.clone().into());
    options.attach_stacktrace = true;
    options.send_default_pii = false;
    options.before_send = Some(Arc::new(move |mut event: Event<'static>| {
        event.tags.insert("component".into(), component.into());
        Some(scrub_event(event))
    }));
    options.transport = Some(Arc::new(Sender));
    let guard = sentry::init(options);
    tracing::info!(sentry = %host, component, environment = %config.environment,
        release = %config.release, "reporting panics, dead jobs and 5xx answers to Sentry");
    ErrorReports(Some(guard))
}

/// A job that died, as the worker recorded it.
#[derive(Debug)]
pub struct DeadJob<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// Its queue.
    pub queue: &'a str,
    /// The attempt that ended it.
    pub attempt: u32,
    /// The API request that created it, if any.
    pub request_id: Option<&'a str>,
    /// Why it died.
    pub error: &'a str,
    /// Its arguments (secret-named fields are scrubbed).
    pub payload: Option<&'a serde_json::Value>,
}

/// Reports a job that died. Events of one kind group together in Sentry
/// (fingerprint: the kind), whatever the error text.
pub fn job_died(job: &DeadJob<'_>) {
    if sentry::Hub::current().client().is_none_or(|c| !c.is_enabled()) {
        return;
    }
    sentry::with_scope(
        |scope| {
            scope.set_tag("job.id", job.id);
            scope.set_tag("job.kind", job.kind);
            scope.set_tag("queue", job.queue);
            scope.set_tag("attempt", job.attempt);
            if let Some(r) = job.request_id {
                scope.set_tag("request_id", r);
            }
            if let Some(p) = job.payload {
                scope.set_extra("payload", p.clone());
            }
            scope.set_fingerprint(Some(&["hangar-job-dead", job.kind]));
        },
        || {
            sentry::capture_message(
                &format!("job {} ({}) died: {}", job.kind, job.id, job.error),
                Level::Error,
            )
        },
    );
}

/// Reports a 5xx answer of the API.
pub fn server_error(route: &str, method: &str, status: u16, request_id: &str) {
    if sentry::Hub::current().client().is_none_or(|c| !c.is_enabled()) {
        return;
    }
    sentry::with_scope(
        |scope| {
            scope.set_tag("http.route", route);
            scope.set_tag("http.method", method);
            scope.set_tag("http.status_code", status);
            scope.set_tag("request_id", request_id);
            scope.set_fingerprint(Some(&["hangar-http-5xx", route, &status.to_string()]));
        },
        || {
            sentry::capture_message(
                &format!(
                    "{method} {route} answered {status} (request {request_id}; the API log has the cause)"
                ),
                if status == 503 {
                    Level::Warning
                } else {
                    Level::Error
                },
            )
        },
    );
}

/// Whether a field called `name` holds a secret.
fn secret_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "authorization",
        "auth",
        "credential",
        "cookie",
        "session",
        "dsn",
        "private_key",
        "access_key",
        "signature",
    ];
    let name = name.to_ascii_lowercase().replace('-', "_");
    WORDS.iter().any(|w| name.contains(w))
}

const REDACTED: &str = "[redacted]";

/// Scrubs secrets out of free text: a password in a URL's user info, a
/// bearer token, a Hangar API key (`hangar_<prefix>_<secret>`).
pub fn scrub_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&scrub_word(word));
    }
    // "Bearer <token>": the word after it.
    let mut words: Vec<String> = out.split(' ').map(str::to_owned).collect();
    for i in 1..words.len() {
        if words[i - 1].eq_ignore_ascii_case("bearer") {
            words[i] = REDACTED.to_owned();
        }
    }
    words.join(" ")
}

fn scrub_word(word: &str) -> String {
    // scheme://user:password@host -> scheme://user:[redacted]@host
    if let Some(scheme_end) = word.find("://") {
        let rest = &word[scheme_end + 3..];
        if let Some(at) = rest.find('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:{REDACTED}{}",
                    &word[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
    }
    let trimmed = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
    if trimmed.starts_with("hangar_") && trimmed.matches('_').count() >= 2 && trimmed.len() > 24 {
        return word.replace(trimmed, REDACTED);
    }
    word.to_owned()
}

/// Scrubs a JSON value: secret-named fields anywhere in it, and text.
fn scrub_value(value: &mut Value) {
    match value {
        Value::String(s) => *s = scrub_text(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => scrub_map(map),
        _ => {}
    }
}

fn scrub_map(map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        if secret_name(k) {
            *v = Value::String(REDACTED.into());
        } else {
            scrub_value(v);
        }
    }
}

/// Everything an event carries that could hold a secret, scrubbed.
pub fn scrub_event(mut event: Event<'static>) -> Event<'static> {
    if let Some(m) = event.message.as_mut() {
        *m = scrub_text(m);
    }
    if let Some(log) = event.logentry.as_mut() {
        log.message = scrub_text(&log.message);
    }
    for e in &mut event.exception.values {
        if let Some(v) = e.value.as_mut() {
            *v = scrub_text(v);
        }
    }
    for (k, v) in event.extra.iter_mut() {
        if secret_name(k) {
            *v = Value::String(REDACTED.into());
        } else {
            scrub_value(v);
        }
    }
    for (k, v) in event.tags.iter_mut() {
        if secret_name(k) {
            *v = REDACTED.into();
        } else {
            *v = scrub_text(v);
        }
    }
    if let Some(request) = event.request.as_mut() {
        request.headers.retain(|k, _| !secret_name(k));
        request.cookies = None;
        request.data = None;
    }
    event
}

/// The transport: a bounded queue and one thread that POSTs each envelope.
struct Sender;

impl sentry::TransportFactory for Sender {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn sentry::Transport> {
        let (tx, rx) = mpsc::sync_channel::<Envelope>(QUEUE);
        let (flushed_tx, flushed_rx) = mpsc::sync_channel::<()>(1);
        let url = options.dsn.envelope_api_url().to_string();
        let auth = options.dsn.to_auth(Some(&options.user_agent)).to_string();
        let thread = std::thread::Builder::new()
            .name("sentry-sender".into())
            .spawn(move || send_loop(&rx, &url, &auth, &flushed_tx));
        if let Err(e) = thread {
            tracing::warn!(error = %e, "could not start the error-report thread; reports are off");
        }
        Arc::new(Queue {
            tx: std::sync::Mutex::new(Some(tx)),
            flushed: std::sync::Mutex::new(flushed_rx),
        })
    }
}

struct Queue {
    tx: std::sync::Mutex<Option<mpsc::SyncSender<Envelope>>>,
    flushed: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl sentry::Transport for Queue {
    fn send_envelope(&self, envelope: Envelope) {
        let tx = self.tx.lock().ok().and_then(|t| t.clone());
        if tx.is_none_or(|tx| tx.try_send(envelope).is_err()) {
            DROPPED.inc();
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        // An empty envelope is the flush marker: the thread answers it
        // once everything queued before it was sent.
        let Some(tx) = self.tx.lock().ok().and_then(|t| t.clone()) else {
            return true;
        };
        if tx.try_send(Envelope::new()).is_err() {
            return false;
        }
        self.flushed
            .lock()
            .map(|rx| rx.recv_timeout(timeout).is_ok())
            .unwrap_or(false)
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self.flush(timeout);
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        flushed
    }
}

fn send_loop(rx: &mpsc::Receiver<Envelope>, url: &str, auth: &str, flushed: &mpsc::SyncSender<()>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    // The client's connector needs the runtime's reactor from the start.
    let _entered = runtime.enter();
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .unwrap_or_default();
    while let Ok(envelope) = rx.recv() {
        if envelope.items().next().is_none() {
            let _ = flushed.try_send(());
            continue;
        }
        let mut body = Vec::new();
        if envelope.to_writer(&mut body).is_err() {
            DROPPED.inc();
            continue;
        }
        let sent = runtime.block_on(
            client
                .post(url)
                .header("X-Sentry-Auth", auth)
                .header("Content-Type", "application/x-sentry-envelope")
                .body(body)
                .send(),
        );
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                DROPPED.inc();
                tracing::warn!(status = r.status().as_u16(), "Sentry refused an error report");
            }
            Err(e) => {
                DROPPED.inc();
                tracing::warn!(error = %e, "could not send an error report to Sentry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_in_text_are_scrubbed_and_the_rest_is_kept() {
        assert_eq!(
            scrub_text("connect postgres://hangar:s3cret@db:5432/hangar failed"),
            "connect postgres://hangar:[redacted]@db:5432/hangar failed"
        );
        assert_eq!(
            scrub_text("Authorization: Bearer eyJhbGciOi.x.y refused"),
            "Authorization: Bearer [redacted] refused"
        );
        assert_eq!(
            scrub_text("key hangar_ab12cd_0123456789abcdef0123 revoked"),
            "key [redacted] revoked"
        );
        assert_eq!(
            scrub_text("sync.workspaces of prod in us-east-1"),
            "sync.workspaces of prod in us-east-1"
        );
    }

    #[test]
    fn fields_named_like_secrets_are_scrubbed_at_any_depth() {
        let mut event = Event::default();
        event.extra.insert(
            "payload".into(),
            json!({"account": "prod", "webhook": {"url": "https://u:pw@hook.example/x", "Api-Token": "abc"},
                   "items": [{"password": "p"}]}),
        );
        event.extra.insert("db_password".into(), json!("p"));
        event.message = Some("redis://:hunter2@cache:6379 down".into());
        let event = scrub_event(event);
        assert_eq!(
            event.extra["payload"],
            json!({"account": "prod", "webhook": {"url": "https://u:[redacted]@hook.example/x", "Api-Token": "[redacted]"},
                   "items": [{"password": "[redacted]"}]})
        );
        assert_eq!(event.extra["db_password"], json!("[redacted]"));
        assert_eq!(
            event.message.as_deref(),
            Some("redis://:[redacted]@cache:6379 down")
        );
    }
}
