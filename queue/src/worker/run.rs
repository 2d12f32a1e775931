//! Per-delivery state shared by the fetcher, the lease renewer, the handler's
//! [`JobContext`](super::JobContext) and the ack layer.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::queue::{Claimed, Finished};

/// One claimed delivery of a job.
#[derive(Debug)]
pub(crate) struct Run {
    pub claimed: Claimed,
    /// Fired when the job should stop: cancellation requested or lease lost.
    pub cancel: CancellationToken,
    pub cancel_requested: AtomicBool,
    pub lease_lost: AtomicBool,
    /// Set once the handler returned; its outcome is on its way to Redis.
    pub finished: AtomicBool,
    /// When the handler was called, ms since the Unix epoch (0 = not yet;
    /// unstarted runs are released without counting the delivery).
    pub started_at_ms: AtomicU64,
    /// The last progress the handler stored.
    pub progress: Mutex<Option<serde_json::Value>>,
    /// This run's concurrency slot; dropped when the handler returns.
    pub permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Run {
    pub fn new(claimed: Claimed, permit: OwnedSemaphorePermit) -> Self {
        Self {
            claimed,
            cancel: CancellationToken::new(),
            cancel_requested: AtomicBool::new(false),
            lease_lost: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            started_at_ms: AtomicU64::new(0),
            progress: Mutex::new(None),
            permit: Mutex::new(Some(permit)),
        }
    }

    /// True once the handler was called.
    pub fn started(&self) -> bool {
        self.started_at_ms.load(Ordering::Relaxed) != 0
    }

    /// This attempt's number (1-based).
    pub fn attempt(&self) -> u32 {
        self.claimed.attempts + 1
    }

    pub fn release_slot(&self) {
        if let Ok(mut p) = self.permit.lock() {
            p.take();
        }
    }
}

/// An outcome on its way to Redis. The run stays held (its lease renewed)
/// until Redis has taken the outcome, so a slow write never lets the lease
/// of a finished job lapse.
#[derive(Debug)]
pub(crate) struct Pending {
    pub finished: Finished,
    pub run: Arc<Run>,
    pub finished_at_ms: u64,
}

impl Pending {
    pub fn new(run: Arc<Run>, outcome: crate::queue::Outcome) -> Self {
        // A deferred attempt did not happen: the count stays where it was.
        let attempt = match outcome {
            crate::queue::Outcome::Deferred { .. } => run.attempt().saturating_sub(1),
            _ => run.attempt(),
        };
        let finished = Finished {
            id: run.claimed.id.clone(),
            token: run.claimed.token.clone(),
            attempt,
            outcome,
        };
        Self {
            finished,
            run,
            finished_at_ms: crate::job::epoch_ms(std::time::SystemTime::now()),
        }
    }
}

/// An attempt's outcome as Redis recorded it, handed to an outcome sink
/// (the worker binary writes these to PostgreSQL, in batches).
#[derive(Debug, Clone)]
pub struct RecordedOutcome {
    /// The job's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// The state the job is in now: succeeded, cancelled, retrying or dead.
    pub status: crate::job::JobStatus,
    /// The attempt this outcome belongs to (1-based).
    pub attempt: u32,
    /// Deliveries so far, this one included.
    pub deliveries: u32,
    /// The handler's result (succeeded only).
    pub result: Option<serde_json::Value>,
    /// The error text (retrying and dead).
    pub error: Option<String>,
    /// The last progress the handler reported.
    pub progress: Option<serde_json::Value>,
    /// When the handler was called, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When the outcome was decided, ms since the Unix epoch.
    pub finished_at_ms: u64,
    /// For a job that died (reported to Sentry): its correlation id (the
    /// API's request id) and arguments. Not copied for any other outcome,
    /// so the common path allocates nothing more.
    pub died: Option<DiedWith>,
}

/// What a dead job's report needs beyond the outcome.
#[derive(Debug, Clone)]
pub struct DiedWith {
    /// The correlation id given at enqueue (the API's request id), if any.
    pub correlation_id: Option<String>,
    /// The job's arguments.
    pub payload: Option<serde_json::Value>,
}

impl RecordedOutcome {
    pub(crate) fn new(p: &Pending, status: crate::job::JobStatus) -> Self {
        let (result, error) = match &p.finished.outcome {
            crate::queue::Outcome::Succeeded { result } => (serde_json::from_str(result).ok(), None),
            crate::queue::Outcome::Cancelled => (None, None),
            crate::queue::Outcome::Retry { error, .. }
            | crate::queue::Outcome::Dead { error }
            | crate::queue::Outcome::Deferred { reason: error, .. } => (None, Some(error.clone())),
        };
        let started = p.run.started_at_ms.load(Ordering::Relaxed);
        Self {
            id: p.finished.id.clone(),
            kind: p.run.claimed.kind.clone(),
            status,
            attempt: p.finished.attempt,
            deliveries: p.run.claimed.deliveries,
            result,
            error,
            progress: p.run.progress.lock().ok().and_then(|g| g.clone()),
            started_at_ms: started,
            finished_at_ms: p.finished_at_ms,
            died: (status == crate::job::JobStatus::Dead).then(|| DiedWith {
                correlation_id: Some(p.run.claimed.correlation_id.clone()).filter(|c| !c.is_empty()),
                payload: serde_json::from_str(&p.run.claimed.payload).ok(),
            }),
        }
    }
}

/// Runs this worker holds a lease for, by job id.
#[derive(Debug, Default)]
pub(crate) struct Held {
    runs: Mutex<HashMap<String, Arc<Run>>>,
}

impl Held {
    /// Holds `run`. If this process still held an older delivery of the same
    /// job, that one's lease was lost (the job was reaped and handed out
    /// again): its handler is told to stop.
    pub fn insert(&self, run: Arc<Run>) {
        let previous = self.lock().insert(run.claimed.id.clone(), run);
        if let Some(old) = previous {
            old.lease_lost.store(true, std::sync::atomic::Ordering::Relaxed);
            old.cancel.cancel();
        }
    }

    /// Stops holding `run`, unless a newer delivery of the job replaced it.
    pub fn remove_run(&self, run: &Arc<Run>) {
        let mut map = self.lock();
        if map
            .get(&run.claimed.id)
            .is_some_and(|held| Arc::ptr_eq(held, run))
        {
            map.remove(&run.claimed.id);
        }
    }

    /// The held run of job `id` if it is the delivery with lease `token`.
    pub fn get_delivery(&self, id: &str, token: &str) -> Option<Arc<Run>> {
        self.lock().get(id).filter(|r| r.claimed.token == token).cloned()
    }

    /// True if `run` is still held (not released or replaced).
    pub fn holds(&self, run: &Arc<Run>) -> bool {
        self.lock()
            .get(&run.claimed.id)
            .is_some_and(|held| Arc::ptr_eq(held, run))
    }

    /// (id, lease token) of every held run.
    pub fn leases(&self) -> Vec<(String, String)> {
        self.lock()
            .values()
            .map(|r| (r.claimed.id.clone(), r.claimed.token.clone()))
            .collect()
    }

    /// Removes and returns every held run whose handler has not returned.
    pub fn take_unfinished(&self) -> Vec<Arc<Run>> {
        let mut map = self.lock();
        let ids: Vec<String> = map
            .iter()
            .filter(|(_, r)| !r.finished.load(Ordering::Relaxed))
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Run>>> {
        // A panic while holding this short lock cannot leave the map half-changed.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counters an operator (or the worker binary's /metrics) reads.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Deliveries claimed.
    pub fetched: AtomicU64,
    /// Attempts recorded as succeeded.
    pub succeeded: AtomicU64,
    /// Attempts that failed and were scheduled again.
    pub retried: AtomicU64,
    /// Jobs sent to dead by this worker (failures and undecodable payloads).
    pub dead: AtomicU64,
    /// Jobs that ended cancelled.
    pub cancelled: AtomicU64,
    /// Outcomes ignored because the lease had already moved on.
    pub stale_outcomes: AtomicU64,
    /// Leases found lost at renewal (the job is now another worker's).
    pub leases_lost: AtomicU64,
    /// Handlers that panicked.
    pub panics: AtomicU64,
    /// Redis operations that failed (each is retried).
    pub redis_errors: AtomicU64,
    /// Expired leases this worker's maintenance took back.
    pub reaped: AtomicU64,
    /// Due jobs this worker's maintenance promoted.
    pub promoted: AtomicU64,
    /// Finished jobs deleted by retention.
    pub trimmed: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    fn run(token: &str) -> Arc<Run> {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let claimed = Claimed {
            id: "01J".into(),
            kind: "k".into(),
            payload: "{}".into(),
            attempts: 0,
            deliveries: 1,
            token: token.into(),
            max_attempts: 3,
            correlation_id: String::new(),
            traceparent: String::new(),
        };
        Arc::new(Run::new(claimed, permit))
    }

    #[test]
    fn a_second_delivery_of_a_job_supersedes_the_first_and_survives_its_removal() {
        let held = Held::default();
        let (old, new) = (run("w#1/1"), run("w#2/2"));
        held.insert(old.clone());
        held.insert(new.clone());
        assert!(old.cancel.is_cancelled() && old.lease_lost.load(Ordering::Relaxed));
        assert!(!new.cancel.is_cancelled());
        held.remove_run(&old);
        assert!(held.holds(&new), "removing the stale run leaves the new one held");
        assert!(held.get_delivery("01J", "w#1/1").is_none());
        assert!(held.get_delivery("01J", "w#2/2").is_some());
    }

    #[test]
    fn release_takes_only_runs_whose_handler_has_not_returned() {
        let held = Held::default();
        let done = run("a/1");
        done.finished.store(true, Ordering::Relaxed);
        held.insert(done.clone());
        let mut other = run("b/1");
        Arc::get_mut(&mut other).unwrap().claimed.id = "01K".into();
        held.insert(other.clone());
        let taken = held.take_unfinished();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].claimed.token, "b/1");
        assert!(
            held.holds(&done),
            "a finished run stays held until its outcome is written"
        );
    }
}
