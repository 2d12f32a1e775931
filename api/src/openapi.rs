//! The OpenAPI 3.1 document, built from the handlers' annotations as the
//! router is assembled, so a route cannot exist without its documentation
//! (and, through [`crate::access::Policy`], without its access rule).

use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, RefOr, Response, ResponseBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{routes::*, state::AppState};

/// The document's fixed parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hangar API",
        description = "Jobs, AWS WorkSpaces inventory, CloudTrail events, costs and schedules.\n\n\
            Authenticate with `Authorization: Bearer <token>`, where the token is a JWT (HS256, RS256 or ES256, \
            with `iss`, `aud`, `exp`, `sub` and a role claim) or an API key (`hangar_…`). Roles: `viewer` reads, \
            `operator` also starts jobs and syncs, `admin` also manages schedules, API keys, dead jobs, \
            cancel/retry and reads the audit log. Each operation's security requirement names the least role it needs.\n\n\
            Every error is `{\"error\": {\"code\", \"message\", \"field\"?, \"request_id\"}}`. \
            Every response carries `X-Request-Id`: the id the server gave the request (a ULID; a client's own \
            `X-Request-Id` is kept beside it as `client_request_id` in the audit log, never used as the id). \
            Requests are rate-limited per caller; see the `RateLimit-*` headers. A client address that sends \
            too many refused credentials (`HANGAR_RATE_LIMIT_AUTH_FAILURES`) is answered 429 for a while, \
            before its credentials are looked up. Request headers must arrive within \
            `HANGAR_HEADER_READ_TIMEOUT_SECS` and a body within `HANGAR_BODY_READ_TIMEOUT_SECS` (408, and the \
            connection is closed). A request that carries a body, however framed, must send it as JSON (415).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Security),
    tags(
        (name = "health", description = "Liveness, readiness, metrics (no credentials)"),
        (name = "jobs", description = "Enqueue, inspect, cancel and retry jobs"),
        (name = "syncs", description = "Start AWS syncs now"),
        (name = "inventory", description = "What the syncs brought in"),
        (name = "schedules", description = "Periodic jobs"),
        (name = "queues", description = "Queue depth and dead jobs"),
        (name = "api-keys", description = "Keys for automation"),
        (name = "audit", description = "Who changed what"),
        (name = "inference", description = "Chat completions on model servers, their health, token streams and conversations"),
        (name = "reports", description = "Report files (CSV, JSON) built from the synced tables, and their downloads"),
    ),
)]
pub struct ApiDoc;

/// The `bearer` scheme: a JWT or an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A JWT or an API key (hangar_…). The scope lists the least role the operation needs.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error answers any operation can give, added where the operation
/// does not describe them itself.
struct CommonErrors;

const COMMON: &[(&str, &str)] = &[
    (
        "400",
        "Malformed request: bad JSON, a bad header, a value that cannot be stored",
    ),
    ("401", "Missing or refused credentials"),
    ("403", "The credentials' role does not allow this"),
    ("404", "No such resource"),
    ("405", "Method not allowed on this path"),
    (
        "408",
        "The request took longer than HANGAR_REQUEST_TIMEOUT_SECS, or its body did not arrive within HANGAR_BODY_READ_TIMEOUT_SECS (the connection is then closed)",
    ),
    ("413", "The body is larger than HANGAR_MAX_BODY_BYTES"),
    ("415", "The body is not application/json"),
    ("422", "A field is invalid; `field` names it"),
    (
        "429",
        "Rate limit exceeded (the caller's, or the client address's for refused credentials); see Retry-After",
    ),
    (
        "500",
        "Internal error (details are in the logs under the request id)",
    ),
    ("503", "PostgreSQL or Redis is unavailable; retry later"),
];

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            openapi::ContentBuilder::new()
                .schema(Some(openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| serde_json::to_value(s).is_ok_and(|v| v == serde_json::json!([{}])));
                for (code, description) in COMMON {
                    // Public routes never answer 401/403/429.
                    if public && ["401", "403", "429", "413", "415", "422"].contains(code) {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry((*code).to_owned())
                        .or_insert_with(|| RefOr::T(error_response(description)));
                }
            }
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry("ErrorBody".into())
            .or_insert_with(<crate::schema::ErrorBody as utoipa::PartialSchema>::schema);
    }
}

/// Every documented route and the OpenAPI document describing them.
pub fn routes() -> (axum::Router<AppState>, openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(explain::explain))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(syncs::create))
        .routes(routes!(inventory::list_workspaces))
        .routes(routes!(inventory::get_workspace))
        .routes(routes!(inventory::list_directories))
        .routes(routes!(inventory::list_audit_events))
        .routes(routes!(inventory::list_costs))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(schedules::get, schedules::update, schedules::delete))
        .routes(routes!(schedules::run_now))
        .routes(routes!(queues::list))
        .routes(routes!(queues::dead))
        .routes(routes!(queues::requeue_all))
        .routes(routes!(queues::requeue))
        .routes(routes!(queues::delete))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(audit_log::list))
        .routes(routes!(models::list))
        .routes(routes!(models::get))
        .routes(routes!(inference::chat))
        .routes(routes!(inference::conversation))
        .routes(routes!(inference::stream))
        .routes(routes!(reports::create, reports::list))
        .routes(routes!(reports::get))
        .routes(routes!(reports::download))
        .split_for_parts();
    // After the routes are in: the modifiers of `ApiDoc` run before.
    CommonErrors.modify(&mut doc);
    (router, doc)
}

/// The document alone (for `hangar-api openapi` and tests).
pub fn document() -> openapi::OpenApi {
    routes().1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Access, Policy};

    #[test]
    fn every_operation_has_an_access_rule() {
        let doc = document();
        let policy = Policy::from_openapi(&doc, false);
        let rules: Vec<_> = policy.rules().collect();
        // One rule per documented operation, no more and no fewer.
        let json = serde_json::to_value(&doc).unwrap();
        let operations: usize = json["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().map_or(0, |o| o.len()))
            .sum();
        assert!(operations > 30, "{operations} operations");
        assert_eq!(rules.len(), operations);
        for (method, path, rule) in rules {
            assert_ne!(rule.access, Access::Undeclared, "{method} {path}");
        }
        let metrics = policy.rule(&axum::http::Method::GET, "/metrics").unwrap();
        assert_eq!(metrics.access, Access::Role(crate::auth::Role::Viewer));
        let public = Policy::from_openapi(&document(), true);
        assert_eq!(
            public.rule(&axum::http::Method::GET, "/metrics").unwrap().access,
            Access::Public
        );
    }

    /// The kinds `POST /api/v1/jobs` documents are written by hand: every
    /// registered kind must be among them.
    #[test]
    fn the_create_job_document_names_every_registered_kind() {
        let doc = serde_json::to_value(document()).unwrap();
        let text = doc["components"]["schemas"]["CreateJob"]["properties"]["kind"]["description"]
            .as_str()
            .unwrap()
            .to_owned();
        for kind in hangar_shared::kinds::all() {
            assert!(
                text.contains(kind.name),
                "CreateJob.kind does not name {}: {text}",
                kind.name
            );
        }
    }

    /// "Sync now" starts every registered sync kind; its document, written
    /// by hand, must name each.
    #[test]
    fn the_sync_now_document_names_every_sync_kind() {
        let doc = serde_json::to_value(document()).unwrap();
        let text = doc["paths"]["/api/v1/syncs/{kind}"]["post"]["description"]
            .as_str()
            .unwrap()
            .to_owned();
        let syncs: Vec<&str> = hangar_shared::kinds::syncs().map(|(name, _)| name).collect();
        assert_eq!(
            syncs,
            ["workspaces", "cloudtrail", "billing", "usage"],
            "the registry's sync kinds"
        );
        for name in syncs {
            assert!(
                text.contains(&format!("`{name}`")),
                "start_sync does not name {name}: {text}"
            );
        }
    }

    /// The contract, committed (`api/openapi.json`) so that a change to it
    /// is a reviewed diff, never a side effect. After a deliberate change:
    /// `HANGAR_UPDATE_OPENAPI=1 cargo test -p hangar-api --lib openapi`.
    #[test]
    fn the_document_matches_its_committed_snapshot() {
        let current = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("HANGAR_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).unwrap();
            return;
        }
        // Compared as JSON values: key order is not part of the contract, and
        // differs with serde_json's `preserve_order` (which the workspace
        // build turns on for some crates and `-p hangar-api` does not).
        let committed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default();
        let current: serde_json::Value = serde_json::from_str(&current).unwrap();
        assert!(
            committed == current,
            "the OpenAPI document differs from api/openapi.json; if the change is meant, run \
             `HANGAR_UPDATE_OPENAPI=1 cargo test -p hangar-api --lib openapi` and review the diff"
        );
    }
}
