//! Weighted round robin: earliest deadline first (EDF), as Envoy does.
//!
//! Each candidate gets a virtual deadline; a pick takes the candidate with the
//! earliest deadline and pushes it `1 / weight` later. Over any window an
//! endpoint is picked in proportion to its weight, picks of different
//! endpoints interleave smoothly (no bursts of the heaviest), and a pick is one
//! sift-down of a 4-ary heap: `O(log n)` compares on a contiguous array, flat
//! in practice (7 levels at 10k endpoints).
//!
//! Starting deadlines are spread by a per-endpoint phase in `[0, 1)` derived
//! from the endpoint's address hash, so the schedule is deterministic but
//! different clients' schedules are not aligned on one endpoint.
//!
//! When every candidate has the same effective weight, the scheduler is not
//! built and a plain rotation is used instead. When the weights are
//! integers whose cycle (sum of weights divided by their gcd) is at most
//! `MAX_CYCLE` (2^18) picks, one whole cycle of the EDF order is precomputed at
//! update time and a pick is a single array read; the heap is the fallback for
//! huge weight sums and for fractional slow-start weights.

use rand::Rng;

use super::View;
use super::round_robin::Rotation;

/// Deadlines past this are rebased to keep `f64` precision.
const REBASE_AT: f64 = (1u64 << 40) as f64;

/// A heap entry: 16 bytes, so four siblings fill one cache line.
#[derive(Debug, Clone, Copy)]
struct Entry {
    deadline: f64,
    /// Position in [`Edf::slots`] (also the tie-break).
    slot: u32,
}

impl Entry {
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        self.deadline < other.deadline
            || (self.deadline == other.deadline && self.slot < other.slot)
    }
}

/// An earliest-deadline-first scheduler over endpoint indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edf {
    heap: Vec<Entry>,
    /// Per slot: endpoint index and step (`1 / weight`).
    slots: Vec<(usize, f64)>,
}

impl Edf {
    /// A scheduler over `(endpoint index, weight > 0, phase in [0, 1))`.
    pub(crate) fn new(items: impl Iterator<Item = (usize, f64, f64)>) -> Self {
        let mut heap = Vec::new();
        let mut slots = Vec::new();
        for (index, weight, phase) in items {
            let Ok(slot) = u32::try_from(slots.len()) else {
                break;
            };
            if !(weight > 0.0 && weight.is_finite()) {
                continue;
            }
            let step = 1.0 / weight;
            heap.push(Entry {
                deadline: phase * step,
                slot,
            });
            slots.push((index, step));
        }
        for at in (0..heap.len().div_ceil(ARITY)).rev() {
            sift_down(&mut heap, at);
        }
        Self { heap, slots }
    }

    /// The next endpoint index.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<usize> {
        let top = self.heap.first_mut()?;
        let &(index, step) = self.slots.get(top.slot as usize)?;
        top.deadline += step;
        let rebase = top.deadline > REBASE_AT;
        sift_down(&mut self.heap, 0);
        if rebase {
            self.rebase();
        }
        Some(index)
    }

    fn rebase(&mut self) {
        let base = self.heap.first().map_or(0.0, |e| e.deadline);
        for e in &mut self.heap {
            e.deadline -= base;
        }
    }
}

/// Children per heap node: a 4-ary heap halves the depth of a binary one
/// (7 levels at 10k endpoints) and its children share a cache line or two.
const ARITY: usize = 4;

#[inline]
fn sift_down(heap: &mut [Entry], mut at: usize) {
    let len = heap.len();
    loop {
        let first = ARITY * at + 1;
        let Some(children) = heap.get(first..len.min(first + ARITY)) else {
            return;
        };
        let mut best: Option<(usize, &Entry)> = None;
        for (k, child) in children.iter().enumerate() {
            if best.is_none_or(|(_, b)| child.before(b)) {
                best = Some((first + k, child));
            }
        }
        let Some((child, entry)) = best else {
            return;
        };
        if heap.get(at).is_some_and(|parent| entry.before(parent)) {
            heap.swap(child, at);
            at = child;
        } else {
            return;
        }
    }
}

/// Longest precomputed cycle (entries of 4 bytes: 1 MiB).
pub(crate) const MAX_CYCLE: u64 = 1 << 18;

/// How a [`Schedule`] picks.
#[derive(Debug, Clone, Default)]
enum Plan {
    /// All candidates weigh the same: rotate over the candidate list.
    #[default]
    Rotate,
    /// Integer weights whose cycle (sum of weights / their gcd) is short: the
    /// EDF order of one whole cycle, precomputed, rotated over. A pick is
    /// one array read.
    Cycle(Vec<u32>),
    /// Otherwise (huge weight sums, fractional slow-start weights): live EDF.
    Live(Edf),
}

/// The schedule of round robin and weighted round robin: a rotation when all
/// candidates weigh the same, EDF otherwise (precomputed over one cycle when
/// the cycle is short, live on a heap when not).
#[derive(Debug, Clone, Default)]
pub(crate) struct Schedule {
    /// Round robin: only slow-start factors count, not configured weights.
    ignore_weights: bool,
    rotation: Rotation,
    plan: Plan,
}

impl Schedule {
    /// A schedule; `ignore_weights` for plain round robin.
    pub(crate) fn new(ignore_weights: bool) -> Self {
        Self {
            ignore_weights,
            ..Self::default()
        }
    }

    /// Recompute from the candidates and effective weights of `view`.
    pub(crate) fn rebuild(&mut self, view: &View) {
        let weight_of = |i: usize| -> f64 {
            let eff = view.eff.get(i).copied().unwrap_or(1.0);
            if self.ignore_weights {
                let base = view.endpoints.get(i).map_or(1.0, |e| f64::from(e.weight));
                eff / base
            } else {
                eff
            }
        };
        let phase_of = |i: usize| view.endpoints.get(i).map_or(0.0, |e| unit(e.addr_hash));
        let first = view.cands.first().map(|&i| weight_of(i));
        let uniform = view.cands.iter().all(|&i| Some(weight_of(i)) == first);
        self.plan = if uniform {
            Plan::Rotate
        } else if let Some(cycle) = cycle(view, &weight_of, &phase_of) {
            Plan::Cycle(cycle)
        } else {
            Plan::Live(Edf::new(
                view.cands.iter().map(|&i| (i, weight_of(i), phase_of(i))),
            ))
        };
    }

    /// The next endpoint index.
    #[inline]
    pub(crate) fn next(&mut self, view: &View, rng: &mut impl Rng) -> Option<usize> {
        match &mut self.plan {
            Plan::Live(edf) => edf.next(),
            Plan::Cycle(cycle) => {
                let at = self.rotation.next(cycle.len(), rng)?;
                cycle.get(at).map(|&i| i as usize)
            }
            Plan::Rotate => {
                let at = self.rotation.next(view.cands.len(), rng)?;
                view.cands.get(at).copied()
            }
        }
    }
}

/// One EDF cycle, if the weights are integers with a short cycle: every
/// candidate `i` appears `w_i / g` times (`g` the weights' gcd), ordered by
/// the deadlines `(phase_i + k) / (w_i / g)`, exactly as the live scheduler
/// would pick them.
fn cycle(
    view: &View,
    weight_of: &impl Fn(usize) -> f64,
    phase_of: &impl Fn(usize) -> f64,
) -> Option<Vec<u32>> {
    let mut g = 0u64;
    let mut weights = Vec::with_capacity(view.cands.len());
    for &i in &view.cands {
        let w = weight_of(i);
        if w.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&w) {
            return None;
        }
        let w = w as u64;
        g = gcd(g, w);
        weights.push((u32::try_from(i).ok()?, w));
    }
    let g = g.max(1);
    let len: u64 = weights.iter().map(|&(_, w)| w / g).sum();
    if len > MAX_CYCLE {
        return None;
    }
    let mut slots: Vec<(f64, u32)> = Vec::with_capacity(len as usize);
    for &(i, w) in &weights {
        let w = (w / g) as f64;
        let phase = phase_of(i as usize);
        let mut k = 0.0;
        while k < w {
            slots.push(((phase + k) / w, i));
            k += 1.0;
        }
    }
    slots.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    Some(slots.into_iter().map(|(_, i)| i).collect())
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A hash as a fraction in `[0, 1)`.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edf_follows_weights_exactly() {
        let mut edf = Edf::new([(0, 1.0, 0.3), (1, 2.0, 0.9), (2, 5.0, 0.5)].into_iter());
        let mut counts = [0u32; 3];
        for _ in 0..8000 {
            counts[edf.next().unwrap()] += 1;
        }
        for (c, want) in counts.iter().zip([1000i64, 2000, 5000]) {
            assert!((i64::from(*c) - want).abs() <= 2, "{counts:?}");
        }
    }

    #[test]
    fn heap_agrees_with_naive_earliest_deadline() {
        let items: Vec<(usize, f64, f64)> = (0..57)
            .map(|i| (i, 1.0 + (i * 37 % 11) as f64, (i * 13 % 7) as f64 / 7.0))
            .collect();
        let mut edf = Edf::new(items.iter().copied());
        let mut naive: Vec<(f64, f64, usize)> = items
            .iter()
            .map(|&(i, w, p)| (p * (1.0 / w), 1.0 / w, i))
            .collect();
        for _ in 0..5000 {
            let (at, _) = naive
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.0.total_cmp(&b.1.0).then(a.1.2.cmp(&b.1.2)))
                .unwrap();
            let want = naive[at].2;
            naive[at].0 += naive[at].1;
            assert_eq!(edf.next(), Some(want));
        }
    }

    #[test]
    fn edf_interleaves_smoothly() {
        // Weights 3:1: never more than 3 picks of the heavy one in a row.
        let mut edf = Edf::new([(0, 3.0, 0.1), (1, 1.0, 0.5)].into_iter());
        let mut run = 0;
        for _ in 0..400 {
            if edf.next() == Some(0) {
                run += 1;
                assert!(run <= 3);
            } else {
                run = 0;
            }
        }
    }

    #[test]
    fn cycle_matches_weights_and_gcd() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(0, 5), 5);
        let endpoints: Vec<super::super::EndpointState> = Vec::new();
        let view = View {
            endpoints,
            cands: vec![0, 1, 2],
            ..View::default()
        };
        let w = |i: usize| [2.0, 4.0, 6.0][i];
        let c = cycle(&view, &w, &|_| 0.25).unwrap();
        assert_eq!(c.len(), 6, "gcd 2 divides the cycle: {c:?}");
        let count = |x: u32| c.iter().filter(|&&i| i == x).count();
        assert_eq!((count(0), count(1), count(2)), (1, 2, 3));
        assert!(cycle(&view, &|i| [1.5, 1.0, 1.0][i], &|_| 0.0).is_none());
        assert!(cycle(&view, &|i| [1e6, 1.0, 3.0][i], &|_| 0.0).is_none());
    }

    #[test]
    fn edf_empty_and_rebase() {
        assert_eq!(Edf::default().next(), None);
        let mut edf = Edf::new([(4, 1e-12, 0.0), (5, 1e-12, 0.5)].into_iter());
        for _ in 0..10 {
            assert!(matches!(edf.next(), Some(4 | 5)));
        }
        assert!(edf.heap.iter().all(|e| e.deadline < REBASE_AT));
    }
}
