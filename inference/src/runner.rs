//! One `inference.chat` job, start to finish: decode and re-check the
//! payload, load the conversation, fit it into the context, take a server
//! slot (capped across every worker), stream the completion with retries,
//! publish tokens as they come, store the new turn, and answer the result.
//!
//! One file, and one long `run_inner`, because it is one job's sequence: each
//! step decides what the next may assume (a redelivery, a stored answer, a
//! held slot), and the order is the contract.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use hangar_queue::RedisConn;
use hangar_queue::{DistributedSemaphore, JobContext};
use hangar_shared::{
    chat::{ChatMessage, Role},
    kinds::Chat,
    models::{ModelConfig, ModelRegistry},
};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{
    client::{ChatRequest, Completion, ModelClient, context_overflow_message},
    context::{self, estimate_tokens},
    error::InferenceError,
    health::ModelMonitor,
    metrics::InferenceMetrics,
    tokens,
};

/// How a job ended, when not with a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatFailure {
    /// Cannot succeed as asked: do not run again.
    #[error("{0}")]
    Permanent(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Could not start (its model is not ready): give it back to the queue
    /// for [`DEFER_DELAY`] without using up an attempt.
    #[error("{0}")]
    Deferred(String),
}

/// How long a job whose model is not ready waits in the worker (holding
/// one of its slots) before it is given back to the queue.
const NOT_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Deliveries after which a job whose model is still not ready fails (about
/// an hour of deferrals): a model broken for good must not hold jobs, and
/// the clients watching them, forever.
const MAX_DEFERRED_DELIVERIES: u32 = 500;
/// How long a deferred job stays out of the queue.
pub const DEFER_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// The semaphore lease: long enough to ride out a Redis hiccup, short
/// enough that a killed worker's slot comes back quickly.
const SLOT_LEASE: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `inference.chat` jobs.
#[derive(Clone)]
pub struct ChatRunner {
    registry: ModelRegistry,
    monitor: ModelMonitor,
    pool: PgPool,
    redis: RedisConn,
    prefix: String,
    metrics: Arc<InferenceMetrics>,
    slots: Arc<BTreeMap<String, DistributedSemaphore>>,
    /// Rung when this process frees a slot, so its own waiters try at once
    /// (waiters in other processes find it at their next poll).
    freed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for ChatRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatRunner")
            .field("monitor", &self.monitor)
            .finish()
    }
}

/// The semaphore that caps model `name`'s requests in flight.
pub fn slot_semaphore(conn: RedisConn, prefix: &str, model: &ModelConfig) -> DistributedSemaphore {
    DistributedSemaphore::new(
        conn,
        prefix,
        &format!("model:{}", model.name),
        model.max_in_flight,
        SLOT_LEASE,
    )
}

impl ChatRunner {
    /// A runner over `registry`'s models, probed by `monitor`.
    pub fn new(
        registry: ModelRegistry,
        monitor: ModelMonitor,
        pool: PgPool,
        redis: RedisConn,
        prefix: &str,
        metrics: Arc<InferenceMetrics>,
    ) -> Self {
        let slots = registry
            .iter()
            .map(|m| (m.name.clone(), slot_semaphore(redis.clone(), prefix, m)))
            .collect();
        Self {
            registry,
            monitor,
            pool,
            redis,
            prefix: prefix.to_owned(),
            metrics,
            slots: Arc::new(slots),
            freed: Arc::default(),
        }
    }

    /// Runs the job. Tokens go to the job's stream as they arrive; the
    /// final entry (`done` or `error`) is written before this returns.
    pub async fn run(&self, job: &JobContext, payload: Chat) -> Result<Value, ChatFailure> {
        let key = tokens::stream_key(&self.prefix, job.id());
        let model = payload.model.clone();
        let outcome = self.run_inner(job, payload, &key).await;
        let (kind, data, label) = match &outcome {
            Ok(result) => ("done", result.clone(), "succeeded"),
            Err(ChatFailure::Cancelled) => (
                "error",
                json!({"error": "cancelled", "state": "cancelled"}),
                "cancelled",
            ),
            Err(ChatFailure::Permanent(m)) => ("error", json!({"error": m, "state": "dead"}), "failed"),
            Err(ChatFailure::Deferred(m)) => ("deferred", json!({"reason": m}), "deferred"),
        };
        // Stopped without a cancel request: this worker lost the job's lease
        // and another delivery carries on, so the stream is not over.
        let lease_lost = matches!(outcome, Err(ChatFailure::Cancelled)) && !job.cancel_requested();
        if matches!(outcome, Err(ChatFailure::Deferred(_))) {
            // Not over: the job runs later, and its stream goes on then.
        } else if lease_lost {
            tracing::warn!("lease lost mid-generation; the job's next delivery continues its stream");
        } else if let Err(e) = tokens::append(&self.redis, &key, kind, &data).await {
            tracing::warn!(error = %e, "could not publish the final stream entry; watchers fall back to the job's state");
        }
        self.metrics.outcome(&model, label);
        outcome
    }

    async fn run_inner(&self, job: &JobContext, mut p: Chat, key: &str) -> Result<Value, ChatFailure> {
        // Checked again: the models file may have changed since the API took it.
        p.fit_to_models(&self.registry)
            .map_err(|e| ChatFailure::Permanent(e.to_string()))?;
        let model = self
            .registry
            .get(&p.model)
            .ok_or_else(|| ChatFailure::Permanent(format!("model {} is not configured", p.model)))?;
        let client = self
            .monitor
            .client(&model.name)
            .ok_or_else(|| ChatFailure::Permanent(format!("model {} is not monitored", model.name)))?;
        let max_tokens = p.max_tokens.unwrap_or(model.defaults.max_tokens);
        if job.deliveries() > 1
            && tokens::exists(&mut self.redis.clone(), key)
                .await
                .unwrap_or(false)
        {
            // An earlier delivery may have streamed tokens: watchers start over.
            let _ = tokens::append(
                &self.redis,
                key,
                "retry",
                &json!({"reason": "redelivered", "delivery": job.deliveries()}),
            )
            .await;
        }
        // A delivery that died after storing its answer (before the queue
        // heard of it) already did the work: answer what it stored. Only a
        // redelivery can find one, so first deliveries skip the query.
        if job.deliveries() > 1
            && let Some(stored) = self.stored_answer(job.id()).await?
        {
            tracing::info!("answer already stored by an earlier delivery; not generating again");
            return Ok(stored);
        }

        // The conversation so far, and the turn this job adds.
        let (conversation_id, earlier, new_turn) = match (&p.messages, &p.conversation_id) {
            (Some(messages), _) => (job.id().to_owned(), Vec::new(), messages.clone()),
            (None, Some(id)) => {
                let earlier = self.load_conversation(id, job.id(), &model.name).await?;
                let user = ChatMessage {
                    role: Role::User,
                    content: p.message.clone().unwrap_or_default(),
                };
                (id.clone(), earlier, vec![user])
            }
            (None, None) => return Err(ChatFailure::Permanent("payload.messages: missing".into())),
        };
        let (mut history, mut known): (Vec<ChatMessage>, Vec<Option<usize>>) = earlier.into_iter().unzip();
        history.extend(new_turn.iter().cloned());
        known.resize(history.len(), None);

        // Wait for the model to be ready (a worker only leases while one of
        // its models is; this one may be another).
        if !self.monitor.is_ready(&model.name) {
            job.report_progress(json!({"phase": "waiting_for_model", "model": model.name}))
                .await;
            tokio::select! {
                () = self.monitor.wait_ready(&model.name) => {}
                () = tokio::time::sleep(NOT_READY_WAIT) => {
                    // Back to the queue, the attempt uncounted: the job waits
                    // for its model instead of dying of the outage.
                    let h = self.monitor.health(&model.name).unwrap_or_default();
                    if job.deliveries() >= MAX_DEFERRED_DELIVERIES {
                        return Err(ChatFailure::Permanent(format!(
                            "model {} was not ready in {} tries over about an hour ({}); giving up",
                            model.name, job.deliveries(),
                            h.last_error.unwrap_or_else(|| h.status.to_owned()))));
                    }
                    return Err(ChatFailure::Deferred(format!(
                        "model {} is not ready ({}): waiting for it", model.name,
                        h.last_error.unwrap_or_else(|| h.status.to_owned()))));
                }
                () = job.cancelled() => return Err(ChatFailure::Cancelled),
            }
        }

        let (fitted, counts) = self.fit(client, &history, &known, max_tokens).await?;
        self.metrics.dropped(&model.name, fitted.dropped as u64);
        let request = ChatRequest {
            messages: fitted.messages,
            temperature: p.temperature.unwrap_or(model.defaults.temperature),
            top_p: p.top_p.unwrap_or(model.defaults.top_p),
            max_tokens,
            stop: p.stop.clone().unwrap_or_default(),
            seed: p.seed,
        };

        // A server slot, across every worker.
        let slot_token = format!("{}#{}", job.id(), job.deliveries());
        let sem = self
            .slots
            .get(&model.name)
            .ok_or_else(|| ChatFailure::Permanent(format!("no semaphore for model {}", model.name)))?;
        let waited = Instant::now();
        job.report_progress(json!({"phase": "waiting_for_slot", "model": model.name}))
            .await;
        tokio::select! {
            () = acquire(sem, &slot_token, &self.freed) => {}
            () = job.cancelled() => {
                // An acquire may have landed just before: give it back.
                let _ = sem.release(&slot_token).await;
                return Err(ChatFailure::Cancelled);
            }
        }
        let slot_wait = waited.elapsed();
        self.metrics.slot_waited(&model.name, slot_wait.as_secs_f64());
        let slot = HeldSlot::new(sem.clone(), slot_token, self.metrics.clone(), &model.name);
        let generated = self.generate(job, client, &request, key).await;
        slot.release().await;
        self.freed.notify_waiters();
        let (completion, tries) = generated?;

        let prompt = completion.prompt_tokens.unwrap_or(fitted.prompt_tokens as u64);
        let generated_tokens = completion.completion_tokens.unwrap_or(completion.deltas);
        self.metrics.tokens(&model.name, prompt, generated_tokens);
        self.metrics.timings(
            &model.name,
            completion.elapsed.as_secs_f64(),
            completion.first_token.map(|d| d.as_secs_f64()),
        );
        let answer = ChatMessage {
            role: Role::Assistant,
            content: completion.content.clone(),
        };
        let turn_counts = counts.map(|c| c[c.len() - new_turn.len()..].to_vec());
        let answer_tokens = completion.completion_tokens.map(|n| n as usize);
        self.store_turn(&NewTurn {
            job_id: job.id(),
            conversation_id: &conversation_id,
            model: &model.name,
            new_conversation: p.messages.is_some(),
            messages: &new_turn,
            counts: turn_counts.as_deref(),
            answer: &answer,
            answer_tokens,
        })
        .await?;
        tracing::info!(model = %model.name, prompt_tokens = prompt, completion_tokens = generated_tokens,
            finish_reason = %completion.finish_reason, ms = completion.elapsed.as_millis() as u64, "chat completed");
        Ok(json!({
            "model": model.name,
            "content": completion.content,
            "finish_reason": completion.finish_reason,
            "conversation_id": conversation_id,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": generated_tokens,
                "total_tokens": prompt + generated_tokens,
            },
            "timings": {
                "slot_wait_ms": slot_wait.as_millis() as u64,
                "first_token_ms": completion.first_token.map(|d| d.as_millis() as u64),
                "generation_ms": completion.elapsed.as_millis() as u64,
                "server": completion.server_timings,
            },
            "dropped_turns": fitted.dropped,
            "tries": tries,
        }))
    }

    /// The answer an earlier delivery of `job_id` stored, as a result.
    async fn stored_answer(&self, job_id: &str) -> Result<Option<Value>, ChatFailure> {
        let row = with_db_retries(DB_PATIENCE, || {
            sqlx::query!(
                "SELECT m.conversation_id, m.content, c.model FROM messages m
                 JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.job_id = $1 AND m.role = 'assistant'",
                job_id
            )
            .fetch_optional(&self.pool)
        })
        .await?;
        Ok(row.map(|r| {
            json!({
                "model": r.model,
                "content": r.content,
                "finish_reason": null,
                "conversation_id": r.conversation_id,
                "recovered": true,
            })
        }))
    }

    /// The conversation's earlier turns (not this job's own, should an
    /// earlier delivery have stored them), each with its token count when
    /// it was counted by `model`'s tokenizer.
    async fn load_conversation(
        &self,
        id: &str,
        job_id: &str,
        model: &str,
    ) -> Result<Vec<(ChatMessage, Option<usize>)>, ChatFailure> {
        let conversation = with_db_retries(DB_PATIENCE, || {
            sqlx::query_scalar!("SELECT model FROM conversations WHERE id = $1", id)
                .fetch_optional(&self.pool)
        })
        .await?
        .ok_or_else(|| ChatFailure::Permanent(format!("payload.conversation_id: no conversation {id}")))?;
        let rows = with_db_retries(DB_PATIENCE, || {
            sqlx::query!(
                "SELECT role, content, tokens FROM messages WHERE conversation_id = $1 AND job_id <> $2 ORDER BY id",
                id,
                job_id
            )
            .fetch_all(&self.pool)
        })
        .await?;
        let same_tokenizer = conversation == model;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let tokens = r.tokens.filter(|_| same_tokenizer).map(|n| n.max(0) as usize);
                Some((
                    ChatMessage {
                        role: Role::parse(&r.role)?,
                        content: r.content,
                    },
                    tokens,
                ))
            })
            .collect())
    }

    /// Counts each message (`known` counts are reused; the rest go to the
    /// server's tokenizer, or are estimated for servers without one) and
    /// keeps what fits. Also returns the counts when all are exact.
    async fn fit(
        &self,
        client: &ModelClient,
        history: &[ChatMessage],
        known: &[Option<usize>],
        max_tokens: u32,
    ) -> Result<(context::Fitted, Option<Vec<usize>>), ChatFailure> {
        let model = client.model();
        let mut counts = Vec::with_capacity(history.len());
        let mut exact = true;
        for (m, known) in history.iter().zip(known) {
            let n = match known {
                Some(n) => *n,
                None if exact => match client.count_tokens(&m.content).await {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => {
                        // No tokenizer endpoint, or the server is briefly
                        // unreachable: estimate (the server has the last word).
                        exact = false;
                        estimate_tokens(&m.content)
                    }
                },
                None => estimate_tokens(&m.content),
            };
            counts.push(n);
        }
        let fitted = context::fit(history, &counts, model.context_size as usize, max_tokens as usize)
            .map_err(|needed| {
                ChatFailure::Permanent(format!(
                    "{} (max_tokens {max_tokens} is reserved for the answer)",
                    context_overflow_message(
                        &model.name,
                        Some(needed as u64),
                        Some(u64::from(model.context_size))
                    )
                ))
            })?;
        Ok((fitted, exact.then_some(counts)))
    }

    /// Streams the completion, retrying transient failures with backoff up
    /// to the model's `request_attempts`. Returns the completion and tries.
    async fn generate(
        &self,
        job: &JobContext,
        client: &ModelClient,
        request: &ChatRequest,
        key: &str,
    ) -> Result<(Completion, u32), ChatFailure> {
        let model = client.model();
        let mut previous_answer: Option<(u16, String)> = None;
        let mut delay = std::time::Duration::from_millis(250);
        for attempt in 1..=model.request_attempts {
            job.report_progress(json!({"phase": "generating", "model": model.name, "try": attempt}))
                .await;
            let (tx, publisher) = tokens::publisher(self.redis.clone(), key.to_owned());
            let result = tokio::select! {
                r = client.chat_stream(request, &tx) => r,
                () = job.cancelled() => {
                    // Dropping the stream closes the connection: the server stops generating.
                    drop(tx);
                    let _ = publisher.await;
                    return Err(ChatFailure::Cancelled);
                }
            };
            drop(tx);
            let published = publisher.await.unwrap_or(0);
            let err = match result {
                Ok(c) => return Ok((c, attempt)),
                Err(InferenceError::Permanent(m)) => return Err(ChatFailure::Permanent(m)),
                Err(e) => e,
            };
            if let InferenceError::Transient {
                answer: Some((status, body)),
                ..
            } = &err
                && *status >= 500
                && *status != 503
            {
                if previous_answer.as_ref() == Some(&(*status, body.clone())) {
                    return Err(ChatFailure::Permanent(format!(
                        "{err} (the same answer twice: the server rejects this request, so it is not retried again)"
                    )));
                }
                previous_answer = Some((*status, body.clone()));
            }
            if err.reason() == "refused" {
                self.monitor.report_unreachable(&model.name, &err.to_string());
            }
            if attempt == model.request_attempts {
                return Err(ChatFailure::Permanent(format!(
                    "{err} (gave up after {attempt} tries)"
                )));
            }
            self.metrics.retry(&model.name, err.reason());
            tracing::warn!(model = %model.name, try_ = attempt, reason = err.reason(), error = %err, ?delay, "model request failed; retrying");
            if published > 0 {
                let _ = tokens::append(
                    &self.redis,
                    key,
                    "retry",
                    &json!({"try": attempt + 1, "reason": err.to_string()}),
                )
                .await;
            }
            job.report_progress(
                json!({"phase": "retrying", "model": model.name, "try": attempt, "error": err.to_string()}),
            )
            .await;
            let jittered = delay.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                () = tokio::time::sleep(jittered) => {}
                () = job.cancelled() => return Err(ChatFailure::Cancelled),
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(8));
        }
        Err(ChatFailure::Permanent("no tries configured".into()))
    }

    /// Stores the new turn with the answer in one transaction, idempotently
    /// (a redelivered job inserts nothing twice), retrying while PostgreSQL
    /// is briefly away.
    async fn store_turn(&self, turn: &NewTurn<'_>) -> Result<(), ChatFailure> {
        with_db_retries(STORE_PATIENCE, || self.store_turn_once(turn))
            .await
            .map_err(|e| match e {
                ChatFailure::Permanent(m) => ChatFailure::Permanent(format!("storing the conversation: {m}")),
                other => other,
            })
    }

    async fn store_turn_once(&self, turn: &NewTurn<'_>) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if turn.new_conversation {
            sqlx::query!(
                "INSERT INTO conversations (id, model, created_by)
                 SELECT $1, $2, (SELECT requested_by FROM job_runs WHERE id = $1)
                 ON CONFLICT (id) DO NOTHING",
                turn.conversation_id,
                turn.model
            )
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query!(
                "UPDATE conversations SET updated_at = now() WHERE id = $1",
                turn.conversation_id
            )
            .execute(&mut *tx)
            .await?;
        }
        let all: Vec<&ChatMessage> = turn.messages.iter().chain(std::iter::once(turn.answer)).collect();
        let positions: Vec<i16> = (0..all.len() as i16).collect();
        let roles: Vec<String> = all.iter().map(|m| m.role.as_str().to_owned()).collect();
        let contents: Vec<String> = all.iter().map(|m| m.content.clone()).collect();
        let tokens: Vec<Option<i32>> = (0..turn.messages.len())
            .map(|i| turn.counts.and_then(|c| c.get(i)).map(|&n| n as i32))
            .chain(std::iter::once(turn.answer_tokens.map(|n| n as i32)))
            .collect();
        sqlx::query!(
            "INSERT INTO messages (conversation_id, job_id, position, role, content, tokens)
             SELECT $1, $2, pos, role, content,
                    -- counts by another model's tokenizer would mislead later turns
                    CASE WHEN (SELECT model FROM conversations WHERE id = $1) = $7 THEN tokens END
             FROM UNNEST($3::smallint[], $4::text[], $5::text[], $6::int4[]) AS t(pos, role, content, tokens)
             ORDER BY pos
             ON CONFLICT (job_id, position) DO NOTHING",
            turn.conversation_id,
            turn.job_id,
            &positions,
            &roles,
            &contents,
            &tokens as &[Option<i32>],
            turn.model
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}

/// What a finished job adds to its conversation.
struct NewTurn<'a> {
    job_id: &'a str,
    conversation_id: &'a str,
    model: &'a str,
    /// The job started the conversation (its messages are all new).
    new_conversation: bool,
    /// The messages this job adds before the answer.
    messages: &'a [ChatMessage],
    /// Their token counts, when counted exactly.
    counts: Option<&'a [usize]>,
    answer: &'a ChatMessage,
    /// The answer's tokens, as the server counted them.
    answer_tokens: Option<usize>,
}

/// Waits for a free slot, polling with jitter, 5 ms doubling to 50 ms: a
/// slot left idle for a long pause is throughput lost (bench/inference.sh),
/// and a poll is one small script call. Redis errors are waited out: the
/// job cannot run without the cap.
async fn acquire(sem: &DistributedSemaphore, token: &str, freed: &tokio::sync::Notify) {
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match sem.try_acquire(token).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable while waiting for a server slot; retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64())) => {}
            () = freed.notified() => {}
        }
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// A held server slot: renewed in the background until released. Dropped
/// without `release` (the job's future dropped, a panic), it stops
/// renewing, and the slot lapses with its lease.
struct HeldSlot {
    sem: DistributedSemaphore,
    token: String,
    renewer: Option<tokio::task::JoinHandle<()>>,
    metrics: Arc<InferenceMetrics>,
    model: String,
}

impl HeldSlot {
    fn new(sem: DistributedSemaphore, token: String, metrics: Arc<InferenceMetrics>, model: &str) -> Self {
        metrics.in_flight(model, 1);
        let renewer = Some(tokio::spawn(renew_slot(sem.clone(), token.clone())));
        Self {
            sem,
            token,
            renewer,
            metrics,
            model: model.to_owned(),
        }
    }

    async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
            // A renewal in flight must not land after the release.
            let _ = r.await;
        }
        if let Err(e) = self.sem.release(&self.token).await {
            tracing::warn!(error = %e, "could not release the server slot; its lease frees it shortly");
        }
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        self.metrics.in_flight(&self.model, -1);
    }
}

/// Runs a database call, retrying while PostgreSQL is unreachable (down,
/// restarting, failing over) for up to `patience`. Still unreachable after
/// that, the job is deferred: back to the queue, its attempt unused, so an
/// outage delays it instead of killing it. A statement PostgreSQL rejects
/// is a permanent failure.
async fn with_db_retries<T, F, Fut>(patience: std::time::Duration, mut call: F) -> Result<T, ChatFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if hangar_shared::db::is_transient(&e) => {
                if started.elapsed() >= patience {
                    return Err(ChatFailure::Deferred(format!(
                        "PostgreSQL unavailable for {patience:?}: {e}"
                    )));
                }
                tracing::warn!(error = %e, "PostgreSQL unavailable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(ChatFailure::Permanent(format!("database: {e}"))),
        }
    }
}

/// How long the job waits for PostgreSQL before it starts generating.
const DB_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a generated answer waits for PostgreSQL to store it (an answer
/// given up on is generated again when the job comes back).
const STORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

async fn renew_slot(sem: DistributedSemaphore, token: String) {
    loop {
        tokio::time::sleep(sem.lease() / 3).await;
        match sem.renew(&token).await {
            Ok(true) => {}
            Ok(false) => {
                // Lapsed (Redis or this worker stalled), or taken over by a
                // later delivery of the job: finish without it rather than
                // push the server past its slots.
                tracing::warn!(%token, "server slot lease lapsed; finishing this request without it");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not renew the server slot"),
        }
    }
}
