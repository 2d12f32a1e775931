//! Real `hangar-scheduler` processes: three replicas, the leader killed with
//! -9 mid-run; every tick fires exactly once across the takeover.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hangar_tests::TestApp;

fn scheduler(app: &TestApp) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hangar-scheduler"))
        .env_clear()
        .envs(app.env.iter())
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hangar-scheduler starts")
}

async fn leader_pid(app: &TestApp) -> Option<u32> {
    let mut conn = hangar_queue::RedisSettings::new(app.redis_url.as_str())
        .connect()
        .await
        .unwrap();
    let holder: Option<String> = redis::cmd("GET")
        .arg(format!("{}:lock:scheduler-leader", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    // "scheduler-<pid>-<ulid>#0"
    holder?
        .strip_prefix("scheduler-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

async fn tick_times(app: &TestApp) -> Vec<i64> {
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM job_runs WHERE requested_by = 'schedule:every-2s' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    ids.iter()
        .map(|id| id.parse::<ulid::Ulid>().unwrap().timestamp_ms() as i64)
        .collect()
}

#[tokio::test]
async fn killing_the_leader_with_sigkill_loses_no_tick_and_doubles_none() {
    let dir = std::env::temp_dir().join(format!("hangar-beat-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schedules.toml");
    std::fs::write(
        &file,
        "[[schedule]]\nname = \"every-2s\"\ncron = \"*/2 * * * * *\"\nkind = \"system.noop\"\n\
         overlap = \"allow\"\ncatch_up = \"fire_all\"\ncatch_up_cap = 100\n",
    )
    .unwrap();
    let app = TestApp::builder()
        .without_worker()
        .envs(&[
            ("HANGAR_SCHEDULES_FILE", file.to_str().unwrap()),
            ("HANGAR_SCHEDULER_LEASE_SECS", "2"),
            ("HANGAR_SCHEDULER_TICK_MS", "200"),
            // Ticks missed during the takeover (more than 1 s late) follow
            // the catch-up policy: fire_all, so they must still fire.
            ("HANGAR_SCHEDULER_GRACE_SECS", "1"),
        ])
        .spawn()
        .await;
    let mut replicas: Vec<Child> = (0..3).map(|_| scheduler(&app)).collect();

    // Wait for a leader and a few ticks.
    let start = Instant::now();
    while tick_times(&app).await.len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(30), "no ticks fired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_leader = leader_pid(&app).await.expect("a leader");
    let victim = replicas
        .iter_mut()
        .find(|c| c.id() == first_leader)
        .expect("the leader is ours");
    victim.kill().unwrap();
    victim.wait().unwrap();

    // A new leader takes over within two leases and catches up the gap.
    let killed_at = Instant::now();
    loop {
        if let Some(pid) = leader_pid(&app).await
            && pid != first_leader
        {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(4) + Duration::from_millis(500),
            "no takeover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for c in &mut replicas {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
    }
    for c in &mut replicas {
        let _ = c.wait();
    }

    let ticks = tick_times(&app).await;
    assert!(ticks.len() >= 6, "{ticks:?}");
    let gaps: Vec<i64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g == 2000),
        "one job per 2 s tick, none missing or doubled: {ticks:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
