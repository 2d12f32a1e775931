//! Hangar's AWS sync jobs: WorkSpaces inventory ([`workspaces`]), CloudTrail
//! events ([`cloudtrail`]), Cost Explorer daily costs ([`billing`]) and
//! CloudWatch connected time ([`usage`]) into PostgreSQL.
//!
//! Every job targets one (account, region). Writes are batched: one statement
//! per AWS page (a single statement commits atomically, so a page is all in
//! or all out and a redelivered job simply rewrites the same rows). Only one
//! sync per (kind, account, region) runs at a time, guarded by a Redis lease
//! lock owned by the job id, so a redelivery after a crash takes its own lock
//! back at once.

pub mod apply;
pub mod billing;
pub mod clients;
pub mod cloudtrail;
pub mod error;
pub mod metrics;
pub mod organizations;
pub mod usage;
pub mod workspaces;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use backon::{ExponentialBuilder, Retryable};
use hangar_queue::RedisConn;
use hangar_queue::{LeaseLock, LockOutcome, RateLimiter};
use hangar_shared::config::{AwsAccount, AwsConfig};
use serde_json::Value;
use sqlx::PgPool;

pub use crate::{
    clients::{ClientCache, Clients},
    error::{AwsCallError, CallSite, Class, SyncError},
    metrics::SyncMetrics,
};

/// What a running sync reports to its job.
pub trait Progress: Send + Sync {
    /// Publishes progress (pages, rows, current step).
    fn report(&self, progress: Value) -> impl Future<Output = ()> + Send;
    /// Whether the job was asked to stop.
    fn cancelled(&self) -> bool;
}

impl Progress for hangar_queue::JobContext {
    async fn report(&self, progress: Value) {
        self.report_progress(progress).await;
    }

    fn cancelled(&self) -> bool {
        self.cancel_requested()
    }
}

/// Progress that goes nowhere (tests and benchmarks that call jobs directly).
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    async fn report(&self, _progress: Value) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// Figures one sync run reports in its result: what operators and the
/// benchmark read (pages and DB round trips grow with pages, not rows).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunStats {
    /// AWS requests made (including retries).
    pub aws_requests: u64,
    /// AWS requests retried after throttling, 5xx or transport errors.
    pub aws_retries: u64,
    /// AWS requests answered "throttled" (each retried, or the last failed).
    pub aws_throttled: u64,
    /// Result pages processed.
    pub pages: u64,
    /// Rows inserted or changed.
    pub rows_written: u64,
    /// PostgreSQL statements sent for writes.
    pub db_round_trips: u64,
    /// Time spent in those statements, ms.
    pub db_write_ms: f64,
    /// Time spent waiting for the shared rate limiter (`HANGAR_AWS_RATES`), ms.
    pub rate_limit_wait_ms: f64,
    /// PostgreSQL reads a sync makes to decide what to ask AWS (which
    /// workspaces' tags are fresh).
    pub db_reads: u64,
    /// Time spent in those reads, ms.
    pub db_read_ms: f64,
    /// Workspaces whose tags were kept without a DescribeTags call (fresh
    /// and unchanged, see `HANGAR_TAGS_REFRESH_SECS`).
    pub tags_kept: u64,
}

impl RunStats {
    /// Adds the counts of work done concurrently.
    pub fn absorb(&mut self, other: &RunStats) {
        self.aws_requests += other.aws_requests;
        self.aws_retries += other.aws_retries;
        self.aws_throttled += other.aws_throttled;
        self.pages += other.pages;
        self.rows_written += other.rows_written;
        self.db_round_trips += other.db_round_trips;
        self.db_write_ms += other.db_write_ms;
        self.rate_limit_wait_ms += other.rate_limit_wait_ms;
        self.db_reads += other.db_reads;
        self.db_read_ms += other.db_read_ms;
        self.tags_kept += other.tags_kept;
    }
}

/// Everything a sync job needs; one per worker process, shared by all jobs.
#[derive(Clone)]
pub struct Syncer {
    /// PostgreSQL.
    pub pool: PgPool,
    /// Redis (rate limiter and locks).
    pub redis: RedisConn,
    /// Redis key prefix.
    pub prefix: String,
    /// Accounts and tuning.
    pub config: Arc<AwsConfig>,
    /// SDK clients per (account, region).
    pub clients: Arc<ClientCache>,
    /// Metrics.
    pub metrics: Arc<SyncMetrics>,
    /// Makes AWS calls with retries.
    pub caller: Caller,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("prefix", &self.prefix).finish()
    }
}

/// Proof, for a step that must not run twice, that this job still holds
/// its sync's lock.
#[derive(Clone, Debug)]
pub struct LockGuard {
    lock: LeaseLock,
    singleton: String,
}

impl LockGuard {
    /// Renews the lock now; fails if a later delivery has taken it.
    pub async fn confirm(&self) -> Result<(), SyncError> {
        if self.lock.renew().await? {
            Ok(())
        } else {
            Err(SyncError::LockLost(self.singleton.clone()))
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a sync's lock lives without renewal; renewed every third of it.
const LOCK_LEASE: Duration = Duration::from_secs(60);

impl Syncer {
    /// A syncer for `config`'s accounts.
    pub fn new(
        pool: PgPool,
        redis: RedisConn,
        prefix: &str,
        config: AwsConfig,
        metrics: Arc<SyncMetrics>,
    ) -> Self {
        let config = Arc::new(config);
        metrics.configured_rates(&config.rates);
        let limiter = RateLimiter::new(redis.clone(), prefix);
        Self {
            pool,
            redis,
            prefix: prefix.to_owned(),
            caller: Caller::new(config.clone(), metrics.clone(), Some(limiter)),
            config,
            clients: Arc::default(),
            metrics,
        }
    }

    /// The account called `name` (listed, or found in the organization), or
    /// a permanent error naming the known ones. An account the organization
    /// gained since this process last looked is found by reading the list
    /// again first.
    pub async fn account(&self, name: &str) -> Result<AwsAccount, SyncError> {
        if let Some(a) = self.config.account(name) {
            return Ok(a);
        }
        if self.config.organization_role.is_some() {
            hangar_shared::db::org_accounts::reload(&self.pool, &self.config).await?;
            if let Some(a) = self.config.account(name) {
                return Ok(a);
            }
        }
        let known: Vec<String> = self.config.accounts().into_iter().map(|a| a.name).collect();
        Err(SyncError::Invalid(format!(
            "account {name:?} is not configured (HANGAR_AWS_ACCOUNTS and the organization have: {})",
            known.join(", ")
        )))
    }

    /// Runs `work` while holding the lock for `singleton`, owned by this
    /// delivery of the job (a later delivery of the same job takes it over).
    /// The lock is renewed in the background; if it is lost (taken over by
    /// a redelivery while this copy stalled), `work` is dropped at its next
    /// await and the attempt fails with [`SyncError::LockLost`]. `work` gets a
    /// [`LockGuard`] to confirm it still holds the lock before a step that
    /// must not run twice (marking rows deleted).
    pub async fn exclusive<T, F, Fut>(
        &self,
        singleton: &str,
        job_id: &str,
        delivery: u32,
        work: F,
    ) -> Result<T, SyncError>
    where
        F: FnOnce(LockGuard) -> Fut,
        Fut: Future<Output = Result<T, SyncError>>,
    {
        let lock = LeaseLock::new(
            self.redis.clone(),
            &self.prefix,
            singleton,
            job_id,
            delivery,
            LOCK_LEASE,
        );
        if let LockOutcome::HeldBy(other) = lock.try_acquire().await? {
            return Err(SyncError::Busy(singleton.to_owned(), other));
        }
        let (lost_tx, mut lost_rx) = tokio::sync::watch::channel(false);
        // Aborted on drop, so a panicking or cancelled job stops renewing
        // and its lock lapses instead of living on.
        let renewer = AbortOnDrop({
            let lock = lock.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOCK_LEASE / 3).await;
                    match lock.renew().await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(lock = ?lock, "sync lock lost to a later delivery; stopping");
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "sync lock not renewed; retrying"),
                    }
                }
            })
        });
        let guard = LockGuard {
            lock: lock.clone(),
            singleton: singleton.to_owned(),
        };
        let result = tokio::select! {
            result = work(guard) => result,
            _ = lost_rx.wait_for(|lost| *lost) => Err(SyncError::LockLost(singleton.to_owned())),
        };
        drop(renewer);
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "sync lock not released; it lapses on its own");
        }
        result
    }

    /// Where the incremental sync `kind` of (account, region) resumes.
    pub(crate) async fn cursor(
        &self,
        acct: &str,
        region: &str,
        kind: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, SyncError> {
        Ok(sqlx::query_scalar!(
            "SELECT position FROM sync_cursors WHERE account = $1 AND region = $2 AND kind = $3",
            acct,
            region,
            kind
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Moves that cursor to `position` (never backwards), as one counted write.
    pub(crate) async fn advance_cursor(
        &self,
        acct: &str,
        region: &str,
        kind: &str,
        position: chrono::DateTime<chrono::Utc>,
        stats: &mut RunStats,
    ) -> Result<(), SyncError> {
        self.write(
            kind,
            stats,
            sqlx::query!(
                "INSERT INTO sync_cursors (account, region, kind, position) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account, region, kind) DO UPDATE
                   SET position = GREATEST(sync_cursors.position, EXCLUDED.position), updated_at = now()",
                acct,
                region,
                kind,
                position
            )
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// Times one batched write and counts it.
    pub(crate) async fn write<T, Fut>(
        &self,
        kind: &str,
        stats: &mut RunStats,
        fut: Fut,
    ) -> Result<T, SyncError>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let start = Instant::now();
        let span = hangar_shared::traces::sql_span("write", kind, None);
        let result = tracing::Instrument::instrument(fut, span).await;
        let secs = start.elapsed().as_secs_f64();
        stats.db_round_trips += 1;
        stats.db_write_ms += secs * 1000.0;
        self.metrics.db_write(kind, secs);
        Ok(result?)
    }
}

/// The in-job retry delays: exponential from `call_backoff` to
/// `call_backoff_cap`, `call_attempts` in all, each with random jitter so
/// that calls throttled together do not come back together.
fn backoff(cfg: &AwsConfig) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(cfg.call_backoff)
        .with_max_delay(cfg.call_backoff_cap)
        .with_max_times(cfg.call_attempts.saturating_sub(1) as usize)
        .with_jitter()
}

/// Makes AWS calls: waits for each call's turn in the rate limiter shared
/// by every worker, retries what passes on its own, counts every request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Retry settings (`call_attempts`, `call_backoff`, `call_backoff_cap`)
    /// and the rate of each operation (`rates`).
    pub config: Arc<AwsConfig>,
    /// Where requests, retries, throttles and waits are counted.
    pub metrics: Arc<SyncMetrics>,
    /// The Redis limiter every worker shares; `None`: calls are not paced
    /// (unit tests against a mocked client).
    pub limiter: Option<RateLimiter>,
}

impl Caller {
    /// A caller with these settings, metrics and limiter.
    pub fn new(config: Arc<AwsConfig>, metrics: Arc<SyncMetrics>, limiter: Option<RateLimiter>) -> Self {
        Self {
            config,
            metrics,
            limiter,
        }
    }

    /// Waits until `site`'s operation may be called again for its account
    /// and region (`HANGAR_AWS_RATES`), across every worker, and returns how
    /// long it waited. An unreachable limiter is logged and the call goes
    /// ahead: AWS's own throttling answers are still retried with backoff.
    async fn wait_turn(&self, site: &CallSite) -> Duration {
        let (Some(limiter), Some((bucket, rate))) = (
            &self.limiter,
            self.config.rates.bucket_of(site.service, site.operation),
        ) else {
            return Duration::ZERO;
        };
        let key = format!("aws:{bucket}:{}:{}", site.account, site.region);
        let rate = hangar_queue::Rate {
            interval: rate.interval(),
            burst: rate.burst,
        };
        match limiter.acquire(&key, rate).await {
            Ok(waited) => {
                self.metrics
                    .rate_wait(site.service, site.operation, waited.as_secs_f64());
                waited
            }
            Err(e) => {
                tracing::warn!(error = %e, operation = site.operation, "rate limiter unreachable; calling anyway");
                Duration::ZERO
            }
        }
    }

    /// Calls AWS through `op`, each attempt first waiting its turn in the
    /// shared rate limiter, retrying throttling, 5xx and transport failures
    /// with exponential backoff and jitter, counting every request.
    pub async fn call<T, E, F, Fut>(
        &self,
        site: &CallSite,
        stats: &mut RunStats,
        op: F,
    ) -> Result<T, SyncError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        // One client span per call, its retries included (each retry is an
        // event on it), named as OpenTelemetry's AWS SDK conventions do.
        let span = hangar_queue::trace_context::child_span(|| {
            tracing::info_span!("aws call", otel.name = %format!("{}.{}", site.service, site.operation),
                otel.kind = "client", otel.status_code = tracing::field::Empty,
                rpc.system = "aws-api", rpc.service = site.service, rpc.method = site.operation,
                cloud.region = %site.region, hangar.aws.account = %site.account,
                hangar.aws.attempts = tracing::field::Empty, hangar.aws.retries = tracing::field::Empty,
                hangar.aws.throttled = tracing::field::Empty,
                hangar.aws.rate_limit_wait_ms = tracing::field::Empty)
        });
        let before = (stats.aws_requests, stats.aws_throttled, stats.rate_limit_wait_ms);
        let result =
            tracing::Instrument::instrument(self.call_with_retries(site, stats, op), span.clone()).await;
        if !span.is_disabled() {
            let attempts = stats.aws_requests - before.0;
            span.record("hangar.aws.attempts", attempts);
            span.record("hangar.aws.retries", attempts.saturating_sub(1));
            span.record("hangar.aws.throttled", stats.aws_throttled - before.1);
            span.record(
                "hangar.aws.rate_limit_wait_ms",
                stats.rate_limit_wait_ms - before.2,
            );
            if result.is_err() {
                span.record("otel.status_code", "error");
            }
        }
        result
    }

    /// [`Self::call`], untraced.
    async fn call_with_retries<T, E, F, Fut>(
        &self,
        site: &CallSite,
        stats: &mut RunStats,
        op: F,
    ) -> Result<T, SyncError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let start = Instant::now();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let throttled = std::sync::atomic::AtomicU32::new(0);
        let waited_us = std::sync::atomic::AtomicU64::new(0);
        let backoff = backoff(&self.config);
        let mut op = op;
        let result = (|| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let fut = op();
            let (throttled, waited_us) = (&throttled, &waited_us);
            async move {
                let waited = self.wait_turn(site).await;
                waited_us.fetch_add(waited.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
                fut.await.map_err(|e| {
                    let failure = error::classify(&e);
                    if failure.class == Class::Throttled {
                        throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.metrics
                        .request(site.service, site.operation, &site.account, failure.class.label());
                    failure
                })
            }
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|f: &error::AwsFailure| f.class.is_transient())
        .notify(|f: &error::AwsFailure, wait: Duration| {
            self.metrics.retry(site.service, site.operation);
            tracing::warn!(
                account = %site.account, region = %site.region, operation = site.operation,
                outcome = f.class.label(), code = ?f.code, retry_in = ?wait,
                "aws call failed; retrying"
            );
        })
        .await;
        let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
        let throttled = throttled.load(std::sync::atomic::Ordering::Relaxed);
        let waited_ms = waited_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0;
        stats.aws_requests += u64::from(n);
        stats.aws_retries += u64::from(n.saturating_sub(1));
        stats.aws_throttled += u64::from(throttled);
        stats.rate_limit_wait_ms += waited_ms;

        match result {
            Ok(v) => {
                self.metrics
                    .request(site.service, site.operation, &site.account, "ok");
                Ok(v)
            }
            Err(failure) => Err(SyncError::Aws(Box::new(error::AwsCallError {
                site: site.clone(),
                failure,
                attempts: n,
                elapsed: start.elapsed(),
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    #[test]
    fn retries_throttled_together_wait_different_times() {
        // The fleet benchmark showed every retry in every worker waiting
        // exactly 370.243728 ms: backon without its "std" feature seeds the
        // jitter with a constant. 20 first delays must not all be equal.
        let config = hangar_shared::Config::from_lookup(&|k| {
            (k == "HANGAR_DATABASE_URL").then(|| "postgres://localhost/unused".to_owned())
        })
        .unwrap();
        let first: std::collections::BTreeSet<std::time::Duration> = (0..20)
            .map(|_| super::backoff(&config.aws).build().next().unwrap())
            .collect();
        assert!(first.len() > 10, "jitter is random per call: {first:?}");
    }
}
