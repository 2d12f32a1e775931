//! The reports section: [`ReportsConfig`], its variables (where report
//! files go, how long they are kept), and the code that reads them.

use super::reader::{Reader, Var};

/// Where report files are kept.
#[derive(Debug, Clone)]
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
];

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
        }
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
}
