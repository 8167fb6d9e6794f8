//! A latency histogram with log-linear buckets (the HdrHistogram layout,
//! reduced to what `meshctl call` needs).
//!
//! Latencies are recorded in whole microseconds. Values below 256 µs get a
//! bucket each (exact); above, every power of two is split into 128 equal
//! buckets, so a bucket is at most 1/128 of its values wide and its midpoint
//! is within 0.4% of any value in it. Percentiles use the nearest-rank
//! definition (the smallest recorded value with at least `q` of the samples
//! at or below it) and report that value's bucket midpoint, clamped to the
//! exact minimum and maximum, which are tracked separately (`max` is exact).
//!
//! Why buckets rather than a sorted `Vec` of every sample: memory stays
//! bounded for `--duration` runs of any length (grown only up to the
//! largest bucket seen: about 14 KB per worker for latencies up to a
//! second, 60 KB at most), recording is one increment, and
//! per-worker histograms merge by adding counts, with no lock shared between
//! workers.

use std::time::Duration;

/// Values below this have a bucket each.
const EXACT: u64 = 256;
/// Sub-buckets per power of two above [`EXACT`] (2^7).
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

/// Counts of latencies in log-linear buckets; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
}

/// The bucket of a value in microseconds.
fn index(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    // msb >= 8 here, so shift >= 1 and `mantissa` is in [SUB, 2 * SUB).
    let msb = 63 - us.leading_zeros();
    let shift = msb - SUB_BITS;
    let mantissa = us >> shift;
    (EXACT + u64::from(shift - 1) * SUB + (mantissa - SUB)) as usize
}

/// The lowest and highest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, i);
    }
    let shift = (i - EXACT) / SUB + 1;
    let mantissa = (i - EXACT) % SUB + SUB;
    let low = mantissa << shift;
    (low, low + ((1 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one latency (saturating at `u64::MAX` microseconds).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let i = index(us);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        if self.total == 0 || us < self.min {
            self.min = us;
        }
        self.max = self.max.max(us);
        self.total += 1;
    }

    /// Adds `other`'s samples to this one.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.min = if self.total == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.total += other.total;
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest latency recorded (exact; zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max)
    }

    /// The `q` quantile (0.0..=1.0, nearest rank), to within 0.4% above
    /// 256 µs and exactly below; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // Nearest rank: ceil(q * n), at least 1. The f64 product of a count
        // below 2^53 is exact enough for this.
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds(i);
                let mid = low + (high - low) / 2;
                return Duration::from_micros(mid.clamp(self.min, self.max));
            }
        }
        Duration::from_micros(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn buckets_tile_the_range() {
        // Every value falls in the bucket whose bounds contain it, and
        // consecutive buckets are adjacent.
        let mut prev_high = None;
        for i in 0..index(u64::MAX) + 1 {
            let (low, high) = bounds(i);
            assert!(low <= high);
            if let Some(p) = prev_high {
                assert_eq!(low, p + 1, "bucket {i}");
            }
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            prev_high = Some(high);
        }
        assert_eq!(prev_high, Some(u64::MAX));
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(us(v));
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.quantile(0.5), us(50));
        assert_eq!(h.quantile(0.9), us(90));
        assert_eq!(h.quantile(0.99), us(99));
        assert_eq!(h.quantile(1.0), us(100));
        assert_eq!(h.quantile(0.0), us(1));
        assert_eq!(h.max(), us(100));
    }

    #[test]
    fn empty_is_zero() {
        let h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(h.quantile(0.99), Duration::ZERO);
        assert_eq!(h.max(), Duration::ZERO);
    }

    #[test]
    fn one_slow_outlier_moves_max_not_p50() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(Duration::from_millis(2));
        }
        h.record(Duration::from_secs(3));
        let p50 = h.quantile(0.5).as_secs_f64();
        assert!((p50 - 0.002).abs() / 0.002 < 0.004, "{p50}");
        assert_eq!(h.quantile(0.999), h.quantile(0.5));
        assert_eq!(h.max(), Duration::from_secs(3), "max is exact");
        assert_eq!(h.quantile(1.0), Duration::from_secs(3));
    }

    #[test]
    fn merge_adds_samples() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 1..=50 {
            a.record(us(v * 10));
        }
        for v in 51..=100 {
            b.record(us(v * 10));
        }
        let mut whole = Histogram::new();
        for v in 1..=100 {
            whole.record(us(v * 10));
        }
        let mut merged = Histogram::new();
        merged.merge(&b);
        merged.merge(&a);
        merged.merge(&Histogram::new());
        assert_eq!(merged, whole);
    }

    proptest! {
        /// Percentiles stay within the bucket error of the exact
        /// nearest-rank percentile of a sorted copy.
        #[test]
        fn quantiles_match_sorted_samples(
            mut samples in proptest::collection::vec(0u64..10_000_000, 1..500),
            q in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::new();
            for &s in &samples {
                h.record(us(s));
            }
            samples.sort_unstable();
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            let exact = samples[rank - 1] as f64;
            let got = h.quantile(q).as_micros() as f64;
            let tolerance = if exact < 256.0 { 0.0 } else { exact / 128.0 };
            prop_assert!((got - exact).abs() <= tolerance, "q={q} exact={exact} got={got}");
            prop_assert_eq!(h.max(), us(*samples.last().unwrap()));
        }
    }
}
