//! The beat against real Redis and PostgreSQL with a clock the test moves:
//! several replicas over many ticks fire each tick exactly once, a leader
//! that stops (as if killed) loses no tick, and overlaps are skipped.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use hangar_queue::{Queue, RedisSettings};
use hangar_scheduler::{
    beat::{Beat, ManualClock},
    metrics::SchedulerMetrics,
};
use hangar_shared::schedule;
use hangar_tests::{TestDb, postgres_admin_url, redis_url};

struct Env {
    db: TestDb,
    pool: sqlx::PgPool,
    prefix: String,
    queues: Arc<BTreeMap<String, Queue>>,
    clock: Arc<ManualClock>,
}

async fn env(start: &str) -> Env {
    let db = TestDb::create(&postgres_admin_url()).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let settings = RedisSettings::new(redis_url());
    let mut queues = BTreeMap::new();
    for q in hangar_shared::kinds::QUEUES {
        queues.insert(
            (*q).to_owned(),
            Queue::connect(&settings, &prefix, q).await.unwrap(),
        );
    }
    Env {
        db,
        pool,
        prefix,
        queues: Arc::new(queues),
        clock: Arc::new(ManualClock::new(start.parse::<DateTime<Utc>>().unwrap())),
    }
}

impl Env {
    async fn replica(&self, name: &str, schedules: &str, lease: Duration) -> Beat {
        let conn = RedisSettings::new(redis_url()).connect().await.unwrap();
        Beat::new(
            self.pool.clone(),
            self.queues.clone(),
            conn,
            &self.prefix,
            name,
            schedule::parse_file(schedules).unwrap(),
            lease,
            Duration::from_secs(60),
            self.clock.clone(),
        )
    }

    /// Ids of the jobs `schedule` created, sorted.
    async fn jobs(&self, schedule: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT id FROM job_runs WHERE requested_by = $1 ORDER BY id")
            .bind(format!("schedule:{schedule}"))
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

const EVERY_MINUTE: &str = r#"
[[schedule]]
name = "every-minute"
cron = "* * * * *"
kind = "system.noop"
overlap = "allow"
catch_up = "fire_all"
catch_up_cap = 100
"#;

fn tick_ids(name: &str, from: &str, minutes: i64) -> Vec<String> {
    let start: DateTime<Utc> = from.parse().unwrap();
    let mut ids: Vec<String> = (1..=minutes)
        .map(|m| schedule::tick_job_id(name, start + chrono::Duration::minutes(m)).to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn three_replicas_over_many_ticks_fire_each_tick_exactly_once() {
    let e = env("2026-11-22T00:00:00Z").await;
    let metrics: Arc<SchedulerMetrics> = Arc::default();
    let replicas = [
        e.replica("a", EVERY_MINUTE, Duration::from_secs(30))
            .await
            .with_metrics(metrics.clone()),
        e.replica("b", EVERY_MINUTE, Duration::from_secs(30)).await,
        e.replica("c", EVERY_MINUTE, Duration::from_secs(30)).await,
    ];
    // The first pass only sets the cursor: a new schedule has no past.
    for r in &replicas {
        r.pass().await.unwrap();
    }
    // 180 minutes in 20-second steps; every replica passes every step, concurrently.
    for _ in 0..(180 * 3) {
        e.clock.advance(chrono::Duration::seconds(20));
        let (a, b, c) = tokio::join!(replicas[0].pass(), replicas[1].pass(), replicas[2].pass());
        let leaders = [a.unwrap(), b.unwrap(), c.unwrap()]
            .iter()
            .filter(|r| r.leader)
            .count();
        assert_eq!(leaders, 1, "exactly one leader per pass");
    }
    let ids = e.jobs("every-minute").await;
    assert_eq!(
        ids,
        tick_ids("every-minute", "2026-11-22T00:00:00Z", 180),
        "one job per tick, none twice"
    );
    let queued = e.queues["sync"].counts().await.unwrap();
    assert_eq!(queued.ready, 180, "and each is in Redis once: {queued:?}");
    // Replica a led throughout: its metrics count every fire and one leader change.
    let text = metrics.render();
    for line in [
        r#"hangar_scheduler_fires_total{schedule="every-minute",catch_up="false"} 180"#,
        "hangar_scheduler_leader_changes_total 1",
        "hangar_scheduler_is_leader 1",
        r#"hangar_scheduler_schedule_interval_seconds{schedule="every-minute",kind="system.noop"} 60"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    drop(e.db);
}

#[tokio::test]
async fn a_leader_that_stops_loses_no_tick() {
    let e = env("2026-11-22T00:00:00Z").await;
    let lease = Duration::from_millis(400);
    let a = e.replica("a", EVERY_MINUTE, lease).await;
    let b = e.replica("b", EVERY_MINUTE, lease).await;
    assert!(a.pass().await.unwrap().leader);
    assert!(!b.pass().await.unwrap().leader);
    for _ in 0..10 {
        e.clock.advance(chrono::Duration::minutes(1));
        a.pass().await.unwrap();
        b.pass().await.unwrap();
    }
    // a dies (no resign, no more passes: what kill -9 leaves). Meanwhile 7
    // minutes pass; b takes over once the lease lapses and catches up.
    e.clock.advance(chrono::Duration::minutes(7));
    assert!(!b.pass().await.unwrap().leader, "the lease has not lapsed yet");
    tokio::time::sleep(lease * 2).await;
    let r = b.pass().await.unwrap();
    assert!(r.leader, "b took over");
    // The last two ticks are within the 60 s grace (on time); the 5 before
    // them fire as catch-up (fire_all).
    assert_eq!((r.fired, r.caught_up), (2, 5), "{r:?}");
    let ids = e.jobs("every-minute").await;
    assert_eq!(ids, tick_ids("every-minute", "2026-11-22T00:00:00Z", 17));
}

#[tokio::test]
async fn downtime_is_handled_by_each_catch_up_policy_and_overlaps_are_skipped() {
    let e = env("2026-11-22T00:00:00Z").await;
    let schedules = r#"
[[schedule]]
name = "skip"
cron = "*/5 * * * *"
kind = "system.noop"
overlap = "allow"
catch_up = "skip"

[[schedule]]
name = "once"
cron = "*/5 * * * *"
kind = "system.noop"
overlap = "allow"
catch_up = "fire_once"

[[schedule]]
name = "all"
cron = "*/5 * * * *"
kind = "system.noop"
overlap = "allow"
catch_up = "fire_all"
catch_up_cap = 4

[[schedule]]
name = "no-overlap"
cron = "* * * * *"
kind = "system.noop"
overlap = "skip_if_running"
"#;
    let r = e.replica("a", schedules, Duration::from_secs(30)).await;
    r.pass().await.unwrap();
    // Down for an hour (12 ticks of each */5 schedule), back 2 minutes after a tick.
    e.clock.advance(chrono::Duration::minutes(62));
    let report = r.pass().await.unwrap();
    assert_eq!(e.jobs("skip").await.len(), 0);
    assert_eq!(e.jobs("once").await.len(), 1);
    assert_eq!(e.jobs("all").await.len(), 4, "capped at 4");
    // no-overlap: its first job (no worker runs it) is still open; later ticks skip.
    assert_eq!(e.jobs("no-overlap").await.len(), 1);
    for _ in 0..3 {
        e.clock.advance(chrono::Duration::minutes(1));
        let p = r.pass().await.unwrap();
        assert_eq!(p.skipped_overlap, 1, "{p:?}");
    }
    assert_eq!(e.jobs("no-overlap").await.len(), 1);
    // skip: all 12; fire_once: 11 of 12; fire_all: 8 past the cap of 4;
    // no-overlap (fire_once, a tick on time): its 60 missed ticks.
    assert_eq!(report.dropped, 12 + 11 + 8 + 60);
}

#[tokio::test]
async fn a_sync_schedule_without_an_account_fires_one_job_per_configured_target() {
    let e = env("2026-11-22T00:00:00Z").await;
    let accounts =
        r#"[{"name":"prod","regions":["us-east-1","eu-west-1"]},{"name":"dev","regions":["us-west-2"]}]"#;
    let aws = hangar_shared::Config::from_lookup(&|k| match k {
        "HANGAR_DATABASE_URL" => Some("postgres://unused/x".into()),
        "HANGAR_AWS_ACCOUNTS" => Some(accounts.into()),
        _ => None,
    })
    .unwrap()
    .aws;
    let schedules = r#"
[[schedule]]
name = "ws"
cron = "0 * * * *"
kind = "sync.workspaces"

[[schedule]]
name = "costs"
cron = "0 * * * *"
kind = "sync.billing"
"#;
    let a = e
        .replica("a", schedules, Duration::from_secs(30))
        .await
        .with_aws(aws.clone());
    let b = e
        .replica("b", schedules, Duration::from_secs(30))
        .await
        .with_aws(aws);
    a.pass().await.unwrap();
    e.clock.advance(chrono::Duration::minutes(60));
    let r = a.pass().await.unwrap();
    assert_eq!(
        r.fired,
        3 + 2,
        "3 (account, region) pairs; billing once per account: {r:?}"
    );
    // The same tick again (another replica, or a pass repeated after a crash): nothing new.
    let _ = b.pass().await.unwrap();
    let again = a.pass().await.unwrap();
    assert_eq!(again.fired, 0);
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM job_runs WHERE requested_by = 'schedule:ws' ORDER BY payload->>'account', payload->>'region'",
    )
    .fetch_all(&e.pool)
    .await
    .unwrap();
    assert_eq!(
        payloads,
        vec![
            serde_json::json!({"account": "dev", "region": "us-west-2"}),
            serde_json::json!({"account": "prod", "region": "eu-west-1"}),
            serde_json::json!({"account": "prod", "region": "us-east-1"}),
        ]
    );
    assert_eq!(e.jobs("costs").await.len(), 2);
}

#[tokio::test]
async fn schedules_created_through_the_api_fire_from_the_next_pass() {
    let e = env("2026-11-22T00:00:00Z").await;
    let r = e.replica("a", "", Duration::from_secs(30)).await;
    r.pass().await.unwrap();
    let spec = serde_json::json!({"name": "api-made", "cron": "*/10 * * * *", "kind": "system.noop"});
    sqlx::query("INSERT INTO schedules (name, spec) VALUES ('api-made', $1)")
        .bind(&spec)
        .execute(&e.pool)
        .await
        .unwrap();
    r.pass().await.unwrap(); // first sight: the cursor starts now
    e.clock.advance(chrono::Duration::minutes(10));
    let p = r.pass().await.unwrap();
    assert_eq!(p.fired, 1, "{p:?}");
    assert_eq!(e.jobs("api-made").await.len(), 1);
    // A stored schedule that no longer validates is skipped, not fatal.
    sqlx::query("UPDATE schedules SET spec = jsonb_set(spec, '{kind}', '\"gone.kind\"')")
        .execute(&e.pool)
        .await
        .unwrap();
    e.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(r.pass().await.unwrap().fired, 0);
}

#[tokio::test]
async fn a_daily_schedule_in_a_dst_zone_fires_once_a_day_at_the_right_time_across_both_changes() {
    // Berlin: clocks jump 02:00 -> 03:00 on 2026-03-29 and 03:00 -> 02:00 on 2026-10-25.
    for (start, expected) in [
        (
            "2026-03-27T12:00:00Z",
            // 02:30 CET; the 29th has no 02:30: right after the jump (03:00 CEST); 02:30 CEST.
            [
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ],
        ),
        (
            "2026-10-23T12:00:00Z",
            // 02:30 CEST; the 25th has 02:30 twice: once, the first; 02:30 CET.
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ],
        ),
    ] {
        let e = env(start).await;
        let schedules = r#"
[[schedule]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
kind = "system.noop"
overlap = "allow"
"#;
        let r = e.replica("a", schedules, Duration::from_secs(30)).await;
        r.pass().await.unwrap();
        // Three days in 5-minute passes: every tick is on time.
        for _ in 0..(3 * 24 * 12) {
            e.clock.advance(chrono::Duration::minutes(5));
            r.pass().await.unwrap();
        }
        let fired: Vec<String> = e
            .jobs("nightly")
            .await
            .iter()
            .map(|id| {
                let ms = id.parse::<ulid::Ulid>().unwrap().timestamp_ms() as i64;
                chrono::DateTime::from_timestamp_millis(ms)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .collect();
        assert_eq!(fired, expected, "from {start}");
    }
}

#[tokio::test]
async fn the_schedule_state_records_the_last_job_and_its_tick() {
    let e = env("2026-11-22T00:00:00Z").await;
    let r = e.replica("a", EVERY_MINUTE, Duration::from_secs(30)).await;
    r.pass().await.unwrap();
    e.clock.advance(chrono::Duration::minutes(3));
    r.pass().await.unwrap();
    let (job, tick): (String, DateTime<Utc>) =
        sqlx::query_as("SELECT last_job_id, last_fired_at FROM schedule_state WHERE name = 'every-minute'")
            .fetch_one(&e.pool)
            .await
            .unwrap();
    let expected: DateTime<Utc> = "2026-11-22T00:03:00Z".parse().unwrap();
    assert_eq!(tick, expected);
    assert_eq!(job, schedule::tick_job_id("every-minute", expected).to_string());
}

#[tokio::test]
async fn a_re_enabled_schedule_does_not_replay_the_time_it_was_off() {
    let e = env("2026-11-22T00:00:00Z").await;
    let r = e.replica("a", "", Duration::from_secs(30)).await;
    let spec = serde_json::json!({"name": "toggled", "cron": "* * * * *", "kind": "system.noop",
                                  "enabled": false, "catch_up": "fire_all", "overlap": "allow"});
    sqlx::query("INSERT INTO schedules (name, spec) VALUES ('toggled', $1)")
        .bind(&spec)
        .execute(&e.pool)
        .await
        .unwrap();
    r.pass().await.unwrap();
    e.clock.advance(chrono::Duration::minutes(30));
    assert_eq!(r.pass().await.unwrap().fired, 0, "disabled");
    sqlx::query("UPDATE schedules SET spec = jsonb_set(spec, '{enabled}', 'true')")
        .execute(&e.pool)
        .await
        .unwrap();
    e.clock.advance(chrono::Duration::minutes(1));
    let p = r.pass().await.unwrap();
    assert_eq!(
        (p.fired, p.caught_up, p.dropped),
        (1, 0, 0),
        "only the tick since: {p:?}"
    );
}
