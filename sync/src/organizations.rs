//! Account discovery through AWS Organizations: with
//! `HANGAR_AWS_ORGANIZATION_ROLE` set, the scheduler reads every account of
//! the organization (`organizations:ListAccounts`, from the management or a
//! delegated administrator account, with Hangar's own credentials) and
//! keeps the active ones in `aws_org_accounts`, where every process finds
//! them. Each is synced under its 12-digit id through
//! `arn:<partition>:iam::<id>:role/<role name>`, except the account Hangar's
//! credentials belong to, which is synced with those credentials (the
//! organization's role exists only in member accounts). Accounts listed in
//! `HANGAR_AWS_ACCOUNTS` still work and override a discovered one with the
//! same id.

use std::sync::Arc;

use hangar_shared::{
    config::AwsConfig,
    db::org_accounts::{self, OrgAccount},
};
use sqlx::PgPool;

use crate::{Caller, RunStats, clients::ClientCache, error::CallSite, error::SyncError};

/// Organizations and STS answer in us-east-1 (the global endpoint's region).
const GLOBAL_REGION: &str = "us-east-1";

/// What one refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Active accounts kept (the caller's own included).
    pub active: usize,
    /// Accounts listed but not active (suspended, closing), left out.
    pub skipped: usize,
    /// Accounts that were kept before and are gone now.
    pub removed: u64,
    /// AWS requests made.
    pub requests: u64,
}

/// Reads the organization's accounts and stores the active ones, then loads
/// them into `aws.discovered` for this process.
pub async fn refresh(
    pool: &PgPool,
    aws: &AwsConfig,
    role: &str,
    clients: &Arc<ClientCache>,
    caller: &Caller,
) -> Result<Discovery, SyncError> {
    let conf = clients.ambient(GLOBAL_REGION).await;
    let sts = aws_sdk_sts::Client::new(&conf);
    let orgs = aws_sdk_organizations::Client::new(&conf);
    let mut stats = RunStats::default();
    let site = |service, operation| CallSite {
        account: "organization".to_owned(),
        region: GLOBAL_REGION.to_owned(),
        service,
        operation,
    };
    let me = caller
        .call(&site("sts", "GetCallerIdentity"), &mut stats, || {
            sts.get_caller_identity().send()
        })
        .await?;
    let own_id = me.account().unwrap_or_default().to_owned();
    // arn:aws:sts::123456789012:assumed-role/... -> "aws" (or aws-us-gov, aws-cn)
    let partition = me
        .arn()
        .and_then(|a| a.split(':').nth(1))
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
        .to_owned();

    let mut found = Vec::new();
    let mut skipped = 0;
    let mut token: Option<String> = None;
    loop {
        let page = caller
            .call(&site("organizations", "ListAccounts"), &mut stats, || {
                orgs.list_accounts()
                    .set_next_token(token.clone())
                    .max_results(20)
                    .send()
            })
            .await?;
        for a in page.accounts() {
            let Some(id) = a.id() else { continue };
            // `State` replaces the deprecated `Status`; either says ACTIVE.
            let active = a.state().map(|s| s.as_str() == "ACTIVE").unwrap_or(false)
                || a.status().map(|s| s.as_str() == "ACTIVE").unwrap_or(false);
            if !active {
                skipped += 1;
                continue;
            }
            found.push(OrgAccount {
                account_id: id.to_owned(),
                name: a.name().unwrap_or_default().to_owned(),
                email: a.email().unwrap_or_default().to_owned(),
                role_arn: (id != own_id).then(|| format!("arn:{partition}:iam::{id}:role/{role}")),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let removed = org_accounts::replace(pool, &found).await?;
    org_accounts::reload(pool, aws).await?;
    Ok(Discovery {
        active: found.len(),
        skipped,
        removed,
        requests: stats.aws_requests,
    })
}
