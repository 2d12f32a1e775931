//! Generated tokens on their way from the worker to whoever watches the
//! job (`GET /api/v1/jobs/{id}/stream`), through a Redis stream per job:
//! ordered, replayable from the start (a client that connects late misses
//! nothing) and resumable from an entry id (SSE's `Last-Event-ID`), and
//! shared by every API replica.
//!
//! Entries carry a type `t` and JSON data `d`: `tokens` (a list of texts),
//! `retry` (the attempt failed and starts over: discard the text so far),
//! `done` (the job's result) and `error` (the job failed or was cancelled).

use std::time::Duration;

use hangar_queue::RedisConn;
use redis::Value as RedisValue;
use serde_json::Value;
use tokio::sync::mpsc;

/// How long a job's stream stays readable after its last entry.
pub const STREAM_TTL: Duration = Duration::from_secs(3600);
/// Entries kept per stream, at most (a generation is capped well below).
const MAX_ENTRIES: u32 = 100_000;

/// The stream key of job `id`. Every stream shares the hash tag `{tokens}`
/// so that one XREAD can follow many of them on a Redis Cluster (a command
/// may not span hash slots).
pub fn stream_key(prefix: &str, job_id: &str) -> String {
    format!("{prefix}:{{tokens}}:{job_id}")
}

/// One entry, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The Redis entry id (`1700000000000-0`), usable as an SSE event id.
    pub id: String,
    /// `tokens`, `retry`, `done` or `error`.
    pub kind: String,
    /// Its data.
    pub data: Value,
}

/// Appends one entry.
pub async fn append(conn: &RedisConn, key: &str, kind: &str, data: &Value) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    redis::pipe()
        .cmd("XADD")
        .arg(key)
        .arg("MAXLEN")
        .arg("~")
        .arg(MAX_ENTRIES)
        .arg("*")
        .arg("t")
        .arg(kind)
        .arg("d")
        .arg(data.to_string())
        .ignore()
        .cmd("PEXPIRE")
        .arg(key)
        .arg(STREAM_TTL.as_millis() as u64)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
}

/// Publishes the token deltas sent to the returned sender, a batch per
/// entry, until the sender is dropped; resolves to how many were published.
/// A Redis failure loses stream entries only (the job's result is recorded
/// regardless), so it is logged, not fatal.
pub fn publisher(
    conn: RedisConn,
    key: String,
) -> (mpsc::UnboundedSender<String>, tokio::task::JoinHandle<u64>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        let mut published = 0u64;
        let mut batch = Vec::new();
        let mut warned = false;
        // Whatever arrived while the previous entry was being written goes
        // out as one entry: batches grow with the token rate on their own,
        // and nothing waits on a timer (the last tokens, and so the result,
        // are never held back).
        while rx.recv_many(&mut batch, 512).await > 0 {
            published += batch.len() as u64;
            if let Err(e) = append(&conn, &key, "tokens", &Value::from(std::mem::take(&mut batch))).await
                && !warned
            {
                warned = true;
                tracing::warn!(error = %e, "could not publish tokens; stream watchers miss some (the result is unaffected)");
            }
        }
        published
    });
    (tx, task)
}

fn text(v: &RedisValue) -> Option<String> {
    match v {
        RedisValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RedisValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn entries(v: &RedisValue) -> Vec<Entry> {
    let RedisValue::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let RedisValue::Array(parts) = item else {
                return None;
            };
            let id = text(parts.first()?)?;
            let RedisValue::Array(fields) = parts.get(1)? else {
                return None;
            };
            let mut kind = String::new();
            let mut data = Value::Null;
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1).and_then(text)) {
                    (Some("t"), Some(t)) => kind = t,
                    (Some("d"), Some(d)) => data = serde_json::from_str(&d).unwrap_or(Value::Null),
                    _ => {}
                }
            }
            Some(Entry { id, kind, data })
        })
        .collect()
}

/// Entries of several streams at once, each after its own cursor, waiting
/// up to `block` for the first: `(key, entries)` for the streams that had
/// any. One connection follows any number of streams this way.
pub async fn read_many(
    conn: &mut RedisConn,
    keys: &[&str],
    after: &[String],
    block: Duration,
) -> redis::RedisResult<Vec<(String, Vec<Entry>)>> {
    let reply: RedisValue = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(256)
        .arg("BLOCK")
        .arg(block.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(keys)
        .arg(after)
        .query_async(conn)
        .await?;
    // [[key, [entries]], ...] (RESP2) or nil on timeout.
    let RedisValue::Array(streams) = reply else {
        return Ok(Vec::new());
    };
    Ok(streams
        .iter()
        .filter_map(|s| match s {
            RedisValue::Array(kv) => Some((text(kv.first()?)?, kv.get(1).map(entries).unwrap_or_default())),
            _ => None,
        })
        .collect())
}

/// The entry with exactly `id`, if it is still there.
pub async fn entry(conn: &mut RedisConn, key: &str, id: &str) -> redis::RedisResult<Option<Entry>> {
    let reply: RedisValue = redis::cmd("XRANGE")
        .arg(key)
        .arg(id)
        .arg(id)
        .query_async(conn)
        .await?;
    Ok(entries(&reply).into_iter().next())
}

/// Whether the stream exists (it expires an hour after its last entry).
pub async fn exists(conn: &mut RedisConn, key: &str) -> redis::RedisResult<bool> {
    redis::cmd("EXISTS").arg(key).query_async(conn).await
}
