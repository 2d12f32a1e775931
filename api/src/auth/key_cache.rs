//! Verified API keys, remembered for a short while so that a busy client
//! does not cost a PostgreSQL query (and a `last_used_at` write) per
//! request.
//!
//! Revocation must still reach every replica within a second. Revoking a
//! key bumps a counter in Redis ([`KeyCache::revoked`]); every replica
//! reads that counter every [`POLL`] and forgets every cached key when it
//! moves. A replica trusts its cache only while its last successful read is
//! younger than [`TRUSTED_WHILE_HEARD`]: if Redis stops answering, the
//! cache is bypassed (every request asks PostgreSQL, as without a cache)
//! until it answers again, so a revocation it could not hear about is never
//! outlived by more than that. A lookup that raced a revocation is not
//! cached: entries are stored only if the counter did not move while
//! PostgreSQL was asked. Expiry is checked on every use; an entry is
//! trusted for at most [`TRUST_FOR`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use backon::{ConstantBuilder, Retryable};
use chrono::Utc;
use hangar_queue::RedisConn;
use sqlx::PgPool;

use super::{
    api_keys::{self, VerifiedKey},
    principal::{AuthError, Principal},
};
use crate::metrics::Metrics;

/// How often each replica asks Redis whether a key was revoked.
pub const POLL: Duration = Duration::from_millis(250);
/// The cache is used only while the revocation counter was read this
/// recently: a revocation reaches every replica within this (plus one
/// Redis round trip), or the replica stops trusting its cache.
pub const TRUSTED_WHILE_HEARD: Duration = Duration::from_millis(750);
/// Longest a verified key is trusted without asking PostgreSQL again.
pub const TRUST_FOR: Duration = Duration::from_secs(30);
/// `last_used_at` is recorded at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Most keys remembered; beyond it the cache starts over.
const MAX_ENTRIES: usize = 10_000;
/// How long one read of the counter may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// The cache of verified API keys of one API process.
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

struct Inner {
    redis: RedisConn,
    counter_key: String,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Vec<u8>, Entry>,
    /// The revocation counter as last read, and when.
    version: Option<u64>,
    heard_at: Option<Instant>,
}

struct Entry {
    key: VerifiedKey,
    cached_at: Instant,
    touched_at: Instant,
}

impl State {
    fn trusted(&self) -> bool {
        self.heard_at.is_some_and(|t| t.elapsed() <= TRUSTED_WHILE_HEARD)
    }
}

impl KeyCache {
    /// A cache fed by the revocation counter under `prefix` in Redis; starts
    /// the task that reads it (it ends when the last clone is dropped).
    pub fn start(redis: RedisConn, prefix: &str, metrics: Arc<Metrics>) -> Self {
        let inner = Arc::new(Inner {
            redis,
            counter_key: format!("{prefix}:auth:key-revocations"),
            metrics,
            state: Mutex::default(),
        });
        tokio::spawn(listen(Arc::downgrade(&inner)));
        Self { inner }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller `token` names: from the cache when it verified recently
    /// and no revocation was announced since, else from PostgreSQL.
    pub async fn verify(&self, pool: &PgPool, token: &str) -> Result<Principal, AuthError> {
        let digest = api_keys::digest(token);
        let version = {
            let mut state = self.state();
            if state.trusted() {
                if let Some(hit) = fresh_hit(&mut state, &digest, pool) {
                    drop(state);
                    self.inner.metrics.key_cache("hit");
                    return hit;
                }
                state.version
            } else {
                None
            }
        };
        self.inner
            .metrics
            .key_cache(if version.is_some() { "miss" } else { "bypass" });
        let verified = api_keys::verify(pool, token).await?;
        api_keys::touch(pool.clone(), verified.id.clone());
        let principal = verified.principal.clone();
        let mut state = self.state();
        // Only if no revocation was announced while PostgreSQL was asked.
        if version.is_some() && state.version == version && state.trusted() {
            if state.entries.len() >= MAX_ENTRIES {
                state.entries.clear();
            }
            let now = Instant::now();
            state.entries.insert(
                digest,
                Entry {
                    key: verified,
                    cached_at: now,
                    touched_at: now,
                },
            );
        }
        Ok(principal)
    }

    /// Announces a revocation to every replica (after it is committed in
    /// PostgreSQL) and forgets this replica's cached keys at once. Retried
    /// a few times; an error means other replicas may accept the key until
    /// they stop trusting their caches or [`TRUST_FOR`] passes.
    pub async fn revoked(&self) -> Result<(), redis::RedisError> {
        self.state().entries.clear();
        let announce = || async {
            let mut conn = self.inner.redis.clone();
            redis::cmd("INCR")
                .arg(&self.inner.counter_key)
                .query_async::<u64>(&mut conn)
                .await
        };
        announce
            .retry(
                ConstantBuilder::default()
                    .with_delay(Duration::from_millis(100))
                    .with_max_times(2),
            )
            .await
            .map(|_| ())
    }

    /// Whether the cache is trusted now (its revocation feed is current).
    pub fn trusted(&self) -> bool {
        self.state().trusted()
    }
}

/// The cached caller for `digest` if it is still good: cached within
/// [`TRUST_FOR`] and not expired. Records the key's use now and then.
fn fresh_hit(state: &mut State, digest: &[u8], pool: &PgPool) -> Option<Result<Principal, AuthError>> {
    let entry = state.entries.get_mut(digest)?;
    if entry.cached_at.elapsed() > TRUST_FOR {
        state.entries.remove(digest);
        return None;
    }
    if let Some(at) = entry.key.expires_at
        && at <= Utc::now()
    {
        let id = entry.key.id.clone();
        let name = entry.key.principal.actor.trim_start_matches("key:").to_owned();
        state.entries.remove(digest);
        return Some(Err(AuthError::RefusedKey {
            id,
            message: api_keys::expired_message(&name, at),
        }));
    }
    if entry.touched_at.elapsed() >= TOUCH_EVERY {
        entry.touched_at = Instant::now();
        api_keys::touch(pool.clone(), entry.key.id.clone());
    }
    Some(Ok(entry.key.principal.clone()))
}

/// Reads the revocation counter every [`POLL`]: a new value clears the
/// cache; a failed read leaves `heard_at` to age until the cache is no
/// longer trusted.
async fn listen(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut conn = inner.redis.clone();
        let read = tokio::time::timeout(
            READ_TIMEOUT,
            redis::cmd("GET")
                .arg(&inner.counter_key)
                .query_async::<Option<u64>>(&mut conn),
        )
        .await;
        match read {
            Ok(Ok(value)) => {
                let version = value.unwrap_or(0);
                let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.version != Some(version) {
                    state.entries.clear();
                    state.version = Some(version);
                }
                state.heard_at = Some(Instant::now());
                if failing {
                    tracing::info!("API key revocation feed back; cached keys trusted again");
                    failing = false;
                }
            }
            Ok(Err(e)) if !failing => {
                tracing::warn!(error = %e, "cannot read the API key revocation feed; every API key is checked in PostgreSQL until it answers");
                failing = true;
            }
            Err(_) if !failing => {
                tracing::warn!(
                    "API key revocation feed did not answer in time; every API key is checked in PostgreSQL until it does"
                );
                failing = true;
            }
            _ => {}
        }
    }
}
