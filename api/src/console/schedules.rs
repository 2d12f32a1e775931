//! The schedules page: every schedule with its next five fire times (in its
//! own zone and in UTC) and its last run; enable, disable and run now; and
//! the form that creates or edits an API schedule. File schedules are shown
//! read-only, saying where to change them. Every action goes through the
//! API's own handler, so the checks and messages are the API's.

use axum::{
    Extension, Form,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiRefusal, CsrfForm, WriteRequest, api_error_page, base, pages, session::Session};
use crate::{auth::Role, routes::schedules as api, state::AppState, views::schedules::ScheduleView};

/// Jobs a "Run now" notice links at most (a fan-out schedule starts one
/// per account and region).
const RUN_JOBS_LINKED: usize = 10;

/// What a "Run now" just did, as the list's query says.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RanQuery {
    ran: Option<String>,
    /// The jobs it started or found open, comma-separated.
    jobs: Option<String>,
    already: Option<String>,
}

/// `GET /ui/schedules`.
pub(super) async fn list(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Query(ran): axum::extract::Query<RanQuery>,
) -> Response {
    match api::list(State(state.clone())).await {
        Ok(axum::Json(list)) => {
            Html(render_list(&base(&state), &session, &list.schedules, &ran).into_string()).into_response()
        }
        Err(e) => api_error_page(&base(&state), e).await,
    }
}

/// A fire time in the schedule's own zone, with UTC beside it.
fn fire_time(t: DateTime<Utc>, zone: &str) -> Markup {
    let local = zone
        .parse::<chrono_tz::Tz>()
        .map(|tz| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    html! {
        time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (local) }
        @if zone != "UTC" { " · " (t.format("%H:%M UTC")) }
    }
}

fn render_list(base: &str, session: &Session, schedules: &[ScheduleView], ran: &RanQuery) -> Markup {
    let admin = session.principal.role >= Role::Admin;
    let operator = session.principal.role >= Role::Operator;
    let body = html! {
        @if let Some(name) = &ran.ran {
            p.notice role="status" {
                @if ran.already.is_some() { "Schedule " (name) ": already running (it skips overlapping runs): " }
                @else { "Schedule " (name) " is running now: " }
                @for id in ran.jobs.as_deref().unwrap_or("").split(',').filter(|id| !id.is_empty()) {
                    a href={ (base) "/jobs/" (id) } { code { (id) } } " "
                }
            }
        }
        @if admin {
            p { a.button href={ (base) "/schedules/new" } { "New schedule" } }
        }
        @if schedules.is_empty() {
            p.muted { "No schedules yet: none in the schedules file (HANGAR_SCHEDULES_FILE) and none created here." }
        }
        @if schedules.iter().any(|s| s.source == "file") {
            p.hint { "Schedules marked “file” come from the deployment's schedules file (HANGAR_SCHEDULES_FILE): change them there; the console shows them read-only." }
        }
        @if !schedules.is_empty() {
            table.schedules {
                thead { tr {
                    th scope="col" { "Schedule" } th scope="col" { "Kind" } th scope="col" { "When" }
                    th scope="col" { "Next five (its zone · UTC)" } th scope="col" { "Last run" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for s in schedules {
                        tr id={ "s-" (s.name) } {
                            th scope="row" {
                                (s.name) br;
                                @if s.enabled { span.tag.ok { "enabled" } } @else { span.tag.bad { "disabled" } }
                                " " span.tag title=(if s.source == "file" { "read-only: defined in HANGAR_SCHEDULES_FILE" } else { "created through the API or the console" }) { (s.source) }
                            }
                            td { (s.kind) @if s.fans_out { br; span.muted.small { "per account and region" } } }
                            td {
                                code { (s.cron) } br;
                                span.muted.small { (s.timezone) "; catch-up " (json!(s.catch_up).as_str().unwrap_or("")) ", " (json!(s.overlap).as_str().unwrap_or("")) }
                            }
                            td {
                                @if s.next.is_empty() { span.muted { "does not fire while disabled" } }
                                @else { ol.times { @for t in &s.next { li { (fire_time(*t, &s.timezone)) } } } }
                            }
                            td {
                                @match &s.last_run {
                                    Some(run) if run.job_id.is_some() => {
                                        @let id = run.job_id.as_deref().unwrap_or_default();
                                        a href={ (base) "/jobs/" (id) } { code { (id) } } br;
                                        span.state.bad[run.state.as_deref() == Some("dead")] { (run.state.as_deref().unwrap_or("not recorded")) }
                                        @if let Some(tick) = run.tick { span.muted.small { " tick " (pages::at(tick)) } }
                                    }
                                    _ => span.muted { "not yet" },
                                }
                            }
                            td {
                                div.actions {
                                    @if operator {
                                        form method="post" action={ (base) "/schedules/" (s.name) "/run" } {
                                            input type="hidden" name="csrf" value=(session.csrf_token);
                                            button type="submit" aria-label={ "Run now: " (s.name) } { "Run now" }
                                        }
                                    }
                                    @if admin && s.source == "api" {
                                        form method="post" action={ (base) "/schedules/" (s.name) (if s.enabled { "/disable" } else { "/enable" }) } {
                                            input type="hidden" name="csrf" value=(session.csrf_token);
                                            button type="submit" aria-label={ (if s.enabled { "Disable " } else { "Enable " }) (s.name) } { (if s.enabled { "Disable" } else { "Enable" }) }
                                        }
                                        a.button href={ (base) "/schedules/" (s.name) "/edit" } aria-label={ "Edit " (s.name) } { "Edit" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    pages::layout(base, session, "Schedules", "Schedules", &body)
}

/// `POST /ui/schedules/{name}/{run|enable|disable}`.
pub(super) async fn action(
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
    write: WriteRequest,
    Form(form): Form<CsrfForm>,
) -> Response {
    let base = base(&state);
    let (audited, needed) = match action.as_str() {
        "run" => ("console_run_schedule", Role::Operator),
        "enable" | "disable" => ("console_update_schedule", Role::Admin),
        _ => {
            return pages::error_page(
                &base,
                StatusCode::NOT_FOUND,
                "no such schedule action: use run, enable or disable",
            );
        }
    };
    if let Err(r) = write.authorize(&state, &form.csrf, needed, audited).await {
        return r;
    }
    let caller = Extension(write.session.principal.clone());
    let done = match action.as_str() {
        "run" => match api::run_now(State(state.clone()), caller, Path(name.clone())).await {
            Ok(r) => {
                let r = r.into_response();
                let already = r.status() == StatusCode::OK;
                let bytes = axum::body::to_bytes(r.into_body(), 256 * 1024)
                    .await
                    .unwrap_or_default();
                let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let jobs: Vec<&str> = v["jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|j| j["job"]["id"].as_str())
                    .take(RUN_JOBS_LINKED)
                    .collect();
                let joined = jobs.join(",");
                let mut q = vec![("ran", name.as_str()), ("jobs", joined.as_str())];
                if already {
                    q.push(("already", "1"));
                }
                Ok(format!(
                    "{base}/schedules?{}",
                    serde_urlencoded::to_string(q).unwrap_or_default()
                ))
            }
            Err(e) => Err(e),
        },
        _ => {
            let body = Bytes::from(json!({ "enabled": action == "enable" }).to_string());
            api::update(State(state.clone()), caller, Path(name.clone()), body)
                .await
                .map(|_| format!("{base}/schedules#s-{name}"))
        }
    };
    match done {
        Ok(to) => {
            write
                .audit(&state, audited, Some(name), StatusCode::SEE_OTHER)
                .await;
            Redirect::to(&to).into_response()
        }
        Err(e) => {
            let page = api_error_page(&base, e).await;
            write.audit(&state, audited, Some(name), page.status()).await;
            page
        }
    }
}

/// The schedule form's fields, as typed (kept to show them again when the
/// API refuses one).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ScheduleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    catch_up: String,
    #[serde(default)]
    overlap: String,
    #[serde(default)]
    jitter_secs: String,
}

impl ScheduleForm {
    fn of(s: &ScheduleView) -> Self {
        Self {
            csrf: String::new(),
            name: s.name.clone(),
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            kind: s.kind.clone(),
            payload: serde_json::to_string_pretty(&s.payload).unwrap_or_default(),
            enabled: s.enabled.then(|| "on".to_owned()),
            catch_up: json!(s.catch_up).as_str().unwrap_or("").to_owned(),
            overlap: json!(s.overlap).as_str().unwrap_or("").to_owned(),
            jitter_secs: s.jitter_secs.to_string(),
        }
    }

    /// The definition as the API's JSON body, or the field that is not
    /// even well-formed (the API checks the rest).
    fn body(&self, with_name: bool) -> Result<Map<String, Value>, (String, String)> {
        let mut body = Map::new();
        if with_name {
            body.insert("name".into(), json!(self.name.trim()));
        }
        body.insert("cron".into(), json!(self.cron.trim()));
        body.insert("timezone".into(), json!(self.timezone.trim()));
        body.insert("kind".into(), json!(self.kind));
        let payload = if self.payload.trim().is_empty() {
            "{}"
        } else {
            self.payload.as_str()
        };
        let payload: Value =
            serde_json::from_str(payload).map_err(|e| ("payload".to_owned(), format!("is not JSON: {e}")))?;
        body.insert("payload".into(), payload);
        body.insert("enabled".into(), json!(self.enabled.is_some()));
        body.insert("catch_up".into(), json!(self.catch_up));
        body.insert("overlap".into(), json!(self.overlap));
        let jitter: u32 = self.jitter_secs.trim().parse().map_err(|_| {
            (
                "jitter_secs".to_owned(),
                "must be a whole number of seconds".to_owned(),
            )
        })?;
        body.insert("jitter_secs".into(), json!(jitter));
        Ok(body)
    }
}

/// `GET /ui/schedules/new` (admin).
pub(super) async fn new_form(State(state): State<AppState>, session: Session) -> Response {
    let base = base(&state);
    if let Some(refused) = pages::forbidden_below(&base, &session, Role::Admin, "creating schedules") {
        return refused;
    }
    let form = ScheduleForm {
        timezone: "UTC".into(),
        enabled: Some("on".into()),
        catch_up: "fire_once".into(),
        overlap: "skip_if_running".into(),
        jitter_secs: "0".into(),
        payload: "{}".into(),
        ..Default::default()
    };
    Html(render_form(&base, &session, None, &form, None).into_string()).into_response()
}

/// `GET /ui/schedules/{name}/edit` (admin; API schedules only).
pub(super) async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Response {
    let base = base(&state);
    if let Some(refused) = pages::forbidden_below(&base, &session, Role::Admin, "editing schedules") {
        return refused;
    }
    match api::get(State(state.clone()), Path(name.clone())).await {
        Ok(axum::Json(s)) if s.source == "file" => pages::error_page(
            &base,
            StatusCode::CONFLICT,
            &format!(
                "schedule {name} is defined in the deployment's schedules file (HANGAR_SCHEDULES_FILE); change it there"
            ),
        ),
        Ok(axum::Json(s)) => {
            Html(render_form(&base, &session, Some(&name), &ScheduleForm::of(&s), None).into_string())
                .into_response()
        }
        Err(e) => api_error_page(&base, e).await,
    }
}

/// `POST /ui/schedules`: create.
pub(super) async fn create(
    State(state): State<AppState>,
    write: WriteRequest,
    Form(form): Form<ScheduleForm>,
) -> Response {
    save(&state, None, write, form).await
}

/// `POST /ui/schedules/{name}`: edit.
pub(super) async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    write: WriteRequest,
    Form(form): Form<ScheduleForm>,
) -> Response {
    save(&state, Some(name), write, form).await
}

/// The API's create or change; a refusal shows the form again with the
/// API's message at the field it names.
async fn save(
    state: &AppState,
    editing: Option<String>,
    write: WriteRequest,
    form: ScheduleForm,
) -> Response {
    let state = state.clone();
    let base = base(&state);
    let audited = if editing.is_some() {
        "console_update_schedule"
    } else {
        "console_create_schedule"
    };
    if let Err(r) = write.authorize(&state, &form.csrf, Role::Admin, audited).await {
        return r;
    }
    let refused = |field: String, message: String, status: StatusCode| {
        let page = render_form(
            &base,
            &write.session,
            editing.as_deref(),
            &form,
            Some((&field, &message)),
        );
        (status, Html(page.into_string())).into_response()
    };
    let body = match form.body(editing.is_none()) {
        Ok(b) => Bytes::from(Value::Object(b).to_string()),
        Err((field, message)) => {
            let page = refused(field, message, StatusCode::UNPROCESSABLE_ENTITY);
            write.audit(&state, audited, editing.clone(), page.status()).await;
            return page;
        }
    };
    let caller = Extension(write.session.principal.clone());
    let outcome = match &editing {
        Some(n) => api::update(State(state.clone()), caller, Path(n.clone()), body)
            .await
            .map(|axum::Json(v)| v.name),
        None => api::create(State(state.clone()), caller, body)
            .await
            .map(|_| form.name.trim().to_owned()),
    };
    match outcome {
        Ok(saved) => {
            write
                .audit(&state, audited, Some(saved.clone()), StatusCode::SEE_OTHER)
                .await;
            Redirect::to(&format!("{base}/schedules#s-{saved}")).into_response()
        }
        Err(e) => {
            let r = ApiRefusal::of(e).await;
            let page = refused(r.field.unwrap_or_default(), r.message, r.status);
            write.audit(&state, audited, editing.clone(), page.status()).await;
            page
        }
    }
}

/// One labelled form field, marked invalid with the API's message when the
/// refusal names it.
fn field(name: &str, label: &str, error: Option<(&str, &str)>, control: &Markup, hint: &str) -> Markup {
    let message = error
        .filter(|(f, _)| *f == name || f.starts_with(&format!("{name}.")))
        .map(|(_, m)| m);
    html! {
        div.field {
            label for=(name) { (label) }
            (control)
            @if let Some(m) = message { p.error id={ (name) "-error" } { (m) } }
            @if !hint.is_empty() { p.hint id={ (name) "-hint" } { (hint) } }
        }
    }
}

fn render_form(
    base: &str,
    session: &Session,
    editing: Option<&str>,
    form: &ScheduleForm,
    error: Option<(&str, &str)>,
) -> Markup {
    let invalid = |name: &str| error.is_some_and(|(f, _)| f == name || f.starts_with(&format!("{name}.")));
    let described = |name: &str| format!("{name}-error {name}-hint");
    let kinds: Vec<&str> = hangar_shared::kinds::all().iter().map(|k| k.name).collect();
    let action = match editing {
        Some(n) => format!("{base}/schedules/{n}"),
        None => format!("{base}/schedules"),
    };
    let unplaced = error.filter(|(f, _)| {
        ![
            "name",
            "cron",
            "timezone",
            "kind",
            "payload",
            "catch_up",
            "overlap",
            "jitter_secs",
            "enabled",
        ]
        .iter()
        .any(|n| f == n || f.starts_with(&format!("{n}.")))
    });
    let body = html! {
        @if let Some((f, m)) = unplaced {
            p.error role="alert" { @if !f.is_empty() { (f) ": " } (m) }
        } @else if error.is_some() {
            p.error role="alert" { "The schedule was not saved: see the field marked below." }
        }
        form.stacked method="post" action=(action) {
            input type="hidden" name="csrf" value=(session.csrf_token);
            @if editing.is_none() {
                (field("name", "Name", error, &html! {
                    input id="name" name="name" value=(form.name) required pattern="[a-z0-9_.\\-]{1,64}" maxlength="64"
                        aria-invalid=[invalid("name").then_some("true")] aria-describedby=(described("name"));
                }, "1-64 of a-z, 0-9, '-', '_' and '.'; cannot be changed later."))
            }
            (field("cron", "Cron expression", error, &html! {
                input id="cron" name="cron" value=(form.cron) required
                    aria-invalid=[invalid("cron").then_some("true")] aria-describedby=(described("cron"));
            }, "5 fields (minute hour day month weekday), or 6 with seconds first, e.g. 0 */6 * * *"))
            (field("timezone", "Time zone", error, &html! {
                input id="timezone" name="timezone" value=(form.timezone) required
                    aria-invalid=[invalid("timezone").then_some("true")] aria-describedby=(described("timezone"));
            }, "An IANA zone such as UTC or Europe/Berlin: the cron is read in it."))
            (field("kind", "Job kind", error, &html! {
                select id="kind" name="kind" required aria-invalid=[invalid("kind").then_some("true")] aria-describedby=(described("kind")) {
                    @for k in &kinds { option value=(k) selected[*k == form.kind] { (k) } }
                }
            }, ""))
            (field("payload", "Payload (JSON)", error, &html! {
                textarea id="payload" name="payload" rows="5"
                    aria-invalid=[invalid("payload").then_some("true")] aria-describedby=(described("payload")) { (form.payload) }
            }, "Checked like an API job request; a sync schedule without an account runs once per configured account and region."))
            (field("catch_up", "After downtime", error, &html! {
                select id="catch_up" name="catch_up" aria-invalid=[invalid("catch_up").then_some("true")] aria-describedby=(described("catch_up")) {
                    @for (v, l) in [("fire_once", "run once for the missed ticks"), ("skip", "skip missed ticks"), ("fire_all", "run every missed tick")] {
                        option value=(v) selected[v == form.catch_up] { (l) }
                    }
                }
            }, ""))
            (field("overlap", "While the last job is open", error, &html! {
                select id="overlap" name="overlap" aria-invalid=[invalid("overlap").then_some("true")] aria-describedby=(described("overlap")) {
                    @for (v, l) in [("skip_if_running", "skip the tick"), ("allow", "run anyway")] {
                        option value=(v) selected[v == form.overlap] { (l) }
                    }
                }
            }, ""))
            (field("jitter_secs", "Jitter (seconds)", error, &html! {
                input id="jitter_secs" name="jitter_secs" type="number" min="0" max="3600" value=(form.jitter_secs) required
                    aria-invalid=[invalid("jitter_secs").then_some("true")] aria-describedby=(described("jitter_secs"));
            }, "Each tick's job waits up to this long, to spread load."))
            div.field.check {
                input id="enabled" name="enabled" type="checkbox" checked[form.enabled.is_some()];
                label for="enabled" { "Enabled" }
            }
            button type="submit" { @if editing.is_some() { "Save changes" } @else { "Create schedule" } }
            " " a href={ (base) "/schedules" } { "Cancel" }
        }
    };
    let title = match editing {
        Some(n) => format!("Edit schedule {n}"),
        None => "New schedule".to_owned(),
    };
    pages::layout(base, session, "Schedules", &title, &body)
}
