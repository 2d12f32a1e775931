//! What can go wrong in a sync, and which failures are worth retrying.
//!
//! AWS answers fall in three groups. Throttling, 5xx and transport failures
//! pass on their own: [`crate::call`] retries them inside the job. Refused
//! credentials, missing permissions and invalid requests never pass on their
//! own: the job fails permanently (no retries) with a message that names the
//! account, the region and what to fix. Anything else fails the attempt and
//! the queue's retry policy decides.

use std::time::Duration;

use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};

/// How an AWS error behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Rate exceeded: retry after backoff.
    Throttled,
    /// 5xx or the service says it is unavailable: retry after backoff.
    ServerError,
    /// Timeout or connection failure: retry after backoff.
    Transport,
    /// The credentials were refused (unknown, invalid or expired).
    Credentials,
    /// The identity lacks a permission.
    AccessDenied,
    /// The request itself was rejected (bad parameter, date range, ...).
    Invalid,
    /// Any other client error.
    Other,
}

impl Class {
    /// Retried inside the job.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::ServerError | Self::Transport)
    }

    /// Fails the job without retries.
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::Credentials | Self::AccessDenied | Self::Invalid)
    }

    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Transport => "transport_error",
            Self::Credentials => "credentials_refused",
            Self::AccessDenied => "access_denied",
            Self::Invalid => "invalid_request",
            Self::Other => "client_error",
        }
    }
}

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException",
];
const SERVER: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];
const CREDENTIALS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
    "RequestExpired",
];
const ACCESS: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "OptInRequired",
];
const INVALID: &[&str] = &[
    "ValidationException",
    "InvalidParameterValuesException",
    "InvalidParameterValueException",
    "InvalidParameterCombinationException",
    "InvalidParameterException",
    "InvalidLookupAttributesException",
    "InvalidTimeRangeException",
    "InvalidMaxResultsException",
    "InvalidNextTokenException",
    "InvalidNextToken",
    "InvalidEventCategoryException",
    "DataUnavailableException",
    "BillExpirationException",
    "RequestChangedException",
];

/// Classifies an error code and HTTP status.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> Class {
    let code = code.unwrap_or_default();
    let is = |list: &[&str]| list.contains(&code);
    if is(THROTTLING) || status == Some(429) {
        Class::Throttled
    } else if is(SERVER) || status.is_some_and(|s| s >= 500) {
        Class::ServerError
    } else if is(CREDENTIALS) {
        Class::Credentials
    } else if is(ACCESS) {
        Class::AccessDenied
    } else if is(INVALID) {
        Class::Invalid
    } else {
        Class::Other
    }
}

/// One failed AWS call, classified, with the SDK's full explanation.
#[derive(Debug, Clone)]
pub struct AwsFailure {
    /// How it behaves.
    pub class: Class,
    /// The service's error code, if it sent one.
    pub code: Option<String>,
    /// The full error chain as text.
    pub detail: String,
}

/// Classifies an SDK error. Errors raised before the request was sent (a
/// credential provider that failed, e.g. an AssumeRole refused) carry no
/// service code; their text names the STS error, so it is matched too.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(err).to_string();
    let (class, code) = match err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            (classify_code(code.as_deref(), status), code)
        }
        SdkError::TimeoutError(_) => (Class::Transport, None),
        SdkError::DispatchFailure(f) if f.is_io() || f.is_timeout() => (Class::Transport, None),
        _ => {
            let known = [CREDENTIALS, ACCESS, THROTTLING].concat();
            let code = known
                .iter()
                .find(|c| detail.contains(&format!("{c}:")) || detail.contains(&format!("<Code>{c}</Code>")))
                .map(|c| (*c).to_owned());
            let class = match code.as_deref() {
                Some(c) => classify_code(Some(c), None),
                None if detail.contains("no credentials")
                    || detail.contains("failed to load credentials") =>
                {
                    Class::Credentials
                }
                None => Class::Transport,
            };
            (class, code)
        }
    };
    AwsFailure { class, code, detail }
}

/// Where a call was made, for messages and metrics.
#[derive(Debug, Clone)]
pub struct CallSite {
    /// Configured account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// Service, e.g. `workspaces`.
    pub service: &'static str,
    /// Operation, e.g. `DescribeWorkspaces`.
    pub operation: &'static str,
}

/// An AWS call that failed for good (within this attempt).
#[derive(Debug, Clone)]
pub struct AwsCallError {
    /// Where.
    pub site: CallSite,
    /// What.
    pub failure: AwsFailure,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent including backoff.
    pub elapsed: Duration,
}

impl std::fmt::Display for AwsCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&aws_message(
            &self.site,
            &self.failure,
            self.attempts,
            self.elapsed,
        ))
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An AWS call failed (after in-job retries when transient).
    #[error("{0}")]
    Aws(Box<AwsCallError>),
    /// The monthly Cost Explorer request budget is spent.
    #[error(
        "Cost Explorer request budget exhausted for account {account}: {used} of {budget} requests used in {month}. Raise HANGAR_CE_MONTHLY_REQUEST_BUDGET or wait until next month; each request costs $0.01"
    )]
    BudgetExhausted {
        /// Account.
        account: String,
        /// Month, YYYY-MM.
        month: String,
        /// Requests used.
        used: i64,
        /// Budget.
        budget: u32,
    },
    /// The job's arguments do not fit the configuration.
    #[error("{0}")]
    Invalid(String),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// Redis failed (rate limiter or lock).
    #[error("redis: {0}")]
    Redis(#[from] hangar_queue::QueueError),
    /// The job was cancelled between pages.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Another sync of the same account, region and kind holds the lock.
    #[error("another sync of {0} is running (job {1}); this one will try again shortly")]
    Busy(String, String),
}

impl SyncError {
    /// No retry can fix it.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Aws(e) => e.failure.class.is_permanent(),
            Self::BudgetExhausted { .. } | Self::Invalid(_) => true,
            Self::Db(_) | Self::Redis(_) | Self::Busy(..) | Self::Cancelled(_) => false,
        }
    }
}

fn aws_message(site: &CallSite, f: &AwsFailure, attempts: u32, elapsed: Duration) -> String {
    let what = format!(
        "{} {} for account {} in {}",
        site.service, site.operation, site.account, site.region
    );
    let fix = match f.class {
        Class::Credentials => {
            "AWS refused the credentials. Fix: give the worker valid credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance/task role); expired session credentials must be refreshed, and an account's role_arn must be assumable by them"
        }
        Class::AccessDenied => {
            "the identity is not allowed to do this. Fix: grant the permission in the account's IAM policy (or the role_arn's trust policy when the role cannot be assumed)"
        }
        Class::Invalid => {
            "AWS rejected the request as invalid. Fix: check the sync's parameters (region, date range) and that the service is enabled for the account"
        }
        Class::Throttled => {
            "still throttled after every attempt; the job retries later. Fix: sync less often, or raise HANGAR_AWS_CALL_ATTEMPTS"
        }
        Class::ServerError => "AWS kept answering with server errors; the job retries later",
        Class::Transport => {
            "AWS could not be reached (timeout or connection failure); the job retries later. Check network access and any AWS_ENDPOINT_URL override"
        }
        Class::Other => "AWS refused the request",
    };
    format!(
        "{what}: {} after {attempts} attempt(s) in {:.1}s: {fix}. AWS said: {}",
        f.code.as_deref().unwrap_or(f.class.label()),
        elapsed.as_secs_f64(),
        f.detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_classified() {
        assert_eq!(
            classify_code(Some("ThrottlingException"), Some(400)),
            Class::Throttled
        );
        assert_eq!(
            classify_code(Some("LimitExceededException"), Some(400)),
            Class::Throttled
        );
        assert_eq!(classify_code(None, Some(429)), Class::Throttled);
        assert_eq!(classify_code(Some("Whatever"), Some(503)), Class::ServerError);
        assert_eq!(
            classify_code(Some("ExpiredTokenException"), Some(400)),
            Class::Credentials
        );
        assert_eq!(
            classify_code(Some("AccessDeniedException"), Some(400)),
            Class::AccessDenied
        );
        assert_eq!(
            classify_code(Some("ValidationException"), Some(400)),
            Class::Invalid
        );
        assert_eq!(classify_code(Some("ResourceNotFound"), Some(400)), Class::Other);
        assert!(Class::Throttled.is_transient() && !Class::Throttled.is_permanent());
        assert!(Class::Credentials.is_permanent() && !Class::Other.is_permanent());
    }
}
