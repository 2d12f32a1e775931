//! Hangar's report jobs: a report's rows are read from the synced tables
//! and written, as they come, to a local temporary file ([`table`]), which
//! is then published in one step to the report store ([`store`]) and
//! recorded in the `reports` table. A worker killed on the way leaves no
//! file under the report's key and no record; the job's redelivery writes
//! both once.

pub mod audit;
pub mod billing_mode;
pub mod costs;
pub mod inventory;
pub mod spec;
pub mod store;
pub mod table;
pub mod unused;
pub mod usage;
pub mod webhook;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use hangar_shared::kinds::{
    AuditLogReport, AuditReport, BillingModeReport, CostsReport, InventoryReport, ReportFormat, UnusedReport,
};
use serde_json::{Value, json};
use sqlx::PgPool;

pub use spec::{Published, ReportSpec};
pub use store::{ReportStore, StoreError};
use table::{Head, TableWriter};

impl Reports {
    /// Announces published report `id` at the webhook: what happened, for
    /// the job's result.
    pub async fn announce(&self, id: &str, kind: &str, format: ReportFormat, published: &Published) -> Value {
        match &self.webhook {
            Some(w) => w.deliver(id, kind, format.extension(), published).await,
            None => json!({
                "delivered": false,
                "error": "HANGAR_REPORT_WEBHOOK_URL is not set: the report is published but announced nowhere",
            }),
        }
    }
}

/// The store key of report `id` of `kind` in `format`.
pub fn object_key(id: &str, kind: &str, format: ReportFormat) -> String {
    format!("{kind}/{id}.{}", format.extension())
}

/// A report's parameters as its file states them: its payload (defaults
/// filled in) without the format, which the file itself is.
fn params_of(payload: &impl serde::Serialize) -> serde_json::Result<Value> {
    let mut params = serde_json::to_value(payload)?;
    if let Some(p) = params.as_object_mut() {
        p.remove("format");
        p.remove("webhook");
    }
    Ok(params)
}

/// How a report's temporary file is named (in the store's staging
/// directory, [`ReportStore::staging_dir`]), so that abandoned ones can be found.
const TEMP_PREFIX: &str = "hangar-report-";

/// A temporary file for report `id`, removed when dropped (a worker killed
/// with -9 drops nothing: [`sweep_abandoned`] removes those later).
struct TempFile(PathBuf);

impl TempFile {
    /// A new temporary file for report `id` in `dir`, after removing what
    /// earlier attempts at the same report left there: only the job holding
    /// the report's lease writes it, so such a file is a killed attempt's.
    fn new(dir: &std::path::Path, id: &str) -> Self {
        let earlier = format!("{TEMP_PREFIX}{id}-");
        remove_files(dir, &earlier, std::time::Duration::ZERO);
        Self(dir.join(format!("{earlier}{}", ulid::Ulid::new())))
    }
}

/// Removes report temporary files in `dir` untouched for `max_age`: left by
/// a worker that was killed while writing (a live writer touches its file
/// with every buffer it writes). Returns how many were removed.
pub fn sweep_abandoned(dir: &std::path::Path, max_age: std::time::Duration) -> usize {
    remove_files(dir, TEMP_PREFIX, max_age)
}

/// Removes the files in `dir` whose names start with `prefix` and that
/// were last written more than `older_than` ago; how many.
fn remove_files(dir: &std::path::Path, prefix: &str, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let old_enough = older_than.is_zero()
            || entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > older_than);
        if old_enough && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// When each sync a report reads from last succeeded, per account and
/// region: what "as of" the report's rows are.
async fn freshness(pool: &PgPool, sync_kinds: &[&str]) -> sqlx::Result<Value> {
    let mut out = serde_json::Map::new();
    for &sync_kind in sync_kinds {
        let rows = sqlx::query!(
            r#"SELECT payload->>'account' AS "account!", COALESCE(payload->>'region', 'global') AS "region!",
                      max(finished_at) AS "finished_at!"
               FROM job_runs
               WHERE kind = $1 AND state = 'succeeded' AND finished_at IS NOT NULL
               GROUP BY 1, 2 ORDER BY 1, 2"#,
            sync_kind
        )
        .fetch_all(pool)
        .await?;
        let last: serde_json::Map<String, Value> = rows
            .into_iter()
            .map(|r| (format!("{}/{}", r.account, r.region), json!(r.finished_at)))
            .collect();
        out.insert(sync_kind.to_owned(), Value::Object(last));
    }
    Ok(Value::Object(out))
}

/// A report being written: its temporary file, writer, sources' freshness
/// and generation time, between [`Reports::begin`] and [`Reports::finish`].
pub struct Draft {
    temp: TempFile,
    /// The rows go here.
    pub out: TableWriter,
    freshness: Value,
    /// When it was generated (what "now" means in its rows).
    pub now: DateTime<Utc>,
}

/// Where a report comes from and goes: the pool it reads, the store it is
/// published to, and how long it is kept.
#[derive(Debug, Clone)]
pub struct Reports {
    /// PostgreSQL.
    pub pool: PgPool,
    /// The report store.
    pub store: ReportStore,
    /// Days a report is kept.
    pub retention_days: u32,
    /// Break-even hours and hourly rates for `report.billing_mode`.
    pub pricing: billing_mode::Pricing,
    /// Where reports asking for it are announced (`None`: not configured).
    pub webhook: Option<webhook::Webhook>,
}

impl Reports {
    /// Starts report `id` as `spec` in `format` with the parameters of
    /// `payload` (its format left out).
    pub async fn begin(
        &self,
        id: &str,
        spec: &ReportSpec,
        format: ReportFormat,
        payload: &impl serde::Serialize,
    ) -> anyhow::Result<Draft> {
        let now = Utc::now();
        let params = params_of(payload)?;
        let freshness = freshness(&self.pool, spec.sources).await?;
        let temp = TempFile::new(&self.store.staging_dir(), id);
        let head = Head {
            title: spec.title,
            columns: spec.columns,
            params: &params,
            generated_at: now,
            freshness: &freshness,
        };
        let out = TableWriter::create(&temp.0, format, &head)?;
        Ok(Draft {
            temp,
            out,
            freshness,
            now,
        })
    }

    /// Publishes the finished file under the report's key and records it
    /// (replacing what an earlier delivery of the same job recorded).
    pub async fn finish(
        &self,
        id: &str,
        spec: &ReportSpec,
        format: ReportFormat,
        draft: Draft,
    ) -> anyhow::Result<Published> {
        let Draft {
            temp,
            out,
            freshness,
            now,
        } = draft;
        let written = out.finish()?;
        let key = object_key(id, spec.kind, format);
        self.store.publish(&key, &written.path).await?;
        drop(temp);
        let expires_at = now + chrono::Duration::days(i64::from(self.retention_days));
        sqlx::query!(
            "INSERT INTO reports (id, kind, format, object_key, content_type, row_count, size_bytes, sha256,
                                  freshness, generated_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id) DO UPDATE SET object_key = EXCLUDED.object_key,
                 content_type = EXCLUDED.content_type, row_count = EXCLUDED.row_count,
                 size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, freshness = EXCLUDED.freshness,
                 generated_at = EXCLUDED.generated_at, expires_at = EXCLUDED.expires_at",
            id,
            spec.kind,
            format.extension(),
            key,
            format.content_type(),
            written.rows as i64,
            written.bytes as i64,
            written.sha256,
            freshness,
            now,
            expires_at,
        )
        .execute(&self.pool)
        .await?;
        Ok(Published {
            key,
            rows: written.rows,
            bytes: written.bytes,
            sha256: written.sha256,
            freshness,
        })
    }

    /// Writes, publishes and records `report.inventory` job `id`.
    pub async fn inventory(
        &self,
        id: &str,
        p: &InventoryReport,
        progress: impl FnMut(u64),
    ) -> anyhow::Result<Published> {
        let mut d = self.begin(id, &inventory::SPEC, p.format, p).await?;
        inventory::write(&self.pool, p, d.now, &mut d.out, progress).await?;
        self.finish(id, &inventory::SPEC, p.format, d).await
    }

    /// Writes, publishes and records `report.unused` job `id`.
    pub async fn unused(
        &self,
        id: &str,
        p: &UnusedReport,
        progress: impl FnMut(u64),
    ) -> anyhow::Result<Published> {
        let mut d = self.begin(id, &unused::SPEC, p.format, p).await?;
        unused::write(&self.pool, p, d.now, &mut d.out, progress).await?;
        self.finish(id, &unused::SPEC, p.format, d).await
    }

    /// Writes, publishes and records `report.billing_mode` job `id`.
    pub async fn billing_mode(
        &self,
        id: &str,
        p: &BillingModeReport,
        progress: impl FnMut(u64),
    ) -> anyhow::Result<Published> {
        let mut d = self.begin(id, &billing_mode::SPEC, p.format, p).await?;
        billing_mode::write(&self.pool, &self.pricing, p, d.now, &mut d.out, progress).await?;
        self.finish(id, &billing_mode::SPEC, p.format, d).await
    }

    /// Writes, publishes and records `report.costs` job `id`.
    pub async fn costs(
        &self,
        id: &str,
        p: &CostsReport,
        progress: impl FnMut(u64),
    ) -> anyhow::Result<Published> {
        let mut d = self.begin(id, &costs::SPEC, p.format, p).await?;
        costs::write(&self.pool, p, d.now, &mut d.out, progress).await?;
        self.finish(id, &costs::SPEC, p.format, d).await
    }

    /// Writes, publishes and records `report.audit` job `id`.
    pub async fn audit(
        &self,
        id: &str,
        p: &AuditReport,
        progress: impl FnMut(u64),
    ) -> anyhow::Result<Published> {
        let mut d = self.begin(id, &audit::EVENTS, p.format, p).await?;
        audit::write_events(&self.pool, p, d.now, &mut d.out, progress).await?;
        self.finish(id, &audit::EVENTS, p.format, d).await
    }

    /// Writes, publishes and records `report.audit_log` job `id`.
    pub async fn audit_log(
        &self,
        id: &str,
        p: &AuditLogReport,
        progress: impl FnMut(u64),
    ) -> anyhow::Result<Published> {
        let mut d = self.begin(id, &audit::LOG, p.format, p).await?;
        audit::write_log(&self.pool, p, d.now, &mut d.out, progress).await?;
        self.finish(id, &audit::LOG, p.format, d).await
    }

    /// Removes up to `batch` reports past their expiry: each file, then the
    /// records (a file already gone is no error, and a record outlives its
    /// file only until the next pass). Returns how many were removed.
    pub async fn remove_expired(&self, batch: i64) -> anyhow::Result<u64> {
        let expired = sqlx::query!(
            "SELECT id, object_key FROM reports WHERE expires_at <= now() ORDER BY expires_at LIMIT $1",
            batch
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &expired {
            self.store.delete(&r.object_key).await?;
        }
        let ids: Vec<String> = expired.into_iter().map(|r| r.id).collect();
        let done = sqlx::query!("DELETE FROM reports WHERE id = ANY($1)", &ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn only_stale_report_temporary_files_are_swept() {
        let dir = std::env::temp_dir().join(format!("hangar-sweep-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3 * 3600);
        for (name, modified) in [
            ("hangar-report-a-1", Some(old)),
            ("hangar-report-b-2", None),
            ("someone-else.csv", Some(old)),
        ] {
            let f = std::fs::File::create(dir.join(name)).unwrap();
            if let Some(t) = modified {
                f.set_modified(t).unwrap();
            }
        }
        assert_eq!(sweep_abandoned(&dir, Duration::from_secs(3600)), 1);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["hangar-report-b-2", "someone-else.csv"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
