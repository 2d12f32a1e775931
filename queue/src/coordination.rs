//! Redis primitives that coordinate work across processes: a rate limiter
//! shared by every replica (CloudTrail allows ~2 LookupEvents calls per second
//! per account and region, whatever number of workers we run; the API limits
//! requests per user across API replicas) and lease locks (one sync per
//! account, region and kind at a time, even when a scheduler and an operator
//! both ask).
//!
//! Both use Redis's own clock, so process clock skew cannot break them.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::connection::RedisConn;

use crate::error::{QueueError, Result};

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/gcra.lua")));
static LOCK_ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lock_acquire.lua")));
static LOCK_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lock_renew.lua")));

/// A rate: `burst` requests at once, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Spacing between requests once the burst is spent.
    pub interval: Duration,
    /// Requests allowed back to back after an idle period (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `n` requests per `period`, all of which may come at once.
    pub fn per(n: u32, period: Duration) -> Self {
        let n = n.max(1);
        Self {
            interval: period / n,
            burst: n,
        }
    }
}

/// One rate-limit decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go now (and was counted).
    pub allowed: bool,
    /// When refused: how long until it would be allowed.
    pub retry_after: Duration,
    /// Requests still allowed at once right now.
    pub remaining: u32,
    /// How long until the full burst is available again.
    pub reset_after: Duration,
}

/// A rate limiter whose state lives in Redis under `{prefix}:rate:{key}`.
#[derive(Clone)]
pub struct RateLimiter {
    conn: RedisConn,
    prefix: String,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter over `conn` with keys under `prefix`.
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}:rate:"),
        }
    }

    /// Counts one request against `key` if `rate` allows it now.
    pub async fn check(&self, key: &str, rate: Rate) -> Result<RateDecision> {
        // A zero interval would divide by zero in the script: 1 µs is "no limit".
        let interval_ms = (rate.interval.as_secs_f64() * 1000.0).max(0.001);
        let reply: Vec<i64> = GCRA
            .key(format!("{}{key}", self.prefix))
            .arg(interval_ms)
            .arg(rate.burst.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [allowed, wait, remaining, reset] = reply[..] else {
            return Err(QueueError::Protocol(format!("gcra returned {reply:?}")));
        };
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        Ok(RateDecision {
            allowed: allowed == 1,
            retry_after: ms(wait),
            remaining: remaining.max(0) as u32,
            reset_after: ms(reset),
        })
    }

    /// Waits until `rate` allows a request for `key`, then counts it.
    /// Returns how long it waited.
    pub async fn acquire(&self, key: &str, rate: Rate) -> Result<Duration> {
        let start = tokio::time::Instant::now();
        loop {
            let d = self.check(key, rate).await?;
            if d.allowed {
                return Ok(start.elapsed());
            }
            // Spread retries a little so waiting replicas do not all wake at
            // the same instant and lose the race together.
            let jitter = Duration::from_millis(fastrand::u64(0..=5));
            tokio::time::sleep(d.retry_after + jitter).await;
        }
    }
}

/// Who holds a [`LeaseLock`] when it could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The caller holds it now.
    Acquired,
    /// Another owner holds it; their token.
    HeldBy(String),
}

/// A named lock with a lease: it lapses on its own if its holder dies, and
/// only the holder's token renews or releases it. The token is an owner and
/// a generation (a job id and its delivery count): a later generation of the
/// same owner takes the lock over, so a redelivered job does not wait for
/// its dead predecessor's lease, and the predecessor, if merely stalled,
/// loses the lock at its next renewal.
#[derive(Clone)]
pub struct LeaseLock {
    conn: RedisConn,
    key: String,
    owner: String,
    generation: u32,
    token: String,
    lease: Duration,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock")
            .field("key", &self.key)
            .field("token", &self.token)
            .finish()
    }
}

impl LeaseLock {
    /// The lock `{prefix}:lock:{name}` for `owner` at `generation`.
    pub fn new(
        conn: RedisConn,
        prefix: &str,
        name: &str,
        owner: &str,
        generation: u32,
        lease: Duration,
    ) -> Self {
        Self {
            conn,
            key: format!("{prefix}:lock:{name}"),
            owner: owner.to_owned(),
            generation,
            token: format!("{owner}#{generation}"),
            lease,
        }
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis().max(1) as u64
    }

    /// Who holds the lock `{prefix}:lock:{name}` now (`owner#generation`),
    /// or `None` when it is free or its lease lapsed. For observers, such as
    /// the API exporting whether any scheduler leads.
    pub async fn holder(conn: &RedisConn, prefix: &str, name: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(format!("{prefix}:lock:{name}"))
            .query_async(&mut conn.clone())
            .await?)
    }

    /// Takes the lock if it is free, already ours, or held by an earlier
    /// generation of our owner.
    pub async fn try_acquire(&self) -> Result<LockOutcome> {
        let reply: redis::Value = LOCK_ACQUIRE
            .key(&self.key)
            .arg(&self.token)
            .arg(self.lease_ms())
            .arg(&self.owner)
            .arg(self.generation)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match reply {
            redis::Value::Int(1) => Ok(LockOutcome::Acquired),
            other => redis::from_redis_value(other)
                .map(LockOutcome::HeldBy)
                .map_err(|e| QueueError::Protocol(format!("lock holder: {e}"))),
        }
    }

    /// Extends the lease; `false` if the lock was lost (lapsed and taken).
    pub async fn renew(&self) -> Result<bool> {
        self.renew_for(self.lease_ms()).await
    }

    /// Releases the lock if we still hold it.
    pub async fn release(&self) -> Result<bool> {
        self.renew_for(0).await
    }

    async fn renew_for(&self, ms: u64) -> Result<bool> {
        let held: i64 = LOCK_RENEW
            .key(&self.key)
            .arg(&self.token)
            .arg(ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(held == 1)
    }
}

static SEMAPHORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/semaphore.lua")));

/// A counting semaphore shared by every process through Redis: at most
/// `capacity` holders at once (a model server's slots, across all worker
/// replicas). Each holder's slot has a lease that it renews while it works;
/// a holder that dies (killed with -9) loses its slot when the lease
/// lapses, so a crash never leaks capacity for longer than one lease.
#[derive(Clone)]
pub struct DistributedSemaphore {
    conn: RedisConn,
    key: String,
    capacity: u32,
    lease: Duration,
}

impl std::fmt::Debug for DistributedSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedSemaphore")
            .field("key", &self.key)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl DistributedSemaphore {
    /// The semaphore `{prefix}:sem:{name}` with `capacity` slots.
    pub fn new(conn: RedisConn, prefix: &str, name: &str, capacity: u32, lease: Duration) -> Self {
        Self {
            conn,
            key: format!("{prefix}:sem:{name}"),
            capacity: capacity.max(1),
            lease,
        }
    }

    /// Slots in total.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The lease each slot is held for between renewals.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    async fn call(&self, op: &str, token: &str) -> Result<i64> {
        // "owner#generation" tokens let a later generation take over.
        let (owner, generation) = match token.rsplit_once('#') {
            Some((o, g)) if g.parse::<u64>().is_ok() => (format!("{o}#"), g.to_owned()),
            _ => (String::new(), "0".to_owned()),
        };
        Ok(SEMAPHORE
            .key(&self.key)
            .arg(op)
            .arg(token)
            .arg(self.lease.as_millis().max(1) as u64)
            .arg(self.capacity)
            .arg(owner)
            .arg(generation)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Takes a slot for `token` if one is free (or `token` already has one).
    /// A token `owner#generation` first drops earlier generations of `owner`.
    pub async fn try_acquire(&self, token: &str) -> Result<bool> {
        Ok(self.call("acquire", token).await? == 1)
    }

    /// Extends `token`'s lease; `false` if its slot lapsed and was lost.
    pub async fn renew(&self, token: &str) -> Result<bool> {
        Ok(self.call("renew", token).await? == 1)
    }

    /// Gives `token`'s slot back.
    pub async fn release(&self, token: &str) -> Result<bool> {
        Ok(self.call("release", token).await? == 1)
    }

    /// Slots held right now (expired leases not counted).
    pub async fn in_use(&self) -> Result<u32> {
        Ok(self.call("count", "").await?.max(0) as u32)
    }
}
