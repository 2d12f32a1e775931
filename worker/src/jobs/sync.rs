//! Handlers of the `sync.*` kinds, over `hangar-sync`.

use apalis_core::error::BoxDynError;
use hangar_queue::{JobContext, permanent};
use hangar_shared::kinds::{ApplyBillingMode, BillingSync, CloudTrailSync, UsageSync, WorkspacesSync};
use hangar_sync::SyncError;
use serde_json::Value;

use super::{Env, Run};

impl Run for WorkspacesSync {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        sync_result(Box::pin(env.syncer.sync_workspaces(job.id(), job.deliveries(), &self, job)).await)
    }
}

impl Run for CloudTrailSync {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        sync_result(Box::pin(env.syncer.sync_cloudtrail(job.id(), job.deliveries(), &self, job)).await)
    }
}

impl Run for BillingSync {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        sync_result(Box::pin(env.syncer.sync_billing(job.id(), job.deliveries(), &self, job)).await)
    }
}

impl Run for UsageSync {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        sync_result(Box::pin(env.syncer.sync_usage(job.id(), job.deliveries(), &self, job)).await)
    }
}

impl Run for ApplyBillingMode {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        sync_result(Box::pin(env.syncer.apply_billing_mode(job.id(), &self, job)).await)
    }
}

/// A sync's error as the queue sees it: permanent ones (refused
/// credentials, missing permissions, invalid requests, spent budget) go
/// dead at once with their explanation; the rest are retried.
fn sync_result(result: Result<Value, SyncError>) -> Result<Value, BoxDynError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) if e.is_permanent() => {
            tracing::error!(error = %e, "sync failed permanently");
            Err(permanent(e.to_string()).into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "sync attempt failed");
            Err(e.to_string().into())
        }
    }
}
