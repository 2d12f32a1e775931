//! Worker tuning. Defaults suit production; tests shorten the timings.

use std::time::Duration;

/// How long finished jobs stay readable in Redis.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Succeeded and cancelled jobs older than this are deleted.
    pub done_max_age: Duration,
    /// At most this many succeeded and cancelled jobs are kept (among those
    /// older than `min_age`).
    pub done_max_count: u64,
    /// Dead jobs older than this are deleted.
    pub dead_max_age: Duration,
    /// At most this many dead jobs are kept.
    pub dead_max_count: u64,
    /// Count limits never delete a job younger than this: readers such as the
    /// scheduler's reconciliation must find finished jobs for a while.
    pub min_age: Duration,
    /// How often a worker applies retention.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            done_max_age: Duration::from_secs(24 * 3600),
            done_max_count: 100_000,
            dead_max_age: Duration::from_secs(14 * 24 * 3600),
            dead_max_count: 100_000,
            min_age: Duration::from_secs(600),
            every: Duration::from_secs(60),
        }
    }
}

/// Options for one queue's worker in one process.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs this worker runs at once.
    pub concurrency: usize,
    /// Most jobs claimed per fetch (one round trip).
    pub fetch_batch: usize,
    /// A claimed job's lease. If the worker stops renewing it (killed, frozen,
    /// partitioned), the job goes back to the queue this long after the last renewal.
    pub lease: Duration,
    /// How often held leases are renewed and cancellation requests are read;
    /// a running job sees a cancel request within about this long.
    pub heartbeat: Duration,
    /// Longest pause between promoting due jobs and reaping expired leases.
    pub maintenance_interval: Duration,
    /// Longest single wait for a wake-up before the fetcher checks again.
    pub idle_wait: Duration,
    /// Retention of finished jobs.
    pub retention: Retention,
    /// If Redis stays unreachable this long, the worker stops with an error
    /// (the process exits non-zero) instead of retrying forever. `None`: retry forever.
    pub outage_limit: Option<Duration>,
    /// Most outcomes recorded in one script call.
    pub ack_batch: usize,
    /// While this reads `false`, nothing new is claimed (jobs already held
    /// run on). Inference workers close it while their model server is
    /// down or not yet warmed up, so jobs wait in the queue instead of
    /// failing. `None`: always open.
    pub gate: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 10,
            fetch_batch: 50,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            maintenance_interval: Duration::from_millis(500),
            idle_wait: Duration::from_secs(1),
            retention: Retention::default(),
            outage_limit: None,
            ack_batch: 256,
            gate: None,
        }
    }
}

impl WorkerOptions {
    /// Checks that the timings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.concurrency == 0 {
            problems.push("concurrency must be at least 1".to_owned());
        }
        if self.fetch_batch == 0 {
            problems.push("fetch_batch must be at least 1".to_owned());
        }
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease {
            problems.push(format!(
                "heartbeat ({:?}) must be non-zero and at most half the lease ({:?})",
                self.heartbeat, self.lease
            ));
        }
        if self.maintenance_interval.is_zero() || self.idle_wait.is_zero() {
            problems.push("maintenance_interval and idle_wait must be non-zero".to_owned());
        }
        if self.ack_batch == 0 {
            problems.push("ack_batch must be at least 1".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_timings_are_all_reported() {
        assert!(WorkerOptions::default().validate().is_ok());
        let bad = WorkerOptions {
            concurrency: 0,
            heartbeat: Duration::from_secs(20),
            ..WorkerOptions::default()
        };
        let err = bad.validate().unwrap_err();
        assert!(err.contains("concurrency") && err.contains("heartbeat"), "{err}");
    }
}
