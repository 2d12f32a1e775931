//! The one error type of the HTTP edge. Every error leaves as the same JSON
//! envelope: `{"error": {"code", "message", "field"?, "request_id"}}`. 4xx
//! variants carry a message for the caller; a 5xx body never carries internal
//! detail: its cause is logged once, here, with the request id.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id::current_request_id;

/// The machine-readable `code` of every error envelope: the whole set, so
/// clients can match on it and the OpenAPI document lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A malformed request axum refused (bad path or query syntax).
    BadRequest,
    /// The body is not valid JSON.
    InvalidJson,
    /// The body nests deeper than allowed.
    JsonTooDeep,
    /// A header's value is refused (the error names it as `field`).
    InvalidHeader,
    /// A value PostgreSQL cannot store or compare (control characters,
    /// out-of-range dates).
    InvalidValue,
    /// Well-formed but invalid content; `field` names it.
    InvalidField,
    /// Credentials missing or refused.
    Unauthorized,
    /// The caller's role does not allow this.
    Forbidden,
    /// No such resource or route.
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The request (headers or body) took too long to arrive.
    RequestTimeout,
    /// The body is over the size limit.
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// The request conflicts with the resource's state.
    Conflict,
    /// Over a rate limit; see `Retry-After`.
    RateLimited,
    /// Too many token streams open; see `Retry-After`.
    TooManyStreams,
    /// PostgreSQL or Redis is unavailable; retry later.
    Unavailable,
    /// An unexpected failure (logged with the request id).
    Internal,
    /// The resource is gone for good (an expired report).
    Gone,
    /// The requested byte range is outside the file.
    RangeNotSatisfiable,
    /// Any other status.
    Error,
}

/// Every error: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_field", "message": "unknown kind \"x\"", "field": "kind", "request_id": "01JD3Q6W8Y4N2M5K7P9R1T3V5X"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable; one of a closed set.
    pub code: ErrorCode,
    /// For people: what to change.
    pub message: String,
    /// The field, query parameter or header at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (also in the `X-Request-Id` header and the logs).
    pub request_id: String,
}

impl ErrorBody {
    /// The envelope of `code` and `message` for request `request_id`.
    fn new(code: ErrorCode, message: String, field: Option<String>, request_id: String) -> Json<Self> {
        Json(Self {
            error: ErrorDetail {
                code,
                message,
                field,
                request_id,
            },
        })
    }
}

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (bad JSON, bad header).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: ErrorCode,
        /// For the caller.
        message: String,
        /// The field or header at fault.
        field: Option<String>,
    },
    /// Well-formed but invalid content.
    #[error("{message}")]
    Unprocessable {
        /// The field at fault.
        field: String,
        /// For the caller.
        message: String,
    },
    /// Missing or refused credentials (401); the message says which.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the role does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Over a rate limit, too many of something open at once, or refused
    /// for a while (429 with `Retry-After`).
    #[error("{message}")]
    TooMany {
        /// Machine-readable code (`rate_limited`, `too_many_streams`).
        code: ErrorCode,
        /// For the caller: which limit, and what to do.
        message: String,
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is not JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// The resource existed and is gone for good (410).
    #[error("{0}")]
    Gone(String),
    /// A `Range` outside the file (416, with `Content-Range: bytes */size`).
    #[error("the range is outside the file ({size} bytes)")]
    RangeNotSatisfiable {
        /// The file's size.
        size: u64,
    },
    /// A dependency is down; the caller should retry later.
    #[error("{dependency} is unavailable")]
    Unavailable {
        /// `postgres` or `redis`.
        dependency: &'static str,
        /// What went wrong (logged, not sent).
        cause: String,
    },
    /// A bug or an unexpected failure (logged, not sent).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 429 for a caller over its `class` (`read`, `write`) limit.
    pub fn rate_limited(class: &str, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Self::TooMany {
            code: ErrorCode::RateLimited,
            message: format!("rate limit for {class} requests exceeded; retry in {secs} s"),
            retry_after,
        }
    }

    /// 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl ApiError {
    /// PostgreSQL unreachable, shutting down or failing over (SQLSTATE 08xxx,
    /// 57Pxx) is 503 (retry later); anything else is a 500.
    pub fn from_sqlx(e: &sqlx::Error) -> Self {
        let unavailable = match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        };
        // Class 22 (data exception): a value PostgreSQL cannot take, such as
        // a NUL byte or a date out of its range, came from the request.
        if let sqlx::Error::Database(d) = e
            && d.code().is_some_and(|c| c.starts_with("22"))
        {
            return Self::BadRequest {
                code: ErrorCode::InvalidValue,
                message: "a value in the request cannot be stored or compared (control characters, out-of-range dates)".into(),
                field: None,
            };
        }
        if unavailable {
            Self::Unavailable {
                dependency: "postgres",
                cause: e.to_string(),
            }
        } else {
            Self::Internal(anyhow::anyhow!("postgres: {e}"))
        }
    }
}

/// A refused payload is 422 naming its field (`body` for the whole body).
impl From<hangar_shared::kinds::PayloadError> for ApiError {
    fn from(e: hangar_shared::kinds::PayloadError) -> Self {
        let field = if e.field.is_empty() {
            "body".to_owned()
        } else {
            e.field
        };
        Self::invalid(field, e.message)
    }
}

impl From<hangar_shared::job_admin::Refused> for ApiError {
    fn from(e: hangar_shared::job_admin::Refused) -> Self {
        use hangar_shared::job_admin::Refused;
        match e {
            Refused::Conflict(message) => Self::Conflict(message),
            Refused::Queue(e) => e.into(),
            Refused::Db(e) => e.into(),
            Refused::Other(e) => Self::Internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(&e)
    }
}

impl From<hangar_queue::QueueError> for ApiError {
    fn from(e: hangar_queue::QueueError) -> Self {
        match e {
            hangar_queue::QueueError::Redis(r) => Self::Unavailable {
                dependency: "redis",
                cause: r.to_string(),
            },
            other => Self::Internal(other.into()),
        }
    }
}

/// Rewrites an error response that is not already our JSON (axum's
/// rejections of a malformed query or path, 405, 413) into the envelope, so
/// every error a client sees has the same shape.
pub fn envelope_for(status: StatusCode, body_text: &str) -> Response {
    // An unknown query parameter is a field like any other: 422 naming it
    // (axum's rejection says "… unknown field `x`, expected …").
    if status == StatusCode::BAD_REQUEST
        && body_text.starts_with("Failed to deserialize query string")
        && let Some(field) = body_text
            .split_once("unknown field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
    {
        return ApiError::invalid(field, "unknown query parameter").into_response();
    }
    let code = match status.as_u16() {
        400 => ErrorCode::BadRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        408 => ErrorCode::RequestTimeout,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        410 => ErrorCode::Gone,
        416 => ErrorCode::RangeNotSatisfiable,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::InvalidField,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::Error,
    };
    let message = if status.is_server_error() || body_text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        body_text.trim().to_owned()
    };
    (status, ErrorBody::new(code, message, None, current_request_id())).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let (status, code, message, field) = match self {
            Self::BadRequest { code, message, field } => (StatusCode::BAD_REQUEST, code, message, field),
            Self::Unprocessable { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidField,
                message,
                Some(field),
            ),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, m, None),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, m, None),
            Self::TooMany {
                code,
                message,
                retry_after,
            } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, secs.to_string())],
                    ErrorBody::new(code, message, None, request_id),
                )
                    .into_response();
            }
            Self::NotFound(m) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, m, None),
            Self::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                m,
                None,
            ),
            Self::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                m,
                Some("Content-Type".to_owned()),
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, ErrorCode::Conflict, m, None),
            Self::Gone(m) => (StatusCode::GONE, ErrorCode::Gone, m, None),
            Self::RangeNotSatisfiable { size } => {
                let message = format!("the range is outside the file ({size} bytes)");
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(axum::http::header::CONTENT_RANGE, format!("bytes */{size}"))],
                    ErrorBody::new(
                        ErrorCode::RangeNotSatisfiable,
                        message,
                        Some("Range".into()),
                        request_id,
                    ),
                )
                    .into_response();
            }
            Self::Unavailable { dependency, cause } => {
                tracing::warn!(%dependency, %cause, request_id, "dependency unavailable");
                let message = format!("{dependency} is unavailable; retry later");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    message,
                    None,
                )
            }
            Self::Internal(e) => {
                tracing::error!(error = ?e, request_id, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error".to_owned(),
                    None,
                )
            }
        };
        (status, ErrorBody::new(code, message, field, request_id)).into_response()
    }
}
