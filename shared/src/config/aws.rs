//! The AWS section: the accounts Hangar syncs ([`AwsAccount`], from
//! `HANGAR_AWS_ACCOUNTS` and `HANGAR_AWS_REGIONS`), the retry, CloudTrail
//! and billing limits ([`AwsConfig`]), their variables, and the code that
//! reads them. [`is_region_name`] is also what sync payloads are checked
//! with.

use std::{collections::BTreeSet, time::Duration};

use super::aws_rates::{AwsRates, BucketRate};
use super::reader::{Reader, Var};

/// One AWS account Hangar syncs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    /// The name operators use for it (`prod`, `default`); keys every synced row.
    pub name: String,
    /// A role to assume through STS; `None`: the ambient credentials.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// External id the role's trust policy requires, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Regions to sync; empty: `HANGAR_AWS_REGIONS`.
    #[serde(default)]
    pub regions: Vec<String>,
}

/// The accounts found in the AWS Organization (`organizations:ListAccounts`),
/// shared by every part of a process and replaced whole when the list is
/// read again from PostgreSQL (the scheduler writes it there).
#[derive(Debug, Clone, Default)]
pub struct AccountDirectory(std::sync::Arc<std::sync::RwLock<Vec<AwsAccount>>>);

impl AccountDirectory {
    /// The accounts found, as last loaded.
    pub fn snapshot(&self) -> Vec<AwsAccount> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the accounts found.
    pub fn replace(&self, accounts: Vec<AwsAccount>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = accounts;
    }
}

/// The 12-digit account id in an IAM role ARN (`arn:aws:iam::<id>:role/...`).
pub fn role_account_id(arn: &str) -> Option<&str> {
    arn.split(':')
        .nth(4)
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()))
}

/// AWS sync settings.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Accounts listed in `HANGAR_AWS_ACCOUNTS`, each with at least one
    /// region. With an organization role, [`AwsConfig::accounts`] adds the
    /// accounts found in the organization.
    pub accounts: Vec<AwsAccount>,
    /// `HANGAR_AWS_ORGANIZATION_ROLE`: the role name assumed in each account
    /// of the organization; `None`: no discovery.
    pub organization_role: Option<String>,
    /// How often the scheduler reads the organization's accounts again.
    pub organization_refresh: Duration,
    /// Regions synced for accounts that list none (every discovered one).
    pub default_regions: Vec<String>,
    /// The accounts found in the organization, as last loaded.
    pub discovered: AccountDirectory,
    /// Attempts per AWS call when throttled or answered 5xx, inside one job attempt.
    pub call_attempts: u32,
    /// First backoff between those attempts (doubles, full jitter).
    pub call_backoff: Duration,
    /// Longest backoff between those attempts.
    pub call_backoff_cap: Duration,
    /// Calls per second per account and region of every AWS operation,
    /// across every worker (`HANGAR_AWS_RATES` over the defaults).
    pub rates: AwsRates,
    /// The CloudTrail cursor goes back this far on each sync (late events).
    pub cloudtrail_overlap: Duration,
    /// How far back the first CloudTrail sync of an account and region looks.
    pub cloudtrail_first_window: Duration,
    /// The usage cursor goes back this far on each sync (late datapoints).
    pub usage_overlap: Duration,
    /// How old a workspace's tags may get before a sync reads them again
    /// (new and changed workspaces are read at once).
    pub tags_refresh: Duration,
    /// Days the billing sync covers when it has no cursor.
    pub billing_days: u32,
    /// Days the billing sync always re-reads (costs settle late).
    pub billing_resettle_days: u32,
    /// Paid Cost Explorer requests allowed per account and calendar month.
    pub ce_monthly_budget: u32,
}

impl AwsConfig {
    /// Every account synced: those listed in `HANGAR_AWS_ACCOUNTS`, then
    /// those found in the organization that no listed account names (by
    /// name or by its role's account id), which the listed ones override.
    pub fn accounts(&self) -> Vec<AwsAccount> {
        let mut all = self.accounts.clone();
        let overridden = |id: &str| {
            self.accounts
                .iter()
                .any(|a| a.name == id || a.role_arn.as_deref().and_then(role_account_id) == Some(id))
        };
        all.extend(
            self.discovered
                .snapshot()
                .into_iter()
                .filter(|d| !overridden(&d.name)),
        );
        all
    }

    /// Every (account, region) pair: listed accounts in configuration
    /// order, then discovered ones.
    pub fn targets(&self) -> Vec<(AwsAccount, String)> {
        self.accounts()
            .into_iter()
            .flat_map(|a| a.regions.clone().into_iter().map(move |r| (a.clone(), r)))
            .collect()
    }

    /// The account called `name` (a discovered one is named by its id).
    pub fn account(&self, name: &str) -> Option<AwsAccount> {
        self.accounts().into_iter().find(|a| a.name == name)
    }
}

/// Whether `r` looks like an AWS region name (`us-east-1`, `us-gov-west-1`).
pub fn is_region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The AWS variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_AWS_REGIONS",
        default: Some("us-east-1"),
        doc: "regions synced for accounts that list none, comma-separated",
    },
    Var {
        name: "HANGAR_AWS_ACCOUNTS",
        default: Some(""),
        doc: "JSON list of accounts [{name, role_arn?, external_id?, regions?}]; empty: one account 'default' with the ambient credentials",
    },
    Var {
        name: "HANGAR_AWS_ORGANIZATION_ROLE",
        default: Some(""),
        doc: "role name assumed in every active account of the AWS Organization (read with organizations:ListAccounts by the scheduler); empty: no discovery",
    },
    Var {
        name: "HANGAR_AWS_ORGANIZATION_REFRESH_SECS",
        default: Some("3600"),
        doc: "how often the scheduler reads the organization's accounts again (s, 60-86400)",
    },
    Var {
        name: "HANGAR_AWS_CALL_ATTEMPTS",
        default: Some("6"),
        doc: "attempts per AWS call when throttled or 5xx, within one job attempt (1-20)",
    },
    Var {
        name: "HANGAR_AWS_BACKOFF_MS",
        default: Some("250"),
        doc: "first backoff between those attempts, doubling with jitter (ms)",
    },
    Var {
        name: "HANGAR_AWS_BACKOFF_CAP_MS",
        default: Some("20000"),
        doc: "longest backoff between those attempts, before jitter (ms)",
    },
    Var {
        name: "HANGAR_AWS_RATES",
        default: Some(""),
        doc: "AWS calls per second per account and region, shared by all workers, for the rate buckets named (bucket=N/s, N/min, 'N/s burst B' or off, comma-separated; buckets: workspaces, cloudtrail:LookupEvents, cloudwatch:GetMetricData, ce:GetCostAndUsage, organizations:ListAccounts, sts:GetCallerIdentity); the rest keep their defaults, printed by check-config",
    },
    Var {
        name: "HANGAR_CLOUDTRAIL_LOOKUP_INTERVAL_MS",
        default: Some(""),
        doc: "older spelling of HANGAR_AWS_RATES=cloudtrail:LookupEvents=...: ms between LookupEvents calls; still honoured, HANGAR_AWS_RATES wins",
    },
    Var {
        name: "HANGAR_CLOUDTRAIL_OVERLAP_SECS",
        default: Some("900"),
        doc: "CloudTrail sync re-reads this much before its cursor, for late events (s)",
    },
    Var {
        name: "HANGAR_CLOUDTRAIL_FIRST_DAYS",
        default: Some("7"),
        doc: "days the first CloudTrail sync of an account and region reads (1-90)",
    },
    Var {
        name: "HANGAR_METRIC_DATA_INTERVAL_MS",
        default: Some(""),
        doc: "older spelling of HANGAR_AWS_RATES=cloudwatch:GetMetricData=...: ms between GetMetricData calls; still honoured, HANGAR_AWS_RATES wins",
    },
    Var {
        name: "HANGAR_TAGS_REFRESH_SECS",
        default: Some("86400"),
        doc: "a workspace's tags (one DescribeTags call each) are read again after this long; new or changed workspaces at once (s, 0-604800; 0: every sync)",
    },
    Var {
        name: "HANGAR_USAGE_OVERLAP_SECS",
        default: Some("900"),
        doc: "usage sync re-reads this much before its cursor, for datapoints CloudWatch publishes late (s)",
    },
    Var {
        name: "HANGAR_BILLING_DAYS",
        default: Some("14"),
        doc: "days the first billing sync reads (1-365)",
    },
    Var {
        name: "HANGAR_BILLING_RESETTLE_DAYS",
        default: Some("3"),
        doc: "days every billing sync re-reads because costs settle late (1-30)",
    },
    Var {
        name: "HANGAR_CE_MONTHLY_REQUEST_BUDGET",
        default: Some("500"),
        doc: "Cost Explorer requests allowed per account per month (each costs $0.01)",
    },
];

impl Reader<'_> {
    /// Reads the AWS section: the accounts (each checked, and given the
    /// default regions when it lists none), then the call limits.
    pub(super) fn aws(&mut self) -> AwsConfig {
        let default_regions = self.regions("HANGAR_AWS_REGIONS");
        let text = self.raw("HANGAR_AWS_ACCOUNTS").unwrap_or_default();
        let organization_role = self.organization_role();
        // With an organization, the caller's own account is found there
        // (synced with the ambient credentials): no implicit "default".
        let mut accounts: Vec<AwsAccount> = if text.is_empty() && organization_role.is_some() {
            Vec::new()
        } else if text.is_empty() {
            vec![AwsAccount {
                name: "default".into(),
                role_arn: None,
                external_id: None,
                regions: Vec::new(),
            }]
        } else {
            match serde_json::from_str::<Vec<AwsAccount>>(&text) {
                Ok(a) => a,
                Err(e) => {
                    self.problem(
                        "HANGAR_AWS_ACCOUNTS",
                        format!("not a JSON list of {{name, role_arn?, external_id?, regions?}}: {e}"),
                    );
                    Vec::new()
                }
            }
        };
        let mut names = BTreeSet::new();
        for a in &mut accounts {
            let valid_name = crate::names::is_name(&a.name);
            if !valid_name {
                self.problem(
                    "HANGAR_AWS_ACCOUNTS",
                    format!(
                        "account name {:?} must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'",
                        a.name
                    ),
                );
            }
            if !names.insert(a.name.clone()) {
                self.problem(
                    "HANGAR_AWS_ACCOUNTS",
                    format!("account {:?} is listed twice", a.name),
                );
            }
            if let Some(arn) = &a.role_arn
                && !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/"))
            {
                self.problem(
                    "HANGAR_AWS_ACCOUNTS",
                    format!("account {:?}: role_arn {arn:?} is not an IAM role ARN (arn:aws:iam::<id>:role/<name>)", a.name),
                );
            }
            if let Some(bad) = a.regions.iter().find(|r| !is_region_name(r)) {
                self.problem(
                    "HANGAR_AWS_ACCOUNTS",
                    format!("account {:?}: {bad:?} is not an AWS region name", a.name),
                );
            }
            if a.regions.is_empty() {
                a.regions.clone_from(&default_regions);
            }
        }
        AwsConfig {
            accounts,
            organization_role,
            organization_refresh: self.secs("HANGAR_AWS_ORGANIZATION_REFRESH_SECS", 60, 86_400),
            default_regions,
            discovered: AccountDirectory::default(),
            call_attempts: self.number("HANGAR_AWS_CALL_ATTEMPTS", 1, 20),
            call_backoff: self.millis("HANGAR_AWS_BACKOFF_MS", 1, 60_000),
            call_backoff_cap: self.millis("HANGAR_AWS_BACKOFF_CAP_MS", 1, 600_000),
            rates: self.aws_rates(),
            cloudtrail_overlap: self.secs("HANGAR_CLOUDTRAIL_OVERLAP_SECS", 0, 86_400),
            cloudtrail_first_window: Duration::from_secs(
                86_400 * self.number::<u64>("HANGAR_CLOUDTRAIL_FIRST_DAYS", 1, 90),
            ),
            usage_overlap: self.secs("HANGAR_USAGE_OVERLAP_SECS", 0, 86_400),
            tags_refresh: self.secs("HANGAR_TAGS_REFRESH_SECS", 0, 604_800),
            billing_days: self.number("HANGAR_BILLING_DAYS", 1, 365),
            billing_resettle_days: self.number("HANGAR_BILLING_RESETTLE_DAYS", 1, 30),
            ce_monthly_budget: self.number("HANGAR_CE_MONTHLY_REQUEST_BUDGET", 0, 10_000_000),
        }
    }

    /// The defaults, then the older single-operation interval variables when
    /// set, then `HANGAR_AWS_RATES`.
    fn aws_rates(&mut self) -> AwsRates {
        let mut rates = AwsRates::default();
        for (name, bucket) in [
            ("HANGAR_CLOUDTRAIL_LOOKUP_INTERVAL_MS", "cloudtrail:LookupEvents"),
            ("HANGAR_METRIC_DATA_INTERVAL_MS", "cloudwatch:GetMetricData"),
        ] {
            if self.optional(name).is_some() {
                let ms: u64 = self.number(name, 1, 86_400_000);
                let rate = BucketRate {
                    per_second: 1000.0 / ms as f64,
                    burst: 1,
                };
                rates.set(bucket, Some(rate));
            }
        }
        let text = self.raw("HANGAR_AWS_RATES").unwrap_or_default();
        match rates.clone().with(&text) {
            Ok(r) => r,
            Err(e) => {
                self.problem("HANGAR_AWS_RATES", e);
                rates
            }
        }
    }

    /// `HANGAR_AWS_ORGANIZATION_ROLE`: an IAM role name (not an ARN), or none.
    fn organization_role(&mut self) -> Option<String> {
        let role = self.optional("HANGAR_AWS_ORGANIZATION_ROLE")?;
        let is_role_name = role.len() <= 64
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !is_role_name {
            self.problem(
                "HANGAR_AWS_ORGANIZATION_ROLE",
                format!("{role:?} is not an IAM role name (1-64 of letters, digits and +=,.@_-; the name, not the ARN)"),
            );
        }
        Some(role)
    }

    /// A comma-separated list of region names, at least one.
    fn regions(&mut self, name: &'static str) -> Vec<String> {
        let text = self.raw(name).unwrap_or_default();
        let regions: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = regions.iter().find(|r| !is_region_name(r)) {
            self.problem(name, format!("{bad:?} is not an AWS region name like us-east-1"));
        }
        if regions.is_empty() {
            self.problem(name, "names no region".into());
        }
        regions
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load;

    #[test]
    fn aws_accounts_are_parsed_and_checked() {
        let ok = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_AWS_REGIONS", "eu-west-1, us-east-2"),
            (
                "HANGAR_AWS_ACCOUNTS",
                r#"[{"name":"prod","role_arn":"arn:aws:iam::111122223333:role/hangar","regions":["us-west-2"]},{"name":"dev"}]"#,
            ),
        ])
        .unwrap();
        let targets: Vec<(String, String)> = ok.aws.targets().into_iter().map(|(a, r)| (a.name, r)).collect();
        assert_eq!(
            targets,
            vec![
                ("prod".into(), "us-west-2".into()),
                ("dev".into(), "eu-west-1".into()),
                ("dev".into(), "us-east-2".into())
            ]
        );
        let err = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_AWS_REGIONS", "mars"),
            (
                "HANGAR_AWS_ACCOUNTS",
                r#"[{"name":"a b","role_arn":"role"},{"name":"x","regions":["nowhere"]},{"name":"x"}]"#,
            ),
        ])
        .unwrap_err()
        .to_string();
        for expected in [
            "HANGAR_AWS_REGIONS: \"mars\" is not an AWS region name",
            "account name \"a b\" must be",
            "role_arn \"role\" is not an IAM role ARN",
            "account \"x\": \"nowhere\" is not an AWS region name",
            "account \"x\" is listed twice",
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
        let bad_json = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_AWS_ACCOUNTS", r#"[{"name":"a","role":"x"}]"#),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            bad_json.contains("HANGAR_AWS_ACCOUNTS: not a JSON list"),
            "{bad_json}"
        );
    }

    #[test]
    fn discovered_accounts_join_the_listed_ones_which_override_them() {
        let c = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_AWS_REGIONS", "eu-west-1"),
            ("HANGAR_AWS_ORGANIZATION_ROLE", "hangar-reader"),
            (
                "HANGAR_AWS_ACCOUNTS",
                r#"[{"name":"prod","role_arn":"arn:aws:iam::333333333333:role/own"},{"name":"444444444444"}]"#,
            ),
        ])
        .unwrap();
        let found = |id: &str| super::AwsAccount {
            name: id.to_owned(),
            role_arn: Some(format!("arn:aws:iam::{id}:role/hangar-reader")),
            external_id: None,
            regions: vec!["eu-west-1".to_owned()],
        };
        c.aws.discovered.replace(vec![
            found("111111111111"),
            found("333333333333"),
            found("444444444444"),
        ]);
        let names: Vec<String> = c.aws.accounts().into_iter().map(|a| a.name).collect();
        // 333... is prod's role's account and 444... is listed by name: theirs win.
        assert_eq!(names, vec!["prod", "444444444444", "111111111111"]);
        assert_eq!(c.aws.account("444444444444").unwrap().role_arn, None);
        assert_eq!(c.aws.targets().len(), 3, "one region each: {:?}", c.aws.targets());
        assert!(c.summary().contains("through role hangar-reader"));

        // With a role and no list, there is no implicit "default" account.
        let only_org = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_AWS_ORGANIZATION_ROLE", "hangar-reader"),
        ])
        .unwrap();
        assert!(only_org.aws.accounts().is_empty());
        let err = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_AWS_ORGANIZATION_ROLE", "arn:aws:iam::1:role/x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("HANGAR_AWS_ORGANIZATION_ROLE: \"arn:aws:iam::1:role/x\" is not an IAM role name"),
            "{err}"
        );
    }
}
