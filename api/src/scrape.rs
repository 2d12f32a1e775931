//! What `GET /metrics` reads from Redis and PostgreSQL at each scrape:
//! queue depths, workers and latency, whether a scheduler leads, each sync
//! target's last success, the Cost Explorer budget left, and whether each
//! dependency answered. Every read is bounded by `HANGAR_READY_TIMEOUT_MS`,
//! so a dead dependency shows as `hangar_dependency_up 0` instead of a
//! scrape that hangs until Prometheus gives up and loses every series.

use std::{future::Future, time::Duration};

use chrono::{Datelike, NaiveDate, Utc};
use hangar_queue::LeaseLock;
use hangar_shared::schedule::LEADER_LOCK;

use crate::state::AppState;

/// Runs `f` within `timeout`; a timeout or an error is logged and `None`.
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    timeout: Duration,
    f: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, what, "metrics: read failed");
            None
        }
        Err(_) => {
            tracing::warn!(?timeout, what, "metrics: no answer in time");
            None
        }
    }
}

/// Refreshes every gauge the API computes at scrape time.
pub async fn refresh(state: &AppState) {
    let redis_up = refresh_redis(state).await;
    state.metrics.set_dependency_up("redis", redis_up);
    let postgres_up = refresh_postgres(state).await;
    state.metrics.set_dependency_up("postgres", postgres_up);
    let size = state.pool.size();
    let idle = state.pool.num_idle() as u32;
    state.metrics.set_pool(size.saturating_sub(idle), idle);
}

/// Queues and the scheduler lease; `false` if Redis failed a read. The
/// first failure ends the round, so a Redis that does not answer costs one
/// timeout per scrape, not one per queue.
async fn refresh_redis(state: &AppState) -> bool {
    let timeout = state.config.api.ready_timeout;
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    for (name, q) in state.queues.iter() {
        let read = async {
            let counts = q.counts().await?;
            let workers = q.workers_alive(crate::routes::queues::ALIVE_WITHIN).await?;
            let oldest = q.oldest_waiting().await?;
            Ok::<_, hangar_queue::QueueError>((counts, workers, oldest))
        };
        match bounded("queue", timeout, read).await {
            Some((counts, workers, oldest)) => {
                state.metrics.set_queue(name, &counts, workers);
                let age = oldest.map_or(0, |due| now_ms.saturating_sub(due));
                state.metrics.set_oldest_waiting(name, Duration::from_millis(age));
            }
            None => return false,
        }
    }
    let holder = LeaseLock::holder(&state.redis, &state.config.redis.prefix, LEADER_LOCK);
    match bounded("scheduler leader", timeout, holder).await {
        Some(h) => {
            state.metrics.set_leader_present(h.is_some());
            true
        }
        None => false,
    }
}

/// Sync targets and the Cost Explorer budget; `false` if PostgreSQL failed.
async fn refresh_postgres(state: &AppState) -> bool {
    let timeout = state.config.api.ready_timeout;
    let Some(targets) = bounded("sync targets", timeout, crate::sync_status::sync_targets(state)).await
    else {
        return false;
    };
    state.metrics.set_sync_successes(targets.iter().filter_map(|t| {
        Some((
            t.kind,
            t.account.as_str(),
            t.region.as_str(),
            t.last_ok?.timestamp(),
        ))
    }));
    match bounded("cost explorer budget", timeout, ce_budget_left(state)).await {
        Some(left) => {
            state
                .metrics
                .set_ce_budget(state.config.aws.ce_monthly_budget, &left);
            true
        }
        None => false,
    }
}

/// Requests each configured account has left of this month's Cost Explorer
/// budget (none when the budget is 0: Cost Explorer is off). The month is
/// the UTC calendar month, as the billing sync counts it.
async fn ce_budget_left(state: &AppState) -> sqlx::Result<Vec<(String, i64)>> {
    let budget = i64::from(state.config.aws.ce_monthly_budget);
    if budget == 0 {
        return Ok(Vec::new());
    }
    let today = Utc::now().date_naive();
    let month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let used = sqlx::query!(
        "SELECT account, used FROM aws_request_budget WHERE month = $1 AND api = 'ce'",
        month
    )
    .fetch_all(&state.pool)
    .await?;
    let mut accounts: Vec<String> = state.config.aws.accounts().into_iter().map(|a| a.name).collect();
    accounts.sort();
    accounts.dedup();
    Ok(accounts
        .into_iter()
        .map(|account| {
            let spent = used
                .iter()
                .find(|u| u.account == account)
                .map_or(0, |u| i64::from(u.used));
            (account, (budget - spent).max(0))
        })
        .collect())
}
