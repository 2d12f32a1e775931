//! PostgreSQL: the pool, migrations, and `job_runs` access. Functions take an
//! executor (pool, connection or transaction): the caller owns the transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_queue::JobStatus;
use sqlx::{
    Executor, PgPool, Postgres,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub use self::{
    job_run::JobRun,
    new_jobs::{Inserted, NewJobRun, insert_jobs, insert_jobs_on},
};
use crate::config::DatabaseConfig;

pub mod batch_size;
mod job_run;
mod new_jobs;
pub mod org_accounts;
pub mod partitions;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Applies the migrations, then makes sure `job_runs` has its weeks ahead
/// ([`partitions::ensure_ahead`]): what `hangar-api migrate` does.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    migrate_to(pool, None).await
}

/// Applies the migrations up to and including version `to` (all of them
/// when `None`): a staged upgrade, or a database as an older release left
/// it (the benchmarks and tests of a migration start from one).
pub async fn migrate_to(pool: &PgPool, to: Option<i64>) -> anyhow::Result<()> {
    match to {
        None => MIGRATOR.run(pool).await?,
        Some(to) => {
            let upto = Migrator {
                migrations: std::borrow::Cow::Owned(
                    MIGRATOR.iter().filter(|m| m.version <= to).cloned().collect(),
                ),
                ..Migrator::DEFAULT
            };
            upto.run(pool).await?;
        }
    }
    let partitioned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'job_runs' AND relkind = 'p')",
    )
    .fetch_one(pool)
    .await?;
    if partitioned {
        partitions::ensure_ahead(pool, Utc::now(), partitions::WEEKS_AHEAD).await?;
    }
    Ok(())
}

/// How a pool's sessions plan prepared statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// PostgreSQL's default: after five executions a statement may keep one
    /// generic plan. Right for fixed-shape statements (the worker's batched
    /// outcome updates: planning each one again cost the worker 40 % of its
    /// drain rate, bench/api.sh).
    Cached,
    /// Every execution is planned for its parameters
    /// (`plan_cache_mode = force_custom_plan`). The API's lists take optional
    /// filters as `($n IS NULL OR column = $n)`, for which the generic plan
    /// is a scan of the whole table: a jobs page with a rare payload filter
    /// went from 1.4 ms to 200-410 ms on 1,000,000 jobs (bench/console.sh).
    ForEachExecution,
}

/// A pool that connects on first use, so a process starts (and reports
/// itself not ready) while PostgreSQL is still down; statements planned as
/// PostgreSQL does by default ([`Planning::Cached`]).
pub fn pool(cfg: &DatabaseConfig) -> anyhow::Result<PgPool> {
    pool_with(cfg, Planning::Cached)
}

/// [`pool`], with its sessions planning statements as `planning` says.
pub fn pool_with(cfg: &DatabaseConfig, planning: Planning) -> anyhow::Result<PgPool> {
    let mut options: PgConnectOptions = cfg
        .url
        .expose()
        .parse::<PgConnectOptions>()
        .map_err(|e| anyhow::anyhow!("HANGAR_DATABASE_URL does not parse: {e}"))?;
    if planning == Planning::ForEachExecution {
        options = options.options([("plan_cache_mode", "force_custom_plan")]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .max_lifetime(cfg.max_lifetime)
        .test_before_acquire(true)
        .connect_lazy_with(options))
}

/// Waits (up to `within`) until PostgreSQL answers, retrying with backoff.
pub async fn wait_until_reachable(pool: &PgPool, within: Duration) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match sqlx::query("SELECT 1").execute(pool).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() < within => {
                tracing::warn!(error = %e, retry_in = ?delay, "postgres not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(anyhow::anyhow!("postgres unreachable for {within:?}: {e}")),
        }
    }
}

/// Migrations embedded in this build that the database has not applied.
pub async fn pending_migrations(pool: &PgPool) -> anyhow::Result<usize> {
    let applied: Vec<i64> = match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
    {
        Ok(v) => v,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count())
}

/// The job with `id`.
pub async fn get_job<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    id: &str,
) -> sqlx::Result<Option<JobRun>> {
    sqlx::query_as!(
        JobRun,
        r#"SELECT id, kind, queue, payload, state AS "state: hangar_queue::JobStatus", attempts, max_attempts, deliveries,
                progress, result, error, requested_by, request_id, idempotency_key, run_at, created_at,
                started_at, finished_at, updated_at, singleton_key, idempotency_scope, request_fingerprint, traceparent
           FROM job_runs WHERE id = $1"#,
        id
    )
        .fetch_optional(db)
        .await
}

/// Filters for [`list_jobs`] and [`count_jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<JobStatus>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs asked for by this caller (`jwt:…`, `key:…`, `schedule:…`).
    pub requested_by: Option<String>,
    /// Only jobs whose payload contains this JSON object (`@>`, answered by
    /// the GIN index on `payload`).
    pub payload: Option<serde_json::Value>,
    /// Only jobs with ids at or above this one: the start of a time range
    /// ([`id_at`]; ULIDs begin with their creation time).
    pub from_id: Option<String>,
    /// Only jobs with ids below this one: the previous page's last id, or
    /// the end of a time range ([`id_at`]).
    pub before: Option<String>,
    /// Page size.
    pub limit: i64,
}

/// The smallest job id created at `t`: a time bound as an id bound, so a
/// time range is a range of the primary key.
pub fn id_at(t: DateTime<Utc>) -> String {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    ulid::Ulid::from_parts(ms, 0).to_string()
}

/// Jobs newest first (ULIDs sort by time), one keyset page.
pub async fn list_jobs<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    f: &JobFilter,
) -> sqlx::Result<Vec<JobRun>> {
    sqlx::query_as!(
        JobRun,
        r#"SELECT id, kind, queue, payload, state AS "state: hangar_queue::JobStatus", attempts, max_attempts, deliveries,
                progress, result, error, requested_by, request_id, idempotency_key, run_at, created_at,
                started_at, finished_at, updated_at, singleton_key, idempotency_scope, request_fingerprint, traceparent
           FROM job_runs
           WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR state = $2)
             AND ($3::text IS NULL OR id < $3) AND ($4::text IS NULL OR id >= $4)
             AND ($5::text IS NULL OR queue = $5) AND ($6::text IS NULL OR requested_by = $6)
             AND ($7::jsonb IS NULL OR payload @> $7)
           ORDER BY id DESC LIMIT $8"#,
        f.kind,
        f.state.map(JobStatus::as_str),
        f.before,
        f.from_id,
        f.queue,
        f.requested_by,
        f.payload,
        f.limit,
    )
    .fetch_all(db)
    .await
}

/// How many jobs match `f` (its `limit` ignored), counting no further than
/// `cap + 1`: exact up to `cap`, else "more than `cap`", so a count on a
/// large table costs at most `cap` index entries.
pub async fn count_jobs<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    f: &JobFilter,
    cap: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM (
             SELECT 1 FROM job_runs
             WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR state = $2)
               AND ($3::text IS NULL OR id < $3) AND ($4::text IS NULL OR id >= $4)
               AND ($5::text IS NULL OR queue = $5) AND ($6::text IS NULL OR requested_by = $6)
               AND ($7::jsonb IS NULL OR payload @> $7)
             LIMIT $8) matching"#,
        f.kind,
        f.state.map(JobStatus::as_str),
        f.before,
        f.from_id,
        f.queue,
        f.requested_by,
        f.payload,
        cap + 1,
    )
    .fetch_one(db)
    .await
}

/// An attempt's outcome to write.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    /// Job id.
    pub id: String,
    /// State after the attempt.
    pub state: JobStatus,
    /// Attempt number.
    pub attempts: i32,
    /// Deliveries so far.
    pub deliveries: i32,
    /// Result JSON (succeeded).
    pub result: Option<serde_json::Value>,
    /// Error text (retrying, dead).
    pub error: Option<String>,
    /// Last progress the handler reported.
    pub progress: Option<serde_json::Value>,
    /// When the attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the job finished (terminal states).
    pub finished_at: Option<DateTime<Utc>>,
}

/// Writes a batch of outcomes in one statement. An outcome from an earlier
/// delivery than the row already reflects is ignored (deliveries only grow;
/// attempts restart when a dead job is requeued). Returns rows changed.
pub async fn record_outcomes<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    rows: &[OutcomeRow],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    // Several outcomes of one job: keep the latest (UPDATE … FROM with
    // duplicate ids would apply one of them arbitrarily).
    let mut latest: std::collections::HashMap<&str, &OutcomeRow> = std::collections::HashMap::new();
    for r in rows {
        let newer = latest
            .get(r.id.as_str())
            .is_none_or(|seen| (r.deliveries, r.attempts) >= (seen.deliveries, seen.attempts));
        if newer {
            latest.insert(r.id.as_str(), r);
        }
    }
    let rows: Vec<&OutcomeRow> = latest.into_values().collect();
    let col = |f: fn(&OutcomeRow) -> String| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let results: Vec<Option<String>> = rows.iter().map(|r| json(&r.result)).collect();
    let progress: Vec<Option<String>> = rows.iter().map(|r| json(&r.progress)).collect();
    let done = sqlx::query!(
        "UPDATE job_runs AS j SET state = u.state, attempts = u.attempts,
                deliveries = GREATEST(j.deliveries, u.deliveries),
                result = COALESCE(u.result::jsonb, j.result), error = u.error,
                progress = COALESCE(u.progress::jsonb, j.progress),
                started_at = COALESCE(u.started_at, j.started_at), finished_at = u.finished_at,
                updated_at = now()
         FROM UNNEST($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::timestamptz[], $9::text[])
              AS u(id, state, attempts, deliveries, result, error, started_at, finished_at, progress)
         WHERE j.id = u.id AND j.deliveries <= u.deliveries",
        &col(|r| r.id.clone()),
        &col(|r| r.state.as_str().to_owned()),
        &rows.iter().map(|r| r.attempts).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.deliveries).collect::<Vec<_>>(),
        &results as &[Option<String>],
        &rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>() as &[Option<String>],
        &rows.iter().map(|r| r.started_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &rows.iter().map(|r| r.finished_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &progress as &[Option<String>],
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Brings a row in line with the queue's view of the job (the repair loop,
/// cancel and delete from the API). A finished row is never reopened by a
/// stale view: only [`mark_requeued`] reopens rows.
pub async fn sync_from_queue<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    id: &str,
    live: &hangar_queue::JobState,
) -> sqlx::Result<bool> {
    let ms = |v: Option<u64>| v.and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64));
    let done = sqlx::query!(
        "UPDATE job_runs SET state = $2, attempts = $3, deliveries = GREATEST(deliveries, $4),
                progress = COALESCE($5, progress), result = COALESCE($6, result), error = $7,
                started_at = COALESCE($8, started_at), finished_at = $9, updated_at = now()
         WHERE id = $1
           AND (state NOT IN ('succeeded', 'cancelled', 'dead') OR $2 IN ('succeeded', 'cancelled', 'dead'))",
        id,
        live.status.as_str(),
        live.attempts as i32,
        live.deliveries as i32,
        live.progress,
        live.result,
        live.last_error,
        ms(live.started_at),
        if live.status.is_terminal() {
            ms(live.finished_at)
        } else {
            None
        },
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks jobs queued again with a fresh attempt budget (dead-job retry and
/// requeue), before Redis requeues them. Returns rows changed.
pub async fn mark_requeued<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    ids: &[String],
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE job_runs SET state = 'queued', attempts = 0, error = NULL, finished_at = NULL, updated_at = now()
         WHERE id = ANY($1)",
        ids,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Marks an unfinished job cancelled (it never reached Redis). Returns
/// whether it was still open.
pub async fn mark_cancelled<'e, E: Executor<'e, Database = Postgres>>(db: E, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE job_runs SET state = 'cancelled', finished_at = now(), updated_at = now()
         WHERE id = $1 AND state IN ('scheduled', 'queued', 'running', 'retrying')",
        id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Jobs not finished per PostgreSQL and created before `older_than`, oldest
/// first, after id `after` (a page of the repair loop's scan).
pub async fn open_jobs<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    older_than: DateTime<Utc>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<JobRun>> {
    sqlx::query_as!(
        JobRun,
        r#"SELECT id, kind, queue, payload, state AS "state: hangar_queue::JobStatus", attempts, max_attempts, deliveries,
                progress, result, error, requested_by, request_id, idempotency_key, run_at, created_at,
                started_at, finished_at, updated_at, singleton_key, idempotency_scope, request_fingerprint, traceparent
           FROM job_runs
           WHERE state IN ('scheduled', 'queued', 'running', 'retrying') AND created_at < $1
             AND ($2::text IS NULL OR id > $2)
           ORDER BY id LIMIT $3"#,
        older_than,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Connection-type failures (PostgreSQL down, restarting, failing over) are
/// worth retrying; anything else is a statement PostgreSQL will never accept.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            true
        }
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}
