//! The worker's side of the job kinds: each kind's handler ([`Run`]), one
//! module per family, and the dispatch by kind name, built from the same
//! list as everything else ([`hangar_shared::register_kinds!`]): a kind
//! registered without a handler does not compile.

mod inference;
mod report;
mod sync;
mod system;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    time::Instant,
};

use apalis_core::{error::BoxDynError, task::data::Data};
use hangar_inference::ChatRunner;
use hangar_queue::{JobContext, permanent};
use hangar_shared::kinds::{self, JobKind};
use hangar_sync::Syncer;
use serde_json::Value;

use crate::metrics::WorkerMetrics;

/// What handlers work with: one environment for every kind, handed to the
/// apalis worker once.
pub struct Env {
    /// PostgreSQL.
    pub pool: sqlx::PgPool,
    /// The AWS syncs.
    pub syncer: Arc<Syncer>,
    /// Chat completions on the configured model servers.
    pub chat: Arc<ChatRunner>,
    /// Report files: the tables they read and the store they go to.
    pub reports: hangar_reports::Reports,
    /// The worker's metrics.
    pub metrics: Arc<WorkerMetrics>,
    /// Every configured queue (a bulk action cancels and retries jobs of
    /// any queue, not only those this worker serves).
    pub queues: Arc<std::collections::BTreeMap<String, hangar_queue::Queue>>,
}

/// A kind's handler: runs one attempt of a job with a decoded payload.
/// An `Err` is retried by the kind's policy unless it is
/// [`hangar_queue::permanent`] (or deferred).
pub trait Run: JobKind {
    /// Runs the job.
    fn run(self, job: &JobContext, env: &Env) -> impl Future<Output = Result<Value, BoxDynError>> + Send;
}

type Outcome<'a> = Pin<Box<dyn Future<Output = Result<Value, BoxDynError>> + Send + 'a>>;
type Handler = for<'a> fn(&'a Value, &'a JobContext, &'a Env) -> Outcome<'a>;

/// The handlers by kind name.
#[derive(Default)]
pub struct Dispatcher {
    handlers: HashMap<&'static str, Handler>,
}

impl Dispatcher {
    /// Registers `K`'s handler (called by [`hangar_shared::register_kinds!`]).
    #[must_use]
    pub fn add<K: Run>(mut self) -> Self {
        self.handlers.insert(K::NAME, run_as::<K>);
        self
    }

    /// Whether a handler for `kind` is registered.
    pub fn handles(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }
}

/// Decodes the payload as `K` (one that does not decode can never run:
/// permanent) and runs it. Boxed: the sync futures are large.
fn run_as<'a, K: Run>(payload: &'a Value, job: &'a JobContext, env: &'a Env) -> Outcome<'a> {
    Box::pin(async move {
        let p: K = kinds::decode(payload).map_err(|e| permanent(e.to_string()))?;
        p.run(job, env).await
    })
}

static DISPATCHER: LazyLock<Dispatcher> =
    LazyLock::new(|| hangar_shared::register_kinds!(Dispatcher::default()));

/// The registered handlers.
pub fn dispatcher() -> &'static Dispatcher {
    &DISPATCHER
}

/// Runs the job's kind. An unknown kind is a permanent failure: no retry can
/// make a handler appear.
pub async fn dispatch(payload: Value, job: JobContext, env: Data<Arc<Env>>) -> Result<Value, BoxDynError> {
    env.metrics.started(job.kind());
    let start = Instant::now();
    let result = match DISPATCHER.handlers.get(job.kind()) {
        Some(handler) => handler(&payload, &job, &env).await,
        None => Err(permanent(format!("this worker has no handler for kind {:?}", job.kind())).into()),
    };
    let label = match &result {
        Ok(_) => "ok",
        // Given back without running (its model is not ready): not a failure.
        Err(e) if e.downcast_ref::<hangar_queue::Deferred>().is_some() => "deferred",
        Err(_) => "error",
    };
    env.metrics.finished(job.kind(), label, start.elapsed());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_kind_has_a_handler() {
        for k in kinds::all() {
            assert!(dispatcher().handles(k.name), "{} has no handler", k.name);
        }
        assert!(!dispatcher().handles("system.nope"));
    }
}
