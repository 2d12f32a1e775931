//! What a job kind is ([`JobKind`]) and the queues kinds run on: a leaf
//! that the family modules implement and the registry reads.

use hangar_queue::RetryPolicy;
use serde::{Serialize, de::DeserializeOwned};

use super::payload::PayloadError;
use crate::{models::ModelRegistry, role::Role};

/// The sync queue (AWS syncs and diagnostics).
pub const QUEUE_SYNC: &str = "sync";
/// The reports queue.
pub const QUEUE_REPORTS: &str = "reports";
/// The inference queue.
pub const QUEUE_INFERENCE: &str = "inference";
/// The control queue: short admin jobs that act on other jobs (bulk cancel
/// and retry). Every worker serves it with one slot besides its own queues,
/// so a clogged work queue never holds up the action that clears it.
pub const QUEUE_CONTROL: &str = "control";
/// Every queue Hangar knows.
pub const QUEUES: &[&str] = &[QUEUE_SYNC, QUEUE_REPORTS, QUEUE_INFERENCE, QUEUE_CONTROL];

/// What a job of a kind is aimed at, for "sync now" and fan-out schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing in particular (diagnostics, housekeeping, inference).
    None,
    /// One (account, region): the payload carries both.
    Region,
    /// One account, all regions at once (Cost Explorer is global): the
    /// payload carries the account; the job's region is `GLOBAL_REGION`.
    Account,
}

/// The time window a targeting kind's payload may carry as `start`/`end`
/// (what "sync now" accepts in its body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// No window: the kind reads the current state.
    None,
    /// Calendar days (`YYYY-MM-DD`), end exclusive.
    Dates,
    /// RFC 3339 times.
    Times,
}

/// What validation may consult beyond the payload: the deployment's
/// configuration (the model registry, for inference).
#[derive(Clone, Copy)]
pub struct Deployment<'a> {
    /// The configured model servers.
    pub models: &'a ModelRegistry,
}

/// A job kind: its payload type and everything Hangar needs to know about
/// it. The worker adds the handler (`hangar_worker::jobs::Run`).
pub trait JobKind: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name, e.g. `sync.workspaces`: stored with every job, used in
    /// schedules and metrics; never rename one.
    const NAME: &'static str;
    /// The queue it runs on (one of [`QUEUES`]).
    const QUEUE: &'static str;
    /// The least role that may submit it, on every path that does (the
    /// jobs API, schedule creation and changes, run-now). Kinds that delete
    /// data or can hold worker slots for minutes need `admin`.
    const ROLE: Role = Role::Operator;
    /// Attempts and the backoff between them.
    const RETRY: RetryPolicy;
    /// What a job is aimed at; account-targeting kinds fan out.
    const TARGET: Target = Target::None;
    /// The `start`/`end` window its payload may carry.
    const WINDOW: Window = Window::None;

    /// Checks the decoded payload's values (ranges, combinations); unknown
    /// and missing fields were refused when it was decoded.
    fn check(&self) -> Result<(), PayloadError> {
        Ok(())
    }

    /// Checks what depends on the deployment and fills in its defaults
    /// (an inference job's model must be configured).
    fn fit_to(&mut self, _deployment: &Deployment<'_>) -> Result<(), PayloadError> {
        Ok(())
    }

    /// The key that allows one open job at a time (a sync per target), if
    /// the kind has one.
    fn singleton_key(&self) -> Option<String> {
        None
    }
}
