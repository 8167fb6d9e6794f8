//! Least request: the power of `choice_count` choices (P2C).
//!
//! Picking the globally least-loaded endpoint needs an `O(n)` scan (or a
//! priority queue updated on every request start and end) and makes every
//! client herd onto the same idle endpoint. Sampling two (or
//! `choice_count`) candidates at random and taking the less loaded one is
//! nearly as good ("The Power of Two Choices in Randomized Load Balancing",
//! Mitzenmacher) and costs two random draws.
//!
//! Load is the number of requests in flight (the caller reports starts and ends
//! with [`Balancer::on_start`](super::Balancer::on_start) and
//! [`Balancer::on_end`](super::Balancer::on_end)). When candidate weights are
//! all equal the sample with fewer in-flight requests wins. When they differ
//! (configured weights, or slow start), Envoy's formula decides: the higher
//! `weight / (in_flight + 1) ^ active_request_bias` wins. Bias 1.0 (the
//! default) equalizes in-flight requests per unit of weight; bias 0.0 ignores
//! load and always prefers the heavier sample. Ties go to the first sample,
//! which is itself random.

use rand::Rng;

use super::View;
use super::hash::{reduce, two_distinct};

/// Least-request parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeastRequest {
    pub(crate) choice_count: u32,
    pub(crate) bias: f64,
}

impl LeastRequest {
    /// The pick: `choice_count` uniform samples of the candidates, the best kept.
    #[inline]
    pub(crate) fn next(&self, view: &View, rng: &mut impl Rng) -> Option<usize> {
        let n = view.cands.len();
        if n <= 1 {
            return view.cands.first().copied();
        }
        let (a, b) = two_distinct(rng, n);
        let mut best = *view.cands.get(a)?;
        let second = *view.cands.get(b)?;
        let more = self.choice_count.saturating_sub(2);
        let others = std::iter::once(second)
            .chain((0..more).filter_map(|_| view.cands.get(reduce(rng.next_u64(), n)).copied()));
        if view.uniform {
            let mut best_load = view.in_flight(best);
            for c in others {
                let load = view.in_flight(c);
                if load < best_load {
                    best = c;
                    best_load = load;
                }
            }
        } else {
            let mut best_score = self.score(view, best);
            for c in others {
                let score = self.score(view, c);
                if score > best_score {
                    best = c;
                    best_score = score;
                }
            }
        }
        Some(best)
    }

    /// Envoy's `weight / (active + 1) ^ bias` (higher is better).
    #[inline]
    fn score(&self, view: &View, i: usize) -> f64 {
        let weight = view.eff.get(i).copied().unwrap_or(1.0);
        let active = f64::from(view.in_flight(i)) + 1.0;
        if self.bias == 1.0 {
            weight / active
        } else if self.bias == 0.0 {
            weight
        } else {
            weight / active.powf(self.bias)
        }
    }
}
