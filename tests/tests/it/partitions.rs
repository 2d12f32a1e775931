//! `job_runs` partitioned by week (migration 17): weeks are created ahead by
//! any number of processes at once, dropped whole once past retention and
//! kept while they hold records that must stay; the migration converts a
//! populated table while jobs keep being inserted, and the idempotency and
//! singleton rules hold across partitions.

use chrono::{Duration, Utc};
use hangar_shared::{
    db::{self, Inserted, NewJobRun, partitions},
    kinds,
};
use hangar_tests::TestDb;
use serde_json::json;
use sqlx::PgPool;

/// The migration that partitions job_runs.
const PARTITIONING: i64 = 20261207000017;

async fn test_db() -> (TestDb, PgPool) {
    let db = TestDb::create(&hangar_tests::postgres_admin_url()).await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    (db, pool)
}

/// Inserts `n` records created at `at` (ids of that time), finished then
/// unless `state` is open.
async fn insert_at(pool: &PgPool, at: chrono::DateTime<Utc>, n: i64, state: &str, tag: &str) {
    sqlx::query(
        "INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, requested_by, idempotency_key,
                               created_at, finished_at)
         SELECT left($1, 10) || lpad(md5($4 || i), 16, '0'), 'system.noop', 'sync', '{}', $3, 3, $4,
                $4 || '-' || i, $2,
                CASE WHEN $3 IN ('succeeded', 'dead', 'cancelled') THEN $2 END
         FROM generate_series(1, $5) AS i",
    )
    .bind(db::id_at(at))
    .bind(at)
    .bind(state)
    .bind(tag)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn weeks_are_kept_ahead_by_concurrent_callers_without_gaps() {
    let (_db, pool) = test_db().await;
    let far = Utc::now() + Duration::weeks(20);
    let calls = (0..4).map(|_| partitions::ensure_ahead(&pool, far, 2));
    let created: Vec<Vec<String>> = futures_util::future::try_join_all(calls).await.unwrap();
    let total: usize = created.iter().map(Vec::len).sum();
    assert!(total > 0, "the horizon moved: {created:?}");
    assert_eq!(
        created.iter().filter(|c| !c.is_empty()).count(),
        1,
        "one caller created them, the others found them: {created:?}"
    );
    let parts = partitions::list(&pool).await.unwrap();
    for pair in parts.windows(2) {
        assert_eq!(pair[1].lo.as_ref(), Some(&pair[0].hi), "contiguous: {parts:?}");
    }
    assert_eq!(parts[0].name, partitions::LEGACY);
    let horizon = partitions::horizon(&pool).await.unwrap().unwrap();
    assert_eq!(horizon, partitions::week_start(far) + Duration::weeks(3));
    // Nothing more to do: no statement, no change.
    assert!(partitions::ensure_ahead(&pool, far, 2).await.unwrap().is_empty());
    // A record of any time up to the horizon can be written.
    insert_at(&pool, horizon - Duration::seconds(1), 1, "queued", "edge").await;
}

#[tokio::test]
async fn weeks_past_retention_are_dropped_whole_unless_they_hold_records_that_must_stay() {
    let (_db, pool) = test_db().await;
    // Two weeks in the partitioned range (weeks ahead of now, so this test
    // can use a cutoff in the future instead of waiting 90 days).
    let week_a = partitions::week_start(Utc::now()) + Duration::weeks(3) + Duration::hours(30);
    let week_b = week_a + Duration::weeks(1);
    insert_at(&pool, week_a, 300, "succeeded", "a").await;
    insert_at(&pool, week_b, 200, "succeeded", "b").await;
    insert_at(&pool, week_b, 1, "queued", "b-open").await;
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM job_idempotency")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys, 501, "every key claimed through the trigger");

    let cutoff = week_b + Duration::weeks(2);
    let outcomes = partitions::drop_expired(&pool, cutoff).await.unwrap();
    let name = |t: chrono::DateTime<Utc>| format!("job_runs_w{}", partitions::week_start(t).format("%Y%m%d"));
    assert!(
        outcomes.contains(&partitions::Expiry::Dropped {
            name: name(week_a),
            rows: 300
        }),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&partitions::Expiry::Kept {
            name: name(week_b),
            keepers: 1
        }),
        "{outcomes:?}"
    );
    let left: Vec<(String, i64)> =
        sqlx::query_as("SELECT requested_by, count(*) FROM job_runs GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, [("b".to_owned(), 200), ("b-open".to_owned(), 1)]);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT split_part(key, '-', 1) FROM job_idempotency ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(keys, ["b"], "the dropped week's idempotency keys are forgotten");
    let names: Vec<String> = partitions::list(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        !names.contains(&name(week_a)) && names.contains(&name(week_b)),
        "{names:?}"
    );
}

/// Idempotency keys and singleton slots are global, not per partition: the
/// first job with a key may be in another week than the second request.
#[tokio::test]
async fn keys_and_singleton_slots_hold_across_partitions() {
    let (_db, pool) = test_db().await;
    let noop = kinds::spec::<kinds::Noop>();
    let sync = kinds::spec::<kinds::WorkspacesSync>();
    let next_week = Utc::now() + Duration::weeks(3);
    let forty_days_ago = db::id_at(Utc::now() - Duration::days(40));
    let old = |kind, payload, n: &str| {
        let mut j = NewJobRun::new(kind, payload);
        j.id = format!("{}{n:0>16}", &forty_days_ago[..10]);
        j
    };
    let first = old(noop, json!({}), "A").idempotency(Some("key:k".into()), "same");
    let holder = old(sync, json!({"account": "prod", "region": "eu-west-1"}), "B");
    db::insert_jobs(&pool, &[first.clone(), holder.clone()])
        .await
        .unwrap();

    let mut again = NewJobRun::new(noop, json!({})).idempotency(Some("key:k".into()), "same");
    again.id = db::id_at(next_week);
    let mut twin = NewJobRun::new(sync, json!({"account": "prod", "region": "eu-west-1"}));
    twin.id = db::id_at(next_week).replace("0000000000000000", "0000000000000001");
    let out = db::insert_jobs(&pool, &[again, twin]).await.unwrap();
    assert!(
        matches!(&out[0], Inserted::Existing(r) if r.id == first.id),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], Inserted::Existing(r) if r.id == holder.id),
        "{out:?}"
    );

    // The holder finishes: the slot is free for a job in another week.
    sqlx::query("UPDATE job_runs SET state = 'succeeded', finished_at = now() WHERE id = $1")
        .bind(&holder.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut third = NewJobRun::new(sync, json!({"account": "prod", "region": "eu-west-1"}));
    third.id = db::id_at(next_week).replace("0000000000000000", "0000000000000002");
    let out = db::insert_jobs(&pool, std::slice::from_ref(&third))
        .await
        .unwrap();
    assert!(matches!(&out[0], Inserted::New(r) if r.id == third.id), "{out:?}");
    // Retrying the old holder (dead -> queued) now meets the open twin.
    sqlx::query("UPDATE job_runs SET state = 'dead' WHERE id = $1")
        .bind(&holder.id)
        .execute(&pool)
        .await
        .unwrap();
    let err = db::mark_requeued(&pool, std::slice::from_ref(&holder.id))
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|d| d.constraint()),
        Some("job_singletons_pkey"),
        "{err}"
    );
}

/// Migration 17 on a table that already holds records, while an old binary
/// keeps inserting: no insert fails, no record is lost, old keys still count.
#[tokio::test]
async fn partitioning_a_populated_table_loses_no_insert_and_keeps_the_old_keys() {
    let db = TestDb::create_empty(&hangar_tests::postgres_admin_url()).await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    db::migrate_to(&pool, Some(PARTITIONING - 1)).await.unwrap();
    // 90 days of history, some with idempotency keys, one open sync holding its slot.
    let id_of = |at: chrono::DateTime<Utc>, n: u32| format!("{}{:016}", &db::id_at(at)[..10], n);
    let mut tx = pool.begin().await.unwrap();
    for i in 1..=5000u32 {
        let at = Utc::now() - Duration::minutes(i64::from(i) * 25);
        sqlx::query(
            "INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, idempotency_key, idempotency_scope,
                                   created_at, finished_at)
             VALUES ($1, 'system.noop', 'sync', '{}', 'succeeded', 3, $2, $3, $4, $4)",
        )
        .bind(id_of(at, i))
        .bind((i % 10 == 0).then(|| format!("old-{i}")))
        .bind((i % 10 == 0).then_some("key:k"))
        .bind(at)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let holder = id_of(Utc::now() - Duration::minutes(1), 99_999);
    sqlx::query(
        "INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, singleton_key)
         VALUES ($1, 'sync.workspaces', 'sync', '{\"account\":\"prod\",\"region\":\"eu-west-1\"}', 'running', 3,
                 'sync.workspaces:prod:eu-west-1')",
    )
    .bind(&holder)
    .execute(&pool)
    .await
    .unwrap();

    // An old binary's insert, over and over, while the migration runs.
    let writer_pool = pool.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = stop.clone();
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        while !stop_writer.load(std::sync::atomic::Ordering::Relaxed) {
            sqlx::query(
                "INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, requested_by)
                 VALUES ($1, 'system.noop', 'sync', '{}', 'queued', 3, 'during-migration')
                 ON CONFLICT DO NOTHING",
            )
            .bind(ulid::Ulid::new().to_string())
            .execute(&writer_pool)
            .await
            .expect("an insert during the migration failed");
            written += 1;
        }
        written
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    db::migrate(&pool).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);

    let kind: String = sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE relname = 'job_runs'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kind, "p", "job_runs is partitioned");
    let (old, during): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE requested_by IS NULL), count(*) FILTER (WHERE requested_by = 'during-migration')
           FROM job_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (old, during),
        (5001, written as i64),
        "no record lost, none doubled"
    );
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM job_idempotency")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys, 500);

    // An old key answers with its old job; the open holder keeps its slot.
    let noop = kinds::spec::<kinds::Noop>();
    let sync = kinds::spec::<kinds::WorkspacesSync>();
    let out = db::insert_jobs(
        &pool,
        &[
            NewJobRun::new(noop, json!({})).idempotency(Some("key:k".into()), "old-4990"),
            NewJobRun::new(sync, json!({"account": "prod", "region": "eu-west-1"})),
        ],
    )
    .await
    .unwrap();
    assert!(
        matches!(&out[0], Inserted::Existing(r) if r.id.ends_with("0000000000004990")),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], Inserted::Existing(r) if r.id == holder),
        "{out:?}"
    );
    // Weeks ahead exist, and a new job lands in the partitioned table.
    assert!(partitions::list(&pool).await.unwrap().len() > 8);
    let fresh = db::insert_jobs(&pool, &[NewJobRun::new(noop, json!({}))])
        .await
        .unwrap();
    assert!(matches!(&fresh[0], Inserted::New(_)));
}
