//! Handlers of the `system.*` kinds.

use std::time::Duration;

use apalis_core::error::BoxDynError;
use hangar_queue::JobContext;
use hangar_queue::JobStatus;
use hangar_shared::{
    db::{self, JobFilter, JobRun, batch_size, partitions},
    job_admin,
    kinds::{BulkAction, BulkJobs, Noop, Retention, Sleep},
};
use serde_json::{Value, json};

use super::{Env, Run};

impl Run for Noop {
    async fn run(self, _job: &JobContext, _env: &Env) -> Result<Value, BoxDynError> {
        Ok(json!({}))
    }
}

impl Run for Sleep {
    async fn run(self, job: &JobContext, _env: &Env) -> Result<Value, BoxDynError> {
        sleep(&self, job).await
    }
}

impl Run for Retention {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        let mut result = retention(&self, job, &env.pool).await?;
        // Report files past their expiry (HANGAR_REPORTS_RETENTION_DAYS, fixed
        // when each was published), with their records.
        let reports = in_batches(job, "reports", |limit| env.reports.remove_expired(limit)).await?;
        tracing::info!(reports, "expired reports removed");
        result["reports_deleted"] = json!(reports);
        Ok(result)
    }
}

impl Run for BulkJobs {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        bulk(&self, job, env).await
    }
}

/// Jobs a bulk action reads per batch.
const BULK_BATCH: i64 = 500;

/// What a bulk action has done so far (its progress, then its result).
#[derive(Debug, Default, serde::Serialize)]
struct BulkTally {
    /// Jobs acted on.
    done: u64,
    /// Jobs the action did not apply to any more (finished, not dead,
    /// already retried by someone else), with no error.
    skipped: u64,
    /// Jobs that failed (Redis or PostgreSQL), with the first few errors.
    failed: u64,
    errors: Vec<String>,
    /// The previewed ceiling.
    max_jobs: u64,
}

impl BulkTally {
    fn acted(&self) -> u64 {
        self.done + self.skipped + self.failed
    }
}

/// `system.bulk_jobs`: walks the chosen jobs (or every job matching the
/// filter, newest first, in keyset batches), cancelling or retrying each
/// through the same code as the API's single-job routes; reports progress
/// after each batch and stops between batches when cancelled. Idempotent:
/// a redelivered run finds the jobs it already handled skipped.
async fn bulk(p: &BulkJobs, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
    let mut tally = BulkTally {
        max_jobs: p.max_jobs,
        ..Default::default()
    };
    let correlation = job.correlation_id().unwrap_or(job.id()).to_owned();
    if !p.ids.is_empty() {
        for id in &p.ids {
            if tally.acted() >= p.max_jobs {
                break;
            }
            match db::get_job(&env.pool, id).await? {
                Some(run) => act(p.action, &run, env, &correlation, &mut tally).await,
                None => tally.skipped += 1,
            }
        }
        job.report_progress(json!(tally)).await;
    } else {
        // Retry applies to dead jobs; cancel to each open state in turn.
        let states: &[JobStatus] = match p.action {
            BulkAction::Retry => &[JobStatus::Dead],
            BulkAction::Cancel => &[
                JobStatus::Scheduled,
                JobStatus::Queued,
                JobStatus::Retrying,
                JobStatus::Running,
            ],
        };
        let wanted = p.filter.state.as_deref().and_then(JobStatus::parse);
        for state in states.iter().filter(|s| wanted.is_none_or(|w| w == **s)) {
            let f = &p.filter;
            let mut filter = JobFilter {
                kind: f.kind.clone(),
                state: Some(*state),
                queue: f.queue.clone(),
                requested_by: f.requested_by.clone(),
                payload: f.payload.clone().map(Value::Object),
                from_id: f.created_after.map(db::id_at),
                before: f.created_before.map(db::id_at),
                limit: BULK_BATCH,
            };
            loop {
                let runs = db::list_jobs(&env.pool, &filter).await?;
                for run in &runs {
                    if tally.acted() >= p.max_jobs {
                        break;
                    }
                    act(p.action, run, env, &correlation, &mut tally).await;
                }
                job.report_progress(json!(tally)).await;
                if runs.len() < BULK_BATCH as usize || tally.acted() >= p.max_jobs {
                    break;
                }
                if job.cancel_requested() {
                    return Err(
                        format!("cancelled after {} jobs ({} done)", tally.acted(), tally.done).into(),
                    );
                }
                filter.before = runs.last().map(|r| r.id.clone());
            }
        }
    }
    tracing::info!(action = ?p.action, done = tally.done, skipped = tally.skipped, failed = tally.failed, "bulk action finished");
    Ok(json!(tally))
}

/// Cancels or retries one job, counting the outcome.
async fn act(action: BulkAction, run: &JobRun, env: &Env, correlation: &str, tally: &mut BulkTally) {
    let Some(queue) = env.queues.get(&run.queue) else {
        tally.failed += 1;
        if tally.errors.len() < 10 {
            tally
                .errors
                .push(format!("job {}: queue {} is not configured", run.id, run.queue));
        }
        return;
    };
    let outcome = match action {
        BulkAction::Cancel => job_admin::cancel(&env.pool, queue, run).await.map(|_| ()),
        BulkAction::Retry => job_admin::retry(&env.pool, queue, run, correlation.to_owned()).await,
    };
    match outcome {
        Ok(()) => tally.done += 1,
        Err(job_admin::Refused::Conflict(_)) => tally.skipped += 1,
        Err(e) => {
            tally.failed += 1;
            if tally.errors.len() < 10 {
                tally.errors.push(format!("job {}: {e}", run.id));
            }
        }
    }
}

/// `system.retention`: drops the weeks of job records past their age whole
/// and deletes the rest of what is past it (CloudTrail events; records in the
/// legacy partition or in a week that holds records that must stay) in
/// batches, reporting progress, stopping when cancelled.
async fn retention(p: &Retention, job: &JobContext, pool: &sqlx::PgPool) -> Result<Value, BoxDynError> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(p.job_runs_days));
    let mut dropped_rows = 0i64;
    let mut dropped = Vec::new();
    let mut trim = Vec::new();
    for outcome in partitions::drop_expired(pool, cutoff).await? {
        match outcome {
            partitions::Expiry::Dropped { name, rows } => {
                dropped_rows += rows;
                dropped.push(name);
            }
            partitions::Expiry::Kept { name, .. } => trim.push(name),
        }
    }
    // The legacy partition (the table as it was before partitioning) is
    // trimmed row by row until its whole range is past the cutoff.
    let parts = partitions::list(pool).await?;
    let ranges: Vec<(Option<String>, String)> = parts
        .into_iter()
        .filter(|p| trim.contains(&p.name) || p.name == partitions::LEGACY)
        .map(|p| (p.lo, p.hi))
        .collect();
    let mut jobs_deleted = 0u64;
    let cutoff_id = db::id_at(cutoff);
    for (lo, hi) in ranges {
        let lo = &lo;
        // Each batch goes on from the last id the one before deleted (a plain
        // value, never `$n IS NULL OR id >= $n`, which a cached plan cannot
        // bound the index scan with): starting from the range's beginning
        // each time re-read every row deleted so far, quadratic while a long
        // transaction anywhere keeps those index entries alive. Ids begin
        // with their creation time and a job finishes after it is created,
        // so nothing past the cutoff's id qualifies, and the last batch does
        // not read the rest of the range.
        let end = hi.as_str().min(cutoff_id.as_str());
        let after = std::sync::Mutex::new(lo.clone().unwrap_or_default());
        let after = &after;
        jobs_deleted += in_batches(job, "job_runs", |limit| async move {
            let from = after.lock().map_err(|_| "retention cursor poisoned")?.clone();
            let batch = sqlx::query!(
                r#"WITH deleted AS (
                     DELETE FROM job_runs WHERE id IN (
                       SELECT id FROM job_runs
                       WHERE id >= $3 AND id < $4
                         AND state IN ('succeeded', 'cancelled', 'dead')
                         AND finished_at < $1
                         -- A report's job stays as long as its file is kept.
                         AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.id = job_runs.id AND r.expires_at > now())
                       ORDER BY id
                       LIMIT $2)
                     RETURNING id)
                   SELECT count(*) AS "rows!", max(id) AS last FROM deleted"#,
                cutoff,
                limit,
                from,
                end,
            )
            .fetch_one(pool)
            .await?;
            if let Some(last) = batch.last {
                *after.lock().map_err(|_| "retention cursor poisoned")? = last;
            }
            Ok::<u64, BoxDynError>(u64::try_from(batch.rows).unwrap_or(0))
        })
        .await?;
    }
    jobs_deleted += u64::try_from(dropped_rows).unwrap_or(0);
    let event_days = p.audit_events_days as i32;
    let events_deleted = in_batches(job, "audit_events", |limit| async move {
        sqlx::query!(
            "DELETE FROM audit_events WHERE event_id IN (
               SELECT event_id FROM audit_events
               WHERE event_time < now() - make_interval(days => $1)
               LIMIT $2)",
            event_days,
            limit
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .await?;
    tracing::info!(
        job_runs = jobs_deleted,
        partitions_dropped = ?dropped,
        audit_events = events_deleted,
        "retention applied"
    );
    Ok(json!({
        "job_runs_deleted": jobs_deleted,
        "job_runs_partitions_dropped": dropped,
        "audit_events_deleted": events_deleted,
    }))
}

/// Runs `delete(limit)` (one batch of at most `limit` rows, sized by
/// [`batch_size::Batches`]) until a batch comes back short; returns the
/// total. Progress is reported after each batch. A cancel stops it between
/// batches as an error, so the job is recorded cancelled (with what it
/// deleted so far in its progress), not succeeded, and the next step does
/// not start.
async fn in_batches<F, Fut, E>(
    job: &JobContext,
    step: &'static str,
    mut delete: F,
) -> Result<u64, BoxDynError>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
    E: Into<BoxDynError>,
{
    let mut batches = batch_size::Batches::new(step);
    loop {
        let started = std::time::Instant::now();
        let n = delete(batches.limit()).await.map_err(Into::into)?;
        let done = batches.record(n, started.elapsed());
        let total = batches.total();
        job.report_progress(json!({"step": step, "deleted": total})).await;
        if done {
            return Ok(total);
        }
        if job.cancel_requested() {
            return Err(format!("cancelled while deleting from {step} ({total} rows deleted)").into());
        }
    }
}

/// `system.sleep`: sleeps `ms` in `steps`, reporting progress after each,
/// and stops early when cancelled.
async fn sleep(p: &Sleep, job: &JobContext) -> Result<Value, BoxDynError> {
    let step = Duration::from_millis(p.ms) / p.steps;
    for done in 1..=p.steps {
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = job.cancelled() => return Err("cancelled while sleeping".into()),
        }
        job.report_progress(json!({"done": done, "total": p.steps})).await;
    }
    tracing::info!(ms = p.ms, "slept");
    Ok(json!({"slept_ms": p.ms}))
}
