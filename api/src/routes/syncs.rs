//! `POST /api/v1/syncs/{workspaces|cloudtrail|billing|usage}`: "sync now".
//!
//! Without an account (or region) the request fans out: one job per
//! configured (account, region) pair; billing is account-wide, one job per
//! account. Each job carries a singleton key, so while a sync of the same
//! kind, account and region is queued or running, asking again returns that
//! job with `"already": true` instead of starting a second one.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use hangar_shared::{
    config::AwsConfig,
    db::NewJobRun,
    kinds::{self, KindSpec, Target, Window},
};
use serde_json::{Map, Value, json};

use super::{parse_date, parse_time};
use crate::{
    audit::AuditTarget,
    auth::Principal,
    error::ApiError,
    request_id::current_request_id,
    schema,
    state::AppState,
    views::jobs::{Job, SyncAccepted, SyncJob},
};

const FIELDS: &[&str] = &["account", "region", "start", "end"];

fn kind_of(name: &str) -> Result<&'static KindSpec, ApiError> {
    kinds::syncs()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| k)
        .ok_or_else(|| {
            let known: Vec<&str> = kinds::syncs().map(|(n, _)| n).collect();
            ApiError::NotFound(format!("no sync called {name:?}; there are {}", known.join(", ")))
        })
}

fn string_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

/// The (account, region) pairs a request covers, by the same rule as a
/// fan-out schedule's; a 422 naming the field when it covers none.
fn targets(
    aws: &AwsConfig,
    kind: &KindSpec,
    account: Option<&str>,
    region: Option<&str>,
) -> Result<Vec<(String, String)>, ApiError> {
    if let Some(a) = account
        && aws.account(a).is_none()
    {
        let known: Vec<String> = aws.accounts().into_iter().map(|a| a.name).collect();
        return Err(ApiError::invalid(
            "account",
            format!(
                "account {a:?} is not configured; configured: {}",
                known.join(", ")
            ),
        ));
    }
    if kind.target == Target::Account && region.is_some() {
        return Err(ApiError::invalid(
            "region",
            format!(
                "{} runs once per account (the service is global): it takes no region",
                kind.name
            ),
        ));
    }
    let targets = kinds::targets(aws, kind, account, region);
    if !targets.is_empty() {
        return Ok(targets);
    }
    let message = match (account.and_then(|n| aws.account(n)), region) {
        (Some(a), Some(r)) => format!(
            "account {:?} is not configured for {r:?}; its regions: {}",
            a.name,
            a.regions.join(", ")
        ),
        _ => format!(
            "no configured account syncs region {:?}",
            region.unwrap_or_default()
        ),
    };
    Err(ApiError::invalid("region", message))
}

/// The payload's `start`/`end`, read as the kind's window says (days or
/// RFC 3339 times), or refused for a kind that takes none.
fn window(kind: &KindSpec, start: Option<&str>, end: Option<&str>) -> Result<Value, ApiError> {
    let mut dates = Map::new();
    for (field, text) in [("start", start), ("end", end)] {
        let value = match kind.window {
            Window::Dates => parse_date(field, text)?.map(|d| json!(d)),
            Window::Times => parse_time(field, text)?.map(|t| json!(t)),
            Window::None if text.is_some() => {
                return Err(ApiError::invalid(
                    field,
                    format!("a {} sync reads the current state; it takes no dates", kind.name),
                ));
            }
            Window::None => None,
        };
        if let Some(v) = value {
            dates.insert(field.into(), v);
        }
    }
    Ok(Value::Object(dates))
}

/// Sync now
///
/// Starts a sync of `workspaces`, `cloudtrail`, `billing` or `usage`
/// (CloudWatch connected time): one job per
/// configured (account, region), or only those the body names. While a
/// sync of the same kind, account and region is open, that job is returned
/// with `already: true` (200 when every job already existed).
#[utoipa::path(post, path = "/api/v1/syncs/{kind}", operation_id = "start_sync", tag = "syncs",
    params(("kind" = String, Path, description = "workspaces, cloudtrail, billing or usage")),
    request_body(content = Option<schema::SyncRequest>, description = "Optional; an empty body syncs everything configured"),
    responses(
        (status = 202, description = "At least one new job", body = SyncAccepted),
        (status = 200, description = "Every job was already open", body = SyncAccepted),
        (status = 404, description = "No such sync kind", body = schema::ErrorBody)),
    security(("bearer" = ["operator"])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body = &super::json_object(&state, &body, FIELDS)?;
    let request = SyncRequest {
        kind: &name,
        account: string_field(body, "account")?,
        region: string_field(body, "region")?,
        start: string_field(body, "start")?,
        end: string_field(body, "end")?,
    };
    let accepted = start(&state, &caller, &request).await?;
    let any_new = accepted.jobs.iter().any(|j| !j.already);
    let ids: Vec<&str> = accepted.jobs.iter().map(|j| j.job.id.as_str()).collect();
    let audit_target = AuditTarget(ids.join(","));
    let status = if any_new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(accepted)).into_response();
    response.extensions_mut().insert(audit_target);
    Ok(response)
}

/// What "sync now" was asked for: the kind's short name (`workspaces`)
/// and, optionally, one account, one region and a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncRequest<'a> {
    /// `workspaces`, `cloudtrail`, `billing` or `usage`.
    pub kind: &'a str,
    /// Only this account.
    pub account: Option<&'a str>,
    /// Only this region.
    pub region: Option<&'a str>,
    /// The window's start, for kinds that take one.
    pub start: Option<&'a str>,
    /// The window's end.
    pub end: Option<&'a str>,
}

/// Starts (or finds open) one sync job per target `request` covers, for
/// `caller`: the API's "sync now" and the console's button share it.
pub async fn start(
    state: &AppState,
    caller: &Principal,
    request: &SyncRequest<'_>,
) -> Result<SyncAccepted, ApiError> {
    let kind = kind_of(request.kind)?;
    super::may_submit(caller, kind)?;
    let aws = &state.config.aws;
    // An account the organization gained since this replica last read the
    // list (every minute) is looked up again before it is refused.
    if let Some(name) = request.account
        && aws.organization_role.is_some()
        && aws.account(name).is_none()
        && let Err(e) = hangar_shared::db::org_accounts::reload(&state.pool, aws).await
    {
        tracing::warn!(error = %e, "cannot read the organization's accounts; using the last list");
    }
    let targets = targets(aws, kind, request.account, request.region)?;
    let dates = window(kind, request.start, request.end)?;
    let request_id = current_request_id();
    let submits = targets.iter().map(|(account, region)| {
        let payload = kinds::with_target(kind, &dates, account, region);
        let run = kind.validate(&payload).map(|payload| {
            NewJobRun::new(kind, payload)
                .requested_by(caller.actor.clone())
                .request_id(request_id.clone())
        });
        let enqueuer = state.enqueuer.clone();
        async move { enqueuer.submit(run?).await }
    });
    let results = futures_util::future::try_join_all(submits).await?;
    let jobs = targets
        .into_iter()
        .zip(&results)
        .map(|((account, region), (_, already, run))| SyncJob {
            account,
            region,
            already: *already,
            job: Job::new(run, None),
        })
        .collect();
    Ok(SyncAccepted {
        kind: kind.name,
        jobs,
    })
}
