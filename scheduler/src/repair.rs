//! The repair loop: PostgreSQL's `job_runs` is the durable record, Redis the
//! live one. For every job PostgreSQL still has open (older than a grace
//! period, so in-flight enqueues are left alone):
//! - Redis does not know it (Redis lost its data, or the API could not reach
//!   it): dispatch it again under the same id (a duplicate id is a no-op, so
//!   replicas may overlap);
//! - Redis has it in another state (e.g. dead after crashing its worker, a
//!   case no worker reports): bring the record in line.

use std::collections::BTreeMap;

use chrono::Utc;
use hangar_queue::{NewJob, Queue};
use hangar_shared::db::{self, JobRun};
use sqlx::PgPool;

/// Jobs examined per page.
const PAGE: i64 = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RepairReport {
    /// Open jobs examined.
    pub scanned: u64,
    /// Jobs Redis did not know, dispatched again.
    pub redispatched: u64,
    /// Records brought in line with Redis.
    pub reconciled: u64,
}

/// One pass over every open job older than `min_age`.
pub async fn repair_once(
    pool: &PgPool,
    queues: &BTreeMap<String, Queue>,
    min_age: std::time::Duration,
) -> anyhow::Result<RepairReport> {
    let cutoff = Utc::now() - chrono::Duration::from_std(min_age)?;
    let mut report = RepairReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = db::open_jobs(pool, cutoff, after.as_deref(), PAGE).await?;
        report.scanned += page.len() as u64;
        let mut by_queue: BTreeMap<&str, Vec<&JobRun>> = BTreeMap::new();
        for run in &page {
            by_queue.entry(run.queue.as_str()).or_default().push(run);
        }
        for (name, runs) in by_queue {
            let Some(queue) = queues.get(name) else {
                tracing::warn!(
                    queue = name,
                    jobs = runs.len(),
                    "open jobs on a queue this scheduler does not know"
                );
                continue;
            };
            repair_queue(pool, queue, &runs, &mut report).await?;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = Some(last.id.clone()),
            _ => return Ok(report),
        }
    }
}

async fn repair_queue(
    pool: &PgPool,
    queue: &Queue,
    runs: &[&JobRun],
    report: &mut RepairReport,
) -> anyhow::Result<()> {
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let live = queue.states(&ids).await?;
    let mut missing = Vec::new();
    for (run, live) in runs.iter().zip(live) {
        match live {
            None => missing.push(redispatch_job(run)?),
            Some(live) if live.status != run.state || live.status.is_terminal() => {
                if db::sync_from_queue(pool, &run.id, &live).await? {
                    report.reconciled += 1;
                }
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        // A few ids to look up, not all of them: after a Redis flush there
        // can be thousands, and one log line of them helps nobody.
        let examples: Vec<String> = missing.iter().take(5).map(|j| j.id.to_string()).collect();
        // Its own trace, linked to each job's: the job keeps its traceparent,
        // so its run still joins the trace that created it.
        let span = hangar_shared::traces::linked_root_span(
            "repair redispatch",
            missing.len(),
            missing.iter().filter_map(|j| j.traceparent.as_deref()),
        );
        let out = tracing::Instrument::instrument(queue.enqueue_batch(missing), span).await?;
        let added = out.iter().filter(|e| !e.duplicate).count() as u64;
        report.redispatched += added;
        tracing::warn!(queue = %queue.name(), jobs = added, first_ids = ?examples,
            "redis did not know recorded jobs; dispatched them again");
    }
    Ok(())
}

pub(crate) fn redispatch_job(run: &JobRun) -> anyhow::Result<NewJob> {
    // No idempotency key: the id itself makes a second dispatch a no-op.
    let mut job = NewJob::new(run.kind.clone(), run.payload.clone())
        .with_id(
            run.id
                .parse()
                .map_err(|e| anyhow::anyhow!("job {} has a bad id: {e}", run.id))?,
        )
        .max_attempts(run.max_attempts.max(1) as u32);
    if let Some(at) = run.run_at {
        job = job.run_at(at.into());
    }
    if let Some(request_id) = &run.request_id {
        job = job.correlation_id(request_id.clone());
    }
    if let Some(traceparent) = &run.traceparent {
        job = job.traceparent(traceparent.clone());
    }
    Ok(job)
}
