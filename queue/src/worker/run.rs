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

use crate::queue::Claimed;

/// One claimed delivery of a job.
#[derive(Debug)]
pub(crate) struct Run {
    pub claimed: Claimed,
    /// Fired when the job should stop: cancellation requested or lease lost.
    pub cancel: CancellationToken,
    pub cancel_requested: AtomicBool,
    pub lease_lost: AtomicBool,
    /// Set once the handler was called; unstarted runs are released uncounted.
    pub started: AtomicBool,
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
            started: AtomicBool::new(false),
            permit: Mutex::new(Some(permit)),
        }
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

/// Runs this worker holds a lease for, by job id.
#[derive(Debug, Default)]
pub(crate) struct Held {
    runs: Mutex<HashMap<String, Arc<Run>>>,
}

impl Held {
    pub fn insert(&self, run: Arc<Run>) {
        self.lock().insert(run.claimed.id.clone(), run);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Run>> {
        self.lock().remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Run>> {
        self.lock().get(id).cloned()
    }

    /// (id, lease token) of every held run.
    pub fn leases(&self) -> Vec<(String, String)> {
        self.lock()
            .values()
            .map(|r| (r.claimed.id.clone(), r.claimed.token.clone()))
            .collect()
    }

    /// Removes and returns every held run.
    pub fn drain(&self) -> Vec<Arc<Run>> {
        self.lock().drain().map(|(_, r)| r).collect()
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
