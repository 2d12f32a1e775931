//! Each sync target (kind, account, region): when it last succeeded and the
//! job open for it now. Read by the console's overview and by `/metrics`
//! (`hangar_sync_last_success_timestamp_seconds`, what the sync-staleness
//! alert watches).

use chrono::{DateTime, Utc};

use crate::state::AppState;

/// One sync target.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// The kind's full name (`sync.workspaces`), as in metric labels.
    pub kind: &'static str,
    /// `workspaces`, `cloudtrail`, `billing` or `usage`.
    pub short: String,
    /// The account.
    pub account: String,
    /// The region (`global` for account-wide kinds).
    pub region: String,
    /// When it last succeeded.
    pub last_ok: Option<DateTime<Utc>>,
    /// The job open for it now.
    pub open_job: Option<String>,
}

/// Every configured target of every sync kind. Found by the jobs'
/// singleton key (one per kind, account and region): two index lookups
/// per target, however long the job history.
pub async fn sync_targets(state: &AppState) -> sqlx::Result<Vec<SyncTarget>> {
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for (short, kind) in hangar_shared::kinds::syncs() {
        for (account, region) in hangar_shared::kinds::targets(&state.config.aws, kind, None, None) {
            keys.push(hangar_shared::kinds::sync_singleton_key(
                kind.name, &account, &region,
            ));
            rows.push(SyncTarget {
                kind: kind.name,
                short: short.to_owned(),
                account,
                region,
                last_ok: None,
                open_job: None,
            });
        }
    }
    let found = sqlx::query!(
        r#"SELECT t.key AS "key!",
                  (SELECT max(j.finished_at) FROM job_runs j
                   WHERE j.singleton_key = t.key AND j.state = 'succeeded') AS last_ok,
                  (SELECT s.job_id FROM job_singletons s WHERE s.singleton_key = t.key) AS open_job
           FROM unnest($1::text[]) AS t(key)"#,
        &keys[..],
    )
    .fetch_all(&state.pool)
    .await?;
    let mut found: std::collections::HashMap<String, _> = found
        .into_iter()
        .map(|f| (f.key, (f.last_ok, f.open_job)))
        .collect();
    for (row, key) in rows.iter_mut().zip(&keys) {
        if let Some((last_ok, open_job)) = found.remove(key) {
            row.last_ok = last_ok;
            row.open_job = open_job;
        }
    }
    Ok(rows)
}
