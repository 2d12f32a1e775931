//! How fast Hangar calls AWS, per account and region, across every worker:
//! [`AwsRates`], the defaults ([`DEFAULTS`]) and `HANGAR_AWS_RATES`, which
//! changes any of them.
//!
//! AWS throttles per account and region, and a throttled answer costs a
//! retry with backoff; spacing calls in a limiter shared by all workers (see
//! `hangar_queue::RateLimiter`) keeps a fleet of workers under the quota
//! instead of discovering it. A quota may cover several operations (every
//! WorkSpaces API call draws on one rate), so rates are set per *bucket*,
//! and each operation Hangar calls belongs to exactly one.
//!
//! Each default is 90 % of the rate AWS documents (the limiter's clock and
//! AWS's differ by a few milliseconds, and other tools in the same account
//! draw on the same quota), except where AWS documents none or the
//! documented rate changed; [`RateDefault::source`] says which.

use std::{collections::BTreeMap, fmt, time::Duration};

use super::reader::count_per_period;

/// One bucket's default and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct RateDefault {
    /// The name `HANGAR_AWS_RATES` and metrics use (`workspaces`,
    /// `cloudtrail:LookupEvents`).
    pub bucket: &'static str,
    /// The (service, operation) pairs that draw on it, as Hangar names them.
    pub operations: &'static [(&'static str, &'static str)],
    /// Calls per second per account and region, all operations together.
    pub per_second: f64,
    /// Calls allowed back to back after an idle spell.
    pub burst: u32,
    /// The quota the default derives from, and where AWS documents it.
    pub source: &'static str,
}

/// Every bucket, with every operation Hangar calls in one of them.
pub const DEFAULTS: &[RateDefault] = &[
    RateDefault {
        bucket: "workspaces",
        operations: &[
            ("workspaces", "DescribeWorkspaces"),
            ("workspaces", "DescribeWorkspacesConnectionStatus"),
            ("workspaces", "DescribeWorkspaceDirectories"),
            ("workspaces", "DescribeWorkspaceBundles"),
            ("workspaces", "DescribeTags"),
            ("workspaces", "ModifyWorkspaceProperties"),
        ],
        per_second: 1.8,
        burst: 4,
        source: "WorkSpaces Administration Guide, troubleshooting, \"throttled API calls\": a constant 2 calls per second for WorkSpaces API calls, bursts of 5 (not in Service Quotas; whether per operation is not said, so all share one)",
    },
    RateDefault {
        bucket: "cloudtrail:LookupEvents",
        operations: &[("cloudtrail", "LookupEvents")],
        per_second: 1.8,
        burst: 1,
        source: "CloudTrail API Reference, LookupEvents: 2 per second per account per Region",
    },
    RateDefault {
        bucket: "cloudwatch:GetMetricData",
        operations: &[("cloudwatch", "GetMetricData")],
        per_second: 45.0,
        burst: 1,
        source: "CloudWatch service quotas: GetMetricData 500 per second per account per Region (adjustable, L-5E141212); 50 until 2024, so 90 % of the older figure, safe for accounts still on it",
    },
    RateDefault {
        bucket: "ce:GetCostAndUsage",
        operations: &[("ce", "GetCostAndUsage")],
        per_second: 1.0,
        burst: 1,
        source: "Cost Explorer publishes no rate (LimitExceededException: \"too many calls in a short period\"); each request is billed $0.01 and a billing sync makes a few",
    },
    RateDefault {
        bucket: "organizations:ListAccounts",
        operations: &[("organizations", "ListAccounts")],
        per_second: 7.2,
        burst: 1,
        source: "Organizations quotas, throttling limits: ListAccounts 8 per second per account (burst 12), 9 per organization",
    },
    RateDefault {
        bucket: "sts:GetCallerIdentity",
        operations: &[("sts", "GetCallerIdentity")],
        per_second: 540.0,
        burst: 1,
        source: "IAM and STS quotas: 600 STS requests per second per account per Region",
    },
];

/// A bucket's rate in force: calls per second and burst, or not paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRate {
    /// Calls per second per account and region.
    pub per_second: f64,
    /// Calls allowed back to back after an idle spell (at least 1).
    pub burst: u32,
}

impl BucketRate {
    /// The spacing between calls once the burst is spent.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// The rate of every bucket: [`DEFAULTS`] with `HANGAR_AWS_RATES` applied.
/// `None`: not paced (AWS's throttling answers are still retried with
/// backoff).
#[derive(Debug, Clone, PartialEq)]
pub struct AwsRates(BTreeMap<&'static str, Option<BucketRate>>);

impl Default for AwsRates {
    fn default() -> Self {
        Self(
            DEFAULTS
                .iter()
                .map(|d| {
                    let rate = BucketRate {
                        per_second: d.per_second,
                        burst: d.burst,
                    };
                    (d.bucket, Some(rate))
                })
                .collect(),
        )
    }
}

impl AwsRates {
    /// [`DEFAULTS`] with `text` applied: `bucket=N/s, ...` (or `N/min`,
    /// `N/hour`, N a decimal; `N/s burst B`; or `off`). An unknown bucket is
    /// an error naming the known ones, so a typo cannot silently leave a
    /// default in force.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::default().with(text)
    }

    /// These rates with `text` (the form [`AwsRates::parse`] reads) applied.
    pub fn with(self, text: &str) -> Result<Self, String> {
        let mut rates = self;
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, rate)) = entry.split_once('=') else {
                return Err(format!("{entry:?} is not bucket=rate (e.g. workspaces=1.8/s)"));
            };
            let name = name.trim();
            let Some(bucket) = DEFAULTS.iter().find(|d| d.bucket == name) else {
                let known: Vec<&str> = DEFAULTS.iter().map(|d| d.bucket).collect();
                return Err(format!(
                    "{name:?} is not a rate bucket (known: {})",
                    known.join(", ")
                ));
            };
            let rate = parse_rate(rate.trim()).ok_or_else(|| {
                format!(
                    "{name}: {:?} is not N/s, N/min or N/hour (N > 0), optionally followed by \"burst B\", or off",
                    rate.trim()
                )
            })?;
            rates.0.insert(bucket.bucket, rate);
        }
        Ok(rates)
    }

    /// The bucket `service:operation` draws on, and its rate in force
    /// (`None`: not paced). An operation in no bucket is not paced.
    pub fn bucket_of(&self, service: &str, operation: &str) -> Option<(&'static str, BucketRate)> {
        let d = DEFAULTS
            .iter()
            .find(|d| d.operations.iter().any(|(s, o)| *s == service && *o == operation))?;
        Some((d.bucket, self.0.get(d.bucket).copied().flatten()?))
    }

    /// Sets one bucket's rate (the older single-operation variables).
    pub(super) fn set(&mut self, bucket: &'static str, rate: Option<BucketRate>) {
        self.0.insert(bucket, rate);
    }

    /// Every bucket and its rate, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Option<BucketRate>)> + '_ {
        self.0.iter().map(|(b, r)| (*b, *r))
    }
}

impl fmt::Display for AwsRates {
    /// `bucket=N/s burst B, ...`, the form `HANGAR_AWS_RATES` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (bucket, rate)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match rate {
                Some(r) if r.burst > 1 => write!(f, "{bucket}={}/s burst {}", r.per_second, r.burst)?,
                Some(r) => write!(f, "{bucket}={}/s", r.per_second)?,
                None => write!(f, "{bucket}=off")?,
            }
        }
        Ok(())
    }
}

/// `N/s`, `N/min`, `N/hour` (N a positive decimal), optionally followed by
/// `burst B`, or `off` (`Some(None)`); anything else `None`.
fn parse_rate(text: &str) -> Option<Option<BucketRate>> {
    if text.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let (rate, burst) = match text.split_once("burst") {
        Some((rate, burst)) => (
            rate.trim(),
            burst
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|b| (1..=1000).contains(b))?,
        ),
        None => (text, 1),
    };
    let (n, period) = count_per_period(rate)?;
    // Slower than one call a day or faster than a million a second is a
    // mistake, not a rate.
    let per_second = n / period.as_secs_f64();
    (1.0 / 86_400.0..=1_000_000.0)
        .contains(&per_second)
        .then_some(Some(BucketRate { per_second, burst }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(r: &AwsRates, service: &str, operation: &str) -> Option<(f64, u32)> {
        r.bucket_of(service, operation)
            .map(|(_, b)| (b.per_second, b.burst))
    }

    #[test]
    fn every_workspaces_operation_shares_one_bucket_and_overrides_replace_defaults() {
        let d = AwsRates::default();
        assert_eq!(d.bucket_of("workspaces", "DescribeTags").unwrap().0, "workspaces");
        assert_eq!(
            d.bucket_of("workspaces", "DescribeWorkspaces").unwrap().0,
            "workspaces"
        );
        assert_eq!(rate(&d, "workspaces", "DescribeTags"), Some((1.8, 4)));
        assert_eq!(rate(&d, "cloudtrail", "LookupEvents"), Some((1.8, 1)));
        assert_eq!(
            d.bucket_of("cloudwatch", "GetMetricData").unwrap().1.interval(),
            Duration::from_secs_f64(1.0 / 45.0)
        );
        assert_eq!(d.bucket_of("workspaces", "NoSuchCall"), None);

        let r = AwsRates::parse(
            " workspaces=20/s burst 10 , cloudtrail:LookupEvents=60/min,ce:GetCostAndUsage=off",
        )
        .unwrap();
        assert_eq!(
            rate(&r, "workspaces", "DescribeWorkspacesConnectionStatus"),
            Some((20.0, 10))
        );
        assert_eq!(rate(&r, "cloudtrail", "LookupEvents"), Some((1.0, 1)));
        assert_eq!(r.bucket_of("ce", "GetCostAndUsage"), None);
        assert_eq!(
            rate(&r, "sts", "GetCallerIdentity"),
            rate(&d, "sts", "GetCallerIdentity")
        );
        assert_eq!(AwsRates::parse("").unwrap(), d);
        let shown = r.to_string();
        assert!(
            shown.contains("workspaces=20/s burst 10") && shown.contains("ce:GetCostAndUsage=off"),
            "{shown}"
        );
        assert_eq!(
            AwsRates::parse(&shown).unwrap(),
            r,
            "what check-config prints reads back"
        );
        assert_eq!(
            rate(
                &AwsRates::parse("workspaces=0.5/s").unwrap(),
                "workspaces",
                "DescribeTags"
            ),
            Some((0.5, 1))
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = AwsRates::parse("workspaces:DescribeTags=5/s").unwrap_err();
        assert!(
            e.contains("\"workspaces:DescribeTags\" is not a rate bucket") && e.contains("known: "),
            "{e}"
        );
        for bad in [
            "workspaces=5",
            "workspaces=0/s",
            "workspaces=-1/s",
            "workspaces=5/day",
            "workspaces=1/hour/2",
            "workspaces=NaN/s",
            "workspaces=5/s burst 0",
            "workspaces=5/s burst x",
        ] {
            let e = AwsRates::parse(bad).unwrap_err();
            assert!(e.starts_with("workspaces: "), "{bad}: {e}");
        }
        let e = AwsRates::parse("DescribeTags").unwrap_err();
        assert!(e.contains("is not bucket=rate"), "{e}");
    }
}
