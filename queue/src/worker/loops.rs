//! The background loops of a worker: fetch, record outcomes, maintenance.
//! Each survives Redis failures by retrying with capped exponential backoff.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::run::{Held, Pending, RecordedOutcome, Run, WorkerStats};
use crate::{
    error::QueueError,
    identity::WorkerId,
    job::{JobStatus, epoch_ms},
    options::WorkerOptions,
    queue::{Claimed, Queue, WorkerReport},
};

/// Delays after consecutive Redis failures: 50 ms doubling to 5 s, jittered, forever.
pub(crate) fn redis_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Tracks one loop's run of Redis failures.
pub(crate) struct Outage {
    since: Option<Instant>,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    what: &'static str,
}

impl Outage {
    pub fn new(what: &'static str) -> Self {
        Self {
            since: None,
            delays: Box::new(redis_backoff()),
            what,
        }
    }

    /// Records a failure; returns how long to wait and for how long Redis has been failing.
    pub fn failed(&mut self, err: &QueueError, stats: &WorkerStats) -> (Duration, Duration) {
        WorkerStats::add(&stats.redis_errors, 1);
        let since = *self.since.get_or_insert_with(Instant::now);
        let wait = self.delays.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(error = %err, loop = self.what, retry_in = ?wait, failing_for = ?since.elapsed(),
            "redis operation failed; retrying");
        (wait, since.elapsed())
    }

    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(loop = self.what, outage = ?since.elapsed(), "redis reachable again");
            self.delays = Box::new(redis_backoff());
        }
    }
}

/// A claimed delivery on its way to the apalis worker, or the reason fetching stopped.
pub(crate) type Delivery = Result<Arc<Run>, QueueError>;

/// Everything the fetch loop needs.
pub(crate) struct Fetcher {
    pub queue: Queue,
    pub options: WorkerOptions,
    pub worker: WorkerId,
    pub slots: Arc<Semaphore>,
    pub held: Arc<Held>,
    pub stats: Arc<WorkerStats>,
    pub tx: mpsc::Sender<Delivery>,
    pub stop: CancellationToken,
    /// The apalis worker: once it is shutting down, nothing new is claimed.
    pub apalis: apalis_core::worker::context::WorkerContext,
}

impl Fetcher {
    /// Claims jobs whenever a slot is free; sleeps in BLPOP on the wake list
    /// when the queue is empty, so an idle worker starts a new job at once.
    pub async fn run(self) {
        let mut blocking = None;
        let mut outage = Outage::new("fetch");
        let mut seq: u64 = 0;
        loop {
            let first = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                () = self.stop.cancelled() => return,
            };
            if self.apalis.is_shutting_down() {
                tracing::debug!("worker draining; no more fetches");
                self.stop.cancelled().await;
                return;
            }
            if let Some(gate) = &self.options.gate
                && !*gate.borrow()
            {
                tracing::info!(queue = %self.queue.name(), "fetch gate closed; not leasing until it opens");
                let mut gate = gate.clone();
                tokio::select! {
                    r = gate.wait_for(|open| *open) => if r.is_err() {
                        tracing::error!(queue = %self.queue.name(), "fetch gate dropped; leasing without it");
                    },
                    () = self.stop.cancelled() => return,
                }
                tracing::info!(queue = %self.queue.name(), "fetch gate open; leasing again");
            }
            let mut permits = vec![first];
            while permits.len() < self.options.fetch_batch {
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            seq += 1;
            let nonce = format!("{}#{seq}", self.worker);
            let claimed = self
                .queue
                .fetch(self.worker.as_str(), &nonce, permits.len(), self.options.lease)
                .await;
            let claimed = match claimed {
                Ok(c) => {
                    outage.recovered();
                    c
                }
                Err(e) => {
                    drop(permits);
                    // The script may have run with its reply lost: give back
                    // whatever it claimed rather than let those leases lapse
                    // and count as crashes.
                    if let Ok(n) = self.queue.release_claim(&nonce).await
                        && n > 0
                    {
                        tracing::warn!(released = n, "fetch reply lost; gave its jobs back");
                    }
                    if self.wait_after_failure(&mut outage, &e).await {
                        return;
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                drop(permits);
                if self.wait_for_work(&mut blocking, &mut outage).await {
                    return;
                }
                continue;
            }
            WorkerStats::add(&self.stats.fetched, claimed.len() as u64);
            let mut claimed = claimed.into_iter();
            for (job, permit) in claimed.by_ref().zip(permits) {
                let run = Arc::new(Run::new(job, permit));
                self.held.insert(run.clone());
                if self.tx.send(Ok(run.clone())).await.is_err() {
                    // The worker is gone: give this and the rest straight back.
                    self.held.remove_run(&run);
                    self.give_back(std::iter::once(run.claimed.clone()).chain(claimed))
                        .await;
                    return;
                }
            }
        }
    }

    async fn give_back(&self, jobs: impl Iterator<Item = Claimed>) {
        let leases: Vec<(String, String)> = jobs.map(|c| (c.id, c.token)).collect();
        if let Err(e) = self.queue.release(&leases, true).await {
            tracing::warn!(error = %e, jobs = leases.len(), "could not give back claimed jobs; their leases will lapse");
        }
    }

    /// Blocks on the wake list. Returns true if the worker is stopping.
    async fn wait_for_work(
        &self,
        blocking: &mut Option<crate::connection::RedisConn>,
        outage: &mut Outage,
    ) -> bool {
        if blocking.is_none() {
            // BLPOP holds its connection: a dedicated one, with a timeout longer than the block.
            let timeout = self.options.idle_wait + self.queue.settings().response_timeout;
            match self.queue.settings().connect_with_timeout(timeout).await {
                Ok(c) => *blocking = Some(c),
                Err(e) => return self.wait_after_failure(outage, &e).await,
            }
        }
        let Some(conn) = blocking.as_mut() else {
            return false;
        };
        tokio::select! {
            r = self.queue.wait_for_wake(conn, self.options.idle_wait) => match r {
                Ok(_) => { outage.recovered(); false }
                Err(e) => self.wait_after_failure(outage, &e).await,
            },
            () = self.stop.cancelled() => true,
        }
    }

    /// Sleeps after a failure; gives up (returns true) when stopping or when
    /// the outage limit is reached, telling the worker why.
    async fn wait_after_failure(&self, outage: &mut Outage, err: &QueueError) -> bool {
        let (wait, failing_for) = outage.failed(err, &self.stats);
        if let Some(limit) = self.options.outage_limit
            && failing_for >= limit
        {
            tracing::error!(
                ?limit,
                "redis unreachable past the outage limit; stopping the worker"
            );
            let _ = self.tx.send(Err(QueueError::OutageLimit(limit))).await;
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = self.stop.cancelled() => true,
        }
    }
}

/// Records outcomes in batches: one script call for up to `ack_batch` jobs.
/// A failed write is retried (the outcomes stay in memory). When `closing`
/// fires (apalis closes the backend only after every handler returned, so
/// every outcome is already queued) it flushes what is left, retrying for at
/// most `close_deadline`; if Redis stays away, those leases expire and the
/// jobs run again (at-least-once, nothing lost).
/// Where recorded outcomes go after Redis took them.
pub(crate) type OutcomeSink = Option<mpsc::Sender<Vec<RecordedOutcome>>>;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_outcomes(
    queue: Queue,
    held: Arc<Held>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    batch_max: usize,
    stats: Arc<WorkerStats>,
    sink: OutcomeSink,
    closing: CancellationToken,
    close_deadline: Duration,
) {
    let mut outage = Outage::new("ack");
    let mut batch = Vec::with_capacity(batch_max);
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() {
            tokio::select! {
                n = rx.recv_many(&mut batch, batch_max) => if n == 0 { return },
                () = closing.cancelled() => deadline = Some(Instant::now() + close_deadline),
            }
        }
        if deadline.is_some() {
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(f) => batch.push(f),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
        }
        let finished: Vec<_> = batch.iter().map(|p| p.finished.clone()).collect();
        loop {
            let result = queue.finish(&finished).await;
            if let Err(e) = &result
                && is_script_error(e)
            {
                // Retrying cannot help: record the outcomes one by one so a
                // single poison entry does not hold back the rest.
                record_one_by_one(&queue, &held, &batch, &stats, &sink, e).await;
                break;
            }
            match result {
                Ok(recorded) => {
                    outage.recovered();
                    count_outcomes(&batch, &recorded, &stats, &sink).await;
                    for p in &batch {
                        held.remove_run(&p.run);
                    }
                    break;
                }
                Err(e) => {
                    let (wait, _) = outage.failed(&e, &stats);
                    if let Some(d) = deadline
                        && Instant::now() + wait > d
                    {
                        tracing::error!(
                            unrecorded = batch.len() + rx.len(),
                            "closing with outcomes Redis did not take; those jobs will run again when their leases expire"
                        );
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = closing.cancelled(), if deadline.is_none() => deadline = Some(Instant::now() + close_deadline),
                    }
                }
            }
        }
        batch.clear();
    }
}

/// A Lua runtime error (a job hash a foreign writer corrupted), as opposed
/// to Redis being unreachable, slow or restarting.
fn is_script_error(e: &QueueError) -> bool {
    matches!(e, QueueError::Redis(r) if r.to_string().contains("user_script"))
}

async fn record_one_by_one(
    queue: &Queue,
    held: &Held,
    batch: &[Pending],
    stats: &WorkerStats,
    sink: &OutcomeSink,
    cause: &QueueError,
) {
    tracing::error!(error = %cause, jobs = batch.len(), "outcome script failed; recording this batch one job at a time");
    for p in batch {
        match queue.finish(std::slice::from_ref(&p.finished)).await {
            Ok(recorded) => count_outcomes(std::slice::from_ref(p), &recorded, stats, sink).await,
            Err(e) => {
                // Stop renewing: the lease lapses and the reaper takes the job back.
                WorkerStats::add(&stats.redis_errors, 1);
                tracing::error!(job.id = %p.finished.id, error = %e, "cannot record this job's outcome; it will be retried when its lease lapses");
            }
        }
        held.remove_run(&p.run);
    }
}

/// Counts recorded outcomes and hands them to the sink (if any).
async fn count_outcomes(
    batch: &[Pending],
    recorded: &[Option<JobStatus>],
    stats: &WorkerStats,
    sink: &OutcomeSink,
) {
    let mut records = Vec::new();
    for (p, status) in batch.iter().zip(recorded) {
        let Some(status) = *status else {
            WorkerStats::add(&stats.stale_outcomes, 1);
            tracing::warn!(job.id = %p.finished.id, "outcome ignored: the lease had expired and the job was handed on");
            continue;
        };
        let counter = match status {
            JobStatus::Succeeded => &stats.succeeded,
            JobStatus::Cancelled => &stats.cancelled,
            JobStatus::Retrying => &stats.retried,
            _ => &stats.dead,
        };
        WorkerStats::add(counter, 1);
        if sink.is_some() {
            records.push(RecordedOutcome::new(p, status));
        }
    }
    if let Some(tx) = sink
        && !records.is_empty()
        && tx.send(records).await.is_err()
    {
        tracing::warn!("outcome sink closed; outcomes are recorded in Redis only");
    }
}

/// Promotes due jobs, reaps expired leases and applies retention, in bounded
/// steps. Every worker runs this; the scripts are atomic, so replicas can overlap.
pub(crate) async fn maintain(
    queue: Queue,
    worker: WorkerId,
    held: Arc<Held>,
    options: WorkerOptions,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) {
    let started_at_ms = epoch_ms(std::time::SystemTime::now());
    let mut outage = Outage::new("maintenance");
    let mut last_trim: Option<Instant> = None;
    let mut last_alive: Option<Instant> = None;
    loop {
        let mut pause = options.maintenance_interval;
        let step = async {
            if last_alive.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                let leases = held.leases();
                let report = WorkerReport {
                    id: worker.as_str().to_owned(),
                    started_at_ms,
                    concurrency: options.concurrency,
                    holding: leases.len(),
                    running: leases
                        .into_iter()
                        .take(WorkerReport::LISTED)
                        .map(|(id, _)| id)
                        .collect(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                };
                queue.worker_alive(&report).await?;
                last_alive = Some(Instant::now());
            }
            let (promoted, next_due) = queue.promote_due().await?;
            let reaped = queue.reap_expired().await?;
            let trim_due = last_trim.is_none_or(|t| t.elapsed() >= options.retention.every);
            let trimmed = if trim_due {
                Some(queue.trim(&options.retention).await?)
            } else {
                None
            };
            Ok::<_, QueueError>((promoted, next_due, reaped, trimmed))
        };
        match step.await {
            Ok((promoted, next_due, reaped, trimmed)) => {
                outage.recovered();
                WorkerStats::add(&stats.promoted, promoted);
                WorkerStats::add(&stats.reaped, reaped.expired);
                if reaped.expired > 0 {
                    tracing::warn!(queue = %queue.name(), requeued = reaped.requeued, dead = reaped.dead,
                        "took back jobs whose worker stopped renewing their lease");
                }
                if let Some(n) = trimmed {
                    last_trim = Some(Instant::now());
                    WorkerStats::add(&stats.trimmed, n);
                }
                if let Some(next) = next_due {
                    pause = pause.min(next.max(Duration::from_millis(1)));
                }
            }
            Err(e) => pause = outage.failed(&e, &stats).0,
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
    }
}
