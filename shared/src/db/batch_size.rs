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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MAX, MIN, next};

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
}
