//! `workspaces.apply_billing_mode`: sets the running mode of the listed
//! workspaces with `ModifyWorkspaceProperties`, after checking each against
//! the synced inventory. A dry run (the default) only says what it would
//! do. Each change made is written to Hangar's audit log under the admin
//! who asked for the job, and to the inventory at once (the next workspace
//! sync confirms it). A workspace AWS refuses (not found, wrong state) is
//! reported and the rest go on; throttling and 5xx are retried.

use hangar_shared::kinds::{ApplyBillingMode, WORKSPACES_APPLY_BILLING_MODE};
use serde_json::{Value, json};

use crate::{Progress, RunStats, SyncError, Syncer};

impl Syncer {
    /// Runs `workspaces.apply_billing_mode` job `job_id`.
    pub async fn apply_billing_mode(
        &self,
        job_id: &str,
        p: &ApplyBillingMode,
        progress: &impl Progress,
    ) -> Result<Value, SyncError> {
        let account = self.account(&p.account).await?;
        let (acct, region) = (p.account.as_str(), p.region.as_str());
        let ws = self.clients.get(&account, region).await.workspaces;
        let site = self.site(acct, region, "workspaces", "ModifyWorkspaceProperties");
        let requested_by: Option<String> =
            sqlx::query_scalar!("SELECT requested_by FROM job_runs WHERE id = $1", job_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten();
        let mut stats = RunStats::default();
        let mut outcomes = Vec::with_capacity(p.changes.len());
        let mut counts = std::collections::BTreeMap::<&str, u64>::new();
        for (i, change) in p.changes.iter().enumerate() {
            if progress.cancelled() {
                return Err(SyncError::Cancelled(format!(
                    "stopped after {i} of {} workspaces; those done are in the audit log",
                    p.changes.len()
                )));
            }
            let to = change.running_mode.as_str();
            let current = sqlx::query!(
                "SELECT running_mode, state FROM workspaces
                 WHERE account = $1 AND region = $2 AND workspace_id = $3 AND deleted_at IS NULL",
                acct,
                region,
                change.workspace_id
            )
            .fetch_optional(&self.pool)
            .await?;
            let (outcome, from, error) = match current {
                None => (
                    "not_found",
                    None,
                    Some("not in the synced inventory of this account and region".to_owned()),
                ),
                Some(c) if c.running_mode.as_deref() == Some(to) => ("unchanged", c.running_mode, None),
                Some(c) if p.dry_run => ("would_change", c.running_mode, None),
                Some(c) => {
                    let props = aws_sdk_workspaces::types::WorkspaceProperties::builder()
                        .running_mode(aws_sdk_workspaces::types::RunningMode::from(to))
                        .build();
                    let call = self
                        .caller
                        .call(&site, &mut stats, || {
                            ws.modify_workspace_properties()
                                .workspace_id(&change.workspace_id)
                                .workspace_properties(props.clone())
                                .send()
                        })
                        .await;
                    match call {
                        Ok(_) => {
                            self.record_mode_change(
                                job_id,
                                requested_by.as_deref(),
                                p,
                                &change.workspace_id,
                                c.running_mode.as_deref(),
                                to,
                            )
                            .await?;
                            ("changed", c.running_mode, None)
                        }
                        Err(e) if e.is_permanent() => ("refused", c.running_mode, Some(e.to_string())),
                        Err(e) => return Err(e),
                    }
                }
            };
            *counts.entry(outcome).or_default() += 1;
            outcomes.push(json!({
                "workspace_id": change.workspace_id, "from": from, "to": to, "outcome": outcome, "error": error,
            }));
            progress
                .report(json!({"done": i + 1, "of": p.changes.len(), "dry_run": p.dry_run}))
                .await;
        }
        tracing::info!(account = acct, region, dry_run = p.dry_run, counts = ?counts, "billing modes applied");
        Ok(json!({
            "account": acct,
            "region": region,
            "dry_run": p.dry_run,
            "counts": counts,
            "changes": outcomes,
            "stats": stats,
        }))
    }

    /// Writes one change to the inventory and to the audit log.
    async fn record_mode_change(
        &self,
        job_id: &str,
        requested_by: Option<&str>,
        p: &ApplyBillingMode,
        workspace_id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), SyncError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE workspaces SET running_mode = $4,
                    auto_stop_timeout_minutes = CASE WHEN $4 = 'AUTO_STOP' THEN COALESCE(auto_stop_timeout_minutes, 60) END,
                    updated_at = now()
             WHERE account = $1 AND region = $2 AND workspace_id = $3",
            p.account,
            p.region,
            workspace_id,
            to
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO audit_log (actor, role, auth, action, method, path, target, status, request_id)
             VALUES ($1, 'admin', 'job', $2, 'JOB', $3, $4, 200, $5)",
            requested_by.unwrap_or("unknown"),
            WORKSPACES_APPLY_BILLING_MODE,
            format!("/api/v1/jobs/{job_id}"),
            format!(
                "{}/{}/{workspace_id}: {} -> {to}",
                p.account,
                p.region,
                from.unwrap_or("unknown")
            ),
            job_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
