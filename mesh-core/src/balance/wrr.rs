//! Weighted round robin: a precomputed EDF cycle, or gRPC's static stride
//! scheduler.
//!
//! When every candidate has the same effective weight, no scheduler is built
//! and a plain rotation is used. When the weights are integers whose cycle
//! (sum of weights divided by their gcd) is at most `MAX_CYCLE` (2^18)
//! picks, one whole cycle of the earliest-deadline-first (EDF) order, as
//! Envoy picks, is precomputed at update time: each endpoint appears in
//! proportion to its weight, picks of different endpoints interleave
//! smoothly, and a pick is a single array read. Starting deadlines are spread
//! by a per-endpoint phase derived from the endpoint's address hash, so the
//! schedule is deterministic but different clients are not aligned.
//!
//! Everything else (huge weight totals, fractional slow-start weights) uses
//! the *static stride scheduler* of gRPC's `weighted_round_robin` (gRFC A58,
//! `static_stride_scheduler` in grpc-core): weights are scaled to `u16`
//! relative to the largest (each at least 1), and a sequence number walks
//! the slots; its low part (`seq % n`) is the slot, its high part
//! (`seq / n`) the generation. Slot `i` with scaled weight `w` is accepted
//! in generation `g` when `(w * g + offset_i) % M >= M - w` (`M = 65535`,
//! `offset_i = i * (M / 2) % M` staggers neighbours so equal weights do not
//! skip together). Over any `G` generations a slot is accepted
//! `w * G / M` times, give or take one, and over one full period (`n * M`
//! steps) exactly `w` times: picks follow the weights. A pick costs the
//! expected `max / mean` scaled weight steps, whatever `n` is, with no heap
//! and no floating point.
//!
//! # Pathological ratios
//!
//! gRPC accepts any ratio, but with one weight of 1,000,000 among 9,999 of
//! 1 a pick would cost about 8,700 steps, and scaling to `u16` would round
//! the small weights up to 1/65535 of the largest (a 15-fold error). So at
//! build time an endpoint heavier than twice the mean weight is *split* into
//! `ceil(w / (2 * mean))` slots of equal weight. Then no slot weighs more
//! than twice the mean, there are at most `1.5 n` slots (the build stays
//! `O(n)`), and a pick takes at most 3 expected steps, for any weights;
//! rounding to `u16` (and up to at least 1) shifts at most `3 / 65535`
//! (0.005%) of the weight. The slots are shuffled (seeded from the
//! candidates' addresses, so deterministically) so that heavy and light
//! slots mix and long runs of rejections do not occur. As a hard bound a
//! pick takes at most `MAX_STEPS` (64) steps: if all reject, the slot
//! reached is taken. With the mixing and at most 3 expected steps this does
//! not happen in practice (the tests check that it is never hit in a
//! million picks of the case above), and if it did it would only nudge one
//! pick to another slot.
//!
//! The sequence position survives rebuilds (slow-start refreshes, ejection)
//! as in A58; it starts at a random place drawn from the injected RNG at the
//! first pick, so clients started together are not aligned.

use rand::Rng;

use super::View;
use super::hash::{mix, reduce};
use super::round_robin::Rotation;

/// The stride modulus: weights are scaled into `1..=M`.
const M: u32 = u16::MAX as u32;

/// The slot offset step (A58: half the modulus).
const HALF: u32 = M / 2;

/// A pick gives up rejecting after this many steps (see module docs).
const MAX_STEPS: u32 = 64;

/// No slot weighs more than this many mean weights (heavier endpoints are
/// split).
const SPLIT_AT: f64 = 2.0;

/// One slot of the stride scheduler: 8 bytes, eight to a cache line.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Endpoint index.
    index: u32,
    /// Scaled weight in `1..=M`.
    weight: u16,
    /// Stagger in `0..M`.
    offset: u16,
}

/// gRPC's static stride scheduler over endpoint indices (module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Stride {
    slots: Vec<Slot>,
    /// Current slot and generation (`0..M`); `None` until the first pick.
    pos: Option<(usize, u32)>,
    /// Scratch for rebuilds.
    scratch: Vec<(u32, f64)>,
}

impl Stride {
    /// Rebuild over `(endpoint index, weight)`; weights that are not finite
    /// and positive are skipped. `seed` orders the slots. The sequence
    /// position is kept.
    pub(crate) fn rebuild(&mut self, items: impl Iterator<Item = (usize, f64)>, seed: u64) {
        self.slots.clear();
        self.scratch.clear();
        for (index, weight) in items {
            let Ok(index) = u32::try_from(index) else {
                continue;
            };
            if weight > 0.0 && weight.is_finite() {
                self.scratch.push((index, weight));
            }
        }
        let n = self.scratch.len();
        if n == 0 {
            return;
        }
        let sum: f64 = self.scratch.iter().map(|&(_, w)| w).sum();
        let cap = SPLIT_AT * sum / n as f64;
        // Pieces per endpoint: at most `1 + w / cap`, so `1.5 n` in all.
        let pieces = |w: f64| (w / cap).ceil().clamp(1.0, n as f64);
        let max = self
            .scratch
            .iter()
            .map(|&(_, w)| w / pieces(w))
            .fold(0.0, f64::max);
        for &(index, w) in &self.scratch {
            let k = pieces(w);
            let weight = (w / k / max * f64::from(M))
                .round()
                .clamp(1.0, f64::from(M)) as u16;
            for _ in 0..k as usize {
                self.slots.push(Slot {
                    index,
                    weight,
                    offset: 0,
                });
            }
        }
        // Fisher-Yates, driven by a chain of SplitMix64 steps from `seed`.
        let mut state = seed;
        for k in (1..self.slots.len()).rev() {
            state = mix(state);
            let j = reduce(state, k + 1);
            self.slots.swap(k, j);
        }
        for (at, slot) in self.slots.iter_mut().enumerate() {
            slot.offset = ((at as u64 * u64::from(HALF)) % u64::from(M)) as u16;
        }
    }

    /// The next endpoint index.
    #[inline]
    pub(crate) fn next(&mut self, rng: &mut impl Rng) -> Option<usize> {
        self.step(rng).map(|(index, _)| index)
    }

    /// The next endpoint index and the steps it took (`MAX_STEPS + 1` when
    /// the bound was hit).
    #[inline]
    fn step(&mut self, rng: &mut impl Rng) -> Option<(usize, u32)> {
        let len = self.slots.len();
        let (mut at, mut generation) = match self.pos {
            Some(pos) => pos,
            None => {
                let r = rng.next_u64();
                (reduce(r, len), ((r >> 32) % u64::from(M)) as u32)
            }
        };
        let mut last = None;
        for steps in 1..=MAX_STEPS {
            at += 1;
            if at >= len {
                at = 0;
                generation += 1;
                if generation >= M {
                    generation = 0;
                }
            }
            let slot = self.slots.get(at)?;
            let w = u32::from(slot.weight);
            // `w * generation + offset < M * M < 2^32`.
            if (w * generation + u32::from(slot.offset)) % M >= M - w {
                self.pos = Some((at, generation));
                return Some((slot.index as usize, steps));
            }
            last = Some(slot.index as usize);
        }
        self.pos = Some((at, generation));
        last.map(|index| (index, MAX_STEPS + 1))
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
    /// Otherwise (huge weight sums, fractional slow-start weights): the
    /// static stride scheduler in [`Schedule::stride`].
    Stride,
}

/// The schedule of round robin and weighted round robin: a rotation when all
/// candidates weigh the same, a precomputed EDF cycle when the cycle is
/// short, the static stride scheduler otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schedule {
    /// Round robin: only slow-start factors count, not configured weights.
    ignore_weights: bool,
    rotation: Rotation,
    plan: Plan,
    /// Kept across rebuilds: its sequence position and buffers persist.
    stride: Stride,
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
            let seed = view.cands.iter().fold(view.cands.len() as u64, |h, &i| {
                let addr = view.endpoints.get(i).map_or(0, |e| e.addr_hash);
                (h ^ addr).wrapping_mul(0x100_0000_01B3)
            });
            self.stride
                .rebuild(view.cands.iter().map(|&i| (i, weight_of(i))), seed);
            Plan::Stride
        };
    }

    /// The next endpoint index.
    #[inline]
    pub(crate) fn next(&mut self, view: &View, rng: &mut impl Rng) -> Option<usize> {
        match &mut self.plan {
            Plan::Stride => self.stride.next(rng),
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
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn stride(weights: &[f64]) -> Stride {
        let mut s = Stride::default();
        s.rebuild(weights.iter().copied().enumerate(), 7);
        s
    }

    #[test]
    fn stride_is_exact_over_one_period() {
        let weights = [1.0, 2.0, 4.0, 0.25, 3.5];
        let mut s = stride(&weights);
        assert_eq!(s.slots.len(), 5, "nothing above twice the mean: no split");
        let scaled: Vec<u32> = (0..5)
            .map(|i| {
                let slot = s.slots.iter().find(|x| x.index == i).unwrap();
                u32::from(slot.weight)
            })
            .collect();
        // Scaled relative to the largest (4.0 -> M), rounded.
        assert_eq!(scaled, vec![16_384, 32_768, 65_535, 4_096, 57_343]);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts = [0u32; 5];
        let mut steps = 0u64;
        for _ in 0..scaled.iter().sum::<u32>() {
            let (i, k) = s.step(&mut rng).unwrap();
            assert!(k <= MAX_STEPS);
            counts[i] += 1;
            steps += u64::from(k);
        }
        // One full period is `n * M` steps, and each slot is accepted
        // exactly its scaled weight times in it: those picks fit in one
        // period and the next pick starts the following one.
        let period = 5 * u64::from(M);
        let (_, k) = s.step(&mut rng).unwrap();
        assert!(steps <= period && steps + u64::from(k) > period, "{steps}");
        assert_eq!(counts.to_vec(), scaled);
    }

    #[test]
    fn stride_prefix_stays_within_one_pick_per_slot() {
        let weights = [3.0, 1.0, 7.0, 7.0, 2.0];
        let mut s = stride(&weights);
        let mut rng = SmallRng::seed_from_u64(9);
        let total: f64 = weights.iter().sum();
        let mut counts = [0f64; 5];
        for picks in 1..=2000 {
            counts[s.next(&mut rng).unwrap()] += 1.0;
            if picks % 100 == 0 {
                for (c, w) in counts.iter().zip(weights) {
                    // Quantization to u16 adds well under a pick here.
                    assert!((c - w / total * f64::from(picks)).abs() < 2.5, "{counts:?}");
                }
            }
        }
    }

    #[test]
    fn pathological_ratio_is_split_and_bounded() {
        // One weight of 1,000,000 among 9,999 of 1: plain A58 would take
        // ~8,700 steps a pick and give the light ones 15 times their share.
        let mut weights = vec![1.0; 10_000];
        weights[1234] = 1_000_000.0;
        let mut s = stride(&weights);
        assert!(s.slots.len() <= 15_000, "{}", s.slots.len());
        let heavy = s.slots.iter().filter(|x| x.index == 1234).count();
        assert!(heavy > 4_000, "split into {heavy} slots");
        let mut rng = SmallRng::seed_from_u64(5);
        let picks = 1_000_000u64;
        let (mut steps, mut worst, mut hits) = (0u64, 0u32, 0u64);
        for _ in 0..picks {
            let (i, k) = s.step(&mut rng).unwrap();
            steps += u64::from(k);
            worst = worst.max(k);
            hits += u64::from(i == 1234);
        }
        assert!(worst <= MAX_STEPS, "the bound was hit: {worst}");
        assert!(
            steps as f64 / (picks as f64) <= 3.0,
            "mean steps {steps}/{picks}"
        );
        let share = hits as f64 / picks as f64;
        let want = 1e6 / (1e6 + 9_999.0);
        assert!((share - want).abs() < 0.001, "{share} vs {want}");
    }

    #[test]
    fn light_ones_in_a_row_stay_cheap() {
        // Half heavy, half very light, in candidate order: the shuffle mixes
        // them, so no pick needs a long run of rejections.
        let weights: Vec<f64> = (0..2_000)
            .map(|i| if i < 1_000 { 100.0 } else { 0.5 })
            .collect();
        let mut s = stride(&weights);
        let mut rng = SmallRng::seed_from_u64(11);
        let worst = (0..300_000)
            .map(|_| s.step(&mut rng).unwrap().1)
            .max()
            .unwrap();
        assert!(worst <= 32, "worst {worst}");
    }

    #[test]
    fn stride_empty_survives_shrink_and_skips_bad_weights() {
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(Stride::default().next(&mut rng), None);
        let mut s = stride(&[1.0, f64::NAN, 0.0, -1.0, 2.0]);
        assert_eq!(s.slots.len(), 2);
        for _ in 0..20 {
            assert!(matches!(s.next(&mut rng), Some(0 | 4)));
        }
        let mut s = stride(&(0..50).map(|i| f64::from(i % 3 + 1)).collect::<Vec<_>>());
        for _ in 0..500 {
            s.next(&mut rng);
        }
        // Shrink: the kept position is past the end, and is wrapped.
        s.rebuild([(8, 1.0), (9, 3.0)].into_iter(), 1);
        for _ in 0..40 {
            assert!(matches!(s.next(&mut rng), Some(8 | 9)));
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
}
