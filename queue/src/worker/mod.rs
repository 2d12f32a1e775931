//! The apalis 1.0 backend: [`HangarBackend`] feeds a `WorkerBuilder` with jobs
//! claimed from one queue, and its middleware records each attempt's outcome.
//!
//! ```ignore
//! let backend = HangarBackend::<serde_json::Value>::new(queue, WorkerOptions::default())?;
//! let worker = WorkerBuilder::new("sync").backend(backend).build(handle);
//! Monitor::new().register(move |_| worker).run().await?;
//! ```
//!
//! Per worker (one queue in one process) the backend runs: a fetch loop that
//! claims as many jobs as there are free slots (the backend enforces the
//! queue's concurrency itself); a lease renewer on its own OS thread; an
//! outcome recorder that batches acks; and a maintenance loop that promotes
//! due jobs, reaps expired leases and applies retention.

mod ack;
mod context;
mod lease;
mod loops;
mod run;

use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    task::{Task, builder::TaskBuilder, task_id::TaskId},
    worker::context::WorkerContext,
};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use ack::{AckLayer, AckService, Deferred, defer, permanent};
pub use context::JobContext;
pub use run::{DiedWith, RecordedOutcome, WorkerStats};

use self::{
    ack::AckShared,
    loops::{Delivery, Fetcher},
    run::{Held, Pending, Run},
};
use crate::{
    error::{QueueError, Result},
    identity::WorkerId,
    options::WorkerOptions,
    queue::{Outcome, Queue},
};

/// How long closing waits for Redis to take the last outcomes.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// An apalis backend over one Hangar queue. `Args` is decoded from the job's
/// JSON payload; a payload that does not decode sends the job to dead with
/// the decoding error (it can never succeed), and the worker carries on.
pub struct HangarBackend<Args> {
    queue: Queue,
    options: WorkerOptions,
    worker: WorkerId,
    held: Arc<Held>,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
    outcomes: mpsc::UnboundedSender<Pending>,
    outcomes_rx: Option<mpsc::UnboundedReceiver<Pending>>,
    rx: Option<mpsc::Receiver<Delivery>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    closing: Option<Pin<Box<dyn Future<Output = Result<()>> + Send>>>,
    rng: Arc<Mutex<fastrand::Rng>>,
    sink: loops::OutcomeSink,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for HangarBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HangarBackend")
            .field("queue", &self.queue)
            .field("worker", &self.worker)
            .finish()
    }
}

/// Lets a supervisor act on a running backend from outside the apalis worker.
#[derive(Clone, Debug)]
pub struct BackendHandle {
    queue: Queue,
    held: Arc<Held>,
    stats: Arc<WorkerStats>,
    worker: WorkerId,
}

impl BackendHandle {
    /// Counters of this backend.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Identity recorded on the jobs this backend claims.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker
    }

    /// Jobs currently held (claimed and not yet finished).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Gives back every job still held whose handler has not returned, for
    /// when a drain deadline passes: started jobs keep their delivery count,
    /// unstarted ones do not. Their handlers are told to stop. Returns how
    /// many were released.
    pub async fn release_held(&self) -> Result<u64> {
        let runs = self.held.take_unfinished();
        let mut released = 0;
        for unstarted in [true, false] {
            let leases: Vec<(String, String)> = runs
                .iter()
                .filter(|r| r.started() != unstarted)
                .map(|r| (r.claimed.id.clone(), r.claimed.token.clone()))
                .collect();
            if !leases.is_empty() {
                released += self.queue.release(&leases, unstarted).await?;
            }
        }
        for r in &runs {
            r.cancel.cancel();
        }
        Ok(released)
    }
}

impl<Args> HangarBackend<Args> {
    /// A backend for `queue` with `options`; starts its loops on first poll.
    pub fn new(queue: Queue, options: WorkerOptions) -> Result<Self> {
        options.validate().map_err(QueueError::InvalidJob)?;
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        Ok(Self {
            queue,
            options,
            worker: WorkerId::generate(),
            held: Arc::default(),
            stats: Arc::default(),
            stop: CancellationToken::new(),
            outcomes,
            outcomes_rx: Some(outcomes_rx),
            rx: None,
            tasks: Vec::new(),
            renewer: None,
            closing: None,
            rng: Arc::new(Mutex::new(fastrand::Rng::new())),
            sink: None,
            _args: PhantomData,
        })
    }

    /// Sends every recorded outcome (in batches, after Redis took them) to
    /// `sink`, e.g. to keep a durable record elsewhere. Backpressure: a full
    /// sink slows the recording of outcomes, it never drops them.
    #[must_use]
    pub fn with_outcome_sink(mut self, sink: mpsc::Sender<Vec<RecordedOutcome>>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// A handle for supervision (stats, release on deadline).
    pub fn handle(&self) -> BackendHandle {
        BackendHandle {
            queue: self.queue.clone(),
            held: self.held.clone(),
            stats: self.stats.clone(),
            worker: self.worker.clone(),
        }
    }

    fn start(&mut self, apalis: &WorkerContext) -> Result<()> {
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let (tx, rx) = mpsc::channel(self.options.concurrency);
        self.rx = Some(rx);
        let fetcher = Fetcher {
            queue: self.queue.clone(),
            options: self.options.clone(),
            worker: self.worker.clone(),
            slots,
            held: self.held.clone(),
            stats: self.stats.clone(),
            tx,
            stop: self.stop.clone(),
            apalis: apalis.clone(),
        };
        self.tasks.push(tokio::spawn(fetcher.run()));
        self.tasks.push(tokio::spawn(loops::maintain(
            self.queue.clone(),
            self.worker.clone(),
            self.held.clone(),
            self.options.clone(),
            self.stats.clone(),
            self.stop.clone(),
        )));
        if let Some(outcomes_rx) = self.outcomes_rx.take() {
            self.tasks.push(tokio::spawn(loops::record_outcomes(
                self.queue.clone(),
                self.held.clone(),
                outcomes_rx,
                self.options.ack_batch,
                self.stats.clone(),
                self.sink.take(),
                self.stop.clone(),
                CLOSE_DEADLINE,
            )));
        }
        let renewer = lease::spawn_renewer(
            self.queue.clone(),
            self.options.clone(),
            self.held.clone(),
            self.stats.clone(),
            self.stop.clone(),
        )
        .map_err(|e| QueueError::Protocol(format!("cannot start the lease thread: {e}")))?;
        self.renewer = Some(renewer);
        tracing::info!(queue = %self.queue.name(), worker = %self.worker,
            concurrency = self.options.concurrency, "worker started");
        Ok(())
    }

    /// Turns a delivery into an apalis task, or records it as dead if its
    /// payload cannot be decoded.
    fn task_for(&self, run: &Arc<Run>) -> Option<Task<Args>>
    where
        Args: DeserializeOwned,
    {
        if !self.held.holds(run) {
            // Released (drain deadline) or superseded while it waited: not ours to run.
            run.release_slot();
            return None;
        }
        match serde_json::from_str::<Args>(&run.claimed.payload) {
            Ok(args) => {
                let ctx = JobContext {
                    run: run.clone(),
                    queue: self.queue.clone(),
                    worker: self.worker.clone(),
                };
                Some(
                    TaskBuilder::new(args)
                        .task_id(TaskId::from_string(run.claimed.id.clone()))
                        .attempt(run.claimed.attempts as usize)
                        .max_attempts(run.claimed.max_attempts as usize)
                        .lock_by(Some(self.worker.to_string()))
                        .data(ctx)
                        .build(),
                )
            }
            Err(e) => {
                let error = format!(
                    "payload does not decode as {}: {e}",
                    std::any::type_name::<Args>()
                );
                tracing::error!(job.id = %run.claimed.id, job.kind = %run.claimed.kind, %error, "moving to dead");
                run.release_slot();
                let _ = self
                    .outcomes
                    .send(Pending::new(run.clone(), Outcome::Dead { error }));
                None
            }
        }
    }

    fn close_future(&mut self) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
        self.stop.cancel();
        let rx = self.rx.take();
        let tasks = std::mem::take(&mut self.tasks);
        let renewer = self.renewer.take();
        let queue = self.queue.clone();
        let held = self.held.clone();
        let worker = self.worker.clone();
        Box::pin(async move {
            // Jobs fetched but never handed to a handler go back, uncounted.
            let mut unstarted = Vec::new();
            if let Some(mut rx) = rx {
                rx.close();
                while let Some(d) = rx.recv().await {
                    if let Ok(run) = d {
                        held.remove_run(&run);
                        unstarted.push((run.claimed.id.clone(), run.claimed.token.clone()));
                    }
                }
            }
            let result = if unstarted.is_empty() {
                Ok(())
            } else {
                queue.release(&unstarted, true).await.map(|n| {
                    tracing::info!(released = n, "returned fetched but unstarted jobs to the queue");
                })
            };
            let drain = async {
                for t in tasks {
                    let _ = t.await;
                }
            };
            if tokio::time::timeout(CLOSE_DEADLINE + Duration::from_secs(1), drain)
                .await
                .is_err()
            {
                tracing::error!("background loops did not stop within {CLOSE_DEADLINE:?}");
            }
            if let Some(r) = renewer {
                let join = tokio::task::spawn_blocking(move || r.join());
                if tokio::time::timeout(CLOSE_DEADLINE, join).await.is_err() {
                    tracing::error!("lease thread did not stop within {CLOSE_DEADLINE:?}");
                }
            }
            tracing::info!(worker = %worker, "worker stopped");
            result
        })
    }
}

/// Dropped without being closed (apalis ends a worker on a backend error
/// without calling `poll_close`; a supervisor may drop a worker future):
/// stop every loop and give back the jobs still held, so nothing keeps
/// renewing leases for jobs no handler will finish.
impl<Args> Drop for HangarBackend<Args> {
    fn drop(&mut self) {
        if self.rx.is_none() || self.closing.is_some() {
            return; // never started, or closed properly
        }
        self.stop.cancel();
        let handle = self.handle();
        let runs = self.held.len();
        if runs == 0 {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    match handle.release_held().await {
                        Ok(n) => tracing::warn!(released = n, "backend dropped without closing; gave its jobs back"),
                        Err(e) => tracing::warn!(error = %e, "backend dropped; could not give jobs back, their leases will lapse"),
                    }
                });
            }
            Err(_) => tracing::warn!(runs, "backend dropped outside a runtime; held leases will lapse"),
        }
    }
}

impl<Args: DeserializeOwned + Send + 'static> Backend for HangarBackend<Args> {
    type Task = Task<Args>;
    type Error = QueueError;

    fn poll_ready(&mut self, _cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<()>> {
        if self.rx.is_none() && self.closing.is_none() {
            self.start(worker)?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Args>>>> {
        loop {
            let Some(rx) = self.rx.as_mut() else {
                return Poll::Ready(None);
            };
            match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(run))) => {
                    if let Some(task) = self.task_for(&run) {
                        return Poll::Ready(Some(Ok(task)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _worker: &WorkerContext) -> Poll<Result<()>> {
        if self.closing.is_none() {
            let fut = self.close_future();
            self.closing = Some(fut);
        }
        match self.closing.as_mut() {
            Some(fut) => fut.as_mut().poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<Args> BackendConfig for HangarBackend<Args> {
    type Args = Args;
    type Id = String;
    type Kind = Ephemeral;
    type Config = WorkerOptions;
    type Layer = AckLayer;

    fn config(&self) -> &WorkerOptions {
        &self.options
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> AckLayer {
        AckLayer {
            shared: AckShared {
                outcomes: self.outcomes.clone(),
                held: self.held.clone(),
                policies: self.queue.policies().clone(),
                stats: self.stats.clone(),
                rng: self.rng.clone(),
                queue: self.queue.name().to_string().into(),
            },
        }
    }
}
