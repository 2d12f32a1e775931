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
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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
    "ValidationError",
    "MalformedPolicyDocument",
    "MalformedPolicyDocumentException",
    "RegionDisabledException",
    "InvalidParameterValuesException",
    "InvalidParameterValueException",
    "InvalidParameterCombinationException",
    "InvalidParameterException",
    "InvalidLookupAttributesException",
    "InvalidTimeRangeException",
    "InvalidMaxResultsException",
    "InvalidEventCategoryException",
    "BillExpirationException",
];
// Not listed, so a fresh attempt gets its chance: InvalidNextToken(Exception)
// and RequestChangedException (stale pagination: the next attempt starts
// over) and DataUnavailableException (Cost Explorer still being enabled).

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
/// service code of their own: they are classified by the typed errors in
/// their source chain.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = chain(err);
    let (class, code) = match err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            (classify_code(code.as_deref(), status), code)
        }
        SdkError::TimeoutError(_) => (Class::Transport, None),
        SdkError::DispatchFailure(f) if f.is_io() || f.is_timeout() => (Class::Transport, None),
        SdkError::DispatchFailure(_) => credentials_failure(err).unwrap_or((Class::Transport, None)),
        // The request could not even be built (bad endpoint, bad input).
        _ => credentials_failure(err).unwrap_or((Class::Invalid, None)),
    };
    AwsFailure { class, code, detail }
}

/// The error and its sources as one line ("dispatch failure: io error:
/// connection refused"), without the raw response the SDK's Debug form
/// carries (headers and body do not belong in a job's error).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// A failure to get credentials, found by type in the error's source chain:
/// no credentials anywhere (permanent), a provider that timed out (passes),
/// a misconfigured one (permanent), or STS refusing to assume the role
/// (classified by STS's own error code).
fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<(Class, Option<String>)> {
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let mut next = Some(err);
    let mut provider_failed = false;
    while let Some(e) = next {
        if let Some(sts) = e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            let status = sts.raw_response().map(|r| r.status().as_u16());
            let code = sts.code().map(str::to_owned);
            let class = match classify_code(code.as_deref(), status) {
                // STS answered, but with no code we know: the role setup is wrong.
                Class::Other => Class::AccessDenied,
                class => class,
            };
            return Some((class, code.or_else(|| Some("AssumeRoleFailed".into()))));
        }
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            match c {
                CredentialsError::CredentialsNotLoaded(_) => {
                    return Some((Class::Credentials, Some("CredentialsNotLoaded".into())));
                }
                CredentialsError::ProviderTimedOut(_) => {
                    return Some((Class::Transport, Some("CredentialsProviderTimedOut".into())));
                }
                CredentialsError::InvalidConfiguration(_) => {
                    return Some((Class::Invalid, Some("InvalidCredentialsConfiguration".into())));
                }
                _ => provider_failed = true,
            }
        }
        next = e.source();
    }
    // A provider failed for a reason it did not type (e.g. a malformed
    // credentials file): no retry will change that.
    provider_failed.then(|| (Class::Credentials, Some("CredentialsProviderFailed".into())))
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
    #[error("another sync of {0} is running (holder {1}); this job retries with backoff")]
    Busy(String, String),
    /// A later delivery of this job took the sync's lock over (this copy had
    /// stalled past its lease); this copy stops.
    #[error("lost the lock of {0} to a later delivery of this job; this copy stopped")]
    LockLost(String),
}

impl SyncError {
    /// No retry can fix it.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Aws(e) => e.failure.class.is_permanent(),
            Self::BudgetExhausted { .. } | Self::Invalid(_) => true,
            Self::Db(_) | Self::Redis(_) | Self::Busy(..) | Self::Cancelled(_) | Self::LockLost(_) => false,
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

    type WsError = aws_sdk_workspaces::operation::describe_workspaces::DescribeWorkspacesError;

    fn before_sending(
        cause: aws_credential_types::provider::error::CredentialsError,
    ) -> SdkError<WsError, HttpResponse> {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        SdkError::dispatch_failure(ConnectorError::other(Box::new(cause), None))
    }

    #[test]
    fn credential_failures_before_sending_are_classified_by_type() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_sts::operation::assume_role::AssumeRoleError;
        use aws_smithy_types::{body::SdkBody, error::ErrorMetadata};

        let none = classify(&before_sending(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        )));
        assert_eq!(none.class, Class::Credentials);
        let slow = classify(&before_sending(CredentialsError::provider_timed_out(
            Duration::from_secs(5),
        )));
        assert_eq!(slow.class, Class::Transport);
        let bad = classify(&before_sending(CredentialsError::invalid_configuration(
            "bad profile",
        )));
        assert_eq!(bad.class, Class::Invalid);

        // STS refused AssumeRole: its own code decides.
        let sts: SdkError<AssumeRoleError, HttpResponse> = SdkError::service_error(
            AssumeRoleError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized")
                    .build(),
            ),
            HttpResponse::new(403.try_into().unwrap(), SdkBody::empty()),
        );
        let refused = classify(&before_sending(CredentialsError::provider_error(sts)));
        assert_eq!(refused.class, Class::AccessDenied);
        assert_eq!(refused.code.as_deref(), Some("AccessDenied"));
        assert!(refused.detail.contains("not authorized"), "{}", refused.detail);

        // Connection refused before any credentials matter: passes on its own.
        let io = SdkError::<WsError, HttpResponse>::dispatch_failure(
            aws_smithy_runtime_api::client::result::ConnectorError::io(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        );
        assert_eq!(classify(&io).class, Class::Transport);
    }
}
