//! `/api/v1/api-keys`: keys for automation (admin only). The token is
//! shown once, in the creation's answer; afterwards only its prefix.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    audit::AuditTarget,
    auth::{Principal, Role, api_keys},
    error::ApiError,
    routes::json_object,
    schema,
    state::AppState,
    views::admin::{ApiKeyList, CreatedApiKey},
};

/// Query of `GET /api/v1/api-keys`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `true` to include revoked keys.
    #[param(value_type = Option<bool>)]
    include_revoked: Option<String>,
}

/// List API keys
///
/// Keys in use, newest first (with `include_revoked=true`, revoked ones
/// too). Never shows a token.
#[utoipa::path(get, path = "/api/v1/api-keys", operation_id = "list_api_keys", tag = "api-keys",
    params(ListQuery),
    responses((status = 200, description = "The keys", body = ApiKeyList)),
    security(("bearer" = ["admin"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let include_revoked = super::flag("include_revoked", q.include_revoked.as_deref())?;
    let api_keys = api_keys::list(&state.pool, include_revoked).await?;
    Ok(Json(ApiKeyList { api_keys }))
}

/// Create an API key
///
/// Creates a key with a role and an optional expiry. The answer carries the
/// token, shown this once: store it in your secret manager.
#[utoipa::path(post, path = "/api/v1/api-keys", operation_id = "create_api_key", tag = "api-keys",
    request_body = schema::CreateApiKey,
    responses(
        (status = 201, description = "Created; the token is in the answer, once", body = CreatedApiKey),
        (status = 409, description = "A key in use has this name", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body = json_object(&state, &body, &["name", "role", "expires_at"])?;
    let name = match body.get("name") {
        Some(Value::String(n)) if hangar_shared::names::is_name(n) => n.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "name",
                "must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'",
            ));
        }
        None => return Err(ApiError::invalid("name", "missing")),
    };
    let role = match body.get("role") {
        Some(Value::String(r)) => {
            Role::parse(r).ok_or_else(|| ApiError::invalid("role", "must be viewer, operator or admin"))?
        }
        Some(_) => return Err(ApiError::invalid("role", "must be viewer, operator or admin")),
        None => return Err(ApiError::invalid("role", "missing")),
    };
    let expires_at = match body.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::invalid("expires_at", "must be an RFC 3339 time"))?
                .with_timezone(&Utc);
            if t <= Utc::now() || chrono::Datelike::year(&t) > 9999 {
                return Err(ApiError::invalid(
                    "expires_at",
                    "must be in the future (and before year 10000)",
                ));
            }
            Some(t)
        }
        Some(_) => return Err(ApiError::invalid("expires_at", "must be an RFC 3339 time string")),
    };
    let (key, token) = api_keys::create(&state.pool, &name, role, expires_at, &caller.actor)
        .await
        .map_err(|e| match e {
            api_keys::CreateError::NameTaken(_) => ApiError::Conflict(e.to_string()),
            api_keys::CreateError::Db(e) => ApiError::from_sqlx(&e),
            api_keys::CreateError::Other(e) => ApiError::Internal(e),
        })?;
    tracing::info!(key_id = %key.id, name = %key.name, role = %key.role, "API key created");
    let target = AuditTarget(key.id.clone());
    let mut response = (StatusCode::CREATED, Json(CreatedApiKey { api_key: key, token })).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// Revoke an API key
///
/// Refuses the key from now on: at once on this API replica, within a
/// second on every other (they cache verified keys and hear of revocations
/// through Redis; a replica that cannot hear stops using its cache).
/// Revoking a revoked key changes nothing but announces it again: a 503
/// means the revocation is recorded but could not be announced; retry.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", operation_id = "revoke_api_key", tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "Revoked", body = api_keys::ApiKey),
        (status = 404, description = "No such key", body = schema::ErrorBody),
        (status = 503, description = "Revoked, but the other API replicas could not be told yet: retry", body = schema::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = api_keys::revoke(&state.pool, &id, &caller.actor)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no API key {id}")))?;
    tracing::info!(key_id = %key.id, name = %key.name, "API key revoked");
    if let Err(e) = state.auth.keys().revoked().await {
        tracing::error!(key_id = %key.id, error = %e, "API key revoked in PostgreSQL but not announced to the other replicas; they refuse it once their caches lapse (at most 30 s); retry the revocation");
        return Err(ApiError::Unavailable {
            dependency: "redis",
            cause: format!("revocation of API key {} recorded but not announced: {e}", key.id),
        });
    }
    let mut response = Json(key).into_response();
    response.extensions_mut().insert(AuditTarget(id));
    Ok(response)
}
