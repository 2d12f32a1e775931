//! The rate limiter and lease locks other Hangar components coordinate with
//! across processes (separate connections stand in for separate replicas).

use std::time::Duration;

use crate::common::{TestQueue, redis_url};
use hangar_queue::{DistributedSemaphore, LeaseLock, LockOutcome, Rate, RateLimiter, RedisSettings};

async fn connection() -> hangar_queue::RedisConn {
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
async fn a_rate_above_a_thousand_per_second_lets_back_to_back_calls_through() {
    // 100,000/s: 10 µs apart, far less than one round trip. On a clock of
    // whole milliseconds the second call within a millisecond was refused
    // (the fleet benchmark's calls at "1000000/s" waited 7 ms each).
    let t = TestQueue::new("rate3").await;
    let limiter = RateLimiter::new(connection().await, &t.prefix);
    let rate = Rate {
        interval: Duration::from_micros(10),
        burst: 1,
    };
    let mut refused = 0;
    for _ in 0..200 {
        if !limiter.check("fast", rate).await.unwrap().allowed {
            refused += 1;
        }
    }
    assert_eq!(refused, 0, "every call came more than 10 µs after the one before");
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

#[tokio::test]
async fn the_semaphore_caps_holders_across_replicas_and_a_dead_holder_lapses() {
    let t = TestQueue::new("sem").await;
    let lease = Duration::from_millis(400);
    let replicas = [
        DistributedSemaphore::new(connection().await, &t.prefix, "model:tiny", 2, lease),
        DistributedSemaphore::new(connection().await, &t.prefix, "model:tiny", 2, lease),
    ];
    // 20 would-be holders race for 2 slots.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let sem = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            sem.try_acquire(&format!("job{i}")).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap() {
            winners.push(format!("job{i}"));
        }
    }
    assert_eq!(
        winners.len(),
        2,
        "exactly the capacity, whatever the interleaving"
    );
    assert_eq!(replicas[0].in_use().await.unwrap(), 2);
    // A holder asking again keeps its slot; a newcomer still waits.
    assert!(replicas[1].try_acquire(&winners[0]).await.unwrap());
    assert!(!replicas[1].try_acquire("late").await.unwrap());
    // Releasing frees a slot at once.
    assert!(replicas[0].release(&winners[0]).await.unwrap());
    assert!(replicas[1].try_acquire("late").await.unwrap());
    // The other winner "dies" (stops renewing) while "late" keeps renewing:
    // after a lease only the renewer holds a slot.
    for _ in 0..4 {
        tokio::time::sleep(lease / 4).await;
        assert!(replicas[1].renew("late").await.unwrap());
    }
    tokio::time::sleep(lease / 4).await;
    assert!(
        !replicas[0].renew(&winners[1]).await.unwrap(),
        "the silent holder's lease lapsed"
    );
    assert_eq!(replicas[0].in_use().await.unwrap(), 1);
    assert!(replicas[0].try_acquire("next").await.unwrap());
    // Full again; a redelivered job ("owner#2") takes over its dead
    // predecessor's ("owner#1") slot instead of waiting for its lease.
    assert!(replicas[0].release("next").await.unwrap());
    assert!(replicas[0].try_acquire("01JOB#1").await.unwrap());
    assert!(!replicas[1].try_acquire("other#1").await.unwrap());
    assert!(replicas[1].try_acquire("01JOB#2").await.unwrap());
    assert_eq!(replicas[1].in_use().await.unwrap(), 2);
    assert!(
        !replicas[0].renew("01JOB#1").await.unwrap(),
        "the stale generation lost its slot"
    );
}
