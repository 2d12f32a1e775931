//! PostgreSQL: the pool, migrations, and `job_runs` access. Functions take an
//! executor (pool, connection or transaction): the caller owns the transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    Executor, PgPool, Postgres,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::DatabaseConfig;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pool that connects on first use, so a process starts (and reports
/// itself not ready) while PostgreSQL is still down.
pub fn pool(cfg: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = cfg
        .url
        .expose()
        .parse()
        .map_err(|e| anyhow::anyhow!("HANGAR_DATABASE_URL does not parse: {e}"))?;
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

/// Whether a recorded state is one a job can still leave (the states the
/// open-job index, the singleton index and the repair loop cover in SQL).
pub fn is_open_state(state: &str) -> bool {
    matches!(state, "scheduled" | "queued" | "running" | "retrying")
}

/// One row of `job_runs`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct JobRun {
    /// ULID.
    pub id: String,
    /// Kind name.
    pub kind: String,
    /// Queue name.
    pub queue: String,
    /// Validated arguments.
    pub payload: serde_json::Value,
    /// Last known state (live state of running jobs comes from Redis).
    pub state: String,
    /// Attempts with a recorded outcome.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Times a worker claimed it.
    pub deliveries: i32,
    /// Last progress.
    pub progress: Option<serde_json::Value>,
    /// Result, once succeeded.
    pub result: Option<serde_json::Value>,
    /// Last error.
    pub error: Option<String>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// The request that created it.
    pub request_id: Option<String>,
    /// Idempotency key, if one was given.
    pub idempotency_key: Option<String>,
    /// Earliest start, if delayed.
    pub run_at: Option<DateTime<Utc>>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// At most one open job per key (e.g. `sync.workspaces:prod:us-east-1`).
    pub singleton_key: Option<String>,
    /// Whose idempotency key it is (`key:<id>`, `jwt:<sub>`): keys are
    /// scoped to the caller, so one caller's key never answers another's.
    pub idempotency_scope: Option<String>,
    /// SHA-256 of the request (kind, payload, run_at) that created it: a
    /// repeated idempotency key with a different request is refused.
    pub request_fingerprint: Option<String>,
}

/// A job to record.
#[derive(Debug, Clone)]
pub struct NewJobRun {
    /// ULID chosen by the API.
    pub id: String,
    /// Kind name.
    pub kind: String,
    /// Queue name.
    pub queue: String,
    /// Validated payload.
    pub payload: serde_json::Value,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Who asked.
    pub requested_by: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Earliest start.
    pub run_at: Option<DateTime<Utc>>,
    /// At most one open job per key: while one is open, a new one with the
    /// same key yields that job instead. A job waiting for a later `run_at`
    /// gives its slot up to one wanted sooner (see [`insert_jobs`]).
    pub singleton_key: Option<String>,
    /// The caller the idempotency key belongs to (`None`: the scheduler's
    /// own tick keys, which are global by design).
    pub idempotency_scope: Option<String>,
    /// See [`request_fingerprint`].
    pub request_fingerprint: Option<String>,
}

impl NewJobRun {
    /// A new job of `kind` with a validated `payload`: a fresh id, the
    /// kind's queue, its attempts from the kind's retry policy and its
    /// singleton key (one open sync per target). Every path that submits a
    /// job starts here: the API's routes, run-now and the scheduler's beat.
    pub fn new(kind: &crate::kinds::KindSpec, payload: serde_json::Value) -> Self {
        Self {
            id: crate::kinds::new_job_id().to_string(),
            kind: kind.name.to_owned(),
            queue: kind.queue.to_owned(),
            max_attempts: kind.retry.max_attempts as i32,
            singleton_key: kind.singleton_key(&payload),
            payload,
            requested_by: None,
            request_id: None,
            idempotency_key: None,
            run_at: None,
            idempotency_scope: None,
            request_fingerprint: None,
        }
    }

    /// Its id (a scheduler tick's, derived from the schedule and the tick).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Who asked (`jwt:<sub>`, `key:<name>`, `schedule:<name>`).
    #[must_use]
    pub fn requested_by(mut self, who: impl Into<String>) -> Self {
        self.requested_by = Some(who.into());
        self
    }

    /// The request that created it.
    #[must_use]
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Its earliest start.
    #[must_use]
    pub fn run_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.run_at = at;
        self
    }

    /// Another queue than the kind's (a schedule may name one).
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// A singleton key for kinds without one of their own (a schedule that
    /// skips ticks while its last job is open).
    #[must_use]
    pub fn singleton_or(mut self, key: Option<String>) -> Self {
        self.singleton_key = self.singleton_key.or(key);
        self
    }

    /// An idempotency key of `scope` (`None`: the scheduler's global tick
    /// keys). A caller's key also records the request's fingerprint, so a
    /// repeat with another request is told apart (call after `run_at`).
    #[must_use]
    pub fn idempotency(mut self, scope: Option<String>, key: impl Into<String>) -> Self {
        if scope.is_some() {
            self.request_fingerprint = Some(request_fingerprint(&self.kind, &self.payload, self.run_at));
        }
        self.idempotency_scope = scope;
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The fingerprint of a job request: SHA-256 over its kind, validated
/// payload and `run_at`, so a repeated idempotency key can be told apart
/// from a different request reusing it.
fn request_fingerprint(kind: &str, payload: &serde_json::Value, run_at: Option<DateTime<Utc>>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    // serde_json's maps are sorted (no preserve_order): one text per value.
    h.update(payload.to_string().as_bytes());
    h.update([0]);
    if let Some(at) = run_at {
        h.update(at.timestamp_millis().to_string().as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What recording a job did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// A new job.
    New(JobRun),
    /// The idempotency key was known (the first job with it), or the
    /// singleton key belongs to an open job (that job).
    Existing(JobRun),
    /// The caller's idempotency key belongs to a job made from a different
    /// request (that job): nothing was recorded.
    KeyReused(JobRun),
}

/// Records many jobs in one statement (group commit for concurrent
/// requests). Results are in input order; a job whose idempotency key is
/// already known (or repeated earlier in the batch) yields the first job,
/// and one whose singleton key belongs to an open job yields that job.
///
/// A job skipped for its singleton key whose holder finished before the
/// lookup (the key is free again) is inserted in another round, so one race
/// never fails the batch.
///
/// A holder of a singleton key that waits for a later `run_at` than a new
/// job's gives the slot up (its key is cleared; it still runs at its time,
/// and the worker's per-target lock keeps the two apart), so a far-future
/// job cannot switch off a sync wanted now or a scheduled tick. The slot is
/// given up in its own statement before the insert: if the new job is then
/// not inserted (its idempotency key was known), the holder has lost a slot
/// it would have lost to any sooner job anyway; nothing else changes.
pub async fn insert_jobs(pool: &PgPool, jobs: &[NewJobRun]) -> sqlx::Result<Vec<Inserted>> {
    let mut conn = pool.acquire().await?;
    insert_jobs_on(&mut conn, jobs).await
}

/// [`insert_jobs`] on one connection, so a caller can make it part of a
/// transaction (the API commits a job with its audit entry).
pub async fn insert_jobs_on(
    conn: &mut sqlx::PgConnection,
    jobs: &[NewJobRun],
) -> sqlx::Result<Vec<Inserted>> {
    const ROUNDS: usize = 3;
    let mut results: Vec<Option<Inserted>> = vec![None; jobs.len()];
    for _ in 0..ROUNDS {
        let pending: Vec<usize> = (0..jobs.len()).filter(|&i| results[i].is_none()).collect();
        if pending.is_empty() {
            break;
        }
        let batch: Vec<NewJobRun> = pending.iter().map(|&i| jobs[i].clone()).collect();
        for (i, outcome) in pending.into_iter().zip(insert_round(&mut *conn, &batch).await?) {
            results[i] = outcome;
        }
    }
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, j)| {
            r.ok_or_else(|| sqlx::Error::Protocol(format!("job {} was neither inserted nor found", j.id)))
        })
        .collect()
}

/// One round of [`insert_jobs`]: `None` for a job that was neither inserted
/// nor matched to an existing one.
async fn insert_round(
    conn: &mut sqlx::PgConnection,
    jobs: &[NewJobRun],
) -> sqlx::Result<Vec<Option<Inserted>>> {
    let now = Utc::now();
    let (slot_keys, slot_starts): (Vec<String>, Vec<DateTime<Utc>>) = jobs
        .iter()
        .filter_map(|j| Some((j.singleton_key.clone()?, j.run_at.unwrap_or(now).max(now))))
        .unzip();
    if !slot_keys.is_empty() {
        sqlx::query!(
            "UPDATE job_runs j SET singleton_key = NULL, updated_at = now()
             FROM UNNEST($1::text[], $2::timestamptz[]) AS w(key, start)
             WHERE j.singleton_key = w.key AND j.state = 'scheduled' AND j.run_at > w.start",
            &slot_keys,
            &slot_starts,
        )
        .execute(&mut *conn)
        .await?;
    }
    let col = |f: fn(&NewJobRun) -> Option<String>| jobs.iter().map(f).collect::<Vec<_>>();
    let states: Vec<String> = jobs
        .iter()
        .map(|j| {
            if j.run_at.is_some_and(|at| at > now) {
                "scheduled"
            } else {
                "queued"
            }
            .to_owned()
        })
        .collect();
    let inserted: Vec<JobRun> = sqlx::query_as!(
        JobRun,
        r#"INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, requested_by, request_id,
                                idempotency_key, run_at, singleton_key, idempotency_scope, request_fingerprint)
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]::jsonb[], $5::text[], $6::int[],
                                $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
                                $12::text[], $13::text[])
                AS t(id, kind, queue, payload, state, max_attempts, requested_by, request_id,
                     idempotency_key, run_at, singleton_key, idempotency_scope, request_fingerprint)
           -- Sooner jobs first: within one batch, the one wanted sooner takes a singleton slot.
           ORDER BY t.run_at NULLS FIRST
           ON CONFLICT DO NOTHING
           RETURNING *"#,
        &col(|j| Some(j.id.clone())) as &[Option<String>],
        &col(|j| Some(j.kind.clone())) as &[Option<String>],
        &col(|j| Some(j.queue.clone())) as &[Option<String>],
        &col(|j| Some(j.payload.to_string())) as &[Option<String>],
        &states,
        &jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>(),
        &col(|j| j.requested_by.clone()) as &[Option<String>],
        &col(|j| j.request_id.clone()) as &[Option<String>],
        &col(|j| j.idempotency_key.clone()) as &[Option<String>],
        &jobs.iter().map(|j| j.run_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &col(|j| j.singleton_key.clone()) as &[Option<String>],
        &col(|j| j.idempotency_scope.clone()) as &[Option<String>],
        &col(|j| j.request_fingerprint.clone()) as &[Option<String>],
    )
    .fetch_all(&mut *conn)
    .await?;
    let by_id: std::collections::HashMap<String, JobRun> =
        inserted.into_iter().map(|r| (r.id.clone(), r)).collect();
    let skipped: Vec<&NewJobRun> = jobs.iter().filter(|j| !by_id.contains_key(&j.id)).collect();
    let keyed: Vec<&&NewJobRun> = skipped.iter().filter(|j| j.idempotency_key.is_some()).collect();
    let scopes: Vec<String> = keyed
        .iter()
        .map(|j| j.idempotency_scope.clone().unwrap_or_default())
        .collect();
    let idempotency_keys: Vec<String> = keyed.iter().filter_map(|j| j.idempotency_key.clone()).collect();
    let singleton_keys: Vec<String> = skipped.iter().filter_map(|j| j.singleton_key.clone()).collect();
    let existing: Vec<JobRun> = if skipped.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as!(
            JobRun,
            "SELECT * FROM job_runs
             WHERE (COALESCE(idempotency_scope, ''), idempotency_key) IN
                   (SELECT * FROM UNNEST($1::text[], $2::text[]))
                OR (singleton_key = ANY($3) AND state IN ('scheduled', 'queued', 'running', 'retrying'))",
            &scopes,
            &idempotency_keys,
            &singleton_keys,
        )
        .fetch_all(&mut *conn)
        .await?
    };
    let found = |j: &NewJobRun| {
        let by_idempotency = j.idempotency_key.as_ref().and_then(|k| {
            existing.iter().find(|r| {
                r.idempotency_key.as_ref() == Some(k)
                    && r.idempotency_scope.as_deref().unwrap_or_default()
                        == j.idempotency_scope.as_deref().unwrap_or_default()
            })
        });
        if let Some(first) = by_idempotency {
            // Rows recorded before fingerprints existed match any request.
            let reused = matches!((&first.request_fingerprint, &j.request_fingerprint),
                (Some(a), Some(b)) if a != b);
            return Some(if reused {
                Inserted::KeyReused(first.clone())
            } else {
                Inserted::Existing(first.clone())
            });
        }
        j.singleton_key
            .as_ref()
            .and_then(|k| {
                existing
                    .iter()
                    .find(|r| is_open_state(&r.state) && r.singleton_key.as_ref() == Some(k))
            })
            .map(|r| Inserted::Existing(r.clone()))
    };
    Ok(jobs
        .iter()
        .map(|j| match by_id.get(&j.id) {
            Some(run) => Some(Inserted::New(run.clone())),
            None => found(j),
        })
        .collect())
}

/// The job with `id`.
pub async fn get_job<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    id: &str,
) -> sqlx::Result<Option<JobRun>> {
    sqlx::query_as!(JobRun, "SELECT * FROM job_runs WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// Filters for [`list_jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only jobs older than this id (the previous page's last id).
    pub before: Option<String>,
    /// Page size.
    pub limit: i64,
}

/// Jobs newest first (ULIDs sort by time), one keyset page.
pub async fn list_jobs<'e, E: Executor<'e, Database = Postgres>>(
    db: E,
    f: &JobFilter,
) -> sqlx::Result<Vec<JobRun>> {
    sqlx::query_as!(
        JobRun,
        "SELECT * FROM job_runs
         WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR state = $2)
           AND ($3::text IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
        f.kind,
        f.state,
        f.before,
        f.limit,
    )
    .fetch_all(db)
    .await
}

/// An attempt's outcome to write.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    /// Job id.
    pub id: String,
    /// State after the attempt.
    pub state: String,
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
        &col(|r| r.state.clone()),
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
        "SELECT * FROM job_runs
         WHERE state IN ('scheduled', 'queued', 'running', 'retrying') AND created_at < $1
           AND ($2::text IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
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
