//! `job_runs` is partitioned by week of creation (migration 17): a range of
//! ULIDs is a range of time. This module keeps weeks created ahead of time
//! (an insert whose id falls in no partition fails) and drops a week whole
//! once every record in it is past retention, which costs PostgreSQL a file
//! unlink instead of deleting and vacuuming a week of rows.
//!
//! Partitions are created as plain tables and then attached, and dropped
//! after a concurrent detach: both take only a SHARE UPDATE EXCLUSIVE lock
//! on `job_runs`, so neither waits for nor blocks the API's reads and writes.
//! (`CREATE TABLE … PARTITION OF` and `DROP TABLE` on an attached partition
//! would take ACCESS EXCLUSIVE on the whole table.)

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use sqlx::PgPool;

use super::{batch_size::Batches, id_at};

/// Weeks of partitions kept ready ahead of now. The scheduler tops them up
/// every repair pass; eight weeks leave room for a scheduler that is down
/// for a long time.
pub const WEEKS_AHEAD: i64 = 8;

/// The partition made by migration 17 from the table as it was, holding
/// every record older than the first week. It is trimmed row by row until
/// it can be dropped whole like any week.
pub const LEGACY: &str = "job_runs_legacy";

/// Serialises partition changes across processes (schedulers, migrate,
/// retention) so two never create or drop the same week at once.
const LOCK_KEY: i64 = 0x4841_4e47_5041_5254; // "HANGPART"

/// One partition of `job_runs`: ids in `[lo, hi)` (`lo` `None`: no lower bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The table's name (`job_runs_w20261214`, [`LEGACY`]).
    pub name: String,
    /// The least id it holds; `None` for the legacy partition (no bound).
    pub lo: Option<String>,
    /// The least id of the next partition.
    pub hi: String,
    /// Left half-detached by an interrupted concurrent detach.
    pub detach_pending: bool,
}

/// The partitions of `job_runs`, oldest first.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Partition>> {
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'job_runs'::regclass",
    )
    .fetch_all(pool)
    .await?;
    let mut parts: Vec<Partition> = rows
        .into_iter()
        .filter_map(|(name, bound, detach_pending)| {
            let (lo, hi) = parse_bound(&bound)?;
            Some(Partition {
                name,
                lo,
                hi,
                detach_pending,
            })
        })
        .collect();
    parts.sort_by(|a, b| a.hi.cmp(&b.hi));
    Ok(parts)
}

/// `FOR VALUES FROM ('A') TO ('B')` or `FROM (MINVALUE) TO ('B')`.
fn parse_bound(expr: &str) -> Option<(Option<String>, String)> {
    let (from, to) = expr.split_once(" TO ")?;
    let quoted = |s: &str| {
        let start = s.find('\'')? + 1;
        let end = start + s[start..].find('\'')?;
        Some(s[start..end].to_owned())
    };
    Some((quoted(from), quoted(to)?))
}

/// The Monday 00:00 UTC on or before `t`.
pub fn week_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let d = t.date_naive() - Duration::days(i64::from(t.weekday().num_days_from_monday()));
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The creation time an id bound stands for.
fn time_of(id: &str) -> Option<DateTime<Utc>> {
    let ms = ulid::Ulid::from_string(id).ok()?.timestamp_ms();
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

/// Creates the weekly partitions missing between the last one and
/// `now + weeks` weeks; returns their names. Safe to call from many
/// processes at once.
pub async fn ensure_ahead(pool: &PgPool, now: DateTime<Utc>, weeks: i64) -> sqlx::Result<Vec<String>> {
    let target = id_at(week_start(now) + Duration::weeks(weeks + 1));
    let last = list(pool).await?.into_iter().map(|p| p.hi).max();
    if last.as_ref().is_some_and(|hi| *hi >= target) {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    // Read again under the lock: another process may have just done it.
    let mut hi: Option<String> = sqlx::query_scalar(
        "SELECT max(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([0-9A-Z]+)''\\)'))
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'job_runs'::regclass",
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut created = Vec::new();
    loop {
        let lo_time = hi.as_deref().and_then(time_of).unwrap_or_else(|| week_start(now));
        let lo = hi.clone().unwrap_or_else(|| id_at(lo_time));
        if lo >= target {
            break;
        }
        let week = week_start(lo_time);
        let next = id_at(week + Duration::weeks(1));
        let name = format!("job_runs_w{}", week.format("%Y%m%d"));
        sqlx::query(&format!(
            "CREATE TABLE {name} (LIKE job_runs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "ALTER TABLE job_runs ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{next}')"
        ))
        .execute(&mut *tx)
        .await?;
        created.push(name);
        hi = Some(next);
    }
    tx.commit().await?;
    if !created.is_empty() {
        tracing::info!(partitions = ?created, "job_runs partitions created ahead");
    }
    Ok(created)
}

/// How far ahead ids can be recorded: the end of the last partition.
pub async fn horizon(pool: &PgPool) -> sqlx::Result<Option<DateTime<Utc>>> {
    Ok(list(pool).await?.iter().filter_map(|p| time_of(&p.hi)).max())
}

/// What [`drop_expired`] did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Every record was past retention: the partition was dropped.
    Dropped {
        /// The partition.
        name: String,
        /// Records it held.
        rows: i64,
    },
    /// Past the cutoff, but holding records that must stay (open jobs, jobs
    /// finished since the cutoff, reports still kept): left for row-by-row
    /// deletion.
    Kept {
        /// The partition.
        name: String,
        /// Records that must stay.
        keepers: i64,
    },
}

/// Drops every partition all of whose records finished before `cutoff` (and
/// whose reports have expired). Only partitions whose whole id range lies
/// before the cutoff are looked at; the week that straddles it waits for
/// next time, so records are kept between the retention period and a week
/// more.
pub async fn drop_expired(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<Vec<Expiry>> {
    let cut = id_at(cutoff);
    let mut out = Vec::new();
    for p in list(pool).await? {
        if p.detach_pending {
            // An earlier detach was interrupted: finish it.
            sqlx::query(&format!(
                "ALTER TABLE job_runs DETACH PARTITION {} FINALIZE",
                p.name
            ))
            .execute(pool)
            .await?;
            sqlx::query(&format!("DROP TABLE {}", p.name))
                .execute(pool)
                .await?;
            continue;
        }
        if p.hi > cut {
            continue;
        }
        let started = std::time::Instant::now();
        let (rows, keepers): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (
                      WHERE state IN ('scheduled', 'queued', 'running', 'retrying')
                         OR finished_at IS NULL OR finished_at >= $1
                         OR EXISTS (SELECT 1 FROM reports r WHERE r.id = p.id AND r.expires_at > now()))
               FROM {} p",
            p.name
        ))
        .bind(cutoff)
        .fetch_one(pool)
        .await?;
        let check_ms = started.elapsed().as_secs_f64() * 1e3;
        if keepers > 0 {
            tracing::info!(partition = %p.name, keepers, check_ms, "partition past retention kept for records that must stay");
            out.push(Expiry::Kept {
                name: p.name,
                keepers,
            });
            continue;
        }
        let started = std::time::Instant::now();
        forget_keys(pool, p.lo.as_deref(), &p.hi).await?;
        let forget_ms = started.elapsed().as_secs_f64() * 1e3;
        // Outside a transaction, as DETACH … CONCURRENTLY must be.
        sqlx::raw_sql(&format!(
            "ALTER TABLE job_runs DETACH PARTITION {} CONCURRENTLY",
            p.name
        ))
        .execute(pool)
        .await?;
        sqlx::query(&format!("DROP TABLE {}", p.name))
            .execute(pool)
            .await?;
        tracing::info!(
            partition = %p.name,
            rows,
            check_ms,
            forget_ms,
            detach_drop_ms = started.elapsed().as_secs_f64() * 1e3 - forget_ms,
            "job_runs partition past retention dropped"
        );
        out.push(Expiry::Dropped { name: p.name, rows });
    }
    Ok(out)
}

/// Deletes the idempotency keys of jobs in `[lo, hi)` (dropping a partition
/// fires no delete trigger; a job has one key at most), in batches sized by
/// [`Batches`], each going on from the last job id the one before deleted:
/// starting from `lo` each time re-reads every key deleted so far, which a
/// long transaction elsewhere keeps in the index. The bound is always a
/// value, never `$n IS NULL OR job_id >= $n`, which a cached plan cannot
/// bound the index scan with.
async fn forget_keys(pool: &PgPool, lo: Option<&str>, hi: &str) -> sqlx::Result<()> {
    let mut batches = Batches::new("job_idempotency");
    let mut after = lo.unwrap_or_default().to_owned();
    loop {
        let started = std::time::Instant::now();
        let (n, last): (i64, Option<String>) = sqlx::query_as(
            "WITH deleted AS (
               DELETE FROM job_idempotency WHERE (scope, key) IN (
                 SELECT scope, key FROM job_idempotency
                  WHERE job_id < $2 AND job_id >= $1
                  ORDER BY job_id LIMIT $3)
               RETURNING job_id)
             SELECT count(*), max(job_id) FROM deleted",
        )
        .bind(&after)
        .bind(hi)
        .bind(batches.limit())
        .fetch_one(pool)
        .await?;
        if batches.record(u64::try_from(n).unwrap_or(0), started.elapsed()) {
            return Ok(());
        }
        if let Some(last) = last {
            after = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_with_and_without_a_lower_end() {
        assert_eq!(
            parse_bound("FOR VALUES FROM (MINVALUE) TO ('01M9RXJQ000000000000000000')"),
            Some((None, "01M9RXJQ000000000000000000".to_owned()))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM ('01M9RXJQ000000000000000000') TO ('01MAAYBR000000000000000000')"),
            Some((
                Some("01M9RXJQ000000000000000000".to_owned()),
                "01MAAYBR000000000000000000".to_owned()
            ))
        );
        assert_eq!(parse_bound("DEFAULT"), None);
    }

    #[test]
    fn weeks_start_on_monday_at_midnight_utc() {
        let sunday = Utc.with_ymd_and_hms(2026, 12, 6, 23, 59, 0).unwrap();
        assert_eq!(
            week_start(sunday),
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
        );
        let monday = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
        assert_eq!(week_start(monday), monday);
        assert_eq!(time_of(&id_at(monday)), Some(monday));
    }
}
