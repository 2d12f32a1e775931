//! How many rows each batch of a long delete takes (retention's trims, the
//! idempotency keys of a dropped week): sized by time, not by a fixed count.
//!
//! Each batch holds its row locks and writes its WAL for as long as it runs,
//! which bounds how long it can get in the way of the API's writes. A fixed
//! 5,000 rows took 175-260 ms on the job history of `bench/history.sh`
//! (indexes, the idempotency trigger) and a twentieth of that on CloudTrail
//! events; the same count cannot suit both, nor a busy and an idle server.

use std::time::Duration;

/// How long one batch should take.
pub const TARGET: Duration = Duration::from_millis(20);
/// Rows the first batch of each step takes.
pub const FIRST: i64 = 500;
/// Fewest rows per batch, whatever the timing says.
pub const MIN: i64 = 50;
/// Most rows per batch, whatever the timing says.
pub const MAX: i64 = 10_000;

/// The size of the next batch, from the last one's size and time: scaled
/// toward [`TARGET`], at most doubled or halved per step so that one batch
/// slowed by something else (a checkpoint) does not swing it.
pub fn next(rows: i64, took: Duration) -> i64 {
    let ratio = TARGET.as_secs_f64() / took.as_secs_f64().max(1e-4);
    // Rows are far below 2^52: the round trip through f64 is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let scaled = (rows as f64 * ratio.clamp(0.5, 2.0)).round() as i64;
    scaled.clamp(MIN, MAX)
}

/// One batched delete in progress: the size of its next batch, and what its
/// batches have done. Every batched delete records its batches here, so each
/// is logged, sized and ended the same way.
#[derive(Debug)]
pub struct Batches {
    step: &'static str,
    limit: i64,
    batches: u32,
    total: u64,
    slowest: Duration,
}

impl Batches {
    /// A delete called `step` in the logs (`job_runs`, `audit_events`).
    pub fn new(step: &'static str) -> Self {
        Self {
            step,
            limit: FIRST,
            batches: 0,
            total: 0,
            slowest: Duration::ZERO,
        }
    }

    /// Rows the next batch may delete.
    pub fn limit(&self) -> i64 {
        self.limit
    }

    /// Rows deleted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Records a batch that deleted `rows` in `took` and sizes the next one;
    /// true when the batch came back short, so nothing is left to delete.
    pub fn record(&mut self, rows: u64, took: Duration) -> bool {
        let step = self.step;
        // Each batch holds its row locks and its share of WAL for `took`:
        // the figure to watch if deletes start competing with the API.
        tracing::debug!(
            step,
            limit = self.limit,
            rows,
            ms = took.as_secs_f64() * 1e3,
            "retention batch"
        );
        self.batches += 1;
        self.total += rows;
        self.slowest = self.slowest.max(took);
        if rows < u64::try_from(self.limit).unwrap_or(0) {
            tracing::info!(
                step,
                rows = self.total,
                batches = self.batches,
                slowest_batch_ms = self.slowest.as_secs_f64() * 1e3,
                "retention step done"
            );
            return true;
        }
        self.limit = next(self.limit, took);
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Batches, FIRST, MAX, MIN, next};

    #[test]
    fn batch_size_moves_toward_the_target_time_by_at_most_a_factor_of_two() {
        // 1,000 rows in 40 ms: twice the 20 ms target, so half as many.
        assert_eq!(next(1_000, Duration::from_millis(40)), 500);
        // 10 ms: twice as many.
        assert_eq!(next(1_000, Duration::from_millis(10)), 2_000);
        // On target: unchanged.
        assert_eq!(next(1_000, Duration::from_millis(20)), 1_000);
        // A batch stalled 2 s (a checkpoint) halves it, no more.
        assert_eq!(next(1_000, Duration::from_secs(2)), 500);
        // An instant batch doubles it, no more.
        assert_eq!(next(1_000, Duration::ZERO), 2_000);
        // 25 ms: scaled by 0.8.
        assert_eq!(next(1_000, Duration::from_millis(25)), 800);
    }

    #[test]
    fn batch_size_stays_within_its_bounds() {
        assert_eq!(next(MIN, Duration::from_secs(1)), MIN);
        assert_eq!(next(MAX, Duration::ZERO), MAX);
    }

    #[test]
    fn a_full_batch_asks_for_more_and_a_short_one_ends_the_delete() {
        let mut b = Batches::new("job_runs");
        assert_eq!(b.limit(), FIRST);
        // Full and quick: more to do, and the next batch is twice as big.
        assert!(!b.record(FIRST as u64, Duration::from_millis(10)));
        assert_eq!(b.limit(), 2 * FIRST);
        // Short: done.
        assert!(b.record(7, Duration::from_millis(10)));
        assert_eq!(b.total(), FIRST as u64 + 7);
    }
}
