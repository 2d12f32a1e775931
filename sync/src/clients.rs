//! AWS SDK clients per (account, region), built once and cached: credentials
//! (an assumed role's in particular) are resolved and refreshed by the SDK's
//! identity cache, not per job.
//!
//! Endpoints follow the SDK's standard overrides (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_WORKSPACES`, ...), so an emulator can stand in for AWS.
//! The SDK's own retries are off: every call goes through [`crate::call`],
//! which retries throttling and 5xx answers with backoff and counts them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use hangar_shared::config::AwsAccount;

/// Cost Explorer has one endpoint, in us-east-1, whatever the account's regions.
pub const COST_EXPLORER_REGION: &str = "us-east-1";

/// The service clients for one account and region.
#[derive(Clone, Debug)]
pub struct Clients {
    /// WorkSpaces.
    pub workspaces: aws_sdk_workspaces::Client,
    /// CloudTrail.
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    /// Cost Explorer (always us-east-1).
    pub cost_explorer: aws_sdk_costexplorer::Client,
    /// CloudWatch (WorkSpaces' UserConnected metric).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Clients {
    /// Clients from one SDK configuration (tests build them on mocks).
    pub fn from_conf(conf: &SdkConfig, ce_conf: &SdkConfig) -> Self {
        Self {
            workspaces: aws_sdk_workspaces::Client::new(conf),
            cloudtrail: aws_sdk_cloudtrail::Client::new(conf),
            cost_explorer: aws_sdk_costexplorer::Client::new(ce_conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
        }
    }
}

/// Builds and caches [`Clients`].
#[derive(Debug, Default)]
pub struct ClientCache {
    http: Mutex<Option<SharedHttpClient>>,
    clients: Mutex<HashMap<(String, String), Clients>>,
}

impl ClientCache {
    /// One HTTPS client (rustls on ring) shared by every SDK client and
    /// credential provider: connection pools are per client.
    fn http(&self) -> SharedHttpClient {
        let mut http = self.http.lock().unwrap_or_else(|p| p.into_inner());
        http.get_or_insert_with(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https()
        })
        .clone()
    }

    /// The clients for `account` in `region`.
    pub async fn get(&self, account: &AwsAccount, region: &str) -> Clients {
        let key = (account.name.clone(), region.to_owned());
        if let Some(c) = self.clients.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return c.clone();
        }
        let conf = self.sdk_config(account, region).await;
        let ce_conf = if region == COST_EXPLORER_REGION {
            conf.clone()
        } else {
            self.sdk_config(account, COST_EXPLORER_REGION).await
        };
        let clients = Clients::from_conf(&conf, &ce_conf);
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, clients.clone());
        clients
    }

    /// The SDK configuration of Hangar's own (ambient) credentials in
    /// `region`, on the shared HTTPS client, with the SDK's retries off.
    pub async fn ambient(&self, region: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .http_client(self.http())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            )
            .load()
            .await
    }

    async fn sdk_config(&self, account: &AwsAccount, region: &str) -> SdkConfig {
        let base = self.ambient(region).await;
        let Some(role) = &account.role_arn else {
            return base;
        };
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
            // STS caps session names at 64 characters.
            .session_name(
                format!("hangar-sync-{}", account.name)
                    .chars()
                    .take(64)
                    .collect::<String>(),
            )
            .region(Region::new(region.to_owned()))
            .configure(&base);
        if let Some(id) = &account.external_id {
            provider = provider.external_id(id.clone());
        }
        let provider = provider.build().await;
        base.into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build()
    }
}

/// Shared cache handle.
pub type SharedClients = Arc<ClientCache>;
