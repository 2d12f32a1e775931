//! The in-job retry policy against the SDK's own mock client
//! (aws-smithy-mocks): throttling passes after retries, a throttle that never
//! ends gives up after the configured attempts, refused access never retries.

use std::sync::Arc;

use aws_sdk_workspaces::{
    Client,
    config::retry::RetryConfig,
    operation::describe_workspaces::{DescribeWorkspacesError, DescribeWorkspacesOutput},
    types::Workspace,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use hangar_sync::{CallSite, Caller, Class, RunStats, SyncError, SyncMetrics};

fn caller(attempts: &str) -> Caller {
    let vars = [
        ("HANGAR_DATABASE_URL", "postgres://localhost/unused"),
        ("HANGAR_AWS_CALL_ATTEMPTS", attempts),
        ("HANGAR_AWS_BACKOFF_MS", "1"),
        ("HANGAR_AWS_BACKOFF_CAP_MS", "5"),
    ];
    let config = hangar_shared::Config::from_lookup(&|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    // No limiter: the mocked client answers at once and nothing is paced.
    Caller::new(Arc::new(config.aws), Arc::new(SyncMetrics::default()), None)
}

fn site() -> CallSite {
    CallSite {
        account: "prod".into(),
        region: "eu-west-1".into(),
        service: "workspaces",
        operation: "DescribeWorkspaces",
    }
}

fn error(code: &str) -> DescribeWorkspacesError {
    DescribeWorkspacesError::generic(
        ErrorMetadata::builder()
            .code(code)
            .message("from the mock")
            .build(),
    )
}

fn one_workspace() -> DescribeWorkspacesOutput {
    DescribeWorkspacesOutput::builder()
        .workspaces(Workspace::builder().workspace_id("ws-1").build())
        .build()
}

async fn describe(caller: &Caller, client: &Client, stats: &mut RunStats) -> Result<usize, SyncError> {
    caller
        .call(&site(), stats, || client.describe_workspaces().send())
        .await
        .map(|out| out.workspaces().len())
}

#[tokio::test]
async fn throttled_twice_then_success_returns_the_answer_after_two_retries() {
    let rule = mock!(Client::describe_workspaces)
        .sequence()
        .error(|| error("ThrottlingException"))
        .times(2)
        .output(one_workspace)
        .build();
    let client = mock_client!(aws_sdk_workspaces, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let mut stats = RunStats::default();
    let n = describe(&caller("6"), &client, &mut stats).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(rule.num_calls(), 3);
    assert_eq!((stats.aws_requests, stats.aws_retries), (3, 2));
}

#[tokio::test]
async fn throttled_until_the_job_gives_up_fails_the_attempt_but_not_permanently() {
    let rule = mock!(Client::describe_workspaces)
        .sequence()
        .error(|| error("ThrottlingException"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_workspaces, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let mut stats = RunStats::default();
    let err = describe(&caller("4"), &client, &mut stats).await.unwrap_err();
    assert_eq!(rule.num_calls(), 4, "HANGAR_AWS_CALL_ATTEMPTS=4");
    match &err {
        SyncError::Aws(e) => {
            assert_eq!(e.failure.class, Class::Throttled);
            assert_eq!(e.attempts, 4);
        }
        other => panic!("expected an AWS error, got {other:?}"),
    }
    assert!(!err.is_permanent(), "the queue retries the job later");
    let message = err.to_string();
    assert!(message.contains("account prod in eu-west-1"), "{message}");
    assert!(
        message.contains("still throttled after every attempt"),
        "{message}"
    );
}

#[tokio::test]
async fn access_denied_and_refused_credentials_are_permanent_after_one_call() {
    for (code, class) in [
        ("AccessDeniedException", Class::AccessDenied),
        ("UnrecognizedClientException", Class::Credentials),
        ("InvalidParameterValuesException", Class::Invalid),
    ] {
        let rule = mock!(Client::describe_workspaces).then_error(move || error(code));
        let client = mock_client!(aws_sdk_workspaces, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        let mut stats = RunStats::default();
        let err = describe(&caller("6"), &client, &mut stats).await.unwrap_err();
        assert_eq!(rule.num_calls(), 1, "{code} is not retried");
        assert!(err.is_permanent(), "{code}");
        let SyncError::Aws(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.failure.class, class);
        assert!(err.to_string().contains("Fix:"), "{err}");
    }
}
