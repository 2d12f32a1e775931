//! Retry policies: how many attempts a job kind gets and how long it waits
//! between them (exponential backoff, capped, with full jitter).

use std::{collections::HashMap, time::Duration};

/// One kind's retry policy.
///
/// The wait before attempt `n + 1` is drawn uniformly from
/// `[0, min(cap, base * 2^(n-1))]` ("full jitter"), which spreads a burst of
/// failures instead of retrying them in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// Ceiling of the first wait.
    pub base: Duration,
    /// Largest ceiling any wait may have.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// A jittered wait after failed attempt `attempt`.
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rng.u64(0..=ceiling))
    }

    /// Whether another attempt follows failed attempt `attempt`.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// Policies by job kind, with a default for kinds not listed.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicies {
    /// Used for every kind without its own entry.
    pub default: RetryPolicy,
    /// Per-kind overrides, keyed by the stable kind name (e.g. `sync.workspaces`).
    pub by_kind: HashMap<String, RetryPolicy>,
}

impl RetryPolicies {
    /// The policy for `kind`.
    pub fn for_kind(&self, kind: &str) -> &RetryPolicy {
        self.by_kind.get(kind).unwrap_or(&self.default)
    }

    /// Adds or replaces `kind`'s policy.
    #[must_use]
    pub fn with(mut self, kind: impl Into<String>, policy: RetryPolicy) -> Self {
        self.by_kind.insert(kind.into(), policy);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (1..=5).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 500, 500]);
        assert_eq!(
            p.ceiling(1000),
            Duration::from_millis(500),
            "no overflow on huge attempts"
        );
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let p = policy();
        let mut rng = fastrand::Rng::with_seed(7);
        let draws: Vec<Duration> = (0..2000).map(|_| p.delay(3, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(400)));
        let low = draws.iter().filter(|d| **d < Duration::from_millis(200)).count();
        // uniform on [0, 400]: about half below 200
        assert!((800..1200).contains(&low), "{low} of 2000 below the midpoint");
    }

    #[test]
    fn max_attempts_counts_the_first_attempt() {
        let p = policy();
        assert!(p.allows_retry_after(1));
        assert!(p.allows_retry_after(3));
        assert!(!p.allows_retry_after(4));
    }

    #[test]
    fn kinds_fall_back_to_the_default() {
        let policies = RetryPolicies::default().with("sync.billing", policy());
        assert_eq!(policies.for_kind("sync.billing").max_attempts, 4);
        assert_eq!(policies.for_kind("other").max_attempts, 5);
    }
}
