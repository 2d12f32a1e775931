//! The rate limiter and lease locks other Hangar components coordinate with
//! across processes (separate connections stand in for separate replicas).

mod common;

use std::time::Duration;

use common::{TestQueue, redis_url};
use hangar_queue::{LeaseLock, LockOutcome, Rate, RateLimiter, RedisSettings};

async fn connection() -> redis::aio::ConnectionManager {
    RedisSettings::new(redis_url()).connect().await.unwrap()
}

#[tokio::test]
async fn the_rate_limit_holds_across_replicas_even_when_they_race() {
    let t = TestQueue::new("rate").await;
    // Two "replicas", each with its own connection, 25 requests each at once.
    let replicas = [
        RateLimiter::new(connection().await, &t.prefix),
        RateLimiter::new(connection().await, &t.prefix),
    ];
    let rate = Rate::per(5, Duration::from_secs(60));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let limiter = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            limiter.check("user:42", rate).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        let d = t.await.unwrap();
        if d.allowed {
            allowed += 1;
        } else {
            assert!(d.retry_after > Duration::from_secs(5), "{d:?}");
            assert_eq!(d.remaining, 0);
        }
    }
    assert_eq!(allowed, 5, "exactly the burst, whatever the interleaving");
    // Other keys have their own budget.
    assert!(replicas[0].check("user:7", rate).await.unwrap().allowed);
}

#[tokio::test]
async fn remaining_counts_down_and_acquire_waits_its_turn() {
    let t = TestQueue::new("rate2").await;
    let limiter = RateLimiter::new(connection().await, &t.prefix);
    let burst = Rate::per(3, Duration::from_secs(60));
    let remaining: Vec<u32> = [
        limiter.check("k", burst).await.unwrap(),
        limiter.check("k", burst).await.unwrap(),
        limiter.check("k", burst).await.unwrap(),
    ]
    .iter()
    .map(|d| d.remaining)
    .collect();
    assert_eq!(remaining, vec![2, 1, 0]);

    let spaced = Rate {
        interval: Duration::from_millis(150),
        burst: 1,
    };
    limiter.acquire("spaced", spaced).await.unwrap();
    let waited = limiter.acquire("spaced", spaced).await.unwrap();
    assert!(
        waited >= Duration::from_millis(100),
        "second call waited {waited:?}"
    );
}

#[tokio::test]
async fn a_lease_lock_has_one_owner_is_reentrant_for_it_and_lapses_when_abandoned() {
    let t = TestQueue::new("lock").await;
    let lease = Duration::from_millis(300);
    let a = LeaseLock::new(connection().await, &t.prefix, "sync:prod", "job-a", 1, lease);
    let b = LeaseLock::new(connection().await, &t.prefix, "sync:prod", "job-b", 1, lease);
    assert_eq!(a.try_acquire().await.unwrap(), LockOutcome::Acquired);
    assert_eq!(
        b.try_acquire().await.unwrap(),
        LockOutcome::HeldBy("job-a#1".into())
    );
    assert_eq!(
        a.try_acquire().await.unwrap(),
        LockOutcome::Acquired,
        "re-entrant"
    );
    assert!(a.renew().await.unwrap());
    assert!(!b.release().await.unwrap(), "only the owner releases");
    assert!(a.release().await.unwrap());
    assert_eq!(b.try_acquire().await.unwrap(), LockOutcome::Acquired);
    // b dies without releasing: the lease lapses and a can take it.
    tokio::time::sleep(lease * 2).await;
    assert!(!b.renew().await.unwrap(), "a lapsed lease cannot be renewed");
    assert_eq!(a.try_acquire().await.unwrap(), LockOutcome::Acquired);
}

#[tokio::test]
async fn a_later_delivery_of_the_same_job_takes_the_lock_over_and_the_stale_one_loses_it() {
    let t = TestQueue::new("lock-gen").await;
    let lease = Duration::from_secs(60);
    let first = LeaseLock::new(connection().await, &t.prefix, "sync:x", "job-1", 1, lease);
    let second = LeaseLock::new(connection().await, &t.prefix, "sync:x", "job-1", 2, lease);
    let other = LeaseLock::new(connection().await, &t.prefix, "sync:x", "job-2", 9, lease);
    assert_eq!(first.try_acquire().await.unwrap(), LockOutcome::Acquired);
    assert_eq!(
        other.try_acquire().await.unwrap(),
        LockOutcome::HeldBy("job-1#1".into())
    );
    // Redelivered (its first worker stalled or died): no waiting out the lease.
    assert_eq!(second.try_acquire().await.unwrap(), LockOutcome::Acquired);
    assert!(
        !first.renew().await.unwrap(),
        "the stale delivery learns it lost the lock"
    );
    assert_eq!(
        first.try_acquire().await.unwrap(),
        LockOutcome::HeldBy("job-1#2".into())
    );
    assert!(second.renew().await.unwrap());
}
