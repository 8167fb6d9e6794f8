//! Property tests over the whole balancer (seeded RNGs: deterministic).

use std::collections::HashSet;
use std::time::Instant;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::tests::{addr, all_algorithms, balancer, counts, eps};
use super::*;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    (0..all_algorithms().len()).prop_map(|i| all_algorithms()[i].clone())
}

fn share_error(counts: &[u32], weights: &[u32]) -> f64 {
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let picks: f64 = counts.iter().map(|&c| f64::from(c)).sum();
    counts
        .iter()
        .zip(weights)
        .map(|(&c, &w)| (f64::from(c) / picks - f64::from(w) / total).abs())
        .fold(0.0, f64::max)
}

/// Fraction of `keys` whose endpoint address differs between two balancers.
fn moved(a: &mut Balancer, b: &mut Balancer, keys: u64) -> f64 {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(0);
    let moved = (0..keys)
        .filter(|&k| {
            let ctx = PickContext::with_hash(hash::mix(k));
            a.pick(&ctx, now, &mut rng).unwrap().address
                != b.pick(&ctx, now, &mut rng).unwrap().address
        })
        .count();
    moved as f64 / keys as f64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Weighted round robin follows the weights within 1% over 10k picks:
    /// small weights (the precomputed EDF cycle) and huge ones (the static
    /// stride scheduler).
    #[test]
    fn wrr_converges_to_weights(
        weights in prop_oneof![
            prop::collection::vec(1u32..=50, 1..20),
            prop::collection::vec(100_000u32..=1_000_000, 2..20),
        ],
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut lb = balancer(Algorithm::WeightedRoundRobin, 50, None);
        lb.update(&eps(&weights), now);
        let c = counts(&mut lb, 10_000, now, &mut rng);
        prop_assert!(share_error(&c, &weights) < 0.01, "{c:?} vs {weights:?}");
    }

    /// Weighted random follows the weights within 1%. (Over 100k picks: at
    /// 10k the sampling noise alone is up to 0.5% per endpoint, so a 1%
    /// bound there would be a coin toss, not a test.)
    #[test]
    fn random_converges_to_weights(weights in prop::collection::vec(1u32..=50, 1..20), seed in any::<u64>()) {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut lb = balancer(Algorithm::Random, 50, None);
        lb.update(&eps(&weights), now);
        let c = counts(&mut lb, 100_000, now, &mut rng);
        prop_assert!(share_error(&c, &weights) < 0.01, "{c:?} vs {weights:?}");
    }

    /// No algorithm returns an ejected endpoint unless in panic mode, and in
    /// panic mode ejected endpoints do get traffic.
    #[test]
    fn ejected_only_in_panic(
        algorithm in algorithm(),
        n in 1usize..40,
        ejected in prop::collection::vec(any::<bool>(), 40),
        threshold in 0u32..=100,
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut lb = balancer(algorithm, threshold, None);
        lb.update(&eps(&vec![1; n]), now);
        let out: HashSet<usize> = (0..n).filter(|&i| ejected[i]).collect();
        for &i in &out {
            lb.set_ejected(addr(i), true, now);
        }
        let healthy = n - out.len();
        let panic = healthy == 0 || healthy * 100 < threshold as usize * n;
        prop_assert_eq!(lb.in_panic(), panic);
        let c = counts(&mut lb, 40 * n, now, &mut rng);
        let to_ejected: u32 = out.iter().map(|&i| c[i]).sum();
        if panic {
            prop_assert!(out.is_empty() || to_ejected > 0, "panic mode spreads over all: {c:?}");
        } else {
            prop_assert_eq!(to_ejected, 0, "{:?}", c);
        }
    }

    /// Panic mode engages exactly when healthy < threshold% of all.
    #[test]
    fn panic_exactly_at_threshold(n in 1usize..200, threshold in 1u32..=100) {
        let now = Instant::now();
        let mut lb = balancer(Algorithm::RoundRobin, threshold, None);
        lb.update(&eps(&vec![1; n]), now);
        // Lowest healthy count that is not panic: ceil(threshold * n / 100).
        let edge = (threshold as usize * n).div_ceil(100);
        for i in 0..n - edge.min(n) {
            lb.set_ejected(addr(i), true, now);
        }
        prop_assert_eq!(lb.healthy_len(), edge.min(n));
        prop_assert_eq!(lb.in_panic(), edge == 0);
        if edge >= 1 && edge < n + 1 {
            lb.set_ejected(addr(n - edge), true, now);
            prop_assert!(lb.in_panic(), "one fewer healthy must panic");
        }
    }

    /// Retries avoid tried endpoints while another candidate exists.
    #[test]
    fn tried_endpoints_avoided(
        algorithm in algorithm(),
        n in 1usize..30,
        tried_mask in prop::collection::vec(any::<bool>(), 30),
        key in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut lb = balancer(algorithm, 50, None);
        lb.update(&eps(&vec![1; n]), now);
        let tried: Vec<SocketAddr> = (0..n).filter(|&i| tried_mask[i]).map(addr).collect();
        for hash in [Some(key), None] {
            let ctx = PickContext { hash, tried: &tried };
            for _ in 0..20 {
                let p = lb.pick(&ctx, now, &mut rng).unwrap();
                if tried.len() < n {
                    prop_assert!(!tried.contains(&p.address));
                }
            }
        }
    }

    /// Ring hash: adding one endpoint (weight not below the smallest) moves
    /// about its share of keys, never much more.
    #[test]
    fn ring_hash_moves_about_one_nth(n in 7usize..60, weights in prop::collection::vec(1u32..=3, 60), extra in 0u32..=2) {
        let algorithm = all_algorithms()[5].clone();
        let before: Vec<u32> = weights[..n].to_vec();
        let min = *before.iter().min().unwrap();
        let mut after = before.clone();
        after.push(min + extra);
        let (mut a, mut b) = (balancer(algorithm.clone(), 50, None), balancer(algorithm, 50, None));
        let now = Instant::now();
        a.update(&eps(&before), now);
        b.update(&eps(&after), now);
        let share = f64::from(min + extra) / after.iter().map(|&w| f64::from(w)).sum::<f64>();
        let m = moved(&mut a, &mut b, 20_000);
        prop_assert!(m <= 1.5 * share + 0.01, "moved {m}, share {share}");
        prop_assert!(m >= 0.5 * share - 0.01, "new endpoint takes a share: moved {m}, share {share}");
    }

    /// Maglev: adding one endpoint moves few keys.
    #[test]
    fn maglev_moves_few_keys(n in 3usize..60) {
        let algorithm = all_algorithms()[6].clone();
        let (mut a, mut b) = (balancer(algorithm.clone(), 50, None), balancer(algorithm, 50, None));
        let now = Instant::now();
        a.update(&eps(&vec![1; n]), now);
        b.update(&eps(&vec![1; n + 1]), now);
        let share = 1.0 / (n + 1) as f64;
        let m = moved(&mut a, &mut b, 20_000);
        prop_assert!(m <= 2.0 * share + 0.01, "moved {m}, share {share}");
        prop_assert!(m >= 0.8 * share, "new endpoint takes its share: moved {m}, share {share}");
    }

    /// Update keeps in-flight counts of remaining endpoints, whatever the new order.
    #[test]
    fn update_keeps_in_flight(algorithm in algorithm(), n in 1usize..20, starts in 1usize..50, seed in any::<u64>()) {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut lb = balancer(algorithm, 50, None);
        lb.update(&eps(&vec![1; n]), now);
        let mut want = vec![0u32; n];
        for _ in 0..starts {
            let p = lb.pick(&PickContext::default(), now, &mut rng).unwrap();
            lb.on_start(&p);
            want[p.index] += 1;
        }
        let mut shuffled = eps(&vec![1; n + 1]);
        shuffled.rotate_left(seed as usize % (n + 1));
        lb.update(&shuffled, now);
        for (i, w) in want.iter().enumerate() {
            prop_assert_eq!(lb.in_flight(addr(i)), Some(*w));
        }
        prop_assert_eq!(lb.in_flight(addr(n)), Some(0));
    }
}
