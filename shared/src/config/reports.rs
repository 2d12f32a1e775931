//! The reports section: [`ReportsConfig`], its variables (where report
//! files go, how long they are kept), and the code that reads them.

use std::collections::BTreeMap;

use super::reader::{Reader, Var};

/// AWS's published break-even points (hours a month at which monthly
/// billing becomes cheaper than hourly), per compute type; the ones
/// `HANGAR_BILLING_BREAK_EVEN_HOURS` names replace these.
pub const BREAK_EVEN_HOURS: &[(&str, f64)] = &[
    ("VALUE", 81.0),
    ("STANDARD", 85.0),
    ("PERFORMANCE", 80.0),
    ("POWER", 92.0),
    ("POWERPRO", 78.0),
    ("GRAPHICS_G4DN", 334.0),
    ("GRAPHICSPRO_G4DN", 80.0),
];

/// Where report files are kept.
#[derive(Debug, Clone, Default)]
pub struct ReportsConfig {
    /// `file:///dir` (created at start) or `s3://bucket/prefix`.
    pub url: String,
    /// Days a report file is kept; `system.retention` removes older ones.
    pub retention_days: u32,
    /// For an `s3://` store, the standard AWS variables as this process
    /// was given them (read through the same lookup as the rest, so a
    /// test's settings reach an in-process API): endpoint
    /// (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), `AWS_REGION`,
    /// static keys. Unset ones fall back to the SDK's usual chain.
    pub s3: S3Settings,
    /// Break-even hours per month by compute type (upper case).
    pub break_even_hours: BTreeMap<String, f64>,
    /// Hourly usage rates by compute type (upper case), in the account's
    /// billing currency, as configured: what savings are estimated with.
    pub hourly_rates: BTreeMap<String, f64>,
    /// Where reports asking for delivery are announced (http or https).
    pub webhook_url: Option<super::Secret>,
    /// The HMAC-SHA256 key their bodies are signed with.
    pub webhook_secret: Option<super::Secret>,
    /// The API's address as its users reach it, for links sent out.
    pub public_url: Option<String>,
}

/// The AWS settings of an `s3://` report store.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// An endpoint other than AWS's (an emulator, an S3-compatible store).
    pub endpoint: Option<String>,
    /// The bucket's region.
    pub region: Option<String>,
    /// A static access key id.
    pub access_key_id: Option<String>,
    /// Its secret.
    pub secret_access_key: Option<super::Secret>,
    /// A session token with them.
    pub session_token: Option<super::Secret>,
}

/// The reports variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_REPORTS_URL",
        default: Some(""),
        doc: "where report files go: file:///dir (created at start) or s3://bucket/prefix (credentials and endpoint as for the AWS syncs); empty: file://$HOME/.local/share/hangar/reports",
    },
    Var {
        name: "HANGAR_REPORTS_RETENTION_DAYS",
        default: Some("90"),
        doc: "days a report file is kept before system.retention removes it",
    },
    Var {
        name: "HANGAR_BILLING_BREAK_EVEN_HOURS",
        default: Some(""),
        doc: "break-even hours per month by compute type, overriding AWS's (VALUE=81,STANDARD=85,PERFORMANCE=80,POWER=92,POWERPRO=78,GRAPHICS_G4DN=334,GRAPHICSPRO_G4DN=80), e.g. STANDARD=90",
    },
    Var {
        name: "HANGAR_WORKSPACES_HOURLY_RATES",
        default: Some(""),
        doc: "hourly usage rate by compute type for your region and licence, e.g. STANDARD=0.30,PERFORMANCE=0.42; report.billing_mode estimates savings with them (empty: savings are not estimated)",
    },
    Var {
        name: "HANGAR_REPORT_WEBHOOK_URL",
        default: Some(""),
        doc: "report jobs with \"webhook\": true (the shipped report schedules) are announced here once published: a signed JSON POST with the download link, retried on 5xx (empty: no delivery)",
    },
    Var {
        name: "HANGAR_REPORT_WEBHOOK_SECRET",
        default: Some(""),
        doc: "key of the X-Hangar-Signature HMAC-SHA256 over \"{timestamp}.{body}\" (16+ bytes; empty: unsigned)",
    },
    Var {
        name: "HANGAR_PUBLIC_URL",
        default: Some(""),
        doc: "the API's address as users reach it (https://hangar.example.com), for links Hangar sends out",
    },
];

/// Parses `TYPE=number,…` (type upper-cased, number positive).
fn per_compute_type(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not COMPUTE_TYPE=number"))?;
        let n: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("{part:?}: {v:?} is not a positive number"))?;
        let k = k.trim().to_ascii_uppercase();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{part:?}: {k:?} is not a compute type like STANDARD"));
        }
        out.insert(k, n);
    }
    Ok(out)
}

impl Reader<'_> {
    /// Reads the reports section.
    pub(super) fn reports(&mut self) -> ReportsConfig {
        let url = match self.raw("HANGAR_REPORTS_URL").unwrap_or_default() {
            u if u.is_empty() => {
                let home = (self.lookup)("HOME").unwrap_or_else(|| "/var/lib/hangar".into());
                format!("file://{home}/.local/share/hangar/reports")
            }
            u => u,
        };
        let ok = url.strip_prefix("file://").is_some_and(|p| p.starts_with('/'))
            || url
                .strip_prefix("s3://")
                .is_some_and(|rest| rest.split('/').next().is_some_and(|b| !b.is_empty()));
        if !ok {
            self.problem(
                "HANGAR_REPORTS_URL",
                format!("{url:?} is neither file:///absolute/dir nor s3://bucket[/prefix]"),
            );
        }
        let aws = |name: &str| (self.lookup)(name).filter(|v| !v.trim().is_empty());
        let s3 = S3Settings {
            endpoint: aws("AWS_ENDPOINT_URL_S3").or_else(|| aws("AWS_ENDPOINT_URL")),
            region: aws("AWS_REGION").or_else(|| aws("AWS_DEFAULT_REGION")),
            access_key_id: aws("AWS_ACCESS_KEY_ID"),
            secret_access_key: aws("AWS_SECRET_ACCESS_KEY").map(super::Secret::new),
            session_token: aws("AWS_SESSION_TOKEN").map(super::Secret::new),
        };
        ReportsConfig {
            url,
            retention_days: self.number("HANGAR_REPORTS_RETENTION_DAYS", 1, 36_500),
            s3,
            break_even_hours: self.per_compute_type("HANGAR_BILLING_BREAK_EVEN_HOURS", BREAK_EVEN_HOURS),
            hourly_rates: self.per_compute_type("HANGAR_WORKSPACES_HOURLY_RATES", &[]),
            webhook_url: Some(self.url("HANGAR_REPORT_WEBHOOK_URL", &["http", "https"]))
                .filter(|u| !u.expose().is_empty()),
            webhook_secret: self.webhook_secret(),
            public_url: self.public_url(),
        }
    }

    fn webhook_secret(&mut self) -> Option<super::Secret> {
        let secret = self
            .raw("HANGAR_REPORT_WEBHOOK_SECRET")
            .filter(|s| !s.is_empty())?;
        if secret.len() < 16 {
            self.problem("HANGAR_REPORT_WEBHOOK_SECRET", "must be at least 16 bytes".into());
        }
        Some(super::Secret::new(secret))
    }

    fn public_url(&mut self) -> Option<String> {
        let url = self.raw("HANGAR_PUBLIC_URL").filter(|s| !s.is_empty())?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.problem(
                "HANGAR_PUBLIC_URL",
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        Some(url)
    }

    fn per_compute_type(&mut self, name: &'static str, defaults: &[(&str, f64)]) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = defaults.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        match per_compute_type(&self.raw(name).unwrap_or_default()) {
            Ok(given) => out.extend(given),
            Err(e) => self.problem(name, e),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load;

    #[test]
    fn the_reports_url_is_a_local_directory_or_a_bucket() {
        let base = [
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HOME", "/home/op"),
        ];
        let c = load(&base).unwrap();
        assert_eq!(c.reports.url, "file:///home/op/.local/share/hangar/reports");
        assert_eq!(c.reports.retention_days, 90);
        for good in ["file:///srv/reports", "s3://bucket", "s3://bucket/hangar/reports"] {
            let c = load(&[base[0], ("HANGAR_REPORTS_URL", good)]).unwrap();
            assert_eq!(c.reports.url, good);
        }
        for bad in ["reports", "file://relative", "s3://", "http://x/y"] {
            let err = load(&[base[0], ("HANGAR_REPORTS_URL", bad)]).unwrap_err();
            assert_eq!(err.problems[0].0, "HANGAR_REPORTS_URL", "{bad}");
        }
        let err = load(&[base[0], ("HANGAR_REPORTS_RETENTION_DAYS", "0")]).unwrap_err();
        assert_eq!(err.problems[0].0, "HANGAR_REPORTS_RETENTION_DAYS");
    }

    #[test]
    fn break_even_hours_default_to_aws_and_can_be_overridden_and_rates_configured() {
        let db = ("HANGAR_DATABASE_URL", "postgres://localhost/h");
        let c = load(&[db]).unwrap();
        assert_eq!(c.reports.break_even_hours["STANDARD"], 85.0);
        assert_eq!(c.reports.break_even_hours["GRAPHICS_G4DN"], 334.0);
        assert!(c.reports.hourly_rates.is_empty());
        let c = load(&[
            db,
            ("HANGAR_BILLING_BREAK_EVEN_HOURS", "standard=90"),
            ("HANGAR_WORKSPACES_HOURLY_RATES", "STANDARD=0.30, VALUE=0.22"),
        ])
        .unwrap();
        assert_eq!(c.reports.break_even_hours["STANDARD"], 90.0);
        assert_eq!(c.reports.break_even_hours["VALUE"], 81.0);
        assert_eq!(c.reports.hourly_rates["VALUE"], 0.22);
        for bad in ["STANDARD", "STANDARD=-1", "STANDARD=x", "=3"] {
            let err = load(&[db, ("HANGAR_WORKSPACES_HOURLY_RATES", bad)]).unwrap_err();
            assert_eq!(err.problems[0].0, "HANGAR_WORKSPACES_HOURLY_RATES", "{bad}");
        }
    }
}
