//! Hangar's scheduler: fires periodic schedules ([`beat`]) on the replica
//! that holds the leader lease, and runs the repair loop ([`repair`]) on
//! every replica. It only enqueues, never runs jobs.

pub mod beat;
pub mod metrics;
pub mod repair;

use std::{collections::BTreeMap, future::Future, sync::Arc};

use hangar_queue::Queue;
use hangar_shared::{Config, db, kinds, schedule};

/// Every queue, sharing one Redis connection.
pub async fn queues(config: &Config) -> anyhow::Result<BTreeMap<String, Queue>> {
    hangar_shared::open_queues(config, kinds::QUEUES.iter().copied()).await
}

/// The configured schedules, validated: `HANGAR_SCHEDULES_FILE`, the
/// shipped ones (`deploy/schedules.toml`) when it is empty, none for `none`.
pub fn load_schedules(config: &Config) -> anyhow::Result<Vec<schedule::Schedule>> {
    schedule::load_file(config).map_err(|e| anyhow::anyhow!(e))
}

/// Every schedule with its settings and next `count` fire times (UTC and
/// the schedule's own zone), for `hangar-scheduler list`.
pub fn describe(
    schedules: &[schedule::Schedule],
    now: chrono::DateTime<chrono::Utc>,
    count: usize,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if schedules.is_empty() {
        out.push_str("no schedules (HANGAR_SCHEDULES_FILE=none)\n");
    }
    for s in schedules {
        let spec = &s.spec;
        let _ = writeln!(
            out,
            "{}  cron {:?} in {}  kind {} on {}  {}  catch_up {:?} (cap {})  overlap {:?}  jitter {}s",
            spec.name,
            spec.cron,
            spec.timezone,
            spec.kind,
            spec.queue.as_deref().unwrap_or("?"),
            if spec.enabled { "enabled" } else { "DISABLED" },
            spec.catch_up,
            spec.catch_up_cap,
            spec.overlap,
            spec.jitter_secs,
        );
        for t in s.upcoming(now, count) {
            let tz: chrono_tz::Tz = spec.timezone.parse().unwrap_or(chrono_tz::UTC);
            let _ = writeln!(
                out,
                "    {}  ({})",
                t.format("%Y-%m-%d %H:%M:%S UTC"),
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z")
            );
        }
    }
    out
}

/// Tops up `job_runs`'s weeks ahead and reports the horizon. A failure is
/// logged and retried next pass: the horizon is weeks long.
async fn keep_partitions_ahead(pool: &sqlx::PgPool, metrics: &metrics::SchedulerMetrics) {
    use db::partitions;
    if let Err(e) = partitions::ensure_ahead(pool, chrono::Utc::now(), partitions::WEEKS_AHEAD).await {
        tracing::warn!(error = %e, "could not create job_runs partitions ahead; retrying next repair pass");
    }
    match partitions::horizon(pool).await {
        Ok(Some(end)) => metrics.partition_horizon((end - chrono::Utc::now()).num_seconds()),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read job_runs partitions"),
    }
}

/// What the organization refresh keeps between refreshes: one SDK client
/// cache (its HTTPS connections and credentials) and one caller.
struct OrgReader {
    clients: Arc<hangar_sync::clients::ClientCache>,
    caller: hangar_sync::Caller,
}

impl OrgReader {
    fn new(config: &Config, redis: hangar_queue::RedisConn) -> Self {
        Self {
            clients: Arc::default(),
            caller: hangar_sync::Caller::new(
                Arc::new(config.aws.clone()),
                Arc::new(hangar_sync::metrics::SyncMetrics::default()),
                Some(hangar_queue::RateLimiter::new(redis, &config.redis.prefix)),
            ),
        }
    }
}

/// Reads the AWS Organization's accounts again (with
/// `HANGAR_AWS_ORGANIZATION_ROLE`); a failure keeps the last list, is
/// counted, and is retried at the next refresh.
async fn refresh_org_accounts(
    pool: &sqlx::PgPool,
    config: &Config,
    reader: &OrgReader,
    metrics: &metrics::SchedulerMetrics,
) {
    let Some(role) = &config.aws.organization_role else {
        return;
    };
    let (clients, caller) = (&reader.clients, &reader.caller);
    match hangar_sync::organizations::refresh(pool, &config.aws, role, clients, caller).await {
        Ok(d) => {
            metrics.org_refreshed(Some(d.active));
            tracing::info!(
                active = d.active,
                skipped_inactive = d.skipped,
                removed = d.removed,
                requests = d.requests,
                "organization accounts refreshed"
            );
        }
        Err(e) => {
            metrics.org_refreshed(None);
            tracing::warn!(error = %e, "cannot read the organization's accounts; keeping the last list");
        }
    }
}

/// Runs the beat (every tick interval) and the repair loop (every repair
/// interval) until `shutdown` resolves, then resigns the leader lease so
/// another replica takes over at once.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let _reports = hangar_shared::error_reports::init(&config.errors, "scheduler");
    let pool = db::pool(&config.database)?;
    // The AWS Organization's accounts (HANGAR_AWS_ORGANIZATION_ROLE), as the
    // scheduler last stored them; read again every minute.
    db::org_accounts::keep_loaded(
        pool.clone(),
        config.aws.clone(),
        std::time::Duration::from_secs(60),
    );
    let queues = Arc::new(queues(&config).await?);
    let schedules = load_schedules(&config)?;
    let replica = format!("scheduler-{}-{}", std::process::id(), ulid::Ulid::new());
    let metrics = Arc::new(metrics::SchedulerMetrics::default());
    tracing::info!(schedules = schedules.len(), replica = %replica, "scheduler starting");
    let redis = config.redis_settings().connect().await?;
    let beat = beat::Beat::new(
        pool.clone(),
        queues.clone(),
        redis.clone(),
        &config.redis.prefix,
        &replica,
        schedules,
        config.scheduler.leader_lease,
        config.scheduler.grace,
        Arc::new(beat::SystemClock),
    )
    .with_metrics(metrics.clone())
    .with_aws(config.aws.clone());
    let _metrics_server = match config.scheduler.metrics_bind {
        Some(bind) => {
            let served = metrics.clone();
            Some(hangar_shared::telemetry::serve_metrics(bind, "scheduler", move || served.render()).await?)
        }
        None => None,
    };
    tracing::info!(every = ?config.scheduler.repair_interval, "repair loop started");
    tokio::pin!(shutdown);
    let mut next_repair = tokio::time::Instant::now();
    let mut next_org_refresh = tokio::time::Instant::now();
    let org_reader = OrgReader::new(&config, redis);
    loop {
        // Before the beat, so a fan-out schedule's first tick already
        // covers the organization's accounts.
        if config.aws.organization_role.is_some() && tokio::time::Instant::now() >= next_org_refresh {
            next_org_refresh = tokio::time::Instant::now() + config.aws.organization_refresh;
            // Boxed: the SDK's futures would otherwise make run's own ~17 KB.
            Box::pin(refresh_org_accounts(&pool, &config, &org_reader, &metrics)).await;
        }
        match beat.pass().await {
            Ok(r) if r.fired + r.caught_up + r.skipped_overlap + r.dropped > 0 => tracing::info!(
                fired = r.fired,
                caught_up = r.caught_up,
                skipped_overlap = r.skipped_overlap,
                dropped = r.dropped,
                "scheduler pass"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler pass failed; retrying next tick"),
        }
        if tokio::time::Instant::now() >= next_repair {
            next_repair = tokio::time::Instant::now() + config.scheduler.repair_interval;
            let started = std::time::Instant::now();
            let outcome = repair::repair_once(&pool, &queues, config.scheduler.repair_min_age).await;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            metrics.repair_pass(started.elapsed(), outcome.as_ref().ok());
            match outcome {
                Ok(r) if r.redispatched > 0 || r.reconciled > 0 => {
                    tracing::info!(
                        scanned = r.scanned,
                        redispatched = r.redispatched,
                        reconciled = r.reconciled,
                        ms,
                        "repair pass"
                    );
                }
                Ok(r) => tracing::debug!(scanned = r.scanned, ms, "repair pass: nothing to do"),
                Err(e) => tracing::warn!(error = %e, ms, "repair pass failed; retrying next period"),
            }
            keep_partitions_ahead(&pool, &metrics).await;
        }
        tokio::select! {
            () = tokio::time::sleep(config.scheduler.tick_interval) => {}
            () = &mut shutdown => break,
        }
    }
    beat.resign().await;
    tracing::info!("hangar-scheduler stopped");
    Ok(())
}
