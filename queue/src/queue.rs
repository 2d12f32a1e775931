//! `Queue`: the client side of one queue. Enqueue, read live state, cancel,
//! manage the dead set and run the bounded maintenance steps. Cheap to clone.
//!
//! Over 500 lines on purpose: it is one type, the whole client surface of a
//! queue, each method a thin call of one Lua script or pipeline; splitting it
//! by method would scatter one contract (and its key layout) over files.

use std::{sync::Arc, time::Duration};

use redis::Value;
use serde::{Deserialize, Serialize};

use crate::{
    connection::{RedisConn, RedisSettings},
    error::{QueueError, Result},
    job::{CancelOutcome, Enqueued, JobState, JobStatus, NewJob, QueueCounts, epoch_ms},
    keys::{QueueKeys, QueueName},
    retry::RetryPolicies,
    scripts,
};

/// How many jobs one script call handles at most. Bounded steps keep every
/// script short (Redis runs one script at a time) and every unpack small.
pub const STEP: usize = 1000;

/// Jobs per EVALSHA in a pipelined batch enqueue.
const ENQUEUE_CHUNK: usize = 500;

/// Default max crashed deliveries before a job is quarantined in dead.
pub const DEFAULT_MAX_CRASHES: u32 = 3;

/// Client for one queue.
#[derive(Clone)]
pub struct Queue {
    conn: RedisConn,
    name: QueueName,
    keys: QueueKeys,
    prefix: Arc<str>,
    settings: RedisSettings,
    policies: Arc<RetryPolicies>,
    idempotency_ttl: Duration,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("key", &self.keys.base()).finish()
    }
}

/// A job as a worker claimed it.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Attempts with an outcome before this one.
    pub attempts: u32,
    pub deliveries: u32,
    pub token: String,
    pub max_attempts: u32,
    /// Caller's correlation id (e.g. the HTTP request id), '' if none.
    pub correlation_id: String,
    /// The enqueuing span's W3C traceparent, '' if none.
    pub traceparent: String,
}

/// One attempt's outcome, as the worker sends it to Redis.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub id: String,
    pub token: String,
    pub outcome: Outcome,
    /// This attempt's number (1-based).
    pub attempt: u32,
}

/// What happened to an attempt.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Succeeded {
        result: String,
    },
    Cancelled,
    Retry {
        error: String,
        delay: Duration,
    },
    /// Not run at all (the handler found it could not start, e.g. its model
    /// server is down): back to the queue after `delay`, the attempt uncounted.
    Deferred {
        reason: String,
        delay: Duration,
    },
    Dead {
        error: String,
    },
}

async fn conn_zcount(conn: &mut RedisConn, key: &str, since: u64) -> redis::RedisResult<u64> {
    redis::cmd("ZCOUNT")
        .arg(key)
        .arg(since)
        .arg("+inf")
        .query_async(conn)
        .await
}

/// What one reaper pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Leases that had expired.
    pub expired: u64,
    /// Jobs put back in the ready list.
    pub requeued: u64,
    /// Jobs that reached their crash limit and went to dead.
    pub dead: u64,
}

/// A page of the dead set, newest first.
#[derive(Debug, Clone)]
pub struct DeadPage {
    /// Dead jobs in all.
    pub total: u64,
    /// This page.
    pub jobs: Vec<JobState>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<DeadCursor>,
}

/// A position in the dead set (keyset paging): the last job of a page,
/// by when it died (ms since the epoch, its score) and its id. Stable while
/// jobs die or are requeued, unlike an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadCursor {
    /// When the job died, ms since the epoch.
    pub died_at_ms: u64,
    /// Its id.
    pub id: String,
}

/// Tries of a pipeline refused because its slot was moving (see
/// [`Queue::eval_pipeline`]): 100, 200, 300 ms apart, 0.6 s in all. Enough
/// for a stale slot map (MOVED) to be refreshed; while no master serves the
/// slot at all (the seconds of a failover) the caller still sees the error.
const SLOT_MOVE_ATTEMPTS: u32 = 4;

/// Whether a cluster refused `e`'s command because its slot is moving or has
/// no master right now: nothing was executed, so sending it again is safe.
fn slot_moving(e: &redis::RedisError) -> bool {
    e.is_cluster_error() || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
}

/// Whether `e` means the connection was dead (dropped, reset, refused), as
/// opposed to Redis answering with an error. A timeout is not: Redis may be
/// slow or unreachable, and trying again would only double the caller's wait.
fn is_connection_failure(e: &redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
}

impl Queue {
    /// Connects to `settings` and opens queue `name` under `prefix`.
    pub async fn connect(settings: &RedisSettings, prefix: &str, name: &str) -> Result<Self> {
        let conn = settings.connect().await?;
        Self::with_connection(conn, settings.clone(), prefix, name)
    }

    /// Opens queue `name` over an existing connection (shared by several queues).
    pub fn with_connection(
        conn: RedisConn,
        settings: RedisSettings,
        prefix: &str,
        name: &str,
    ) -> Result<Self> {
        let name = QueueName::new(name)?;
        let keys = QueueKeys::new(prefix, &name)?;
        Ok(Self {
            conn,
            name,
            keys,
            prefix: prefix.into(),
            settings,
            policies: Arc::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
        })
    }

    /// Sets the retry policies used for jobs that do not set max attempts.
    #[must_use]
    pub fn with_policies(mut self, policies: RetryPolicies) -> Self {
        self.policies = Arc::new(policies);
        self
    }

    /// Sets how long an idempotency key is remembered (default 24 h).
    #[must_use]
    pub fn with_idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &QueueName {
        &self.name
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The queue's keys.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// The retry policies.
    pub fn policies(&self) -> &RetryPolicies {
        &self.policies
    }

    /// How to reach Redis.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The same queue over a new connection of its own.
    pub async fn reconnect(&self) -> Result<Self> {
        let mut q = self.clone();
        q.conn = self.settings.connect().await?;
        Ok(q)
    }

    /// Enqueues one job.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_batch(vec![job]).await?;
        out.pop()
            .ok_or_else(|| QueueError::Protocol("enqueue returned nothing".into()))
    }

    /// Enqueues many jobs in one round trip (a pipeline of script calls of at
    /// most 500 jobs each). Results are in input order.
    pub async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ttl = self.idempotency_ttl.as_millis().max(1) as u64;
        let mut calls = Vec::with_capacity(jobs.len().div_ceil(ENQUEUE_CHUNK));
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            let mut args: Vec<String> = Vec::with_capacity(1 + chunk.len() * 9);
            args.push(ttl.to_string());
            for job in chunk {
                let max_attempts = job
                    .max_attempts
                    .unwrap_or_else(|| self.policies.for_kind(&job.kind).max_attempts);
                args.push(job.id.to_string());
                args.push(job.kind.clone());
                args.push(serde_json::to_string(&job.payload)?);
                args.push(job.run_at.map(epoch_ms).unwrap_or(0).to_string());
                args.push(job.idempotency_key.clone().unwrap_or_default());
                args.push(max_attempts.to_string());
                args.push(job.max_crashes.unwrap_or(DEFAULT_MAX_CRASHES).to_string());
                args.push(job.correlation_id.clone().unwrap_or_default());
                args.push(job.traceparent.clone().unwrap_or_default());
            }
            calls.push(args);
        }
        let replies = match self.eval_pipeline(&scripts::ENQUEUE, &calls).await {
            // A connection that died since its last use fails the first
            // command sent on it; the connection manager reconnects, so one
            // more try usually lands at once instead of leaving the jobs to a
            // repair loop. Safe: a job whose id Redis already has is a
            // duplicate, not a second copy (the first try may have landed).
            Err(QueueError::Redis(e)) if is_connection_failure(&e) => {
                tracing::info!(error = %e, jobs = jobs.len(), "enqueue met a dead connection; trying once more on a fresh one");
                self.eval_pipeline(&scripts::ENQUEUE, &calls).await?
            }
            other => other?,
        };
        let mut out = Vec::with_capacity(jobs.len());
        for reply in replies {
            let flat: Vec<String> = redis::from_redis_value(reply)
                .map_err(|e| QueueError::Protocol(format!("enqueue reply: {e}")))?;
            for pair in flat.chunks(2) {
                out.push(Enqueued {
                    id: pair[0].clone(),
                    duplicate: pair.get(1).map(String::as_str) == Some("1"),
                });
            }
        }
        Ok(out)
    }

    /// Runs `script` once per argument list, all in one pipeline (one round
    /// trip). If Redis lost its script cache (restart), loads it and retries.
    /// On a cluster, a pipeline sent while the queue's slot moves (a failover,
    /// a reshard) is refused whole with MOVED, CLUSTERDOWN or TRYAGAIN, and
    /// redis-rs does not resend pipelines: it is resent here after a short
    /// wait, a few times, before the caller sees the error.
    async fn eval_pipeline(&self, script: &redis::Script, calls: &[Vec<String>]) -> Result<Vec<Value>> {
        let span = self.script_span(script, calls.len());
        tracing::Instrument::instrument(self.eval_pipeline_untraced(script, calls), span).await
    }

    /// A client span for script calls (`EVALSHA <script>`), inside traces only.
    fn script_span(&self, script: &redis::Script, calls: usize) -> tracing::Span {
        crate::trace_context::child_span(|| {
            let name = scripts::name(script);
            tracing::info_span!("redis script", otel.name = %format!("EVALSHA {name}"),
                otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA",
                db.operation.batch.size = calls, hangar.script = name, hangar.queue = %self.name)
        })
    }

    async fn eval_pipeline_untraced(
        &self,
        script: &redis::Script,
        calls: &[Vec<String>],
    ) -> Result<Vec<Value>> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for args in calls {
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(1)
                .arg(self.keys.base())
                .arg(args);
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match pipe.query_async::<Vec<Value>>(&mut conn).await {
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    script.prepare_invoke().load_async(&mut conn).await?;
                }
                Err(e) if slot_moving(&e) && attempt < SLOT_MOVE_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, queue = %self.name, "queue slot moving; resending");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn invoke<T: redis::FromRedisValue>(&self, script: &redis::Script, args: &[String]) -> Result<T> {
        let mut conn = self.conn.clone();
        let mut inv = script.key(self.keys.base());
        for a in args {
            inv.arg(a);
        }
        let span = self.script_span(script, 1);
        Ok(tracing::Instrument::instrument(inv.invoke_async(&mut conn), span).await?)
    }

    /// Live states of many jobs in one round trip (`None` for unknown ids).
    pub async fn states(&self, ids: &[String]) -> Result<Vec<Option<JobState>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.job(id));
        }
        let hashes: Vec<std::collections::HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        hashes
            .into_iter()
            .map(|h| {
                if h.is_empty() {
                    Ok(None)
                } else {
                    JobState::from_hash(h).map(Some)
                }
            })
            .collect()
    }

    /// Records that a worker serves this queue now, with what it reports of
    /// itself (called by its maintenance loop every few seconds), and
    /// forgets workers silent for over a minute.
    pub(crate) async fn worker_alive(&self, report: &WorkerReport) -> Result<()> {
        let mut conn = self.conn.clone();
        let now = epoch_ms(std::time::SystemTime::now());
        let cutoff = now.saturating_sub(WORKER_FORGOTTEN_MS);
        let key = self.keys.part("workers");
        let info = self.keys.part("workers:info");
        let text = serde_json::to_string(report)?;
        let (_, _, stale): ((), (), Vec<String>) = redis::pipe()
            .zadd(&key, &report.id, now)
            .hset(&info, &report.id, text)
            .zrangebyscore(&key, 0, cutoff)
            .query_async(&mut conn)
            .await?;
        if !stale.is_empty() {
            let _: () = redis::pipe()
                .zrem(&key, &stale)
                .hdel(&info, &stale)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Worker processes that reported in within `within`.
    pub async fn workers_alive(&self, within: Duration) -> Result<u64> {
        let mut conn = self.conn.clone();
        let since = epoch_ms(std::time::SystemTime::now()).saturating_sub(within.as_millis() as u64);
        Ok(conn_zcount(&mut conn, &self.keys.part("workers"), since).await?)
    }

    /// Worker processes that reported in within `within`, with their last
    /// report and when it came (most recent first).
    pub async fn workers(&self, within: Duration) -> Result<Vec<(WorkerReport, u64)>> {
        let mut conn = self.conn.clone();
        let since = epoch_ms(std::time::SystemTime::now()).saturating_sub(within.as_millis() as u64);
        let seen: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(self.keys.part("workers"))
            .arg("+inf")
            .arg(since)
            .arg("BYSCORE")
            .arg("REV")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
        let infos: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.part("workers:info"))
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        Ok(seen
            .iter()
            .zip(infos)
            .map(|((id, at), info)| {
                // A worker of an older version registered only its id.
                let report = info
                    .and_then(|t| serde_json::from_str::<WorkerReport>(&t).ok())
                    .unwrap_or_else(|| WorkerReport {
                        id: id.clone(),
                        ..Default::default()
                    });
                (report, *at)
            })
            .collect())
    }

    /// Settings of the Redis server that can lose jobs, as warnings for the
    /// operator: an eviction policy other than `noeviction` (Redis may delete
    /// queued jobs under memory pressure), no persistence (a restart loses
    /// every queue; the repair loop can re-dispatch only what PostgreSQL
    /// recorded), and a cluster node addressed as one server.
    pub async fn server_warnings(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut warnings = Vec::new();
        if !conn.is_cluster() {
            let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut conn).await?;
            if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
                warnings.push(
                    "redis at HANGAR_REDIS_URL is a cluster node but Hangar talks to it as one server: keys in other nodes' slots fail with MOVED; set HANGAR_REDIS_CLUSTER=true or list the nodes comma-separated"
                        .to_owned(),
                );
            }
        }
        let get = |name: &str| redis::cmd("CONFIG").arg("GET").arg(name).clone();
        // Managed Redis often disables CONFIG: then only what INFO told.
        let Ok((policy, aof, save)) = redis::pipe()
            .add_command(get("maxmemory-policy"))
            .add_command(get("appendonly"))
            .add_command(get("save"))
            .query_async::<(Vec<String>, Vec<String>, Vec<String>)>(&mut conn)
            .await
        else {
            return Ok(warnings);
        };
        let value = |v: &[String]| v.get(1).cloned().unwrap_or_default();
        let policy = value(&policy);
        if !policy.is_empty() && policy != "noeviction" {
            warnings.push(format!(
                "redis maxmemory-policy is {policy}: under memory pressure Redis may evict queued jobs; set noeviction"
            ));
        }
        if value(&aof) != "yes" && value(&save).is_empty() {
            warnings.push(
                "redis has no persistence (appendonly no, no save points): a restart loses every queue; enable appendonly yes"
                    .to_owned(),
            );
        }
        Ok(warnings)
    }

    /// Live state of job `id`, or `None` if unknown (never enqueued or trimmed).
    pub async fn state(&self, id: &str) -> Result<Option<JobState>> {
        let mut conn = self.conn.clone();
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.job(id))
            .query_async(&mut conn)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        JobState::from_hash(h).map(Some)
    }

    /// Cancels job `id`: at once if it has not started, by request if it runs.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome> {
        let reply: String = self.invoke(&scripts::CANCEL, &[id.to_owned()]).await?;
        Ok(match reply.as_str() {
            "cancelled" => CancelOutcome::Cancelled,
            "cancel_requested" => CancelOutcome::CancelRequested,
            "not_found" => CancelOutcome::NotFound,
            other => {
                let state = other.trim_start_matches("already_");
                let status = match state {
                    "succeeded" => JobStatus::Succeeded,
                    "cancelled" => JobStatus::Cancelled,
                    "dead" => JobStatus::Dead,
                    _ => return Err(QueueError::Protocol(format!("cancel replied {other:?}"))),
                };
                CancelOutcome::AlreadyFinished(status)
            }
        })
    }

    /// Sizes of the queue's parts.
    pub async fn counts(&self) -> Result<QueueCounts> {
        let mut conn = self.conn.clone();
        let k = &self.keys;
        let (ready, scheduled, running, done, dead): (u64, u64, u64, u64, u64) = redis::pipe()
            .llen(k.part("ready"))
            .zcard(k.part("scheduled"))
            .zcard(k.part("leases"))
            .zcard(k.part("done"))
            .zcard(k.part("dead"))
            .query_async(&mut conn)
            .await?;
        Ok(QueueCounts {
            ready,
            scheduled,
            running,
            done,
            dead,
        })
    }

    /// When the job at the head of the ready list became due (epoch ms):
    /// the oldest waiting job, the queue's latency. `None` when none waits.
    pub async fn oldest_waiting(&self) -> Result<Option<u64>> {
        let mut conn = self.conn.clone();
        let head: Option<String> = redis::cmd("LINDEX")
            .arg(self.keys.part("ready"))
            .arg(0)
            .query_async(&mut conn)
            .await?;
        let Some(id) = head else { return Ok(None) };
        let run_at: Option<u64> = redis::cmd("HGET")
            .arg(self.keys.job(&id))
            .arg("run_at")
            .query_async(&mut conn)
            .await?;
        Ok(run_at)
    }

    /// How many jobs wait ahead of `id` in the ready list (0: it is next),
    /// or `None` when it is not there (claimed, scheduled, or unknown).
    /// `LPOS` walks the list: O(n) in the jobs ahead.
    pub async fn ready_position(&self, id: &str) -> Result<Option<u64>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LPOS")
            .arg(self.keys.part("ready"))
            .arg(id)
            .query_async(&mut conn)
            .await?)
    }

    /// Jobs that finished (succeeded, cancelled or dead) since `since_ms`
    /// (epoch ms): the queue's drain over a recent window. Exact for windows
    /// shorter than [`Retention::min_age`](crate::Retention), which count
    /// limits never trim.
    pub async fn finished_since(&self, since_ms: u64) -> Result<u64> {
        let mut conn = self.conn.clone();
        let (done, dead): (u64, u64) = redis::pipe()
            .zcount(self.keys.part("done"), since_ms, "+inf")
            .zcount(self.keys.part("dead"), since_ms, "+inf")
            .query_async(&mut conn)
            .await?;
        Ok(done + dead)
    }

    /// When a worker serving this queue last reported in (epoch ms), however
    /// long ago; `None` if none ever did (or its report was trimmed).
    pub async fn last_worker_report(&self) -> Result<Option<u64>> {
        let mut conn = self.conn.clone();
        let last: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(self.keys.part("workers"))
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok(last.first().map(|(_, at)| *at))
    }

    /// A page of dead jobs, newest first.
    pub async fn dead(&self, after: Option<&DeadCursor>, limit: u64) -> Result<DeadPage> {
        let mut conn = self.conn.clone();
        let limit = limit.clamp(1, STEP as u64) as usize;
        let key = self.keys.part("dead");
        let max = after.map_or_else(|| "+inf".to_owned(), |c| c.died_at_ms.to_string());
        // Newest first; jobs that died in the same millisecond come in
        // descending id order, so those after the cursor have smaller ids.
        let mut page: Vec<(String, u64)> = Vec::with_capacity(limit + 1);
        let mut skip = 0usize;
        let total: u64 = loop {
            let want = limit + 1 - page.len();
            let (total, batch): (u64, Vec<(String, f64)>) = redis::pipe()
                .zcard(&key)
                .cmd("ZRANGE")
                .arg(&key)
                .arg(&max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(skip)
                .arg(want + 16)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            let fetched = batch.len();
            skip += fetched;
            page.extend(
                batch
                    .into_iter()
                    .map(|(id, score)| (id, score as u64))
                    .filter(|(id, score)| after.is_none_or(|c| *score < c.died_at_ms || *id < c.id))
                    .take(want),
            );
            if page.len() > limit || fetched < want + 16 {
                break total;
            }
        };
        let more = page.len() > limit;
        page.truncate(limit);
        let next = more.then(|| page.last()).flatten().map(|(id, score)| DeadCursor {
            died_at_ms: *score,
            id: id.clone(),
        });
        let mut pipe = redis::pipe();
        for (id, _) in &page {
            pipe.hgetall(self.keys.job(id));
        }
        let hashes: Vec<std::collections::HashMap<String, String>> = if page.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let jobs = hashes
            .into_iter()
            .filter(|h| !h.is_empty())
            .map(JobState::from_hash)
            .collect::<Result<_>>()?;
        Ok(DeadPage { total, jobs, next })
    }

    /// Requeues dead job `id` with a fresh attempt budget. False if it is not dead.
    pub async fn requeue_dead(&self, id: &str) -> Result<bool> {
        let n: u64 = self
            .invoke(&scripts::REQUEUE_DEAD, &[STEP.to_string(), id.to_owned()])
            .await?;
        Ok(n == 1)
    }

    /// Requeues the given dead jobs (at most 1,000). Returns how many were dead.
    pub async fn requeue_dead_ids(&self, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut args = vec![STEP.to_string()];
        args.extend(ids.iter().take(STEP).cloned());
        self.invoke(&scripts::REQUEUE_DEAD, &args).await
    }

    /// Requeues every dead job, 1,000 per script call. Returns how many.
    pub async fn requeue_all_dead(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n: u64 = self.invoke(&scripts::REQUEUE_DEAD, &[STEP.to_string()]).await?;
            total += n;
            if n < STEP as u64 {
                return Ok(total);
            }
        }
    }

    /// Deletes dead job `id` for good. False if it is not dead.
    pub async fn delete_dead(&self, id: &str) -> Result<bool> {
        let n: u64 = self.invoke(&scripts::DELETE_DEAD, &[id.to_owned()]).await?;
        Ok(n == 1)
    }

    /// Promotes every due delayed or retrying job, 1,000 per script call.
    /// Returns how many, and how long until the next one is due.
    pub async fn promote_due(&self) -> Result<(u64, Option<Duration>)> {
        let mut total = 0;
        loop {
            let (n, next): (u64, i64) = self.invoke(&scripts::PROMOTE, &[STEP.to_string()]).await?;
            total += n;
            if n < STEP as u64 {
                let next = (next >= 0).then(|| Duration::from_millis(next as u64));
                return Ok((total, next));
            }
        }
    }

    /// Takes back every job whose lease expired, 1,000 per script call.
    pub async fn reap_expired(&self) -> Result<ReapReport> {
        let mut report = ReapReport::default();
        loop {
            let (expired, requeued, dead): (u64, u64, u64) =
                self.invoke(&scripts::REAP, &[STEP.to_string()]).await?;
            report.expired += expired;
            report.requeued += requeued;
            report.dead += dead;
            if expired < STEP as u64 {
                return Ok(report);
            }
        }
    }

    /// Deletes finished jobs beyond `max_age` or `max_count` from `set`
    /// ("done" or "dead"), 1,000 per script call. Returns how many.
    pub(crate) async fn trim_set(
        &self,
        set: &str,
        max_age: Duration,
        max_count: u64,
        min_age: Duration,
    ) -> Result<u64> {
        let mut total = 0;
        loop {
            let args = [
                set.to_owned(),
                max_age.as_millis().to_string(),
                max_count.to_string(),
                STEP.to_string(),
                min_age.as_millis().to_string(),
            ];
            let n: u64 = self.invoke(&scripts::TRIM, &args).await?;
            total += n;
            if n < STEP as u64 {
                return Ok(total);
            }
        }
    }

    /// Applies `retention` to succeeded/cancelled and to dead jobs.
    pub async fn trim(&self, retention: &crate::options::Retention) -> Result<u64> {
        let done = self
            .trim_set(
                "done",
                retention.done_max_age,
                retention.done_max_count,
                retention.min_age,
            )
            .await?;
        let dead = self
            .trim_set(
                "dead",
                retention.dead_max_age,
                retention.dead_max_count,
                retention.min_age,
            )
            .await?;
        Ok(done + dead)
    }

    /// Claims up to `max` ready jobs for `worker`. `nonce` must be unique per
    /// call: it makes the lease tokens unique and lets [`release_claim`](Self::release_claim)
    /// give the jobs back if the reply is lost.
    pub(crate) async fn fetch(
        &self,
        worker: &str,
        nonce: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>> {
        let args = [
            worker.to_owned(),
            max.to_string(),
            lease.as_millis().to_string(),
            nonce.to_owned(),
        ];
        let flat: Vec<String> = self.invoke(&scripts::FETCH, &args).await?;
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| QueueError::Protocol(format!("fetch: not a number: {s:?}")))
        };
        flat.chunks(9)
            .map(|c| {
                if c.len() != 9 {
                    return Err(QueueError::Protocol("fetch: short record".into()));
                }
                Ok(Claimed {
                    id: c[0].clone(),
                    kind: c[1].clone(),
                    payload: c[2].clone(),
                    attempts: num(&c[3])?,
                    deliveries: num(&c[4])?,
                    token: c[5].clone(),
                    max_attempts: num(&c[6])?,
                    correlation_id: c[7].clone(),
                    traceparent: c[8].clone(),
                })
            })
            .collect()
    }

    /// Records a batch of outcomes; returns for each the state the job ended
    /// in, or `None` if the outcome was stale (the lease had moved on).
    pub(crate) async fn finish(&self, batch: &[Finished]) -> Result<Vec<Option<JobStatus>>> {
        let mut args = Vec::with_capacity(batch.len() * 6);
        for f in batch {
            let (outcome, text, delay) = match &f.outcome {
                Outcome::Succeeded { result } => ("succeeded", result.clone(), 0),
                Outcome::Cancelled => ("cancelled", String::new(), 0),
                Outcome::Retry { error, delay } => ("retry", error.clone(), delay.as_millis() as u64),
                Outcome::Deferred { reason, delay } => ("defer", reason.clone(), delay.as_millis() as u64),
                Outcome::Dead { error } => ("dead", error.clone(), 0),
            };
            args.extend([
                f.id.clone(),
                f.token.clone(),
                outcome.to_owned(),
                text,
                delay.to_string(),
                f.attempt.to_string(),
            ]);
        }
        let states: Vec<String> = self.invoke(&scripts::FINISH, &args).await?;
        Ok(states.iter().map(|s| JobStatus::parse(s)).collect())
    }

    /// Extends leases; returns (lost ids, ids with a cancellation request).
    pub(crate) async fn renew(
        &self,
        lease: Duration,
        held: &[(String, String)],
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut args = Vec::with_capacity(1 + held.len() * 2);
        args.push(lease.as_millis().to_string());
        for (id, token) in held {
            args.push(id.clone());
            args.push(token.clone());
        }
        self.invoke(&scripts::RENEW, &args).await
    }

    /// Gives jobs back to the front of the queue. `unstarted`: their delivery
    /// does not count.
    pub(crate) async fn release(&self, held: &[(String, String)], unstarted: bool) -> Result<u64> {
        let mut args = Vec::with_capacity(1 + held.len() * 2);
        args.push(if unstarted { "1" } else { "0" }.to_owned());
        for (id, token) in held {
            args.push(id.clone());
            args.push(token.clone());
        }
        self.invoke(&scripts::RELEASE, &args).await
    }

    /// Gives back, uncounted, the jobs a fetch with `nonce` claimed but whose
    /// reply never arrived.
    pub(crate) async fn release_claim(&self, nonce: &str) -> Result<u64> {
        self.invoke(&scripts::RELEASE_CLAIM, &[nonce.to_owned()]).await
    }

    /// Stores progress if the lease is still held.
    pub(crate) async fn set_progress(
        &self,
        id: &str,
        token: &str,
        progress: &serde_json::Value,
    ) -> Result<bool> {
        let args = [id.to_owned(), token.to_owned(), serde_json::to_string(progress)?];
        let n: u8 = self.invoke(&scripts::PROGRESS, &args).await?;
        Ok(n == 1)
    }

    /// Blocks up to `timeout` for a wake-up signal on a connection opened for
    /// blocking. True if one came.
    pub(crate) async fn wait_for_wake(&self, blocking: &mut RedisConn, timeout: Duration) -> Result<bool> {
        let got: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(self.keys.part("wake"))
            .arg(timeout.as_secs_f64())
            .query_async(blocking)
            .await?;
        Ok(got.is_some())
    }
}

#[cfg(test)]
mod tests {
    //! Crate-internal operations against a real Redis (fresh prefix, cleaned up).
    use super::*;

    async fn queue() -> Queue {
        let url = std::env::var("HANGAR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
        Queue::connect(&RedisSettings::new(url), &prefix, "unit")
            .await
            .unwrap()
    }

    async fn cleanup(q: &Queue) {
        let mut conn = q.conn.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", q.prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
        }
    }

    /// Enqueues a job and claims it as `worker`: its id and the claim.
    async fn claim_one(q: &Queue, worker: &str, lease: Duration) -> (String, Claimed) {
        let job = NewJob::new("k", serde_json::json!({}));
        let id = job.id.to_string();
        q.enqueue(job).await.unwrap();
        let nonce = format!("{worker}#1");
        let claimed = q.fetch(worker, &nonce, 1, lease).await.unwrap().remove(0);
        (id, claimed)
    }

    /// The success of `claim`'s attempt 1.
    fn success(id: &str, claim: &Claimed, result: &str) -> Finished {
        Finished {
            id: id.to_owned(),
            token: claim.token.clone(),
            attempt: 1,
            outcome: Outcome::Succeeded {
                result: result.into(),
            },
        }
    }

    #[tokio::test]
    async fn a_fetch_whose_reply_was_lost_can_be_given_back_uncounted() {
        let q = queue().await;
        let job = NewJob::new("k", serde_json::json!({}));
        let id = job.id.to_string();
        q.enqueue(job).await.unwrap();
        let claimed = q.fetch("w", "w#1", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].token, "w#1/1");
        // Pretend the reply never arrived: release by the fetch's nonce.
        assert_eq!(q.release_claim("w#1").await.unwrap(), 1);
        let s = q.state(&id).await.unwrap().unwrap();
        assert_eq!((s.status, s.deliveries), (JobStatus::Queued, 0));
        assert_eq!(q.counts().await.unwrap().running, 0);
        // The next delivery gets a token that was never used before.
        let again = q.fetch("w", "w#2", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(again[0].token, "w#2/1");
        assert_eq!(
            q.release_claim("w#1").await.unwrap(),
            0,
            "nothing left under the old nonce"
        );
        cleanup(&q).await;
    }

    /// The chaos run's false "lease lost" / "outcome ignored": the worker's
    /// outcome reached Redis but its reply did not (or a renewal ran just
    /// after the finish), so the retried finish and the renewal saw a lease
    /// that was gone and blamed another worker.
    #[tokio::test]
    async fn an_outcome_sent_again_after_a_lost_reply_is_accepted_and_its_lease_is_not_lost() {
        let q = queue().await;
        let (id, c) = claim_one(&q, "w", Duration::from_secs(30)).await;
        let done = success(&id, &c, "42");
        let first = q.finish(std::slice::from_ref(&done)).await.unwrap();
        assert_eq!(first, [Some(JobStatus::Succeeded)]);
        // The reply was lost: the worker sends the same outcome again.
        let again = q.finish(std::slice::from_ref(&done)).await.unwrap();
        assert_eq!(again, [Some(JobStatus::Succeeded)], "not stale: its own outcome");
        // The lease thread renews between the finish and forgetting the job.
        let (lost, _) = q
            .renew(Duration::from_secs(30), &[(id.clone(), c.token.clone())])
            .await
            .unwrap();
        assert!(
            lost.is_empty(),
            "a finished delivery's lease is not lost: {lost:?}"
        );
        let s = q.state(&id).await.unwrap().unwrap();
        assert_eq!((s.status, s.attempts), (JobStatus::Succeeded, 1));
        assert_eq!(q.counts().await.unwrap().running, 0);
        cleanup(&q).await;
    }

    /// A real takeover still makes the older delivery's outcome stale.
    #[tokio::test]
    async fn an_outcome_after_a_real_takeover_is_still_stale() {
        let q = queue().await;
        let (id, old) = claim_one(&q, "w", Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.reap_expired().await.unwrap().expired, 1);
        let new = q
            .fetch("v", "v#1", 1, Duration::from_secs(30))
            .await
            .unwrap()
            .remove(0);
        assert_ne!(old.token, new.token);
        let (lost, _) = q
            .renew(Duration::from_secs(30), &[(id.clone(), old.token.clone())])
            .await
            .unwrap();
        assert_eq!(
            lost,
            std::slice::from_ref(&id),
            "the old delivery did lose its lease"
        );
        assert_eq!(q.finish(&[success(&id, &old, "old")]).await.unwrap(), [None]);
        let current = success(&id, &new, "new");
        assert_eq!(q.finish(&[current]).await.unwrap(), [Some(JobStatus::Succeeded)]);
        cleanup(&q).await;
    }

    #[tokio::test]
    async fn a_failed_attempt_of_a_job_with_a_cancel_request_ends_cancelled() {
        let q = queue().await;
        let (id, c) = claim_one(&q, "w", Duration::from_secs(30)).await;
        assert_eq!(q.cancel(&id).await.unwrap(), CancelOutcome::CancelRequested);
        // The handler failed before its heartbeat saw the request.
        let retry = Finished {
            id: id.clone(),
            token: c.token.clone(),
            attempt: 1,
            outcome: Outcome::Retry {
                error: "boom".into(),
                delay: Duration::ZERO,
            },
        };
        assert_eq!(
            q.finish(&[retry]).await.unwrap(),
            vec![Some(JobStatus::Cancelled)]
        );
        let s = q.state(&id).await.unwrap().unwrap();
        assert_eq!(s.status, JobStatus::Cancelled);
        assert_eq!(q.counts().await.unwrap().scheduled, 0, "not retried");
        cleanup(&q).await;
    }

    #[tokio::test]
    async fn a_released_job_with_a_cancel_request_ends_cancelled() {
        let q = queue().await;
        let job = NewJob::new("k", serde_json::json!({}));
        let id = job.id.to_string();
        q.enqueue(job).await.unwrap();
        let c = q
            .fetch("w", "w#1", 1, Duration::from_secs(30))
            .await
            .unwrap()
            .remove(0);
        q.cancel(&id).await.unwrap();
        assert_eq!(
            q.release(&[(id.clone(), c.token)], true).await.unwrap(),
            0,
            "not requeued"
        );
        assert_eq!(q.state(&id).await.unwrap().unwrap().status, JobStatus::Cancelled);
        assert_eq!(q.counts().await.unwrap().ready, 0);
        cleanup(&q).await;
    }

    #[tokio::test]
    async fn a_corrupted_error_history_does_not_break_outcomes_or_the_reaper() {
        let q = queue().await;
        let jobs: Vec<NewJob> = (0..2)
            .map(|_| NewJob::new("k", serde_json::json!({})).max_crashes(5))
            .collect();
        let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        q.enqueue_batch(jobs).await.unwrap();
        let mut conn = q.conn.clone();
        for id in &ids {
            let _: () = redis::cmd("HSET")
                .arg(q.keys.job(id))
                .arg("errors")
                .arg("{not json")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let claimed = q.fetch("w", "w#1", 2, Duration::from_millis(1)).await.unwrap();
        // One fails (history appended), the other's lease lapses (reaper appends).
        let retry = Finished {
            id: claimed[0].id.clone(),
            token: claimed[0].token.clone(),
            attempt: 1,
            outcome: Outcome::Retry {
                error: "boom".into(),
                delay: Duration::ZERO,
            },
        };
        assert_eq!(q.finish(&[retry]).await.unwrap(), vec![Some(JobStatus::Retrying)]);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(q.reap_expired().await.unwrap().requeued, 1);
        for id in &ids {
            let s = q.state(id).await.unwrap().unwrap();
            assert_eq!(
                s.errors.len(),
                1,
                "history restarted with the new entry: {:?}",
                s.errors
            );
        }
        cleanup(&q).await;
    }
}

/// A worker that has not reported in for this long is forgotten.
const WORKER_FORGOTTEN_MS: u64 = 60_000;

/// What a worker process says of itself when it reports in on a queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerReport {
    /// Its identity (host, process id, random suffix).
    pub id: String,
    /// When it started serving this queue (epoch milliseconds).
    #[serde(default)]
    pub started_at_ms: u64,
    /// Jobs it runs at once on this queue.
    #[serde(default)]
    pub concurrency: usize,
    /// Ids of the jobs it holds now (at most [`WorkerReport::LISTED`]).
    #[serde(default)]
    pub running: Vec<String>,
    /// How many it holds (also past the listed ones).
    #[serde(default)]
    pub holding: usize,
    /// Its software version.
    #[serde(default)]
    pub version: String,
}

impl WorkerReport {
    /// Job ids a report lists at most.
    pub const LISTED: usize = 50;
}
