//! Weighted random: Vose's alias method.
//!
//! A pick must be flat in the endpoint count, so sampling in proportion to
//! weight cannot walk a cumulative list. Vose's alias table splits the
//! probability mass into `n` columns of equal height, each holding at most two
//! endpoints (its own and one "alias"): a pick draws one 64-bit random number,
//! uses its high part to choose a column and its low part as the coin between
//! the column's two endpoints. Building is `O(n)` at update time.
//!
//! When all candidates weigh the same, no table is built and a pick is a
//! uniform index into the candidate list.

use rand::Rng;

use super::hash::reduce;

/// An alias table over positions `0..n`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AliasTable {
    /// Per column: keep the column's own position when the coin is below this.
    keep_below: Vec<u64>,
    /// Per column: the other position.
    alias: Vec<usize>,
}

impl AliasTable {
    /// A table sampling position `i` in proportion to `weights[i]` (> 0).
    pub(crate) fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
        if n == 0 || total <= 0.0 {
            return Self::default();
        }
        let mut scaled: Vec<f64> = weights
            .iter()
            .map(|&w| {
                if w.is_finite() && w > 0.0 {
                    w * n as f64 / total
                } else {
                    0.0
                }
            })
            .collect();
        let mut keep_below = vec![u64::MAX; n];
        let mut alias: Vec<usize> = (0..n).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep_below[s] = to_threshold(scaled[s]);
            alias[s] = l;
            scaled[l] = (scaled[l] + scaled[s]) - 1.0;
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left holds (up to rounding) a full column.
        for i in small.into_iter().chain(large) {
            keep_below[i] = u64::MAX;
        }
        Self { keep_below, alias }
    }

    /// A position drawn in proportion to the weights (`None` if empty).
    #[inline]
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> Option<usize> {
        let n = self.keep_below.len();
        if n == 0 {
            return None;
        }
        let r = rng.next_u64();
        let column = reduce(r, n);
        // The bits below the column choice, as a fresh uniform coin.
        let coin = r.wrapping_mul(n as u64);
        let keep = self.keep_below.get(column).copied().unwrap_or(u64::MAX);
        if coin < keep {
            Some(column)
        } else {
            self.alias.get(column).copied()
        }
    }
}

fn to_threshold(p: f64) -> u64 {
    if p >= 1.0 {
        u64::MAX
    } else if p <= 0.0 {
        0
    } else {
        (p * 18_446_744_073_709_551_616.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn samples_in_proportion() {
        let weights = [1.0, 2.0, 3.0, 10.0, 0.5];
        let table = AliasTable::new(&weights);
        let mut rng = SmallRng::seed_from_u64(9);
        let mut counts = [0u32; 5];
        let picks = 330_000;
        for _ in 0..picks {
            counts[table.sample(&mut rng).unwrap()] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (c, w) in counts.iter().zip(weights) {
            let share = f64::from(*c) / f64::from(picks);
            assert!((share - w / total).abs() < 0.005, "{counts:?}");
        }
    }

    #[test]
    fn zero_weight_is_never_sampled_and_empty_is_none() {
        let table = AliasTable::new(&[0.0, 1.0, 0.0]);
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..10_000 {
            assert_eq!(table.sample(&mut rng), Some(1));
        }
        assert_eq!(AliasTable::new(&[]).sample(&mut rng), None);
    }
}
