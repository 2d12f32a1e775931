//! The periodic scheduler (Celery Beat's replacement). Every replica runs
//! [`Beat::pass`] each tick interval; only the holder of the leader lease (a
//! Redis lease lock) fires. A leader killed with -9 stops renewing, its lease
//! lapses, and the next replica to pass takes over: within one lease plus
//! one tick interval.
//!
//! Firing is idempotent, so a leader change mid-pass cannot double a tick:
//! each tick's job id and idempotency key derive from the schedule name and
//! the scheduled time ([`schedule::tick_job_id`]), and `job_runs` keeps one
//! row per id. Each schedule's cursor (the newest tick accounted for) lives
//! in `schedule_state`, so the next leader continues where the last stopped
//! and fires the gap by the schedule's catch-up policy.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use hangar_queue::RedisConn;
use hangar_queue::{LeaseLock, LockOutcome, Queue};
use hangar_shared::{
    config::AwsConfig,
    db::{self, Inserted, NewJobRun},
    schedule::{self, Fire, Schedule},
};

use crate::metrics::SchedulerMetrics;
use sqlx::PgPool;

/// Where "now" comes from: the system clock in production, a clock the
/// test moves in tests (no waiting for real minutes).
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Starting at `t`.
    pub fn new(t: DateTime<Utc>) -> Self {
        Self(Mutex::new(t))
    }

    /// Moves the clock by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// This replica held the leader lease.
    pub leader: bool,
    /// Jobs created for ticks on time.
    pub fired: usize,
    /// Jobs created for missed ticks (catch-up).
    pub caught_up: usize,
    /// Ticks whose job already existed (fired before, e.g. by a previous leader).
    pub duplicates: usize,
    /// Ticks skipped because the schedule's previous job is still open.
    pub skipped_overlap: usize,
    /// Missed ticks the catch-up policy dropped.
    pub dropped: usize,
    /// Schedules whose pass failed (retried next tick).
    pub failed: usize,
}

/// The scheduler's firing half. Cheap to share; one per replica.
pub struct Beat {
    pool: PgPool,
    queues: Arc<BTreeMap<String, Queue>>,
    leader: LeaseLock,
    schedules: Vec<Schedule>,
    grace: Duration,
    clock: Arc<dyn Clock>,
    leading: AtomicBool,
    metrics: Arc<SchedulerMetrics>,
    aws: Option<Arc<AwsConfig>>,
    /// When the schedule intervals were last exported while leading.
    intervals_exported: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Beat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beat")
            .field("schedules", &self.schedules.len())
            .finish()
    }
}

impl Beat {
    /// A beat for `replica` (a name unique to this process) over `schedules`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        queues: Arc<BTreeMap<String, Queue>>,
        redis: RedisConn,
        prefix: &str,
        replica: &str,
        schedules: Vec<Schedule>,
        lease: Duration,
        grace: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            pool,
            queues,
            leader: LeaseLock::new(redis, prefix, schedule::LEADER_LOCK, replica, 0, lease),
            schedules,
            grace,
            clock,
            leading: AtomicBool::new(false),
            metrics: Arc::default(),
            aws: None,
            intervals_exported: Mutex::new(None),
        }
    }

    /// The accounts and regions fan-out schedules (syncs without an
    /// account) fire for.
    pub fn with_aws(mut self, aws: AwsConfig) -> Self {
        self.aws = Some(Arc::new(aws));
        self
    }

    /// The (key, payload) of each job a tick of `s` creates.
    fn targets(&self, s: &Schedule) -> Vec<(String, serde_json::Value)> {
        match &self.aws {
            Some(aws) => schedule::job_targets(s, aws),
            None if s.fans_out() => {
                tracing::error!(schedule = %s.spec.name, "fan-out schedule but no AWS accounts configured");
                Vec::new()
            }
            None => vec![(s.spec.name.clone(), s.spec.payload.clone())],
        }
    }

    /// Counts into `metrics` (shared with the `/metrics` endpoint).
    pub fn with_metrics(mut self, metrics: Arc<SchedulerMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The schedules this beat fires.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// Takes or renews the leader lease and, when leading, fires every due
    /// tick of every enabled schedule.
    pub async fn pass(&self) -> anyhow::Result<PassReport> {
        let leader = matches!(self.leader.try_acquire().await?, LockOutcome::Acquired);
        if self.leading.swap(leader, Ordering::Relaxed) != leader {
            self.metrics.leader_changed(leader);
            if leader {
                tracing::info!("became the scheduler leader");
            } else {
                tracing::warn!("lost the scheduler leader lease");
            }
        }
        let mut report = PassReport {
            leader,
            ..PassReport::default()
        };
        if !leader {
            if self
                .intervals_exported
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some()
            {
                self.metrics.schedule_intervals(None);
            }
            return Ok(report);
        }
        let now = self.clock.now();
        let managed = self.managed_schedules().await?;
        self.export_intervals(self.schedules.iter().chain(&managed), now);
        // Every cursor in one query, not one per schedule per tick.
        let cursors: std::collections::HashMap<String, DateTime<Utc>> =
            sqlx::query!("SELECT name, cursor FROM schedule_state")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|r| (r.name, r.cursor))
                .collect();
        for s in self.schedules.iter().chain(&managed) {
            let cursor = cursors.get(&s.spec.name).copied();
            // One schedule's failure (a database error, a bad stored
            // definition) must not stop the others: log, count, go on.
            if let Err(e) = self.pass_one(s, cursor, now, &mut report).await {
                report.failed += 1;
                self.metrics.failed(&s.spec.name);
                tracing::error!(schedule = %s.spec.name, error = %e, "schedule pass failed; retried next tick");
            }
        }
        Ok(report)
    }

    /// Plans and fires one schedule, then records how far it looked. A
    /// disabled schedule only moves its cursor, so enabling it later does
    /// not replay the time it was off.
    async fn pass_one(
        &self,
        s: &Schedule,
        cursor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let (plan_cursor, last_job) = if s.spec.enabled {
            let plan = schedule::plan(s, cursor, now, self.grace);
            report.dropped += plan.dropped;
            if plan.dropped > 0 {
                self.metrics.dropped(&s.spec.name, plan.dropped);
                tracing::warn!(schedule = %s.spec.name, dropped = plan.dropped, policy = ?s.spec.catch_up,
                    "missed ticks dropped by the catch-up policy");
            }
            (plan.cursor, self.fire(s, &plan.fires, report).await?)
        } else {
            (now, None)
        };
        sqlx::query!(
            "INSERT INTO schedule_state (name, cursor, last_job_id, last_fired_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
               cursor = GREATEST(schedule_state.cursor, EXCLUDED.cursor),
               last_job_id = COALESCE(EXCLUDED.last_job_id, schedule_state.last_job_id),
               last_fired_at = COALESCE(EXCLUDED.last_fired_at, schedule_state.last_fired_at),
               updated_at = now()",
            s.spec.name,
            plan_cursor,
            last_job.as_ref().map(|(id, _)| id.clone()),
            last_job.as_ref().map(|(_, at)| *at),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Exports each enabled schedule's longest gap between ticks over the
    /// next 8 days (what a staleness alert compares a sync's last success
    /// with), at most once a minute: finding the ticks is the costly part.
    fn export_intervals<'a>(&self, schedules: impl Iterator<Item = &'a Schedule>, now: DateTime<Utc>) {
        const EVERY: Duration = Duration::from_secs(60);
        const WITHIN: Duration = Duration::from_secs(8 * 86_400);
        {
            let mut last = self.intervals_exported.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let intervals: Vec<(&str, &str, Duration)> = schedules
            .filter(|s| s.spec.enabled)
            .filter_map(|s| {
                Some((
                    s.spec.name.as_str(),
                    s.spec.kind.as_str(),
                    s.longest_interval(now, WITHIN)?,
                ))
            })
            .collect();
        self.metrics.schedule_intervals(Some(&intervals));
    }

    /// The schedules managed through the API (the `schedules` table), read
    /// every pass so changes apply at once. One that no longer validates
    /// (e.g. a kind this build dropped) is skipped with an error, not fatal.
    async fn managed_schedules(&self) -> anyhow::Result<Vec<Schedule>> {
        let rows = sqlx::query!("SELECT name, spec FROM schedules ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            if self.schedules.iter().any(|s| s.spec.name == row.name) {
                tracing::error!(schedule = %row.name, "defined in the schedules file and the API; the file's wins");
                continue;
            }
            let spec = serde_json::from_value::<schedule::ScheduleSpec>(row.spec)
                .map_err(|e| e.to_string())
                .and_then(|spec| Schedule::new(spec).map_err(|e| format!("{}: {}", e.field, e.message)));
            match spec {
                Ok(s) => out.push(s),
                Err(e) => {
                    tracing::error!(schedule = %row.name, error = %e, "stored schedule is invalid; skipped")
                }
            }
        }
        Ok(out)
    }

    /// Records and queues one job per fire; returns the newest job created.
    async fn fire(
        &self,
        s: &Schedule,
        fires: &[Fire],
        report: &mut PassReport,
    ) -> anyhow::Result<Option<(String, DateTime<Utc>)>> {
        if fires.is_empty() {
            return Ok(None);
        }
        let spec = &s.spec;
        let targets = self.targets(s);
        let mut runs: Vec<NewJobRun> = Vec::new();
        let mut run_fires: Vec<&Fire> = Vec::new();
        for f in fires {
            for (key, payload) in &targets {
                let jitter = s.jitter_for(key, f.at);
                let run_at = (!jitter.is_zero() && !f.catch_up)
                    .then(|| f.at + chrono::Duration::from_std(jitter).unwrap_or_default());
                runs.push(
                    schedule::job_for(s, key, payload)
                        .map_err(|e| anyhow::anyhow!("schedule {}: {}: {}", spec.name, e.field, e.message))?
                        .id(schedule::tick_job_id(key, f.at).to_string())
                        .run_at(run_at)
                        // Tick keys are the scheduler's own and global by design.
                        .idempotency(None, schedule::tick_idempotency_key(key, f.at)),
                );
                run_fires.push(f);
            }
        }
        if runs.is_empty() {
            return Ok(None);
        }
        // One schedule, one queue (the schedule's, else its kind's).
        let queue = runs[0].queue.clone();
        // Each fire starts a trace (`tick <schedule>`); its jobs continue it
        // from the `send` span, and a tick skipped for an open job links
        // that job's trace.
        let tick = hangar_shared::traces::linked_root_span(
            &format!("tick {}", spec.name),
            runs.len(),
            std::iter::empty(),
        );
        let send = tick.in_scope(|| {
            let only = if runs.len() == 1 { runs[0].id.as_str() } else { "" };
            hangar_shared::traces::send_span(&queue, only)
        });
        if let Some(traceparent) = hangar_queue::trace_context::of(&send) {
            for run in &mut runs {
                run.traceparent = Some(traceparent.clone());
            }
        }
        let results =
            tracing::Instrument::instrument(db::insert_jobs(&self.pool, &runs), send.clone()).await?;
        let mut created = Vec::new();
        let mut newest = None;
        for ((run, fire), result) in runs.iter().zip(run_fires).zip(results) {
            match result {
                Inserted::New(row) => {
                    if fire.catch_up {
                        report.caught_up += 1;
                    } else {
                        report.fired += 1;
                    }
                    tracing::info!(schedule = %spec.name, tick = %fire.at, job = %row.id, catch_up = fire.catch_up, "fired");
                    self.metrics.fired(&spec.name, fire.catch_up);
                    newest = Some((row.id.clone(), fire.at));
                    created.push(crate::repair::redispatch_job(&row)?);
                }
                Inserted::Existing(row) if row.id == run.id => report.duplicates += 1,
                Inserted::Existing(row) | Inserted::KeyReused(row) => {
                    if let Some(t) = &row.traceparent {
                        hangar_queue::trace_context::link(&tick, t);
                    }
                    report.skipped_overlap += 1;
                    self.metrics.skipped_overlap(&spec.name);
                    tracing::info!(schedule = %spec.name, tick = %fire.at, open_job = %row.id,
                        "previous job still open; tick skipped (overlap = skip_if_running)");
                }
            }
        }
        if !created.is_empty() {
            // Recorded first: if Redis fails here, the repair loop dispatches them.
            match self.queues.get(&queue) {
                Some(q) => {
                    if let Err(e) =
                        tracing::Instrument::instrument(q.enqueue_batch(created), send.clone()).await
                    {
                        tracing::warn!(schedule = %spec.name, error = %e, "redis enqueue failed; the repair loop will dispatch");
                    }
                }
                None => tracing::error!(schedule = %spec.name, queue, "queue not configured"),
            }
        }
        Ok(newest)
    }

    /// Gives the lease up (on shutdown), so another replica leads at once.
    pub async fn resign(&self) {
        if self.leading.load(Ordering::Relaxed) {
            match self.leader.release().await {
                Ok(_) => tracing::info!("resigned the scheduler leader lease"),
                Err(e) => tracing::warn!(error = %e, "could not resign; the lease lapses on its own"),
            }
        }
    }
}
