//! The console's HTML: a layout and one function per page. maud escapes
//! every value it interpolates, so nothing a user stored can become markup.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
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
}

fn head(base: &str, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Hangar" }
            link rel="stylesheet" href={ (base) "/assets/" (assets::CSS.name) };
            link rel="icon" type="image/svg+xml" href={ (base) "/assets/" (assets::ICON.name) };
        }
    }
}

/// A signed-in page: the navigation, who is signed in, logout, `body`.
fn layout(base: &str, session: &Session, title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(base, title))
            body {
                header.top {
                    a.brand href={ (base) "/" } { "Hangar" }
                    nav aria-label="Main" {
                        a href={ (base) "/" } aria-current=[(title == "Overview").then_some("page")] { "Overview" }
                    }
                    span.who {
                        (session.principal.actor) " (" (session.principal.role.as_str()) ")"
                    }
                    form method="post" action={ (base) "/logout" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        button type="submit" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
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

/// The overview: each queue's depth and workers.
pub fn overview(base: &str, session: &Session, queues: &[QueueRow]) -> Markup {
    let body = html! {
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
                    } }
                    tbody {
                        @for q in queues {
                            tr {
                                th scope="row" { (q.name) }
                                td.num { (q.queued) }
                                td.num { (q.running) }
                                td.num { (q.delayed) }
                                td.num.bad[q.dead > 0] { (q.dead) }
                                td.num.bad[q.workers == 0 && q.queued > 0] { (q.workers) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(base, session, "Overview", &body)
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
