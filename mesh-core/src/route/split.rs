//! Weighted traffic split: pick one subset of a route by weight.
//!
//! The split table is built once per config: subsets with weight 0 are
//! dropped and the remaining weights are summed into cumulative bounds
//! (`u64`, so no sum of `u32` weights can overflow). A pick draws one
//! uniform number in `0..total` and binary-searches the bounds: O(log n), no
//! allocation, exact proportions (no rounding to percentages). A table with
//! a single subset needs no random number at all.

use rand::Rng;

/// One subset's share of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Share {
    /// Index into the service's [`Subsets`](super::Subsets).
    subset: usize,
    /// Sum of the weights of this share and all before it.
    upper: u64,
}

/// A compiled weighted split over subsets, by subset index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitTable {
    shares: Vec<Share>,
    total: u64,
}

// === impl SplitTable ===

impl SplitTable {
    /// Builds a table from `(subset index, weight)` pairs. Zero weights are
    /// dropped; `None` if nothing is left (no traffic could go anywhere).
    pub fn new(weights: impl IntoIterator<Item = (usize, u32)>) -> Option<Self> {
        let mut total = 0u64;
        let shares: Vec<Share> = weights
            .into_iter()
            .filter(|&(_, w)| w > 0)
            .map(|(subset, w)| {
                total += u64::from(w);
                Share {
                    subset,
                    upper: total,
                }
            })
            .collect();
        if shares.is_empty() {
            None
        } else {
            Some(Self { shares, total })
        }
    }

    /// The sum of all weights.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many subsets get traffic (weight > 0).
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether no subset gets traffic (never true for a built table).
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// The subset indices and weights, in table order.
    pub fn weights(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let mut prev = 0;
        self.shares.iter().map(move |s| {
            let w = s.upper - prev;
            prev = s.upper;
            (s.subset, w)
        })
    }

    /// Picks a subset index with probability weight / total.
    pub fn pick<G: Rng + ?Sized>(&self, rng: &mut G) -> usize {
        match self.shares.as_slice() {
            [only] => only.subset,
            shares => {
                let x = rng.random_range(0..self.total);
                // The first share whose upper bound is above x. x < total =
                // last upper, so the index is in range; fall back to the
                // last share rather than index out of bounds.
                let i = shares.partition_point(|s| s.upper <= x);
                shares.get(i).or(shares.last()).map_or(0, |s| s.subset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn empty_or_all_zero_is_none() {
        assert!(SplitTable::new([]).is_none());
        assert!(SplitTable::new([(0, 0), (1, 0)]).is_none());
    }

    #[test]
    fn weights_round_trip_without_zeros() {
        let t = SplitTable::new([(3, 5), (1, 0), (0, u32::MAX), (2, u32::MAX)]).unwrap();
        assert_eq!(t.total(), 5 + 2 * u64::from(u32::MAX), "no overflow");
        assert_eq!(
            t.weights().collect::<Vec<_>>(),
            [(3, 5), (0, u64::from(u32::MAX)), (2, u64::from(u32::MAX))]
        );
    }

    #[test]
    fn single_share_needs_no_randomness() {
        let t = SplitTable::new([(4, 7)]).unwrap();
        let mut rng = SmallRng::seed_from_u64(0);
        assert!((0..100).all(|_| t.pick(&mut rng) == 4));
    }

    #[test]
    fn picks_only_listed_subsets_in_proportion() {
        let t = SplitTable::new([(0, 1), (1, 3)]).unwrap();
        let mut rng = SmallRng::seed_from_u64(11);
        let ones = (0..10_000).filter(|_| t.pick(&mut rng) == 1).count();
        assert!(ones.abs_diff(7_500) <= 100, "{ones}");
    }
}
