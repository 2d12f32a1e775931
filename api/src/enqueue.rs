//! Group commit for enqueues. Concurrent `POST /api/v1/jobs` requests hand
//! their job to one task, which records whatever has gathered in one
//! multi-row INSERT and queues the new jobs in one Redis round trip per
//! queue. Under load that turns hundreds of commits into a few; when idle a
//! job goes alone at once (the task never waits to fill a batch).
//!
//! The next batch is recorded while the previous one is queued in Redis.
//!
//! A request may bring its audit entry: it is stored in the same
//! transaction as the job (one commit, not two in a row), with the status
//! the request is answered with, so a 202 still means both are committed.
//!
//! The task is detached from the requests, so a client that hangs up cannot
//! cut between the commit and the enqueue. Recorded first: a job the API
//! acknowledged survives a Redis failure (the scheduler's repair loop
//! dispatches recorded jobs Redis lacks).

use std::{collections::BTreeMap, sync::Arc};

use axum::http::StatusCode;
use hangar_queue::{NewJob, Queue};
use hangar_shared::db::{self, Inserted, JobRun, NewJobRun};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::{audit::Entry, error::ApiError, metrics::Metrics};

/// Most jobs recorded per statement.
const MAX_BATCH: usize = 256;

/// What the batcher answers: status (202 new, 200 duplicate), duplicate flag, the record.
pub type Accepted = (StatusCode, bool, JobRun);

/// The answer, and whether the request's audit entry was stored with it.
type Reply = Result<(Accepted, bool), ApiError>;

type Request = (NewJobRun, Option<Entry>, oneshot::Sender<Reply>);

/// Handle to the batching task.
#[derive(Clone, Debug)]
pub struct Enqueuer {
    tx: mpsc::Sender<Request>,
}

impl Enqueuer {
    /// Starts the task.
    pub fn start(pool: PgPool, queues: Arc<BTreeMap<String, Queue>>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, queues, metrics, rx));
        Self { tx }
    }

    /// Records and enqueues `job`.
    pub async fn submit(&self, job: NewJobRun) -> Result<Accepted, ApiError> {
        self.submit_audited(job, None).await.map(|(accepted, _)| accepted)
    }

    /// Records and enqueues `job`, storing `audit` (its status and target
    /// filled in from the outcome) in the same commit; the flag says
    /// whether it was (not for a refused idempotency key, whose 422 the
    /// access layer audits as usual).
    pub async fn submit_audited(
        &self,
        mut job: NewJobRun,
        audit: Option<Entry>,
    ) -> Result<(Accepted, bool), ApiError> {
        // The messaging producer span: the job records its context, so the
        // worker's `process` span continues this request's trace. Untraced,
        // the job keeps the caller's traceparent, if it sent one.
        let span = hangar_shared::traces::send_span(&job.queue, &job.id);
        if job.traceparent.is_none() {
            job.traceparent =
                hangar_queue::trace_context::of(&span).or_else(crate::request_id::caller_traceparent);
        }
        let (reply, answer) = oneshot::channel();
        // Only traced requests keep the id for the check below: no clone
        // on the untraced request path.
        let sent_id = (!span.is_disabled()).then(|| job.id.clone());
        let answered = tracing::Instrument::instrument(
            async move {
                self.tx
                    .send((job, audit, reply))
                    .await
                    .map_err(|_| anyhow::anyhow!("enqueue task is gone"))?;
                answer
                    .await
                    .map_err(|_| anyhow::anyhow!("enqueue task dropped the request"))?
            },
            span.clone(),
        )
        .await;
        // An idempotent repeat is answered with the job already recorded:
        // the span names that message, not the id this request would have used.
        if let (Ok(((_, _, run), _)), Some(sent_id)) = (&answered, &sent_id)
            && &run.id != sent_id
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.set_attribute("messaging.message.id", run.id.clone());
            span.set_attribute("hangar.job.existing", true);
        }
        answered
    }
}

/// A recorded batch on its way to Redis: the jobs, what PostgreSQL said of
/// each, and the requests waiting for their answers.
type Recorded = (Vec<NewJobRun>, Vec<Inserted>, Vec<Request>, tracing::Span);

/// Records batches in PostgreSQL and hands each to [`dispatch`], which
/// queues it in Redis and answers its requests: the next batch's commit
/// overlaps the previous batch's Redis round trip. Batches reach Redis in
/// the order they were recorded.
async fn run(
    pool: PgPool,
    queues: Arc<BTreeMap<String, Queue>>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Request>,
) {
    let (to_redis, recorded) = mpsc::channel::<Recorded>(2);
    let dispatcher = tokio::spawn(dispatch(queues, metrics, recorded));
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs: Vec<NewJobRun> = batch.iter().map(|(j, _, _)| j.clone()).collect();
        let span =
            hangar_shared::traces::batch_span("enqueue batch", jobs.iter().map(|j| j.traceparent.as_deref()));
        let recorded = tracing::Instrument::instrument(record(&pool, &jobs, &mut batch), span.clone()).await;
        match recorded {
            Err(e) => {
                for (_, _, reply) in batch.drain(..) {
                    let _ = reply.send(Err(ApiError::from_sqlx(&e)));
                }
            }
            Ok(results) => {
                let requests = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
                if to_redis.send((jobs, results, requests, span)).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(to_redis);
    let _ = dispatcher.await;
}

/// Queues each recorded batch and answers its requests.
async fn dispatch(
    queues: Arc<BTreeMap<String, Queue>>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Recorded>,
) {
    while let Some((jobs, results, requests, span)) = rx.recv().await {
        tracing::Instrument::instrument(enqueue_new(&queues, &metrics, &jobs, &results), span).await;
        for ((_, audit, reply), result) in requests.into_iter().zip(results) {
            let audited = audit.is_some();
            let answer = match answered_with(&result) {
                Some(status) => Ok(((status, status == StatusCode::OK, result.into_run()), audited)),
                None => Err(ApiError::invalid(
                    "Idempotency-Key",
                    format!(
                        "this key was already used for a different request (job {}); send a new key for a new request",
                        result.run().id
                    ),
                )),
            };
            let _ = reply.send(answer);
        }
    }
}

/// The status a request is answered with for `result`: 202 for a new job,
/// 200 for an existing one; `None` for a refusal (a reused idempotency key).
fn answered_with(result: &Inserted) -> Option<StatusCode> {
    match result {
        Inserted::New(_) => Some(StatusCode::ACCEPTED),
        Inserted::Existing(_) => Some(StatusCode::OK),
        Inserted::KeyReused(_) => None,
    }
}

/// Records `jobs` and the audit entries of `batch` in one transaction.
/// Each entry gets the status its request will be answered with and the
/// job's id as target; an entry whose request is refused (a reused
/// idempotency key) is dropped here, to be audited with its 422.
async fn record(pool: &PgPool, jobs: &[NewJobRun], batch: &mut [Request]) -> sqlx::Result<Vec<Inserted>> {
    let mut tx = pool.begin().await?;
    let results = db::insert_jobs_on(&mut tx, jobs).await?;
    for ((_, audit, _), result) in batch.iter_mut().zip(&results) {
        let Some(entry) = audit else { continue };
        match answered_with(result) {
            Some(status) => {
                entry.status = status;
                entry.target = Some(result.run().id.clone());
            }
            None => *audit = None,
        }
    }
    let entries = batch.iter().filter_map(|(_, audit, _)| audit.as_ref());
    if entries.clone().next().is_some() {
        crate::audit::insert(&mut tx, entries).await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// Queues the newly recorded jobs, one pipelined round trip per queue. A
/// Redis failure leaves them recorded for the repair loop.
async fn enqueue_new(
    queues: &BTreeMap<String, Queue>,
    metrics: &Metrics,
    jobs: &[NewJobRun],
    results: &[Inserted],
) {
    let mut by_queue: BTreeMap<&str, Vec<NewJob>> = BTreeMap::new();
    for (new, result) in jobs.iter().zip(results) {
        let Inserted::New(run) = result else { continue };
        let Ok(id) = run.id.parse() else { continue };
        let mut job = NewJob::new(run.kind.clone(), run.payload.clone())
            .with_id(id)
            .max_attempts(run.max_attempts.max(1) as u32);
        if let Some(r) = &new.request_id {
            job = job.correlation_id(r.clone());
        }
        if let Some(t) = &new.traceparent {
            job = job.traceparent(t.clone());
        }
        if let Some(at) = new.run_at {
            job = job.run_at(at.into());
        }
        // No idempotency key in Redis: PostgreSQL answered repeats already,
        // per caller, and the job's id keeps a second dispatch a no-op.
        by_queue.entry(run.queue.as_str()).or_default().push(job);
    }
    for (name, jobs) in by_queue {
        let kinds: Vec<String> = jobs.iter().map(|j| j.kind.clone()).collect();
        let outcome = match queues.get(name) {
            Some(q) => q.enqueue_batch(jobs).await.map(|_| ()).map_err(|e| e.to_string()),
            None => Err(format!("queue {name} not configured")),
        };
        match outcome {
            Ok(()) => kinds.iter().for_each(|k| metrics.job_enqueued(k)),
            Err(e) => {
                kinds.iter().for_each(|k| metrics.job_deferred(k));
                tracing::warn!(queue = name, jobs = kinds.len(), error = %e,
                    "redis enqueue failed; jobs recorded, the repair loop will dispatch them");
            }
        }
    }
}
