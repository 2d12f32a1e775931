//! Cancelling and retrying one recorded job: the API's cancel and retry
//! routes, the console's buttons and the bulk-action job all do it here, so
//! the record in PostgreSQL and the live job in Redis always move together
//! the same way.

use hangar_queue::{CancelOutcome, JobStatus, NewJob, Queue, QueueError};
use sqlx::PgPool;

use crate::db::{self, JobRun};

/// Why an action was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The job is not in a state the action applies to (the API's 409).
    #[error("{0}")]
    Conflict(String),
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// PostgreSQL failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Anything else (a stored id that is not a ULID).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It had not started: it never will.
    Done,
    /// It is running: its handler was asked to stop at its next checkpoint.
    Requested,
}

/// Copies Redis's view of job `id` onto its record.
async fn record_live(pool: &PgPool, queue: &Queue, id: &str) -> Result<(), Refused> {
    if let Some(live) = queue.state(id).await? {
        db::sync_from_queue(pool, id, &live).await?;
    }
    Ok(())
}

/// Cancels `run` (on `queue`, its queue).
pub async fn cancel(pool: &PgPool, queue: &Queue, run: &JobRun) -> Result<Cancelled, Refused> {
    let id = run.id.as_str();
    match queue.cancel(id).await? {
        CancelOutcome::Cancelled => {
            record_live(pool, queue, id).await?;
            Ok(Cancelled::Done)
        }
        CancelOutcome::CancelRequested => Ok(Cancelled::Requested),
        CancelOutcome::AlreadyFinished(s) => {
            record_live(pool, queue, id).await?;
            Err(Refused::Conflict(format!("job {id} already {}", s.as_str())))
        }
        CancelOutcome::NotFound if run.state.is_open() => {
            // Recorded but unknown to Redis (lost data, not yet repaired).
            db::mark_cancelled(pool, id).await?;
            Ok(Cancelled::Done)
        }
        CancelOutcome::NotFound => Err(Refused::Conflict(format!(
            "job {id} already {}",
            run.state.as_str()
        ))),
    }
}

/// Runs dead job `run` again under the same id with a fresh attempt budget;
/// `correlation` is the request id carried into its new run.
pub async fn retry(pool: &PgPool, queue: &Queue, run: &JobRun, correlation: String) -> Result<(), Refused> {
    let id = run.id.as_str();
    let live = queue.state(id).await?;
    let current = live.as_ref().map_or(run.state, |l| l.status);
    if current != JobStatus::Dead {
        return Err(Refused::Conflict(format!(
            "job {id} is {}; only dead jobs can be retried",
            current.as_str()
        )));
    }
    // The record first: an outcome of the new run then always lands on a
    // reopened row. A job of a singleton target (one sync per account and
    // region) cannot reopen while another job for that target is open.
    if let Err(e) = db::mark_requeued(pool, std::slice::from_ref(&run.id)).await {
        let open_twin = e
            .as_database_error()
            .and_then(|d| d.constraint())
            .is_some_and(|c| c == "job_singletons_pkey");
        if open_twin {
            return Err(Refused::Conflict(format!(
                "job {id} was not retried: another job for its target ({}) is open; it covers the same work",
                run.singleton_key.as_deref().unwrap_or("?")
            )));
        }
        return Err(e.into());
    }
    if live.is_some() {
        queue.requeue_dead(id).await?;
    } else {
        // Trimmed from Redis by retention: enqueue it again under the same id.
        let job = NewJob::new(run.kind.clone(), run.payload.clone())
            .with_id(
                id.parse()
                    .map_err(|e| anyhow::anyhow!("job id {id} is not a ULID: {e}"))?,
            )
            .max_attempts(u32::try_from(run.max_attempts).unwrap_or(1))
            .correlation_id(correlation);
        queue.enqueue(job).await?;
    }
    Ok(())
}
