//! The pick itself: dispatch to the algorithm, then honour `tried`.

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;

use super::hash::reduce;
use super::{Algo, PickContext, View};

/// Re-picks by the algorithm before scanning for an untried candidate.
const REPICKS: usize = 3;

/// An endpoint index for the request (`None` only with no candidates).
#[inline]
pub(super) fn pick(
    algo: &mut Algo,
    view: &View,
    ctx: &PickContext<'_>,
    now: Instant,
    rng: &mut impl Rng,
) -> Option<usize> {
    let tried = ctx.tried;
    match algo {
        Algo::RingHash { ring, .. } => hashed(view, ctx, rng, |h, accept| ring.pick(h, accept)),
        Algo::Maglev { table, .. } => hashed(view, ctx, rng, |h, accept| table.pick(h, accept)),
        _ => {
            let first = next(algo, view, now, rng)?;
            if !view.is_tried(first, tried) {
                return Some(first);
            }
            for _ in 0..REPICKS {
                let again = next(algo, view, now, rng)?;
                if !view.is_tried(again, tried) {
                    return Some(again);
                }
            }
            Some(untried(view, tried, rng).unwrap_or(first))
        }
    }
}

/// One pick of a non-hashing algorithm.
#[inline]
fn next(algo: &mut Algo, view: &View, now: Instant, rng: &mut impl Rng) -> Option<usize> {
    match algo {
        Algo::RoundRobin(s) | Algo::WeightedRoundRobin(s) => s.next(view, rng),
        Algo::Random(Some(table)) => view.cands.get(table.sample(rng)?).copied(),
        Algo::Random(None) => random_candidate(view, rng),
        Algo::LeastRequest(lr) => lr.next(view, rng),
        Algo::PeakEwma(pe) => pe.next(view, now, rng),
        Algo::RingHash { .. } | Algo::Maglev { .. } => random_candidate(view, rng),
    }
}

/// Ring hash and Maglev: follow the key, skipping non-candidates and tried
/// endpoints; without a key (or if the walk gives up), a random candidate.
#[inline]
fn hashed(
    view: &View,
    ctx: &PickContext<'_>,
    rng: &mut impl Rng,
    lookup: impl Fn(u64, &dyn Fn(usize) -> bool) -> Option<usize>,
) -> Option<usize> {
    let tried = ctx.tried;
    if let Some(h) = ctx.hash {
        let accept =
            |i: usize| view.usable.get(i).copied().unwrap_or(false) && !view.is_tried(i, tried);
        if let Some(i) = lookup(h, &accept) {
            return Some(i);
        }
        // The walk gave up: any untried candidate, else (all tried) the
        // key's own candidate.
        if let Some(i) = untried(view, tried, rng) {
            return Some(i);
        }
        let usable = |i: usize| view.usable.get(i).copied().unwrap_or(false);
        if let Some(i) = lookup(h, &usable) {
            return Some(i);
        }
        return random_candidate(view, rng);
    }
    untried(view, tried, rng).or_else(|| random_candidate(view, rng))
}

/// A uniformly random candidate.
#[inline]
fn random_candidate(view: &View, rng: &mut impl Rng) -> Option<usize> {
    view.cands
        .get(reduce(rng.next_u64(), view.cands.len()))
        .copied()
}

/// A candidate not in `tried`, scanning from a random place. At most
/// `tried.len()` candidates are tried (addresses are unique), so
/// `tried.len() + 1` steps always suffice.
#[inline]
fn untried(view: &View, tried: &[SocketAddr], rng: &mut impl Rng) -> Option<usize> {
    let n = view.cands.len();
    if n == 0 {
        return None;
    }
    let start = reduce(rng.next_u64(), n);
    (0..n.min(tried.len() + 1))
        .map(|k| (start + k) % n)
        .filter_map(|at| view.cands.get(at).copied())
        .find(|&i| !view.is_tried(i, tried))
}
