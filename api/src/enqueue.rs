//! Group commit for enqueues. Concurrent `POST /api/v1/jobs` requests hand
//! their job to one task, which records whatever has gathered in one
//! multi-row INSERT and queues the new jobs in one Redis round trip per
//! queue. Under load that turns hundreds of commits into a few; when idle a
//! job goes alone at once (the task never waits to fill a batch).
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

use crate::{error::ApiError, metrics::Metrics};

/// Most jobs recorded per statement.
const MAX_BATCH: usize = 256;

/// What the batcher answers: status (202 new, 200 duplicate), duplicate flag, the record.
pub type Accepted = (StatusCode, bool, JobRun);

type Request = (NewJobRun, oneshot::Sender<Result<Accepted, ApiError>>);

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
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((job, reply))
            .await
            .map_err(|_| anyhow::anyhow!("enqueue task is gone"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("enqueue task dropped the request"))?
    }
}

async fn run(
    pool: PgPool,
    queues: Arc<BTreeMap<String, Queue>>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs: Vec<NewJobRun> = batch.iter().map(|(j, _)| j.clone()).collect();
        match db::insert_jobs(&pool, &jobs).await {
            Err(e) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(ApiError::from_sqlx(&e)));
                }
            }
            Ok(results) => {
                enqueue_new(&queues, &metrics, &jobs, &results).await;
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let answer = match result {
                        Inserted::New(run) => Ok((StatusCode::ACCEPTED, false, run)),
                        Inserted::Existing(run) => Ok((StatusCode::OK, true, run)),
                        Inserted::KeyReused(run) => Err(ApiError::invalid(
                            "Idempotency-Key",
                            format!(
                                "this key was already used for a different request (job {}); send a new key for a new request",
                                run.id
                            ),
                        )),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    }
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
