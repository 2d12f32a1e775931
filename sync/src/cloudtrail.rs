//! `sync.cloudtrail`: LookupEvents for the WorkSpaces event source, from the
//! stored cursor (minus an overlap, for events CloudTrail delivers late) to
//! now, every page. Each page is one `INSERT ... ON CONFLICT DO NOTHING`
//! keyed by event id, so the overlap and redeliveries add nothing twice. The
//! cursor moves only after every page has committed: LookupEvents returns
//! newest first, so a sync that dies half-way must start over from the old
//! cursor rather than skip the older half.
//!
//! CloudTrail allows about 2 LookupEvents calls per second per account and
//! region. Every call first waits its turn in a Redis rate limiter shared by
//! all workers, so any number of replicas stays under the limit together.

use aws_sdk_cloudtrail::types::{Event, LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, Utc};
use hangar_shared::kinds::{CloudTrailSync, SYNC_CLOUDTRAIL};
use serde_json::{Value, json};

use crate::{LockGuard, Progress, RunStats, SyncError, Syncer};

/// The event source of WorkSpaces API calls.
pub const WORKSPACES_EVENT_SOURCE: &str = "workspaces.amazonaws.com";
/// Events per LookupEvents page (the API's maximum).
const PAGE: i32 = 50;

pub(crate) fn smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

impl Syncer {
    /// Runs `sync.cloudtrail` for one account and region.
    pub async fn sync_cloudtrail(
        &self,
        job_id: &str,
        delivery: u32,
        p: &CloudTrailSync,
        progress: &impl Progress,
    ) -> Result<Value, SyncError> {
        let singleton = p.target_key();
        self.exclusive(&singleton, job_id, delivery, |guard| {
            self.cloudtrail_inner(p, progress, guard)
        })
        .await
    }

    async fn cloudtrail_inner(
        &self,
        p: &CloudTrailSync,
        progress: &impl Progress,
        _guard: LockGuard,
    ) -> Result<Value, SyncError> {
        let started = std::time::Instant::now();
        let account = self.account(&p.account).await?;
        let (acct, region) = (p.account.as_str(), p.region.as_str());
        let ct = self.clients.get(&account, region).await.cloudtrail;
        let mut stats = RunStats::default();

        let cursor = self.cursor(acct, region, SYNC_CLOUDTRAIL).await?;
        let now = Utc::now();
        let end = p.end.unwrap_or(now);
        let overlap = chrono::Duration::from_std(self.config.cloudtrail_overlap).unwrap_or_default();
        let first = chrono::Duration::from_std(self.config.cloudtrail_first_window).unwrap_or_default();
        let start = p.start.or(cursor.map(|c| c - overlap)).unwrap_or(now - first);
        if start >= end {
            return Err(SyncError::Invalid(format!(
                "nothing to read: start {start} is not before end {end}"
            )));
        }

        let site = self.site(acct, region, "cloudtrail", "LookupEvents");
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::EventSource)
            .attribute_value(WORKSPACES_EVENT_SOURCE)
            .build()
            .map_err(|e| SyncError::Invalid(format!("lookup attribute: {e}")))?;
        let mut newest: Option<DateTime<Utc>> = None;
        let mut events_seen = 0u64;
        let mut inserted = 0u64;
        let mut token: Option<String> = None;
        loop {
            if progress.cancelled() {
                return Err(SyncError::Cancelled(format!(
                    "stopped after {} pages",
                    stats.pages
                )));
            }
            let out = self
                .caller
                .call(&site, &mut stats, || {
                    let request = ct
                        .lookup_events()
                        .lookup_attributes(attribute.clone())
                        .start_time(smithy(start))
                        .end_time(smithy(end))
                        .max_results(PAGE)
                        .set_next_token(token.clone());
                    request.send()
                })
                .await?;
            token = out.next_token().map(str::to_owned);
            let events = out.events();
            events_seen += events.len() as u64;
            newest = newest.max(events.iter().filter_map(event_time).max());
            inserted += self.insert_events(acct, region, events, &mut stats).await?;
            self.metrics.page(SYNC_CLOUDTRAIL);
            stats.pages += 1;
            progress
                .report(json!({"step": "events", "pages": stats.pages, "events": events_seen, "inserted": inserted,
                    "rate_limit_wait_ms": stats.rate_limit_wait_ms}))
                .await;
            if token.is_none() {
                break;
            }
        }
        stats.rows_written += inserted;
        self.metrics.rows(SYNC_CLOUDTRAIL, "audit_events", inserted);

        // Every page is in: move the cursor to the newest event seen (never
        // backwards, and not at all when the window held nothing new).
        // A window that starts after the cursor leaves a gap the next sync must
        // still read: then the cursor stays. Never beyond now.
        let contiguous = cursor.is_none_or(|c| start <= c);
        if let Some(position) = newest.map(|n| n.min(now)).filter(|_| contiguous) {
            self.advance_cursor(acct, region, SYNC_CLOUDTRAIL, position, &mut stats)
                .await?;
        }
        let result = json!({
            "account": acct,
            "region": region,
            "window": {"start": start, "end": end},
            "events": events_seen,
            "inserted": inserted,
            "cursor": newest.max(cursor),
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "stats": stats,
        });
        tracing::info!(
            account = acct,
            region,
            events = events_seen,
            inserted,
            pages = stats.pages,
            "cloudtrail synced"
        );
        Ok(result)
    }

    async fn insert_events(
        &self,
        acct: &str,
        region: &str,
        events: &[Event],
        stats: &mut RunStats,
    ) -> Result<u64, SyncError> {
        // An event without id or time cannot be keyed or placed: skip it.
        let events: Vec<&Event> = events
            .iter()
            .filter(|e| e.event_id().is_some() && event_time(e).is_some())
            .collect();
        if events.is_empty() {
            return Ok(0);
        }
        let col = |f: fn(&Event) -> Option<String>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
        let n = self
            .write(
                SYNC_CLOUDTRAIL,
                stats,
                sqlx::query_scalar!(
                    r#"WITH i AS (
                        INSERT INTO audit_events (event_id, account, region, event_time, event_name, event_source,
                            username, read_only, access_key_id, resources, cloudtrail_event)
                        SELECT u.id, $1::text, $2::text, u.at, u.name, u.source, u.username, u.read_only,
                               u.key, u.resources::jsonb, u.raw::jsonb
                        FROM UNNEST($3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::bool[],
                                    $9::text[], $10::text[], $11::text[])
                             AS u(id, at, name, source, username, read_only, key, resources, raw)
                        ON CONFLICT (event_id) DO NOTHING
                        RETURNING 1
                    ) SELECT count(*) AS "n!" FROM i"#,
                    acct,
                    region,
                    &col(|e| e.event_id().map(str::to_owned)) as &[Option<String>],
                    &events.iter().map(|e| event_time(e)).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
                    &col(|e| Some(e.event_name().unwrap_or("unknown").to_owned())) as &[Option<String>],
                    &col(|e| Some(e.event_source().unwrap_or(WORKSPACES_EVENT_SOURCE).to_owned()))
                        as &[Option<String>],
                    &col(|e| e.username().map(str::to_owned)) as &[Option<String>],
                    &events
                        .iter()
                        .map(|e| e.read_only().map(|r| r.eq_ignore_ascii_case("true")))
                        .collect::<Vec<_>>() as &[Option<bool>],
                    &col(|e| e.access_key_id().map(str::to_owned)) as &[Option<String>],
                    &col(|e| Some(resources_json(e).to_string())) as &[Option<String>],
                    &col(|e| e
                        .cloud_trail_event()
                        .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
                        .map(|v| v.to_string())) as &[Option<String>],
                )
                .fetch_one(&self.pool),
            )
            .await?;
        Ok(n as u64)
    }
}

fn event_time(e: &Event) -> Option<DateTime<Utc>> {
    e.event_time()
        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn resources_json(e: &Event) -> Value {
    Value::Array(
        e.resources()
            .iter()
            .map(|r| json!({"type": r.resource_type(), "name": r.resource_name()}))
            .collect(),
    )
}
