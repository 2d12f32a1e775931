//! Token streams for `GET /api/v1/jobs/{id}/stream`, shared.
//!
//! A relay used to open its own Redis connection and hold it in a blocking
//! XREAD for up to an hour: 300 viewers watching one queued job meant 300
//! Redis clients and 600 open files, and against a Redis with a small
//! `maxclients` they locked every queue out. Now one reader task per API
//! process follows every watched stream with one blocking XREAD on one
//! dedicated connection and hands entries to the relays through channels, so
//! the Redis cost of streams is one connection whatever their number.
//! Admission is bounded per caller and per process ([`StreamHub::admit`]),
//! and a new watcher interrupts the reader's current wait (`CLIENT UNBLOCK`)
//! so its first entries are not delayed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use hangar_inference::tokens::{self, Entry};
use hangar_queue::RedisConn;
use hangar_queue::RedisSettings;
use tokio::sync::{Notify, mpsc};

use crate::metrics::Metrics;

/// How long one XREAD waits (a new watcher interrupts it).
const READ_BLOCK: Duration = Duration::from_secs(5);
/// How long one XREAD waits on a Redis Cluster. There `CLIENT ID` and
/// `CLIENT UNBLOCK` would reach whichever node the client picks, not the
/// one the reader blocks on, so a new watcher cannot interrupt the wait:
/// short waits bound the delay of its first entries instead.
const CLUSTER_READ_BLOCK: Duration = Duration::from_millis(250);
/// Batches of entries a watcher may have waiting; a watcher that falls
/// further behind is dropped (its client resumes with `Last-Event-ID`).
const WATCHER_BACKLOG: usize = 64;

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The caller has `HANGAR_STREAMS_PER_CALLER` open.
    Caller(usize),
    /// The process has `HANGAR_STREAMS_MAX` open.
    Total(usize),
}

/// Every watched stream of this process, read by one task.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamHub")
    }
}

struct Inner {
    watchers: Mutex<HashMap<String, Vec<Watcher>>>,
    open: Mutex<HashMap<String, usize>>,
    per_caller: usize,
    max: usize,
    changed: Notify,
    /// The reader connection's `CLIENT ID` (0: none yet).
    reader_id: AtomicI64,
    next_id: AtomicU64,
    control: RedisConn,
    metrics: Arc<Metrics>,
}

struct Watcher {
    id: u64,
    after: (u64, u64),
    tx: mpsc::Sender<Vec<Entry>>,
}

/// An admitted stream: holds its caller's slot until dropped.
pub struct Admission {
    inner: Arc<Inner>,
    caller: String,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
        self.inner.metrics.stream_open(-1);
    }
}

/// Entries of one stream after a cursor, as the reader finds them.
pub struct Subscription {
    inner: Arc<Inner>,
    key: String,
    id: u64,
    rx: mpsc::Receiver<Vec<Entry>>,
}

impl Subscription {
    /// The next entries; `None` when the watcher was dropped for falling behind.
    pub async fn next(&mut self) -> Option<Vec<Entry>> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut watchers = self.inner.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = watchers.get_mut(&self.key) {
            list.retain(|w| w.id != self.id);
            if list.is_empty() {
                watchers.remove(&self.key);
            }
        }
    }
}

/// `1700000000000-3` as a comparable pair; `0` (from the start) is (0, 0).
fn entry_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

impl StreamHub {
    /// Starts the reader (its connection opens on first use).
    pub fn start(
        settings: RedisSettings,
        control: RedisConn,
        per_caller: usize,
        max: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let inner = Arc::new(Inner {
            watchers: Mutex::default(),
            open: Mutex::default(),
            per_caller,
            max,
            changed: Notify::new(),
            reader_id: AtomicI64::new(0),
            next_id: AtomicU64::new(1),
            control,
            metrics,
        });
        tokio::spawn(read_loop(Arc::downgrade(&inner), settings));
        Self { inner }
    }

    /// Takes one of `caller`'s stream slots, or says which limit is reached.
    pub fn admit(&self, caller: &str) -> Result<Admission, Refused> {
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = open.values().sum();
        if total >= self.inner.max {
            self.inner.metrics.stream_refused("total");
            return Err(Refused::Total(self.inner.max));
        }
        let mine = open.entry(caller.to_owned()).or_default();
        if *mine >= self.inner.per_caller {
            self.inner.metrics.stream_refused("caller");
            return Err(Refused::Caller(self.inner.per_caller));
        }
        *mine += 1;
        self.inner.metrics.stream_open(1);
        Ok(Admission {
            inner: self.inner.clone(),
            caller: caller.to_owned(),
        })
    }

    /// Follows stream `key` from after entry `after` (`0`: from the start).
    pub async fn subscribe(&self, key: &str, after: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(WATCHER_BACKLOG);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default()
            .push(Watcher {
                id,
                after: entry_id(after),
                tx,
            });
        self.inner.changed.notify_one();
        // The reader may be blocked on the streams it knew: wake it so the
        // new one is read at once, not after the current wait.
        let reader = self.inner.reader_id.load(Ordering::Relaxed);
        if reader > 0 && !self.inner.control.is_cluster() {
            let mut conn = self.inner.control.clone();
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("UNBLOCK")
                .arg(reader)
                .query_async(&mut conn)
                .await;
        }
        Subscription {
            inner: self.inner.clone(),
            key: key.to_owned(),
            id,
            rx,
        }
    }
}

/// The one reader: XREAD over every watched stream from the earliest
/// cursor each, then each watcher gets the entries past its own cursor.
async fn read_loop(hub: std::sync::Weak<Inner>, settings: RedisSettings) {
    let mut conn: Option<RedisConn> = None;
    loop {
        let Some(inner) = hub.upgrade() else { return };
        let wanted: Vec<(String, (u64, u64))> = {
            let watchers = inner.watchers.lock().unwrap_or_else(|p| p.into_inner());
            watchers
                .iter()
                .filter_map(|(k, ws)| Some((k.clone(), ws.iter().map(|w| w.after).min()?)))
                .collect()
        };
        if wanted.is_empty() {
            // Re-check now and then: the hub may have been dropped.
            let _ = tokio::time::timeout(Duration::from_secs(5), inner.changed.notified()).await;
            continue;
        }
        if conn.is_none() {
            match open_reader(&settings).await {
                Ok((c, id)) => {
                    inner.reader_id.store(id, Ordering::Relaxed);
                    conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "token stream reader cannot reach redis; retrying");
                    drop(inner);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let keys: Vec<&str> = wanted.iter().map(|(k, _)| k.as_str()).collect();
        let cursors: Vec<String> = wanted
            .iter()
            .map(|(_, (ms, seq))| format!("{ms}-{seq}"))
            .collect();
        drop(inner);
        let block = if c.is_cluster() {
            CLUSTER_READ_BLOCK
        } else {
            READ_BLOCK
        };
        match tokens::read_many(c, &keys, &cursors, block).await {
            Ok(found) => {
                let Some(inner) = hub.upgrade() else { return };
                deliver(&inner, found);
            }
            Err(e) => {
                tracing::warn!(error = %e, "token stream read failed; reconnecting");
                conn = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn open_reader(settings: &RedisSettings) -> Result<(RedisConn, i64), hangar_queue::QueueError> {
    let mut c = settings
        .connect_with_timeout(READ_BLOCK + settings.response_timeout)
        .await?;
    if c.is_cluster() {
        return Ok((c, 0));
    }
    let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut c).await?;
    Ok((c, id))
}

fn deliver(inner: &Inner, found: Vec<(String, Vec<Entry>)>) {
    let mut watchers = inner.watchers.lock().unwrap_or_else(|p| p.into_inner());
    for (key, entries) in found {
        let Some(list) = watchers.get_mut(&key) else {
            continue;
        };
        list.retain_mut(|w| {
            let fresh: Vec<Entry> = entries
                .iter()
                .filter(|e| entry_id(&e.id) > w.after)
                .cloned()
                .collect();
            let Some(last) = fresh.last() else { return true };
            w.after = entry_id(&last.id);
            // A full channel: the client is not reading; drop it (it
            // resumes from its Last-Event-ID) rather than buffer without end.
            w.tx.try_send(fresh).is_ok()
        });
        if list.is_empty() {
            watchers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entry_id;

    #[test]
    fn entry_ids_compare_as_numbers() {
        assert!(entry_id("1700000000000-10") > entry_id("1700000000000-9"));
        assert!(entry_id("1700000000001-0") > entry_id("1700000000000-99"));
        assert_eq!(entry_id("0"), (0, 0));
    }
}
