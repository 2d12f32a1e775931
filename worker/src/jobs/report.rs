//! Handlers of the `report.*` kinds, over `hangar-reports`: the file is
//! written and published while the rows written so far are reported as
//! progress; a cancel stops it before anything is published. A report that
//! asks for it is then announced at the webhook.

use std::future::Future;

use apalis_core::error::BoxDynError;
use hangar_queue::JobContext;
use hangar_shared::kinds::{
    AuditLogReport, AuditReport, BillingModeReport, CostsReport, InventoryReport, JobKind, ReportJob,
    UnusedReport,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Env, Run};

impl Run for InventoryReport {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        with_progress(job, env, &self, |rows| {
            env.reports.inventory(job.id(), &self, rows)
        })
        .await
    }
}

impl Run for UnusedReport {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        with_progress(job, env, &self, |rows| env.reports.unused(job.id(), &self, rows)).await
    }
}

impl Run for BillingModeReport {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        with_progress(job, env, &self, |rows| {
            env.reports.billing_mode(job.id(), &self, rows)
        })
        .await
    }
}

impl Run for CostsReport {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        with_progress(job, env, &self, |rows| env.reports.costs(job.id(), &self, rows)).await
    }
}

impl Run for AuditReport {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        with_progress(job, env, &self, |rows| env.reports.audit(job.id(), &self, rows)).await
    }
}

impl Run for AuditLogReport {
    async fn run(self, job: &JobContext, env: &Env) -> Result<Value, BoxDynError> {
        with_progress(job, env, &self, |rows| {
            env.reports.audit_log(job.id(), &self, rows)
        })
        .await
    }
}

/// Runs `report` (given a callback for its row count) while publishing that
/// count as the job's progress, until it ends or the job is cancelled; then
/// announces it at the webhook if `payload` asks for that.
async fn with_progress<'a, K, F, Fut>(
    job: &JobContext,
    env: &Env,
    payload: &K,
    report: F,
) -> Result<Value, BoxDynError>
where
    K: JobKind + ReportJob,
    F: FnOnce(Box<dyn FnMut(u64) + Send + 'a>) -> Fut,
    Fut: Future<Output = anyhow::Result<hangar_reports::Published>>,
{
    let (tx, mut rx) = watch::channel(0u64);
    let work = report(Box::new(move |rows| {
        tx.send_replace(rows);
    }));
    // Ends when the report does (its sender is dropped with it).
    let publish = async {
        while rx.changed().await.is_ok() {
            let rows = *rx.borrow_and_update();
            job.report_progress(json!({"rows": rows})).await;
        }
    };
    let published = tokio::select! {
        (result, ()) = async { tokio::join!(work, publish) } => result.map_err(|e| {
            tracing::warn!(error = %e, "report attempt failed");
            e.to_string()
        })?,
        () = job.cancelled() => return Err("cancelled while writing the report; nothing was published".into()),
    };
    tracing::info!(rows = published.rows, bytes = published.bytes, key = %published.key, "report published");
    let mut result = published.result();
    if payload.webhook() {
        job.report_progress(json!({"rows": published.rows, "step": "webhook"}))
            .await;
        result["webhook"] = env
            .reports
            .announce(job.id(), K::NAME, payload.format(), &published)
            .await;
    }
    Ok(result)
}
