//! `GET /api/v1/jobs/{id}/explain`: "why is my job not running?" answered
//! from what PostgreSQL records and what Redis holds now, for every
//! situation Hangar can hold a job in (see [`Reason`]).

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use hangar_queue::{JobState, JobStatus, LeaseLock, Queue};
use hangar_shared::db::JobRun;

use crate::{
    error::ApiError,
    schema,
    state::AppState,
    views::{
        explain::{Explanation, Facts, Reason},
        from_millis,
    },
};

/// The window a queue's drain rate is measured over.
const DRAIN_WINDOW: Duration = Duration::from_secs(300);

/// A running sync counts as held back by the AWS rate limiter when at least
/// this share of its time so far went to waiting for its turn.
const RATE_LIMITED_SHARE: f64 = 0.5;

/// Explain a job
///
/// Why the job is where it is: one sentence, a stable `reason` code and the
/// facts behind it. For an open job: queued behind N jobs (with the queue's
/// drain over the last 5 minutes and an estimated start), no worker alive
/// for its queue (since when), scheduled for later, backing off after a
/// failed attempt (with the error), waiting for its model (with its
/// health), waiting for another job of the same sync target (that job's
/// id), running (on which worker; held back by the AWS rate limiter or
/// waiting for a model slot), or recorded but unknown to Redis (when the
/// repair loop dispatches it). For a finished one: succeeded, cancelled,
/// or dead (out of attempts, failed permanently, or crashed its worker).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/explain", operation_id = "explain_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Why the job is where it is", body = Explanation),
        (status = 404, description = "No such job", body = schema::ErrorBody),
        (status = 503, description = "Redis or PostgreSQL did not answer", body = schema::ErrorBody)),
    security(("bearer" = ["viewer"])))]
pub async fn explain(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Explanation>, ApiError> {
    let (run, queue) = super::jobs::job_and_queue(&state, &id).await?;
    let live = queue.state(&id).await?;
    let (reason, explanation, facts) = match &live {
        None if run.state.is_open() => not_in_redis(&state, &run),
        None => finished(&run, None),
        Some(live) => explain_live(&state, queue, &run, live).await?,
    };
    Ok(Json(Explanation {
        id: run.id.clone(),
        kind: run.kind.clone(),
        queue: run.queue.clone(),
        state: live.as_ref().map_or(run.state, |l| l.status).as_str().to_owned(),
        reason,
        explanation,
        facts,
    }))
}

type Explained = (Reason, String, Facts);

async fn explain_live(
    state: &AppState,
    queue: &Queue,
    run: &JobRun,
    live: &JobState,
) -> Result<Explained, ApiError> {
    Ok(match live.status {
        JobStatus::Succeeded | JobStatus::Cancelled | JobStatus::Dead => finished(run, Some(live)),
        JobStatus::Running => running(state, run, live),
        JobStatus::Queued => queued(state, queue, run, live).await?,
        JobStatus::Scheduled | JobStatus::Retrying => waiting(state, queue, run, live).await?,
    })
}

/// Recorded as open, unknown to Redis: the repair loop dispatches jobs
/// older than its minimum age, every repair interval.
fn not_in_redis(state: &AppState, run: &JobRun) -> Explained {
    let scheduler = &state.config.scheduler;
    let age = (Utc::now() - run.created_at).to_std().unwrap_or_default();
    let within = scheduler.repair_min_age.saturating_sub(age) + scheduler.repair_interval;
    let explanation = format!(
        "Recorded as {} but Redis does not hold it (Redis lost its data, or it was recorded while Redis was down); \
         the scheduler's repair loop dispatches it again within {}, if a hangar-scheduler is running.",
        run.state.as_str(),
        human(within)
    );
    let facts = Facts {
        recorded_state: Some(run.state.as_str().to_owned()),
        repair_within_seconds: Some(within.as_secs()),
        ..Facts::default()
    };
    (Reason::NotInRedis, explanation, facts)
}

/// Succeeded, cancelled or dead, from Redis's state while it keeps the job
/// (crashes are only there), else from the record.
fn finished(run: &JobRun, live: Option<&JobState>) -> Explained {
    let status = live.map_or(run.state, |l| l.status);
    let finished_at = live
        .and_then(|l| l.finished_at.and_then(from_millis))
        .or(run.finished_at);
    let attempts = live.map_or(u32::try_from(run.attempts).unwrap_or(0), |l| l.attempts);
    let max_attempts = live.map_or(u32::try_from(run.max_attempts).unwrap_or(0), |l| l.max_attempts);
    let last_error = live
        .and_then(|l| l.last_error.clone())
        .or_else(|| run.error.clone());
    let when = finished_at.map_or_else(String::new, |t| format!(" at {}", t.to_rfc3339()));
    let mut facts = Facts {
        finished_at,
        attempt: Some(attempts),
        max_attempts: Some(max_attempts),
        ..Facts::default()
    };
    let (reason, explanation) = match status {
        JobStatus::Succeeded => (
            Reason::Succeeded,
            format!("Succeeded{when} after {attempts} attempt(s)."),
        ),
        JobStatus::Cancelled => (
            Reason::Cancelled,
            format!("Cancelled{when}; it will not run again unless retried."),
        ),
        _ => {
            let crashes = live.map(|l| (l.crashes, l.max_crashes));
            let error = last_error.clone().unwrap_or_else(|| "no error recorded".into());
            let why = match crashes {
                Some((c, max)) if max > 0 && c >= max => {
                    format!("it crashed its worker {c} times (killed or frozen mid-run; {max} tolerated)")
                }
                _ if attempts >= max_attempts && max_attempts > 1 => {
                    format!("it ran out of attempts ({attempts} of {max_attempts}); the last error: {error}")
                }
                _ => format!("it failed permanently (retrying cannot help): {error}"),
            };
            if let Some((c, max)) = crashes {
                facts.crashes = Some(c);
                facts.max_crashes = Some(max);
            }
            (
                Reason::Dead,
                format!(
                    "Dead{when}: {why}. Fix the cause, then retry it (POST /api/v1/jobs/{}/retry).",
                    run.id
                ),
            )
        }
    };
    facts.last_error = last_error;
    (reason, explanation, facts)
}

fn running(state: &AppState, run: &JobRun, live: &JobState) -> Explained {
    let started = live.started_at.and_then(from_millis);
    let worker = live.worker.clone().unwrap_or_else(|| "a worker".into());
    let since = started.map_or_else(String::new, |t| format!(" since {}", t.to_rfc3339()));
    let attempt = live.attempts + 1;
    let progress = live.progress.as_ref();
    let phase = progress.and_then(|p| p["phase"].as_str());
    let mut facts = Facts {
        worker: live.worker.clone(),
        started_at: started,
        attempt: Some(attempt),
        max_attempts: Some(live.max_attempts),
        ..Facts::default()
    };
    let running_ms = started.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64);
    let waited_ms = progress.and_then(|p| p["rate_limit_wait_ms"].as_f64());
    if let Some(model) = model_of(run) {
        let health = state.models.health(&model);
        facts.model = Some(model.clone());
        match phase {
            Some("waiting_for_slot") => {
                facts.model_health = health;
                return (
                    Reason::WaitingForSlot,
                    format!(
                        "Running on {worker}{since}, waiting for a free slot on model {model}'s server: \
                         every slot is busy with other jobs (the in-flight cap shared by all workers)."
                    ),
                    facts,
                );
            }
            Some("waiting_for_model") => {
                let status = health.as_ref().map_or("unknown", |h| h.status);
                facts.model_health = health;
                return (
                    Reason::WaitingForModel,
                    format!(
                        "Running on {worker}{since}, waiting for model {model} to be ready (it is {status})."
                    ),
                    facts,
                );
            }
            _ => {}
        }
    }
    if let Some(waited) = waited_ms {
        facts.rate_limit_wait_ms = Some(waited);
        if running_ms > 1000.0 && waited >= RATE_LIMITED_SHARE * running_ms {
            let share = (100.0 * waited / running_ms).min(100.0);
            return (
                Reason::RateLimited,
                format!(
                    "Running on {worker}{since}, held back by the AWS rate limiter: {share:.0} % of its time so far \
                     went to waiting for its turn (the pace all workers share per account and region, \
                     HANGAR_AWS_RATES; AWS's own quota is close to it)."
                ),
                facts,
            );
        }
    }
    let step = progress
        .and_then(|p| p["step"].as_str().or(p["phase"].as_str()))
        .map_or_else(String::new, |s| format!(", at step {s}"));
    (
        Reason::Running,
        format!(
            "Running on {worker}{since} (attempt {attempt} of {}){step}.",
            live.max_attempts
        ),
        facts,
    )
}

/// Ready for a worker: is there one, and how many jobs are ahead?
async fn queued(
    state: &AppState,
    queue: &Queue,
    run: &JobRun,
    live: &JobState,
) -> Result<Explained, ApiError> {
    let workers = match serving_workers(queue).await? {
        Ok(n) => n,
        Err(no_worker) => return Ok(no_worker),
    };
    if let Some(waiting) = model_not_ready(state, run, live) {
        return Ok(waiting);
    }
    let position = queue.ready_position(&run.id).await?;
    let since_ms = epoch_ms(Utc::now()).saturating_sub(DRAIN_WINDOW.as_millis() as u64);
    let drained = queue.finished_since(since_ms).await?;
    let per_second = drained as f64 / DRAIN_WINDOW.as_secs_f64();
    let ahead = position.unwrap_or(0);
    let estimate = (per_second > 0.0).then(|| Duration::from_secs_f64((ahead + 1) as f64 / per_second));
    let pace = match estimate {
        Some(e) => format!(
            "the queue finished {drained} jobs in the last 5 minutes, so it should start in about {}",
            human(e)
        ),
        None => "the queue finished no job in the last 5 minutes, so no estimate can be made (are its workers busy with long jobs?)".to_owned(),
    };
    let facts = Facts {
        position: Some(ahead),
        drain_per_minute: Some(per_second * 60.0),
        estimated_start: estimate
            .and_then(|e| chrono::Duration::from_std(e).ok())
            .map(|e| Utc::now() + e),
        workers_alive: Some(workers),
        ..Facts::default()
    };
    Ok((
        Reason::QueuedBehind,
        format!(
            "Queued behind {ahead} job(s) on {} with {workers} worker(s) serving it; {pace}.",
            run.queue
        ),
        facts,
    ))
}

/// Scheduled or retrying: a lock held by another job of the same target,
/// a model that is not ready, a backoff, or a later start.
async fn waiting(
    state: &AppState,
    queue: &Queue,
    run: &JobRun,
    live: &JobState,
) -> Result<Explained, ApiError> {
    let run_at = live.run_at.and_then(from_millis);
    let at = run_at.map_or_else(|| "soon".to_owned(), |t| t.to_rfc3339());
    let due = run_at.is_none_or(|t| t <= Utc::now());
    if due && let Err(no_worker) = serving_workers(queue).await? {
        return Ok(no_worker);
    }
    if live.status == JobStatus::Retrying {
        if let Some(busy) = singleton_busy(state, run, live, &at).await? {
            return Ok(busy);
        }
        if let Some(waiting) = model_not_ready(state, run, live) {
            return Ok(waiting);
        }
        let error = live
            .last_error
            .clone()
            .unwrap_or_else(|| "no error recorded".into());
        let facts = Facts {
            run_at,
            attempt: Some(live.attempts),
            max_attempts: Some(live.max_attempts),
            last_error: live.last_error.clone(),
            ..Facts::default()
        };
        return Ok((
            Reason::RetryBackoff,
            format!(
                "Attempt {} of {} failed; the next starts at {at} (exponential backoff). The last error: {error}",
                live.attempts, live.max_attempts
            ),
            facts,
        ));
    }
    let facts = Facts {
        run_at,
        ..Facts::default()
    };
    Ok((
        Reason::Scheduled,
        format!("Scheduled to start at {at}, as it was asked to; it becomes ready then."),
        facts,
    ))
}

/// The workers serving `queue` that reported in recently, or, when there
/// are none, the explanation that says so.
async fn serving_workers(queue: &Queue) -> Result<Result<u64, Explained>, ApiError> {
    let alive = queue.workers_alive(super::queues::ALIVE_WITHIN).await?;
    if alive > 0 {
        return Ok(Ok(alive));
    }
    let last = queue.last_worker_report().await?.and_then(from_millis);
    let since = last.map_or_else(
        || "no worker has ever reported in for it".to_owned(),
        |t| format!("none has reported in since {}", t.to_rfc3339()),
    );
    let facts = Facts {
        workers_alive: Some(0),
        last_worker_seen_at: last,
        ..Facts::default()
    };
    Ok(Err((
        Reason::NoWorker,
        format!(
            "No worker serves queue {}: {since}. Start a hangar-worker whose HANGAR_QUEUES includes {}, \
             with the same Redis and HANGAR_REDIS_PREFIX as the API.",
            queue.name(),
            queue.name()
        ),
        facts,
    )))
}

/// `Some` for an inference job whose model is not ready (workers do not
/// lease, or give the job back, until it is).
fn model_not_ready(state: &AppState, run: &JobRun, live: &JobState) -> Option<Explained> {
    let model = model_of(run)?;
    let health = state.models.health(&model);
    let ready = health.as_ref().is_some_and(|h| h.ready);
    let deferred = live
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("is not ready"));
    if ready && !deferred {
        return None;
    }
    let status = health.as_ref().map_or("unknown", |h| h.status);
    let error = health
        .as_ref()
        .and_then(|h| h.last_error.clone())
        .map_or_else(String::new, |e| format!(" (last error: {e})"));
    let facts = Facts {
        model: Some(model.clone()),
        model_health: health,
        run_at: live.run_at.and_then(from_millis),
        last_error: live.last_error.clone(),
        ..Facts::default()
    };
    Some((
        Reason::WaitingForModel,
        format!(
            "Waiting for model {model}, which is {status}{error}; it runs once the model answers its health \
             probe and has warmed up, without using up an attempt. GET /api/models shows every model's health."
        ),
        facts,
    ))
}

/// `Some` when another job of the same sync target holds its lock.
async fn singleton_busy(
    state: &AppState,
    run: &JobRun,
    live: &JobState,
    at: &str,
) -> Result<Option<Explained>, ApiError> {
    let Some(lock) = hangar_shared::kinds::kind(&run.kind).and_then(|k| k.singleton_key(&run.payload)) else {
        return Ok(None);
    };
    let holder = LeaseLock::holder(&state.redis, &state.config.redis.prefix, &lock).await?;
    let Some(holder) = holder.and_then(|h| h.split('#').next().map(str::to_owned)) else {
        return Ok(None);
    };
    if holder == run.id {
        return Ok(None);
    }
    let facts = Facts {
        lock: Some(lock.clone()),
        holder_job_id: Some(holder.clone()),
        run_at: live.run_at.and_then(from_millis),
        attempt: Some(live.attempts),
        max_attempts: Some(live.max_attempts),
        last_error: live.last_error.clone(),
        ..Facts::default()
    };
    Ok(Some((
        Reason::SingletonBusy,
        format!(
            "Waiting for job {holder}, which holds {lock} (one sync per kind, account and region runs at a time); \
             this job tries again at {at}."
        ),
        facts,
    )))
}

/// The model an inference job asks for.
fn model_of(run: &JobRun) -> Option<String> {
    (run.queue == hangar_shared::kinds::QUEUE_INFERENCE)
        .then(|| run.payload["model"].as_str().map(str::to_owned))
        .flatten()
}

fn epoch_ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// "45 s", "3 min", "2 h 5 min".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(61)), "2 min");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
    }
}
