//! The accounts found in the AWS Organization (`aws_org_accounts`): the
//! scheduler writes them after each `organizations:ListAccounts`, and every
//! process reads them into its [`AccountDirectory`] (on a timer, and when a
//! job names an account it does not know yet).
//!
//! [`AccountDirectory`]: crate::config::AccountDirectory

use sqlx::PgPool;

use crate::config::{AwsAccount, AwsConfig};

/// One account of the organization, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrgAccount {
    /// The 12-digit id; also the name Hangar syncs it under.
    pub account_id: String,
    /// Its name in the organization (for people; it may change).
    pub name: String,
    /// Its root email.
    pub email: String,
    /// The role assumed to sync it; `None`: Hangar's own credentials.
    pub role_arn: Option<String>,
}

/// Replaces the stored list with `accounts` in one transaction: new ones
/// added, known ones updated (their first sighting kept), the rest removed.
/// Returns how many were removed.
pub async fn replace(pool: &PgPool, accounts: &[OrgAccount]) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<&str> = accounts.iter().map(|a| a.account_id.as_str()).collect();
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    let emails: Vec<&str> = accounts.iter().map(|a| a.email.as_str()).collect();
    let roles: Vec<Option<&str>> = accounts.iter().map(|a| a.role_arn.as_deref()).collect();
    sqlx::query(
        "INSERT INTO aws_org_accounts (account_id, name, email, role_arn)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (account_id) DO UPDATE
           SET name = EXCLUDED.name, email = EXCLUDED.email, role_arn = EXCLUDED.role_arn, last_seen_at = now()",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&emails)
    .bind(&roles)
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query("DELETE FROM aws_org_accounts WHERE NOT (account_id = ANY($1::text[]))")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(removed)
}

/// The stored list, by account id.
pub async fn load(pool: &PgPool) -> Result<Vec<OrgAccount>, sqlx::Error> {
    sqlx::query_as("SELECT account_id, name, email, role_arn FROM aws_org_accounts ORDER BY account_id")
        .fetch_all(pool)
        .await
}

/// Reads the stored list into `aws.discovered`, each account synced in the
/// default regions under its id. Returns how many there are.
pub async fn reload(pool: &PgPool, aws: &AwsConfig) -> Result<usize, sqlx::Error> {
    let found: Vec<AwsAccount> = load(pool)
        .await?
        .into_iter()
        .map(|a| AwsAccount {
            name: a.account_id,
            role_arn: a.role_arn,
            external_id: None,
            regions: aws.default_regions.clone(),
        })
        .collect();
    let n = found.len();
    aws.discovered.replace(found);
    Ok(n)
}

/// Keeps `aws.discovered` current in the background: reads the list now and
/// then every `every`, for as long as the process runs. Does nothing
/// without an organization role.
pub fn keep_loaded(pool: PgPool, aws: AwsConfig, every: std::time::Duration) {
    if aws.organization_role.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = reload(&pool, &aws).await {
                tracing::warn!(error = %e, "cannot read the organization's accounts; keeping the last list");
            }
        }
    });
}
