//! Configuration from `HANGAR_*` environment variables, loaded once, typed and
//! validated at start. Every problem is collected and reported together, each
//! naming its variable; secrets (URLs that may carry passwords) never print.
//!
//! [`VARS`] is the single list of variables, their defaults and meanings:
//! `.env.example` is checked against it by a test.
//!
//! One file per section, each holding its settings struct, its variables
//! (its own `VARS`) and the `Reader` method that reads them: `database`,
//! `redis`, `api`, `jwt`, `security`, `worker`, `scheduler`, `aws`,
//! `inference`, `log`. `reader` is the leaf they all use ([`Var`], and
//! `Reader` with its parsing helpers); this file depends on the sections,
//! never the other way round, and puts them together.

mod api;
mod aws;
mod aws_rates;
mod database;
mod errors;
mod inference;
mod jwt;
mod log;
mod reader;
mod redis;
mod reports;
mod scheduler;
mod security;
mod traces;
mod worker;

use std::{collections::BTreeMap, fmt};

pub use self::{
    api::{ApiConfig, ConsoleConfig},
    aws::{AwsAccount, AwsConfig, is_region_name},
    aws_rates::{AwsRates, BucketRate, DEFAULTS as AWS_RATE_DEFAULTS, RateDefault},
    database::DatabaseConfig,
    errors::ErrorReportConfig,
    inference::InferenceConfig,
    jwt::{JwtConfig, check_jwks_url},
    log::{LogConfig, LogFormat},
    reader::Var,
    redis::RedisConfig,
    reports::{ReportsConfig, S3Settings},
    scheduler::SchedulerConfig,
    security::SecurityConfig,
    traces::{OtlpCompression, OtlpProtocol, ParentlessChoice, SamplerChoice, TraceConfig},
    worker::WorkerConfig,
};
pub use crate::secret::Secret;
use reader::Reader;

/// Everything a Hangar binary is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// HTTP API.
    pub api: ApiConfig,
    /// Worker.
    pub worker: WorkerConfig,
    /// Scheduler.
    pub scheduler: SchedulerConfig,
    /// AWS syncs.
    pub aws: AwsConfig,
    /// Model servers for inference jobs.
    pub inference: InferenceConfig,
    /// Report files.
    pub reports: ReportsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Error reports (Sentry).
    pub errors: ErrorReportConfig,
    /// Traces (OpenTelemetry).
    pub traces: TraceConfig,
}

/// Each section's variables, in the order `.env.example`, the docs and
/// problem reports follow (the JWT variables sit between the API's own and
/// the other security ones).
const SECTIONS: &[&[Var]] = &[
    database::VARS,
    redis::VARS,
    api::VARS,
    jwt::VARS,
    security::VARS,
    worker::VARS,
    scheduler::VARS,
    aws::VARS,
    inference::VARS,
    reports::VARS,
    log::VARS,
    errors::VARS,
    traces::VARS,
];

/// [`SECTIONS`] joined at compile time, so [`VARS`] stays a `const` slice.
const ALL_VARS: [Var; reader::count(SECTIONS)] = reader::concat(SECTIONS);

/// Every variable Hangar reads.
pub const VARS: &[Var] = &ALL_VARS;

/// Every problem found in the environment, each naming its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// (variable, what is wrong), in [`VARS`] order.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for (var, problem) in &self.problems {
            writeln!(f, "  {var}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(lookup, VARS);
        // Sections are read in `VARS` order (struct fields are evaluated as
        // written), each even after a problem, so one run reports them all.
        let config = Self {
            database: r.database(),
            redis: r.redis(),
            api: r.api(),
            worker: r.worker(),
            scheduler: r.scheduler(),
            aws: r.aws(),
            inference: r.inference(),
            reports: r.reports(),
            log: r.log(),
            errors: r.errors(),
            traces: r.traces(),
        };
        if !r.problems.is_empty() {
            let order: BTreeMap<&str, usize> = VARS.iter().enumerate().map(|(i, v)| (v.name, i)).collect();
            let mut problems = r.problems;
            problems.sort_by_key(|(v, _)| order.get(v.as_str()).copied().unwrap_or(usize::MAX));
            return Err(ConfigError { problems });
        }
        Ok(config)
    }

    /// Queue engine settings for Redis.
    pub fn redis_settings(&self) -> hangar_queue::RedisSettings {
        let mut s = hangar_queue::RedisSettings::new(self.redis.url.expose());
        s.response_timeout = self.redis.response_timeout;
        s.cluster = self.redis.cluster;
        s.tls_ca_pem = self.redis.tls_ca_pem.clone();
        s
    }

    /// A printable summary for `check-config` (secrets redacted).
    pub fn summary(&self) -> String {
        let queues: Vec<String> = self
            .worker
            .queues
            .iter()
            .map(|(q, n)| format!("{q}={n}"))
            .collect();
        format!(
            "configuration OK\n  database: <redacted url>, pool {}..{}, acquire timeout {:?}\n  redis: <redacted url> ({}), prefix {:?}, reply timeout {:?}\n  api: {}\n  worker: queues {}, lease {:?}, drain {:?}\n  scheduler: repair every {:?}\n  aws: {}\n  aws rates (calls/s per account and region, all workers): {}\n  models: {}\n  log: {:?} {}\n  error reports: {}\n  traces: {}",
            self.database.min_connections,
            self.database.max_connections,
            self.database.acquire_timeout,
            self.redis.mode(),
            self.redis.prefix,
            self.redis.response_timeout,
            self.api.bind,
            queues.join(","),
            self.worker.lease,
            self.worker.drain_timeout,
            self.scheduler.repair_interval,
            self.aws
                .accounts
                .iter()
                .map(|a| format!("{} ({})", a.name, a.regions.join(",")))
                .chain(self.aws.organization_role.iter().map(|role| format!(
                    "every active account of the organization through role {role} ({}), read every {:?}",
                    self.aws.default_regions.join(","),
                    self.aws.organization_refresh
                )))
                .collect::<Vec<_>>()
                .join("; "),
            self.aws.rates,
            if self.inference.models.is_empty() {
                "none".to_owned()
            } else {
                self.inference
                    .models
                    .iter()
                    .map(|m| format!("{} ({}, {} in flight)", m.name, m.base_url, m.max_in_flight))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            self.log.format,
            self.log.level,
            match &self.errors.dsn {
                Some(_) => format!(
                    "Sentry <redacted dsn>, environment {}, release {}",
                    self.errors.environment, self.errors.release
                ),
                None => "off (SENTRY_DSN unset)".to_owned(),
            },
            match &self.traces.endpoint {
                Some(url) => format!(
                    "OTLP {:?} ({:?} compression) to {}, sampler {:?}, queue {} spans",
                    self.traces.protocol,
                    self.traces.compression,
                    url.split('?').next().unwrap_or_default(),
                    self.traces.sampler,
                    self.traces.max_queue
                ),
                None => "off (OTEL_EXPORTER_OTLP_ENDPOINT unset)".to_owned(),
            },
        )
    }
}

/// `check-config` for every binary: prints the summary (secrets redacted)
/// or every problem, and exits 0 (valid) or 1.
pub fn check_config_exit(config: &Result<Config, ConfigError>) -> ! {
    let (report, code) = match config {
        Ok(c) => (c.summary(), 0),
        Err(e) => (e.to_string(), 1),
    };
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    std::process::exit(code)
}

/// Loads a configuration from `vars` alone, for the tests of every section.
#[cfg(test)]
fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: std::collections::HashMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    Config::from_lookup(&|k| map.get(k).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_only_the_database_is_given() {
        let c = load(&[("HANGAR_DATABASE_URL", "postgres://u:pw@localhost/hangar")]).unwrap();
        assert_eq!(
            c.worker.queues,
            vec![("sync".into(), 4), ("reports".into(), 2), ("inference".into(), 1)]
        );
        assert_eq!(c.redis.prefix, "hangar");
        assert_eq!(c.api.bind.to_string(), "127.0.0.1:8080");
        assert!(!format!("{c:?}").contains("pw"), "secrets never print");
        assert!(!c.summary().contains("pw"));
        assert_eq!(c.aws.accounts.len(), 1);
        assert_eq!(c.aws.accounts[0].name, "default");
        assert_eq!(c.aws.accounts[0].regions, vec!["us-east-1".to_owned()]);
    }

    #[test]
    fn aws_rates_are_the_defaults_then_the_older_interval_variables_then_hangar_aws_rates() {
        let db = ("HANGAR_DATABASE_URL", "postgres://localhost/hangar");
        let rate = |c: &Config, service, operation| {
            c.aws
                .rates
                .bucket_of(service, operation)
                .map(|(_, r)| (r.per_second, r.burst))
        };
        let c = load(&[db]).unwrap();
        assert_eq!(rate(&c, "workspaces", "DescribeTags"), Some((1.8, 4)));
        assert_eq!(rate(&c, "cloudtrail", "LookupEvents"), Some((1.8, 1)));
        assert!(
            c.summary().contains("workspaces=1.8/s burst 4"),
            "check-config prints the rates in force: {}",
            c.summary()
        );
        let c = load(&[db, ("HANGAR_CLOUDTRAIL_LOOKUP_INTERVAL_MS", "1000")]).unwrap();
        assert_eq!(rate(&c, "cloudtrail", "LookupEvents"), Some((1.0, 1)));
        let c = load(&[
            db,
            ("HANGAR_CLOUDTRAIL_LOOKUP_INTERVAL_MS", "1000"),
            ("HANGAR_METRIC_DATA_INTERVAL_MS", "100"),
            (
                "HANGAR_AWS_RATES",
                "cloudtrail:LookupEvents=30/min, workspaces=off",
            ),
        ])
        .unwrap();
        assert_eq!(rate(&c, "cloudtrail", "LookupEvents"), Some((0.5, 1)));
        assert_eq!(rate(&c, "cloudwatch", "GetMetricData"), Some((10.0, 1)));
        assert_eq!(rate(&c, "workspaces", "DescribeWorkspaces"), None);
        let err = load(&[db, ("HANGAR_AWS_RATES", "workspace=2/s")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HANGAR_AWS_RATES: \"workspace\" is not a rate bucket"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_together_naming_its_variable() {
        let err = load(&[
            ("HANGAR_REDIS_URL", "localhost:6379"),
            ("HANGAR_DB_MAX_CONNECTIONS", "0"),
            ("HANGAR_LEASE_SECS", "soon"),
            ("HANGAR_QUEUES", "sync=4,Bad=x"),
            ("HANGAR_BIND", "nowhere"),
            ("HANGAR_LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(
            vars,
            vec![
                "HANGAR_DATABASE_URL",
                "HANGAR_DB_MAX_CONNECTIONS",
                "HANGAR_REDIS_URL",
                "HANGAR_BIND",
                "HANGAR_QUEUES",
                "HANGAR_LEASE_SECS",
                "HANGAR_LOG_FORMAT"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("HANGAR_DATABASE_URL: missing (required)"), "{text}");
        assert!(
            text.contains("HANGAR_DB_MAX_CONNECTIONS: 0 is out of range 1..=1000"),
            "{text}"
        );
        assert!(
            text.contains("HANGAR_REDIS_URL: not a URL starting with redis:// or rediss://"),
            "{text}"
        );
        assert!(text.contains("\"soon\" is not a whole number"), "{text}");
    }

    #[test]
    fn a_redis_url_that_cannot_be_opened_is_refused_by_the_same_parser_that_connects() {
        let env: std::collections::HashMap<&str, &str> = [
            ("HANGAR_DATABASE_URL", "postgres://localhost/hangar"),
            ("HANGAR_REDIS_URL", "redis://a:7000,http://b:7001"),
        ]
        .into_iter()
        .collect();
        let err = Config::from_lookup(&|k| env.get(k).map(|v| (*v).to_owned())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HANGAR_REDIS_URL: Redis cannot open it"), "{text}");
        let lookup = |url: &'static str| {
            move |k: &str| match k {
                "HANGAR_DATABASE_URL" => Some("postgres://localhost/hangar".to_owned()),
                "HANGAR_REDIS_URL" => Some(url.to_owned()),
                _ => None,
            }
        };
        assert!(Config::from_lookup(&lookup("redis://user:secret@127.0.0.1:6379/2")).is_ok());
        // TLS, ACL users and clusters are all things connecting can open.
        assert!(Config::from_lookup(&lookup("rediss://hangar:secret@cache.example:6380")).is_ok());
        let c = Config::from_lookup(&lookup("redis://127.0.0.1:7000,redis://127.0.0.1:7001")).unwrap();
        assert!(c.redis_settings().is_cluster());
    }

    #[test]
    fn an_unreadable_redis_ca_file_is_refused_naming_the_variable() {
        let lookup = |k: &str| match k {
            "HANGAR_DATABASE_URL" => Some("postgres://localhost/hangar".to_owned()),
            "HANGAR_REDIS_URL" => Some("rediss://cache.example:6380".to_owned()),
            "HANGAR_REDIS_TLS_CA_FILE" => Some("/nonexistent/ca.pem".to_owned()),
            "HANGAR_REDIS_CLUSTER" => Some("yes".to_owned()),
            _ => None,
        };
        let err = Config::from_lookup(&lookup).unwrap_err().to_string();
        assert!(
            err.contains("HANGAR_REDIS_TLS_CA_FILE: cannot read /nonexistent/ca.pem"),
            "{err}"
        );
        assert!(!err.contains("HANGAR_REDIS_URL"), "{err}");
    }

    #[test]
    fn env_example_documents_every_variable_with_its_default() {
        let example = include_str!("../../../.env.example");
        for var in VARS {
            let line = example
                .lines()
                .find(|l| l.trim_start_matches("# ").starts_with(&format!("{}=", var.name)))
                .unwrap_or_else(|| panic!("{} is missing from .env.example", var.name));
            if let Some(default) = var.default {
                assert!(
                    line.ends_with(&format!("={default}")),
                    "{} default differs: {line}",
                    var.name
                );
            }
        }
    }
}
