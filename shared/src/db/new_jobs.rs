//! Recording new jobs: the one builder every path that submits a job uses
//! ([`NewJobRun`]), and the group-commit insert with its idempotency,
//! singleton and slot rules ([`insert_jobs`]).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::job_run::JobRun;

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
    /// The W3C traceparent of the span that enqueued it (the worker's span
    /// continues that trace), or the caller's when tracing is off.
    pub traceparent: Option<String>,
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
            traceparent: None,
        }
    }

    /// The W3C traceparent the job's run continues.
    #[must_use]
    pub fn traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
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

impl Inserted {
    /// The job it names, whichever case it is.
    pub fn run(&self) -> &JobRun {
        match self {
            Self::New(run) | Self::Existing(run) | Self::KeyReused(run) => run,
        }
    }

    /// The job it names, owned.
    pub fn into_run(self) -> JobRun {
        match self {
            Self::New(run) | Self::Existing(run) | Self::KeyReused(run) => run,
        }
    }
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
    let span = crate::traces::sql_span("INSERT", "job_runs", Some(jobs.len()));
    tracing::Instrument::instrument(insert_jobs_in_rounds(conn, jobs), span).await
}

/// [`insert_jobs_on`], untraced.
async fn insert_jobs_in_rounds(
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
             JOIN job_singletons s ON s.singleton_key = w.key
             WHERE j.id = s.job_id AND j.singleton_key = w.key AND j.state = 'scheduled' AND j.run_at > w.start",
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
                                idempotency_key, run_at, singleton_key, idempotency_scope, request_fingerprint, traceparent)
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]::jsonb[], $5::text[], $6::int[],
                                $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
                                $12::text[], $13::text[], $14::text[])
                AS t(id, kind, queue, payload, state, max_attempts, requested_by, request_id,
                     idempotency_key, run_at, singleton_key, idempotency_scope, request_fingerprint, traceparent)
           -- Sooner jobs first: within one batch, the one wanted sooner takes a singleton slot.
           ORDER BY t.run_at NULLS FIRST
           ON CONFLICT DO NOTHING
           RETURNING id, kind, queue, payload, state AS "state: hangar_queue::JobStatus", attempts, max_attempts, deliveries,
                progress, result, error, requested_by, request_id, idempotency_key, run_at, created_at,
                started_at, finished_at, updated_at, singleton_key, idempotency_scope, request_fingerprint, traceparent"#,
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
        &col(|j| j.traceparent.clone()) as &[Option<String>],
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
            r#"SELECT id, kind, queue, payload, state AS "state: hangar_queue::JobStatus", attempts, max_attempts, deliveries,
                progress, result, error, requested_by, request_id, idempotency_key, run_at, created_at,
                started_at, finished_at, updated_at, singleton_key, idempotency_scope, request_fingerprint, traceparent
               FROM job_runs
               -- The side tables that hold the two rules (migration 17).
               WHERE id IN (SELECT k.job_id FROM job_idempotency k
                             WHERE (k.scope, k.key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
                            UNION ALL
                            SELECT s.job_id FROM job_singletons s WHERE s.singleton_key = ANY($3))"#,
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
                    .find(|r| r.state.is_open() && r.singleton_key.as_ref() == Some(k))
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
