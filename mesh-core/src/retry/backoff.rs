//! Exponential backoff with full jitter.
//!
//! Before retry `n` (1 for the first retry, i.e. before the second attempt)
//! the caller waits a uniformly random duration in
//! `[0, min(max, base x 2^(n-1))]`, both ends included, with nanosecond
//! resolution. "Full jitter" (AWS Architecture Blog, "Exponential Backoff And
//! Jitter") spreads the retries of clients that failed together, so they do
//! not come back together. The ceiling is computed with saturating
//! arithmetic: it never overflows, whatever `n`, and stays at `max` once
//! reached. If `max < base`, the ceiling is `max` from the first retry.

use std::time::Duration;

use rand::Rng;

use crate::config::BackoffConfig;

/// A compiled [`BackoffConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

// === impl Backoff ===

impl Backoff {
    /// Backoff with `config`'s base and max.
    pub fn new(config: &BackoffConfig) -> Self {
        Self {
            base: config.base,
            max: config.max,
        }
    }

    /// The largest delay before retry `n`: `min(max, base x 2^(n-1))`.
    /// `n = 0` is treated as 1.
    pub fn ceiling(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1);
        let grown = 2u32
            .checked_pow(exp)
            .and_then(|factor| self.base.checked_mul(factor))
            .unwrap_or(Duration::MAX);
        grown.min(self.max)
    }

    /// A random delay in `[0, ceiling(n)]` before retry `n`.
    pub fn delay<G: Rng + ?Sized>(&self, n: u32, rng: &mut G) -> Duration {
        let ceiling = self.ceiling(n);
        // u64 nanoseconds reach 584 years; clamp rather than overflow.
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn backoff(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff::new(&BackoffConfig {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
        })
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = backoff(25, 250);
        let ms: Vec<u128> = (1..=6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, vec![25, 50, 100, 200, 250, 250]);
        assert_eq!(b.ceiling(0), Duration::from_millis(25));
    }

    #[test]
    fn ceiling_never_overflows() {
        let b = backoff(25, 250);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(250));
        let huge = Backoff::new(&BackoffConfig {
            base: Duration::MAX,
            max: Duration::MAX,
        });
        assert_eq!(huge.ceiling(40), Duration::MAX);
        let mut rng = SmallRng::seed_from_u64(1);
        // Does not panic, stays within the u64-nanosecond clamp.
        assert!(huge.delay(40, &mut rng) <= Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn max_below_base_caps_at_max() {
        assert_eq!(backoff(100, 30).ceiling(1), Duration::from_millis(30));
    }

    #[test]
    fn delays_are_within_bounds_and_jittered() {
        let b = backoff(25, 250);
        let mut rng = SmallRng::seed_from_u64(42);
        for n in 1..=8 {
            let ceiling = b.ceiling(n);
            let samples: Vec<Duration> = (0..2000).map(|_| b.delay(n, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= ceiling), "retry {n}");
            let mean = samples.iter().sum::<Duration>() / 2000;
            // Full jitter: the mean is about half the ceiling.
            let half = ceiling / 2;
            assert!(
                mean > half.mul_f64(0.9) && mean < half.mul_f64(1.1),
                "retry {n}: mean {mean:?} vs ceiling {ceiling:?}"
            );
        }
    }

    #[test]
    fn zero_base_means_no_wait() {
        let mut rng = SmallRng::seed_from_u64(3);
        assert_eq!(backoff(0, 0).delay(3, &mut rng), Duration::ZERO);
    }

    #[test]
    fn same_seed_same_delays() {
        let b = backoff(25, 250);
        let mut a = SmallRng::seed_from_u64(9);
        let mut c = SmallRng::seed_from_u64(9);
        let x: Vec<_> = (1..5).map(|n| b.delay(n, &mut a)).collect();
        let y: Vec<_> = (1..5).map(|n| b.delay(n, &mut c)).collect();
        assert_eq!(x, y);
    }
}
