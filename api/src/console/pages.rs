//! The console's HTML: a layout and one function per page. maud escapes
//! every value it interpolates, so nothing a user stored can become markup.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use hangar_shared::db::JobRun;
use maud::{DOCTYPE, Markup, html};

use super::{assets, session::Session};

/// One queue's line on the overview.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// The queue.
    pub name: String,
    /// Waiting to run.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Due later (retries' backoff, scheduled).
    pub delayed: u64,
    /// Out of attempts.
    pub dead: u64,
    /// Workers that reported in recently.
    pub workers: u64,
    /// When the oldest waiting job became due.
    pub oldest_waiting: Option<DateTime<Utc>>,
}

/// Jobs finished in one hour.
#[derive(Debug, Clone)]
pub struct Activity {
    /// The hour (UTC).
    pub hour: DateTime<Utc>,
    /// Succeeded in it.
    pub succeeded: i64,
    /// Went dead in it.
    pub failed: i64,
}

/// What the overview shows.
pub struct Overview<'a> {
    /// Each queue.
    pub queues: &'a [QueueRow],
    /// The last 24 hours, oldest first.
    pub activity: &'a [Activity],
    /// When `activity` was counted (it is recounted at most once a minute).
    pub activity_at: DateTime<Utc>,
    /// Each model's health.
    pub models: &'a [(String, hangar_inference::ModelHealth)],
    /// Each sync target.
    pub syncs: &'a [SyncRow],
    /// What a "Sync now" just did.
    pub notice: Option<&'a SyncNotice>,
}

/// One sync target's line on the overview.
pub use crate::sync_status::SyncTarget as SyncRow;

/// What a "Sync now" just did.
#[derive(Debug, Clone)]
pub struct SyncNotice {
    /// The kind pressed.
    pub kind: String,
    /// Every target already had an open job.
    pub already: bool,
}

/// A time as its age ("5 min ago") in a `<time>` element, with the time
/// itself on hover (the script puts it in the viewer's zone, UTC beside it).
pub(super) fn when(t: DateTime<Utc>) -> Markup {
    let age = Utc::now() - t;
    let ago = match age.num_seconds() {
        s if s < 60 => format!("{}s ago", s.max(0)),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    };
    html! {
        time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (ago) }
    }
}

/// A time as a date and time in a `<time>` element: UTC as rendered, put
/// in the viewer's zone by the script (with UTC on hover).
pub(super) fn at(t: DateTime<Utc>) -> Markup {
    html! {
        time.at datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) {
            (t.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

/// A labelled text field of a filter form (a GET form: the URL is the
/// bookmark), showing `value` and `hint` when empty.
pub(super) fn text_filter(name: &str, label: &str, value: &str, hint: &str, size: u32) -> Markup {
    html! {
        label for=(name) { (label) }
        input id=(name) name=(name) value=(value) placeholder=(hint) size=(size);
    }
}

/// The 403 page for a page below the session's role, or `None` when the
/// role suffices: `what` names the page ("Hangar's audit log").
pub(super) fn forbidden_below(
    base: &str,
    session: &Session,
    needed: crate::auth::Role,
    what: &str,
) -> Option<Response> {
    (session.principal.role < needed).then(|| {
        error_page(
            base,
            StatusCode::FORBIDDEN,
            &format!("{what} needs the {} role", needed.as_str()),
        )
    })
}

/// The console's sections, in navigation order: label, path, least role.
const SECTIONS: &[(&str, &str, crate::auth::Role)] = &[
    ("Overview", "/", crate::auth::Role::Viewer),
    ("Jobs", "/jobs", crate::auth::Role::Viewer),
    ("Schedules", "/schedules", crate::auth::Role::Viewer),
    ("Workers", "/workers", crate::auth::Role::Viewer),
    ("WorkSpaces", "/workspaces", crate::auth::Role::Viewer),
    ("Billing", "/billing", crate::auth::Role::Viewer),
    ("Audit", "/audit", crate::auth::Role::Viewer),
    ("Reports", "/reports", crate::auth::Role::Viewer),
    ("Models", "/models", crate::auth::Role::Viewer),
    ("Admin", "/admin", crate::auth::Role::Admin),
];

fn head(base: &str, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Hangar" }
            link rel="stylesheet" href={ (base) "/assets/" (assets::CSS.name) };
            link rel="icon" type="image/svg+xml" href={ (base) "/assets/" (assets::ICON.name) };
            script src={ (base) "/assets/" (assets::JS.name) } defer {}
        }
    }
}

/// A signed-in page of `section`: the navigation, who is signed in,
/// logout, `body`.
pub(super) fn layout(base: &str, session: &Session, section: &str, title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(base, title))
            body {
                header.top {
                    a.brand href={ (base) "/" } { "Hangar" }
                    nav aria-label="Main" {
                        @for (label, path, role) in SECTIONS {
                            @if session.principal.role >= *role {
                                a href={ (base) (path) } aria-current=[(*label == section).then_some("page")] { (label) }
                            }
                        }
                    }
                    span.who {
                        (session.principal.actor) " (" (session.principal.role.as_str()) ")"
                    }
                    form method="post" action={ (base) "/logout" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        button type="submit" { "Log out" }
                    }
                }
                main data-events={ (base) "/events" } { h1 { (title) } (body) }
            }
        }
    }
}

/// The login form, with `error` (naming the field) above it.
pub fn login(base: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(base, "Log in"))
            body {
                main {
                    div.card {
                        h1 { "Log in to Hangar" }
                        @if let Some(e) = error { p.error role="alert" { (e) } }
                        form method="post" action={ (base) "/login" } {
                            label for="credential" { "API key or JWT" }
                            input id="credential" name="credential" type="password" autocomplete="off" required
                                aria-describedby="credential-hint";
                            p.hint id="credential-hint" {
                                "Exchanged once for a session cookie; the console never stores it."
                            }
                            button type="submit" { "Log in" }
                        }
                    }
                }
            }
        }
    }
}

/// The overview: each queue's depth and workers, and each sync target's
/// last success with a "Sync now" button per kind (operators and admins).
pub fn overview(base: &str, session: &Session, page: &Overview<'_>) -> Markup {
    let Overview {
        queues,
        activity,
        activity_at,
        models,
        syncs,
        notice,
    } = page;
    let last_hour = activity.last();
    let day_done: i64 = activity.iter().map(|a| a.succeeded + a.failed).sum();
    let day_failed: i64 = activity.iter().map(|a| a.failed).sum();
    let bars: Vec<super::charts::Bar> = activity
        .iter()
        .map(|a| super::charts::Bar::hour(a.hour, vec![a.succeeded as f64, a.failed as f64]))
        .collect();
    let age = |t: DateTime<Utc>| {
        let s = (Utc::now() - t).num_seconds().max(0);
        match s {
            s if s < 120 => format!("{s} s"),
            s if s < 7200 => format!("{} min", s / 60),
            s => format!("{} h", s / 3600),
        }
    };
    let may_sync = session.principal.role >= crate::auth::Role::Operator;
    let mut kinds: Vec<&str> = syncs.iter().map(|r| r.short.as_str()).collect();
    kinds.dedup();
    let body = html! {
        @if let Some(n) = notice {
            p.notice role="status" {
                @if n.already { "Sync " (n.kind) ": already running; the open jobs are linked below." }
                @else { "Sync " (n.kind) " started; its jobs are linked below." }
            }
        }
        section aria-labelledby="queues" {
            h2 id="queues" { "Queues" }
            @if queues.is_empty() {
                p.muted { "No queues are configured." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Queue" }
                        th.num scope="col" { "Queued" }
                        th.num scope="col" { "Running" }
                        th.num scope="col" { "Delayed" }
                        th.num scope="col" { "Dead" }
                        th.num scope="col" { "Workers alive" }
                        th.num scope="col" { "Oldest waiting" }
                    } }
                    tbody {
                        @for q in queues.iter() {
                            tr {
                                th scope="row" { (q.name) }
                                td.num { (q.queued) }
                                td.num { (q.running) }
                                td.num { (q.delayed) }
                                td.num.bad[q.dead > 0] { (q.dead) }
                                td.num.bad[q.workers == 0 && q.queued > 0] { (q.workers) }
                                td.num { @if let Some(t) = q.oldest_waiting { (age(t)) } @else { "-" } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="activity" {
            h2 id="activity" { "Jobs finished" }
            p {
                @if let Some(h) = last_hour {
                    "This hour: " strong { (h.succeeded + h.failed) } " ("
                    (format!("{:.1}", (h.succeeded + h.failed) as f64 / 60.0)) " per minute), "
                    strong.bad[h.failed > 0] { (h.failed) } " failed. "
                }
                "Last 24 hours: " strong { (day_done) } ", " strong.bad[day_failed > 0] { (day_failed) } " failed."
            }
            p.muted { "Counted " (when(*activity_at)) "; recounted at most once a minute." }
            (super::charts::stacked_bars(
                "Jobs finished per hour over the last 24 hours, succeeded and failed",
                &["succeeded".to_owned(), "failed".to_owned()],
                &bars,
                1.0,
                &|v| format!("{v:.0}"),
            ))
        }
        @if !models.is_empty() {
            section aria-labelledby="models" {
                h2 id="models" { "Models" }
                table {
                    thead { tr { th scope="col" { "Model" } th scope="col" { "Health" } th scope="col" { "Checked" } } }
                    tbody {
                        @for (name, h) in models.iter() {
                            tr {
                                th scope="row" { a href={ (base) "/models" } { (name) } }
                                td.ok[h.ready] .bad[!h.ready] { (h.status) @if let (false, Some(e)) = (h.ready, &h.last_error) { span.muted { " (" (e) ")" } } }
                                td { @if let Some(t) = h.checked_at { (when(t)) } @else { "not yet" } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="syncs" {
            h2 id="syncs" { "Syncs" }
            @if syncs.is_empty() {
                p.muted { "No AWS accounts are configured (HANGAR_AWS_ACCOUNTS), so there is nothing to sync." }
            } @else {
                @if may_sync {
                    div.actions {
                        @for kind in &kinds {
                            form method="post" action={ (base) "/syncs/" (kind) } {
                                input type="hidden" name="csrf" value=(session.csrf_token);
                                button type="submit" { "Sync now: " (kind) }
                            }
                        }
                    }
                }
                table {
                    thead { tr {
                        th scope="col" { "Sync" }
                        th scope="col" { "Account" }
                        th scope="col" { "Region" }
                        th scope="col" { "Last succeeded" }
                        th scope="col" { "Open job" }
                    } }
                    tbody {
                        @for r in syncs.iter() {
                            tr {
                                th scope="row" { (r.short) }
                                td { (r.account) }
                                td { (r.region) }
                                td { @if let Some(t) = r.last_ok { (when(t)) } @else { span.muted { "never" } } }
                                td {
                                    @if let Some(id) = &r.open_job {
                                        span data-live-job=(id) {
                                            a href={ (base) "/jobs/" (id) } { (id) } " "
                                            span.state data-field="state" aria-live="polite" { "open" }
                                        }
                                    } @else { span.muted { "none" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(base, session, "Overview", "Overview", &body)
}

/// One job's record: what it is, its state, attempts, payload, result
/// and error; with `redis_view` (while Redis keeps the job) each attempt's
/// error and the worker holding it.
pub fn job(
    base: &str,
    session: &Session,
    run: &JobRun,
    redis_view: Option<&hangar_queue::JobState>,
) -> Markup {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let live = run.state.is_open().then_some(run.id.as_str());
    let body = html! {
        div data-live-job=[live] data-reload-on-finish=[live.map(|_| "")] {
        dl.facts {
            dt { "Kind" } dd { (run.kind) }
            dt { "Queue" } dd { (run.queue) }
            dt { "State" } dd.state data-field="state" aria-live="polite" { (run.state.as_str()) }
            dt { "Attempts" } dd data-field="attempts" { (run.attempts) " of " (run.max_attempts) " (" (run.deliveries) " deliveries)" }
            dt { "Requested by" } dd { (run.requested_by.as_deref().unwrap_or("-")) }
            dt { "Request id" } dd {
                code { (run.request_id.as_deref().unwrap_or("-")) }
                span.muted { " (in every log line of the request and of the job's run)" }
            }
            @if let Some(w) = redis_view.and_then(|l| l.worker.as_deref()) { dt { "Worker" } dd { code { (w) } } }
            dt { "Created" } dd { (when(run.created_at)) }
            dt { "Started" } dd { @if let Some(t) = run.started_at { (when(t)) } @else { "-" } }
            dt { "Finished" } dd { @if let Some(t) = run.finished_at { (when(t)) } @else { "-" } }
        }
        @if session.principal.role >= crate::auth::Role::Admin {
            div.actions {
                @if run.state.is_open() {
                    form method="post" action={ (base) "/jobs/" (run.id) "/cancel" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        button type="submit" { "Cancel" }
                    }
                }
                @if run.state.as_str() == "dead" {
                    form method="post" action={ (base) "/jobs/" (run.id) "/retry" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        button type="submit" { "Retry" }
                    }
                    form method="post" action={ (base) "/jobs/" (run.id) "/delete" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        button.danger type="submit" title="Removes it from its queue's dead set; its record stays" { "Delete from the dead set" }
                    }
                }
            }
        }
        @if let Some(e) = &run.error { h2 { "Last error" } pre.error { (e) } }
        @if let Some(l) = redis_view.filter(|l| !l.errors.is_empty()) {
            h2 { "Attempts' errors" }
            table {
                thead { tr { th.num scope="col" { "Attempt" } th scope="col" { "When" } th scope="col" { "Error" } } }
                tbody {
                    @for e in &l.errors {
                        tr {
                            td.num { (e.attempt) }
                            td { @if let Some(t) = DateTime::from_timestamp_millis(i64::try_from(e.at).unwrap_or(0)) { (at(t)) } }
                            td { code { (e.error) } }
                        }
                    }
                }
            }
        }
        h2 { "Payload" }
        pre { (pretty(&run.payload)) }
        @if run.state.is_open() {
            h2 { "Progress" }
            pre data-field="progress" { @if let Some(p) = &run.progress { (pretty(p)) } @else { "none yet" } }
        } @else if let Some(p) = &run.progress {
            h2 { "Progress" } pre { (pretty(p)) }
        }
        @if let Some(r) = &run.result { h2 { "Result" } pre { (pretty(r)) } }
        }
    };
    layout(base, session, "Jobs", &format!("Job {}", run.id), &body)
}

/// A whole page saying what went wrong and what to do.
pub fn error_page(base: &str, status: StatusCode, message: &str) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head(base, "Error"))
            body { main { div.card {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error role="alert" { (message) }
                p { a href={ (base) "/" } { "Back to the console" } }
            } } }
        }
    };
    (status, Html(page.into_string())).into_response()
}
