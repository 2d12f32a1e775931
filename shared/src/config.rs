//! Configuration from `HANGAR_*` environment variables, loaded once, typed and
//! validated at start. Every problem is collected and reported together, each
//! naming its variable; secrets (URLs that may carry passwords) never print.
//!
//! [`VARS`] is the single list of variables, their defaults and meanings:
//! `.env.example` is checked against it by a test.

use std::{collections::BTreeMap, fmt, net::SocketAddr, time::Duration};

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from somewhere other than a HANGAR_ variable.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Keys fetched over plain HTTP could be swapped on the way: a JWKS URL
/// must be `https://`, or `http://` to a loopback host (a local sidecar,
/// the tests). The URL is parsed (not matched as text), so
/// `http://localhost:@evil/` names the host `evil` and is refused; user
/// info is refused outright (credentials do not belong in a URL).
pub fn check_jwks_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user info (user:password@)".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host".into()),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must start with https:// (http:// only for 127.0.0.1, localhost or [::1])".into()),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for production.
    Json,
    /// Human-readable, for local work.
    Pretty,
}

/// PostgreSQL pool settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `postgres://…`
    pub url: Secret,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Connections are replaced after this long.
    pub max_lifetime: Duration,
}

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://…`
    pub url: Secret,
    /// Key prefix for every queue.
    pub prefix: String,
    /// How long a command waits for its reply.
    pub response_timeout: Duration,
    /// How long a worker keeps retrying an unreachable Redis before exiting non-zero.
    pub outage_limit: Duration,
}

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the API listens.
    pub bind: SocketAddr,
    /// How long readiness checks wait for PostgreSQL and Redis.
    pub ready_timeout: Duration,
    /// Authentication, rate limits and HTTP hardening.
    pub security: SecurityConfig,
}

/// How JWTs are verified. Any combination may be set; a token is checked
/// against the key its header's algorithm belongs to, never another.
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// HS256 shared secret (at least 32 bytes).
    pub hs256_secret: Option<Secret>,
    /// PEM file with an RSA (RS256) or P-256 (ES256) public key.
    pub public_key_file: Option<std::path::PathBuf>,
    /// JWKS URL (RS256/ES256 keys by `kid`), cached and refreshed.
    pub jwks_url: Option<String>,
    /// How often the JWKS is refetched (also on an unknown `kid`, at most this often / 10).
    pub jwks_refresh: Duration,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim holding the role (a string, or a list whose highest role wins).
    pub role_claim: String,
}

impl JwtConfig {
    /// Whether any JWT verification key is configured.
    pub fn enabled(&self) -> bool {
        self.hs256_secret.is_some() || self.public_key_file.is_some() || self.jwks_url.is_some()
    }
}

/// Authentication, rate limiting and HTTP hardening of the API.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// JWT verification.
    pub jwt: JwtConfig,
    /// Whether `/metrics` is served without credentials.
    pub metrics_public: bool,
    /// Per-user limit on reads (`GET`); `None`: unlimited.
    pub read_rate: Option<hangar_queue::Rate>,
    /// Per-user limit on state-changing requests; `None`: unlimited.
    pub write_rate: Option<hangar_queue::Rate>,
    /// Refuse requests (503) when Redis cannot be asked, instead of letting them through.
    pub rate_limit_fail_closed: bool,
    /// Origins allowed by CORS (empty: no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (clients reach the API over TLS).
    pub hsts: bool,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout: Duration,
    /// Deepest nesting of objects and arrays accepted in a JSON body.
    pub json_max_depth: usize,
    /// Per client address, refused credentials (bad tokens, unknown or
    /// revoked keys); past it the address is refused before any credential
    /// lookup. `None`: unlimited.
    pub auth_failure_rate: Option<hangar_queue::Rate>,
    /// Most open client connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this (slow-header clients are cut off).
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this, or the connection is closed.
    pub body_read_timeout: Duration,
    /// A connection without a byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Open token streams (`GET /api/v1/jobs/{id}/stream`) per caller.
    pub streams_per_caller: usize,
    /// Open token streams per API process.
    pub streams_max: usize,
    /// A token stream of a job that has not started yet ends after this
    /// (the client reconnects with `Last-Event-ID`).
    pub stream_wait: Duration,
    /// Furthest `run_at` a job may ask for.
    pub run_at_horizon: Duration,
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues this worker serves, with their concurrency.
    pub queues: Vec<(String, usize)>,
    /// A claimed job's lease.
    pub lease: Duration,
    /// How long a stopping worker lets running jobs finish before giving them back.
    pub drain_timeout: Duration,
    /// Where the worker serves `/metrics`; `None`: not served.
    pub metrics_bind: Option<SocketAddr>,
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the repair loop compares PostgreSQL with Redis.
    pub repair_interval: Duration,
    /// Jobs younger than this are left alone by the repair loop (their
    /// enqueue may still be on its way to Redis).
    pub repair_min_age: Duration,
    /// TOML file of schedules; `None`: the shipped ones; `none`: no schedules.
    pub schedules_file: Option<String>,
    /// The leader lease; a dead leader is replaced within two of these.
    pub leader_lease: Duration,
    /// How often the scheduler looks for due ticks.
    pub tick_interval: Duration,
    /// A tick this late is still on time; older ones follow the catch-up policy.
    pub grace: Duration,
    /// Where the scheduler serves `/metrics`; `None`: not served.
    pub metrics_bind: Option<SocketAddr>,
}

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

/// AWS sync settings.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Accounts, each with at least one region.
    pub accounts: Vec<AwsAccount>,
    /// Attempts per AWS call when throttled or answered 5xx, inside one job attempt.
    pub call_attempts: u32,
    /// First backoff between those attempts (doubles, full jitter).
    pub call_backoff: Duration,
    /// Longest backoff between those attempts.
    pub call_backoff_cap: Duration,
    /// Spacing between CloudTrail LookupEvents calls per account and region,
    /// across every worker (AWS allows 2 per second).
    pub lookup_interval: Duration,
    /// The CloudTrail cursor goes back this far on each sync (late events).
    pub cloudtrail_overlap: Duration,
    /// How far back the first CloudTrail sync of an account and region looks.
    pub cloudtrail_first_window: Duration,
    /// Days the billing sync covers when it has no cursor.
    pub billing_days: u32,
    /// Days the billing sync always re-reads (costs settle late).
    pub billing_resettle_days: u32,
    /// Paid Cost Explorer requests allowed per account and calendar month.
    pub ce_monthly_budget: u32,
}

impl AwsConfig {
    /// Every (account, region) pair, in configuration order.
    pub fn targets(&self) -> impl Iterator<Item = (&AwsAccount, &str)> {
        self.accounts
            .iter()
            .flat_map(|a| a.regions.iter().map(move |r| (a, r.as_str())))
    }

    /// The account called `name`.
    pub fn account(&self, name: &str) -> Option<&AwsAccount> {
        self.accounts.iter().find(|a| a.name == name)
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

/// Inference settings: the model registry and its health probes.
#[derive(Debug, Clone)]
pub struct InferenceConfig {
    /// Every configured model server.
    pub models: crate::models::ModelRegistry,
    /// How often each process probes every model's health.
    pub probe_interval: Duration,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `info,hangar_queue=debug`.
    pub level: String,
}

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
    /// Logging.
    pub log: LogConfig,
}

/// One variable: name, default (`None`: required), meaning.
pub struct Var {
    /// The environment variable.
    pub name: &'static str,
    /// Its default, or `None` if it must be set.
    pub default: Option<&'static str>,
    /// What it does.
    pub doc: &'static str,
}

/// Every variable Hangar reads.
pub const VARS: &[Var] = &[
    Var {
        name: "HANGAR_DATABASE_URL",
        default: None,
        doc: "PostgreSQL URL, postgres://user@host:port/db",
    },
    Var {
        name: "HANGAR_DB_MAX_CONNECTIONS",
        default: Some("10"),
        doc: "most pooled connections (1-1000)",
    },
    Var {
        name: "HANGAR_DB_MIN_CONNECTIONS",
        default: Some("1"),
        doc: "idle connections kept open (0-max)",
    },
    Var {
        name: "HANGAR_DB_ACQUIRE_TIMEOUT_MS",
        default: Some("3000"),
        doc: "wait for a free connection (ms)",
    },
    Var {
        name: "HANGAR_DB_MAX_LIFETIME_SECS",
        default: Some("1800"),
        doc: "replace connections after (s)",
    },
    Var {
        name: "HANGAR_REDIS_URL",
        default: Some("redis://127.0.0.1:6379"),
        doc: "Redis URL, redis:// or rediss://",
    },
    Var {
        name: "HANGAR_REDIS_PREFIX",
        default: Some("hangar"),
        doc: "key prefix for all queues (a-z0-9-_.)",
    },
    Var {
        name: "HANGAR_REDIS_RESPONSE_TIMEOUT_MS",
        default: Some("5000"),
        doc: "Redis reply timeout (ms)",
    },
    Var {
        name: "HANGAR_REDIS_OUTAGE_LIMIT_SECS",
        default: Some("60"),
        doc: "worker exits non-zero after Redis is unreachable this long (s)",
    },
    Var {
        name: "HANGAR_BIND",
        default: Some("127.0.0.1:8080"),
        doc: "API listen address",
    },
    Var {
        name: "HANGAR_READY_TIMEOUT_MS",
        default: Some("1000"),
        doc: "readiness check timeout per dependency (ms)",
    },
    Var {
        name: "HANGAR_JWT_HS256_SECRET",
        default: Some(""),
        doc: "shared secret for HS256 JWTs (32+ bytes); empty: HS256 off",
    },
    Var {
        name: "HANGAR_JWT_PUBLIC_KEY_FILE",
        default: Some(""),
        doc: "PEM public key (RSA: RS256, P-256: ES256) for JWTs; empty: off",
    },
    Var {
        name: "HANGAR_JWT_JWKS_URL",
        default: Some(""),
        doc: "JWKS URL with RS256/ES256 keys by kid; empty: off",
    },
    Var {
        name: "HANGAR_JWT_JWKS_REFRESH_SECS",
        default: Some("300"),
        doc: "refetch the JWKS this often (s); an unknown kid refetches sooner",
    },
    Var {
        name: "HANGAR_JWT_ISSUER",
        default: Some(""),
        doc: "required iss claim (required when any JWT key is set)",
    },
    Var {
        name: "HANGAR_JWT_AUDIENCE",
        default: Some(""),
        doc: "required aud claim (required when any JWT key is set)",
    },
    Var {
        name: "HANGAR_JWT_LEEWAY_SECS",
        default: Some("30"),
        doc: "clock skew tolerated on exp and nbf (s, 0-300)",
    },
    Var {
        name: "HANGAR_JWT_ROLE_CLAIM",
        default: Some("role"),
        doc: "claim holding viewer|operator|admin (or a list of them)",
    },
    Var {
        name: "HANGAR_METRICS_PUBLIC",
        default: Some("true"),
        doc: "serve /metrics without credentials (false: viewer role needed)",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_READ",
        default: Some("600/min"),
        doc: "per-user limit on GET requests, N/s|min|hour (a burst of N), or off",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_WRITE",
        default: Some("120/min"),
        doc: "per-user limit on enqueues and other changes, N/s|min|hour, or off",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_FAIL_CLOSED",
        default: Some("false"),
        doc: "when Redis cannot be asked: true refuses (503), false lets requests through",
    },
    Var {
        name: "HANGAR_CORS_ORIGINS",
        default: Some(""),
        doc: "comma-separated origins allowed by CORS (https://ops.example.com); empty: none",
    },
    Var {
        name: "HANGAR_HSTS",
        default: Some("false"),
        doc: "send Strict-Transport-Security (set when clients reach the API over TLS)",
    },
    Var {
        name: "HANGAR_MAX_BODY_BYTES",
        default: Some("262144"),
        doc: "largest request body (bytes)",
    },
    Var {
        name: "HANGAR_REQUEST_TIMEOUT_SECS",
        default: Some("30"),
        doc: "requests taking longer are answered 408 (s)",
    },
    Var {
        name: "HANGAR_JSON_MAX_DEPTH",
        default: Some("32"),
        doc: "deepest nesting of objects/arrays accepted in a JSON body",
    },
    Var {
        name: "HANGAR_RATE_LIMIT_AUTH_FAILURES",
        default: Some("20/min"),
        doc: "per client address, refused credentials before the address is refused unchecked (429), or off",
    },
    Var {
        name: "HANGAR_MAX_CONNECTIONS",
        default: Some("1024"),
        doc: "most open client connections per API process; more wait in the backlog",
    },
    Var {
        name: "HANGAR_HEADER_READ_TIMEOUT_SECS",
        default: Some("10"),
        doc: "a request's headers must arrive within this, else the connection is closed (s)",
    },
    Var {
        name: "HANGAR_BODY_READ_TIMEOUT_SECS",
        default: Some("10"),
        doc: "a request's body must arrive within this, else 408 and the connection is closed (s)",
    },
    Var {
        name: "HANGAR_IDLE_TIMEOUT_SECS",
        default: Some("60"),
        doc: "a connection (HTTP/1 or HTTP/2) without a byte either way for this long is closed (s)",
    },
    Var {
        name: "HANGAR_STREAMS_PER_CALLER",
        default: Some("8"),
        doc: "open token streams per caller (429 beyond)",
    },
    Var {
        name: "HANGAR_STREAMS_MAX",
        default: Some("512"),
        doc: "open token streams per API process (429 beyond)",
    },
    Var {
        name: "HANGAR_STREAM_WAIT_SECS",
        default: Some("30"),
        doc: "a token stream of a job not started yet ends after this; the client reconnects (s)",
    },
    Var {
        name: "HANGAR_RUN_AT_HORIZON_DAYS",
        default: Some("30"),
        doc: "furthest run_at a job may ask for (days ahead)",
    },
    Var {
        name: "HANGAR_QUEUES",
        default: Some("sync=4,reports=2,inference=1"),
        doc: "worker queues and concurrency, name=n,...",
    },
    Var {
        name: "HANGAR_LEASE_SECS",
        default: Some("30"),
        doc: "job lease; a dead worker's job runs again after this (s)",
    },
    Var {
        name: "HANGAR_DRAIN_TIMEOUT_SECS",
        default: Some("30"),
        doc: "on SIGTERM, time running jobs get to finish (s)",
    },
    Var {
        name: "HANGAR_WORKER_METRICS_BIND",
        default: Some(""),
        doc: "worker /metrics address; empty: off",
    },
    Var {
        name: "HANGAR_REPAIR_INTERVAL_SECS",
        default: Some("30"),
        doc: "scheduler repair loop period (s)",
    },
    Var {
        name: "HANGAR_REPAIR_MIN_AGE_SECS",
        default: Some("10"),
        doc: "repair ignores jobs younger than this (s)",
    },
    Var {
        name: "HANGAR_SCHEDULES_FILE",
        default: Some(""),
        doc: "TOML file of periodic schedules ([[schedule]] tables); empty: the shipped deploy/schedules.toml; none: no schedules",
    },
    Var {
        name: "HANGAR_SCHEDULER_LEASE_SECS",
        default: Some("10"),
        doc: "scheduler leader lease; another replica takes over within two of these (s)",
    },
    Var {
        name: "HANGAR_SCHEDULER_TICK_MS",
        default: Some("1000"),
        doc: "how often the scheduler looks for due ticks (ms)",
    },
    Var {
        name: "HANGAR_SCHEDULER_GRACE_SECS",
        default: Some("60"),
        doc: "a tick at most this late fires as usual; older ones follow the catch-up policy (s)",
    },
    Var {
        name: "HANGAR_SCHEDULER_METRICS_BIND",
        default: Some(""),
        doc: "scheduler /metrics address; empty: off",
    },
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
        name: "HANGAR_CLOUDTRAIL_LOOKUP_INTERVAL_MS",
        default: Some("550"),
        doc: "spacing of LookupEvents calls per account and region across all workers; AWS allows 2/s (ms)",
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
    Var {
        name: "HANGAR_MODELS_FILE",
        default: Some(""),
        doc: "TOML file of model servers for inference jobs ([[model]] tables); empty: no models",
    },
    Var {
        name: "HANGAR_MODEL_PROBE_SECS",
        default: Some("10"),
        doc: "how often every process probes each model server's health (s)",
    },
    Var {
        name: "HANGAR_LOG_FORMAT",
        default: Some("pretty"),
        doc: "pretty or json",
    },
    Var {
        name: "HANGAR_LOG_LEVEL",
        default: Some("info"),
        doc: "tracing filter, e.g. info,hangar_queue=debug",
    },
];

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

/// Reads variables through a lookup function, collecting problems.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<(String, String)>,
}

impl Reader<'_> {
    fn raw(&mut self, name: &'static str) -> Option<String> {
        let var = VARS
            .iter()
            .find(|v| v.name == name)
            .expect("every variable is listed in VARS");
        match (self.lookup)(name).filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(v.trim().to_owned()),
            None => match var.default {
                Some(d) => Some(d.to_owned()),
                None => {
                    self.problem(name, "missing (required)".into());
                    None
                }
            },
        }
    }

    fn problem(&mut self, name: &str, message: String) {
        self.problems.push((name.to_owned(), message));
    }

    fn url(&mut self, name: &'static str, schemes: &[&str]) -> Secret {
        let value = self.raw(name).unwrap_or_default();
        let ok = schemes.iter().any(|s| {
            value
                .strip_prefix(s)
                .and_then(|r| r.strip_prefix("://"))
                .is_some_and(|r| !r.is_empty())
        });
        if !value.is_empty() && !ok {
            let wanted: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            self.problem(name, format!("not a URL starting with {}", wanted.join(" or ")));
        }
        Secret(value)
    }

    fn number<T>(&mut self, name: &'static str, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(text) = self.raw(name) else { return min };
        match text.parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            Ok(v) => {
                self.problem(name, format!("{v} is out of range {min}..={max}"));
                min
            }
            Err(_) => {
                self.problem(name, format!("{text:?} is not a whole number"));
                min
            }
        }
    }

    fn millis(&mut self, name: &'static str, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.number(name, min, max))
    }

    fn secs(&mut self, name: &'static str, min: u64, max: u64) -> Duration {
        Duration::from_secs(self.number(name, min, max))
    }

    fn addr(&mut self, name: &'static str, optional: bool) -> Option<SocketAddr> {
        let text = self.raw(name).unwrap_or_default();
        if text.is_empty() && optional {
            return None;
        }
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(name, format!("{text:?} is not a host:port socket address"));
                None
            }
        }
    }

    fn boolean(&mut self, name: &'static str) -> bool {
        match self.raw(name).unwrap_or_default().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            other => {
                self.problem(name, format!("{other:?} is not true or false"));
                false
            }
        }
    }

    /// `N/unit` (`s`, `min`, `hour`), or `off`.
    fn rate(&mut self, name: &'static str) -> Option<hangar_queue::Rate> {
        let text = self.raw(name).unwrap_or_default();
        if text.eq_ignore_ascii_case("off") {
            return None;
        }
        let parsed = text.split_once('/').and_then(|(n, unit)| {
            let n = n
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))?;
            let period = match unit.trim() {
                "s" | "sec" | "second" => 1,
                "m" | "min" | "minute" => 60,
                "h" | "hour" => 3600,
                _ => return None,
            };
            Some(hangar_queue::Rate::per(n, Duration::from_secs(period)))
        });
        if parsed.is_none() {
            self.problem(
                name,
                format!("{text:?} is not N/s, N/min, N/hour (N 1-1000000) or off"),
            );
        }
        parsed
    }

    fn optional(&mut self, name: &'static str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    fn security(&mut self) -> SecurityConfig {
        let hs256_secret = self.optional("HANGAR_JWT_HS256_SECRET").map(Secret);
        if hs256_secret.as_ref().is_some_and(|s| s.0.len() < 32) {
            self.problem("HANGAR_JWT_HS256_SECRET", "must be at least 32 bytes".into());
        }
        let public_key_file = self
            .optional("HANGAR_JWT_PUBLIC_KEY_FILE")
            .map(std::path::PathBuf::from);
        if let Some(f) = &public_key_file
            && !f.is_file()
        {
            self.problem(
                "HANGAR_JWT_PUBLIC_KEY_FILE",
                format!("{} is not a readable file", f.display()),
            );
        }
        let jwks_url = self.optional("HANGAR_JWT_JWKS_URL");
        if let Some(u) = &jwks_url
            && let Err(why) = check_jwks_url(u)
        {
            self.problem("HANGAR_JWT_JWKS_URL", why);
        }
        let jwt = JwtConfig {
            hs256_secret,
            public_key_file,
            jwks_url,
            jwks_refresh: self.secs("HANGAR_JWT_JWKS_REFRESH_SECS", 10, 86_400),
            issuer: self.raw("HANGAR_JWT_ISSUER").unwrap_or_default(),
            audience: self.raw("HANGAR_JWT_AUDIENCE").unwrap_or_default(),
            leeway: self.secs("HANGAR_JWT_LEEWAY_SECS", 0, 300),
            role_claim: self.raw("HANGAR_JWT_ROLE_CLAIM").unwrap_or_default(),
        };
        if jwt.enabled() {
            // A token minted for another service must not work here.
            for (var, value) in [
                ("HANGAR_JWT_ISSUER", &jwt.issuer),
                ("HANGAR_JWT_AUDIENCE", &jwt.audience),
            ] {
                if value.is_empty() {
                    self.problem(var, "required when a JWT key is configured".into());
                }
            }
        }
        if jwt.role_claim.is_empty() {
            self.problem("HANGAR_JWT_ROLE_CLAIM", "must name a claim".into());
        }
        let cors_origins: Vec<String> = self
            .raw("HANGAR_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| !(o.starts_with("https://") || o.starts_with("http://")) || o.matches('/').count() != 2)
        {
            self.problem(
                "HANGAR_CORS_ORIGINS",
                format!("{bad:?} is not an origin like https://ops.example.com (no path, no *)"),
            );
        }
        SecurityConfig {
            jwt,
            metrics_public: self.boolean("HANGAR_METRICS_PUBLIC"),
            read_rate: self.rate("HANGAR_RATE_LIMIT_READ"),
            write_rate: self.rate("HANGAR_RATE_LIMIT_WRITE"),
            rate_limit_fail_closed: self.boolean("HANGAR_RATE_LIMIT_FAIL_CLOSED"),
            cors_origins,
            hsts: self.boolean("HANGAR_HSTS"),
            max_body_bytes: self.number("HANGAR_MAX_BODY_BYTES", 1024, 64 * 1024 * 1024),
            request_timeout: self.secs("HANGAR_REQUEST_TIMEOUT_SECS", 1, 3600),
            json_max_depth: self.number("HANGAR_JSON_MAX_DEPTH", 2, 128),
            auth_failure_rate: self.rate("HANGAR_RATE_LIMIT_AUTH_FAILURES"),
            max_connections: self.number("HANGAR_MAX_CONNECTIONS", 16, 1_000_000),
            header_read_timeout: self.secs("HANGAR_HEADER_READ_TIMEOUT_SECS", 1, 300),
            body_read_timeout: self.secs("HANGAR_BODY_READ_TIMEOUT_SECS", 1, 3600),
            idle_timeout: self.secs("HANGAR_IDLE_TIMEOUT_SECS", 1, 86_400),
            streams_per_caller: self.number("HANGAR_STREAMS_PER_CALLER", 1, 10_000),
            streams_max: self.number("HANGAR_STREAMS_MAX", 1, 1_000_000),
            stream_wait: self.secs("HANGAR_STREAM_WAIT_SECS", 1, 3600),
            run_at_horizon: Duration::from_secs(
                86_400 * self.number("HANGAR_RUN_AT_HORIZON_DAYS", 1u64, 3650),
            ),
        }
    }

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

    fn inference(&mut self) -> InferenceConfig {
        let probe_interval = self.secs("HANGAR_MODEL_PROBE_SECS", 1, 3600);
        let models = match self.raw("HANGAR_MODELS_FILE").filter(|f| !f.is_empty()) {
            None => crate::models::ModelRegistry::default(),
            Some(path) => match std::fs::read_to_string(&path) {
                Err(e) => {
                    self.problem("HANGAR_MODELS_FILE", format!("cannot read {path}: {e}"));
                    crate::models::ModelRegistry::default()
                }
                Ok(text) => match crate::models::ModelRegistry::parse(&text, self.lookup) {
                    Ok(r) => r,
                    Err(problems) => {
                        self.problem("HANGAR_MODELS_FILE", format!("{path}: {}", problems.join("; ")));
                        crate::models::ModelRegistry::default()
                    }
                },
            },
        };
        InferenceConfig {
            models,
            probe_interval,
        }
    }

    fn aws(&mut self) -> AwsConfig {
        let default_regions = self.regions("HANGAR_AWS_REGIONS");
        let text = self.raw("HANGAR_AWS_ACCOUNTS").unwrap_or_default();
        let mut accounts: Vec<AwsAccount> = if text.is_empty() {
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
        let mut names = std::collections::BTreeSet::new();
        for a in &mut accounts {
            let valid_name = !a.name.is_empty()
                && a.name.len() <= 64
                && a.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
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
                a.regions = default_regions.clone();
            }
        }
        AwsConfig {
            accounts,
            call_attempts: self.number("HANGAR_AWS_CALL_ATTEMPTS", 1, 20),
            call_backoff: self.millis("HANGAR_AWS_BACKOFF_MS", 1, 60_000),
            call_backoff_cap: self.millis("HANGAR_AWS_BACKOFF_CAP_MS", 1, 600_000),
            lookup_interval: self.millis("HANGAR_CLOUDTRAIL_LOOKUP_INTERVAL_MS", 1, 60_000),
            cloudtrail_overlap: self.secs("HANGAR_CLOUDTRAIL_OVERLAP_SECS", 0, 86_400),
            cloudtrail_first_window: Duration::from_secs(
                86_400 * self.number::<u64>("HANGAR_CLOUDTRAIL_FIRST_DAYS", 1, 90),
            ),
            billing_days: self.number("HANGAR_BILLING_DAYS", 1, 365),
            billing_resettle_days: self.number("HANGAR_BILLING_RESETTLE_DAYS", 1, 30),
            ce_monthly_budget: self.number("HANGAR_CE_MONTHLY_REQUEST_BUDGET", 0, 10_000_000),
        }
    }

    fn queues(&mut self, name: &'static str) -> Vec<(String, usize)> {
        let text = self.raw(name).unwrap_or_default();
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = part
                .split_once('=')
                .and_then(|(q, n)| Some((q.trim(), n.trim().parse::<usize>().ok()?)));
            match parsed {
                Some((q, n)) if hangar_queue::QueueName::new(q).is_ok() && (1..=1000).contains(&n) => {
                    out.push((q.to_owned(), n));
                }
                _ => self.problem(
                    name,
                    format!("{part:?} is not queue=concurrency (a-z0-9-_. name, 1..=1000)"),
                ),
            }
        }
        if out.is_empty() && !self.problems.iter().any(|(v, _)| v == name) {
            self.problem(name, "names no queue".into());
        }
        out
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        let database = DatabaseConfig {
            url: r.url("HANGAR_DATABASE_URL", &["postgres", "postgresql"]),
            max_connections: r.number("HANGAR_DB_MAX_CONNECTIONS", 1, 1000),
            min_connections: r.number("HANGAR_DB_MIN_CONNECTIONS", 0, 1000),
            acquire_timeout: r.millis("HANGAR_DB_ACQUIRE_TIMEOUT_MS", 10, 600_000),
            max_lifetime: r.secs("HANGAR_DB_MAX_LIFETIME_SECS", 1, 86_400),
        };
        if database.min_connections > database.max_connections {
            r.problem(
                "HANGAR_DB_MIN_CONNECTIONS",
                "must not exceed HANGAR_DB_MAX_CONNECTIONS".into(),
            );
        }
        let prefix = r.raw("HANGAR_REDIS_PREFIX").unwrap_or_default();
        if hangar_queue::QueueName::new(prefix.clone()).is_err() {
            r.problem(
                "HANGAR_REDIS_PREFIX",
                format!("{prefix:?} must be 1-64 of a-z, 0-9, '-', '_', '.'"),
            );
        }
        let redis = RedisConfig {
            url: r.url("HANGAR_REDIS_URL", &["redis", "rediss"]),
            prefix,
            response_timeout: r.millis("HANGAR_REDIS_RESPONSE_TIMEOUT_MS", 50, 120_000),
            outage_limit: r.secs("HANGAR_REDIS_OUTAGE_LIMIT_SECS", 1, 86_400),
        };
        let api = ApiConfig {
            bind: r
                .addr("HANGAR_BIND", false)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            ready_timeout: r.millis("HANGAR_READY_TIMEOUT_MS", 10, 60_000),
            security: r.security(),
        };
        let worker = WorkerConfig {
            queues: r.queues("HANGAR_QUEUES"),
            lease: r.secs("HANGAR_LEASE_SECS", 2, 3600),
            drain_timeout: r.secs("HANGAR_DRAIN_TIMEOUT_SECS", 0, 3600),
            metrics_bind: r.addr("HANGAR_WORKER_METRICS_BIND", true),
        };
        let scheduler = SchedulerConfig {
            repair_interval: r.secs("HANGAR_REPAIR_INTERVAL_SECS", 1, 86_400),
            repair_min_age: r.secs("HANGAR_REPAIR_MIN_AGE_SECS", 0, 86_400),
            schedules_file: r.raw("HANGAR_SCHEDULES_FILE").filter(|f| !f.is_empty()),
            leader_lease: r.secs("HANGAR_SCHEDULER_LEASE_SECS", 2, 3600),
            tick_interval: r.millis("HANGAR_SCHEDULER_TICK_MS", 10, 60_000),
            grace: r.secs("HANGAR_SCHEDULER_GRACE_SECS", 0, 86_400),
            metrics_bind: r.addr("HANGAR_SCHEDULER_METRICS_BIND", true),
        };
        // The leader renews its lease once per tick: a lease shorter than two
        // ticks would lapse between passes and leadership would flap.
        if scheduler.leader_lease < scheduler.tick_interval * 2 {
            r.problem(
                "HANGAR_SCHEDULER_LEASE_SECS",
                "must be at least two HANGAR_SCHEDULER_TICK_MS intervals".into(),
            );
        }
        // A pass may run a tick interval late: a shorter grace would treat
        // every tick as missed.
        if scheduler.grace < scheduler.tick_interval {
            r.problem(
                "HANGAR_SCHEDULER_GRACE_SECS",
                "must be at least one HANGAR_SCHEDULER_TICK_MS interval".into(),
            );
        }
        let aws = r.aws();
        let inference = r.inference();
        let format = match r.raw("HANGAR_LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") | None => LogFormat::Pretty,
            Some(other) => {
                r.problem("HANGAR_LOG_FORMAT", format!("{other:?} is not pretty or json"));
                LogFormat::Pretty
            }
        };
        let level = r.raw("HANGAR_LOG_LEVEL").unwrap_or_default();
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            r.problem("HANGAR_LOG_LEVEL", format!("{level:?} is not a tracing filter"));
        }
        if !r.problems.is_empty() {
            let order: BTreeMap<&str, usize> = VARS.iter().enumerate().map(|(i, v)| (v.name, i)).collect();
            let mut problems = r.problems;
            problems.sort_by_key(|(v, _)| order.get(v.as_str()).copied().unwrap_or(usize::MAX));
            return Err(ConfigError { problems });
        }
        Ok(Self {
            database,
            redis,
            api,
            worker,
            scheduler,
            aws,
            inference,
            log: LogConfig { format, level },
        })
    }

    /// Queue engine settings for Redis.
    pub fn redis_settings(&self) -> hangar_queue::RedisSettings {
        let mut s = hangar_queue::RedisSettings::new(self.redis.url.expose());
        s.response_timeout = self.redis.response_timeout;
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
            "configuration OK\n  database: <redacted url>, pool {}..{}, acquire timeout {:?}\n  redis: <redacted url>, prefix {:?}, reply timeout {:?}\n  api: {}\n  worker: queues {}, lease {:?}, drain {:?}\n  scheduler: repair every {:?}\n  aws: {}\n  models: {}\n  log: {:?} {}",
            self.database.min_connections,
            self.database.max_connections,
            self.database.acquire_timeout,
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
                .collect::<Vec<_>>()
                .join("; "),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Config::from_lookup(&|k| map.get(k).cloned())
    }

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
    fn jwks_urls_are_parsed_not_matched_as_text() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8181/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9/jwks",
            "http://127.0.0.2/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            // The review's bypass: user info "localhost:" before the real host.
            "http://localhost:@192.0.2.2:18557/jwks.json",
            "http://127.0.0.1@192.0.2.2/jwks.json",
            "https://user:pw@idp.example.com/jwks.json",
            "http://localhost.evil.example/jwks.json",
            "http://127.0.0.1.evil.example/jwks.json",
            "http://192.0.2.2/jwks.json",
            "ftp://localhost/jwks.json",
            "localhost/jwks.json",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad} must be refused");
        }
        let refused = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            (
                "HANGAR_JWT_JWKS_URL",
                "http://localhost:@192.0.2.2:18557/jwks.json",
            ),
            ("HANGAR_JWT_ISSUER", "i"),
            ("HANGAR_JWT_AUDIENCE", "a"),
        ])
        .unwrap_err();
        assert!(refused.to_string().contains("HANGAR_JWT_JWKS_URL"), "{refused}");
    }

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
        let targets: Vec<(String, String)> = ok
            .aws
            .targets()
            .map(|(a, r)| (a.name.clone(), r.to_owned()))
            .collect();
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
    fn the_scheduler_lease_and_grace_must_cover_its_tick() {
        let err = load(&[
            ("HANGAR_DATABASE_URL", "postgres://localhost/h"),
            ("HANGAR_SCHEDULER_TICK_MS", "1500"),
            ("HANGAR_SCHEDULER_LEASE_SECS", "2"),
            ("HANGAR_SCHEDULER_GRACE_SECS", "1"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("HANGAR_SCHEDULER_LEASE_SECS: must be at least two"),
            "{err}"
        );
        assert!(
            err.contains("HANGAR_SCHEDULER_GRACE_SECS: must be at least one"),
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
    fn env_example_documents_every_variable_with_its_default() {
        let example = include_str!("../../.env.example");
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
