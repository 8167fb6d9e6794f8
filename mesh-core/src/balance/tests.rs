//! Behaviour of the whole balancer, per algorithm (property tests in `props.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

pub(super) fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8080))
}

pub(super) fn eps(weights: &[u32]) -> Vec<Endpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Endpoint::new(addr(i)).with_weight(w))
        .collect()
}

pub(super) fn all_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::default(),
        Algorithm::PeakEwma {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
        },
        Algorithm::RingHash {
            min_ring_size: 1024,
            max_ring_size: 8_388_608,
        },
        Algorithm::Maglev { table_size: 65_537 },
    ]
}

pub(super) fn balancer(algorithm: Algorithm, threshold: u32, slow: Option<Duration>) -> Balancer {
    let config = LoadBalancerConfig {
        algorithm,
        panic_threshold_percent: threshold,
    };
    Balancer::new(&config, slow).unwrap()
}

/// Pick `n` times (with a fresh random key per pick for hashing algorithms)
/// and count picks per index.
pub(super) fn counts(lb: &mut Balancer, n: usize, now: Instant, rng: &mut SmallRng) -> Vec<u32> {
    let mut counts = vec![0u32; lb.len()];
    for k in 0..n {
        let ctx = PickContext::with_hash(hash::mix(k as u64 ^ 0xabcdef));
        let p = lb.pick(&ctx, now, rng).unwrap();
        counts[p.index] += 1;
    }
    counts
}

#[test]
fn empty_set_picks_none() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(1);
    for algorithm in all_algorithms() {
        let mut lb = balancer(algorithm.clone(), 50, None);
        assert!(lb.pick(&PickContext::default(), now, &mut rng).is_none());
        lb.update(&[], now);
        assert!(lb.pick(&PickContext::with_hash(7), now, &mut rng).is_none());
        lb.update(&eps(&[1]), now);
        lb.update(&[], now);
        assert!(
            lb.pick(&PickContext::default(), now, &mut rng).is_none(),
            "{algorithm:?}"
        );
    }
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let bad = [
        (
            Algorithm::LeastRequest {
                choice_count: 1,
                active_request_bias: 1.0,
            },
            50,
        ),
        (
            Algorithm::LeastRequest {
                choice_count: 101,
                active_request_bias: 1.0,
            },
            50,
        ),
        (
            Algorithm::LeastRequest {
                choice_count: 2,
                active_request_bias: -1.0,
            },
            50,
        ),
        (
            Algorithm::LeastRequest {
                choice_count: 2,
                active_request_bias: f64::NAN,
            },
            50,
        ),
        (
            Algorithm::PeakEwma {
                decay: Duration::ZERO,
                default_rtt: Duration::ZERO,
            },
            50,
        ),
        (
            Algorithm::RingHash {
                min_ring_size: 0,
                max_ring_size: 10,
            },
            50,
        ),
        (
            Algorithm::RingHash {
                min_ring_size: 100,
                max_ring_size: 10,
            },
            50,
        ),
        (
            Algorithm::RingHash {
                min_ring_size: 1,
                max_ring_size: 1 << 30,
            },
            50,
        ),
        (Algorithm::Maglev { table_size: 65_536 }, 50),
        (Algorithm::Maglev { table_size: 0 }, 50),
        (
            Algorithm::Maglev {
                table_size: 10_000_019,
            },
            50,
        ),
        (Algorithm::RoundRobin, 101),
    ];
    for (algorithm, threshold) in bad {
        let config = LoadBalancerConfig {
            algorithm: algorithm.clone(),
            panic_threshold_percent: threshold,
        };
        let err = Balancer::new(&config, None).unwrap_err();
        assert!(!err.to_string().is_empty(), "{algorithm:?}");
    }
    let err = Balancer::new(
        &LoadBalancerConfig {
            algorithm: Algorithm::Maglev { table_size: 12 },
            panic_threshold_percent: 50,
        },
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        BalanceError::MaglevTableSize {
            got: 12,
            limit: maglev::MAX_TABLE_SIZE
        }
    );
}

#[test]
fn round_robin_ignores_weights_and_cycles() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(2);
    let mut lb = balancer(Algorithm::RoundRobin, 50, None);
    lb.update(&eps(&[1, 5, 100]), now);
    let c = counts(&mut lb, 300, now, &mut rng);
    assert_eq!(c, vec![100, 100, 100]);
}

#[test]
fn hashing_is_sticky_and_keyless_requests_spread() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(3);
    for algorithm in [all_algorithms()[5].clone(), all_algorithms()[6].clone()] {
        let mut lb = balancer(algorithm, 50, None);
        lb.update(&eps(&[1; 8]), now);
        for key in 0..200u64 {
            let ctx = PickContext::with_hash(hash_key(&key.to_le_bytes()));
            let a = lb.pick(&ctx, now, &mut rng).unwrap();
            let b = lb.pick(&ctx, now, &mut rng).unwrap();
            assert_eq!(a, b);
        }
        let mut seen = [0u32; 8];
        for _ in 0..800 {
            seen[lb
                .pick(&PickContext::default(), now, &mut rng)
                .unwrap()
                .index] += 1;
        }
        assert!(seen.iter().all(|&c| c > 50), "{seen:?}");
    }
}

#[test]
fn ejection_moves_only_the_ejected_endpoints_keys() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(4);
    for algorithm in [all_algorithms()[5].clone(), all_algorithms()[6].clone()] {
        let mut lb = balancer(algorithm, 50, None);
        lb.update(&eps(&[1; 10]), now);
        let keys: Vec<u64> = (0..5000u64).map(hash::mix).collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|&k| {
                lb.pick(&PickContext::with_hash(k), now, &mut rng)
                    .unwrap()
                    .index
            })
            .collect();
        lb.set_ejected(addr(3), true, now);
        for (k, b) in keys.iter().zip(&before) {
            let after = lb
                .pick(&PickContext::with_hash(*k), now, &mut rng)
                .unwrap()
                .index;
            assert_ne!(after, 3);
            if *b != 3 {
                assert_eq!(after, *b, "a key of a healthy endpoint moved");
            }
        }
        lb.set_ejected(addr(3), false, now);
        for (k, b) in keys.iter().zip(&before) {
            assert_eq!(
                lb.pick(&PickContext::with_hash(*k), now, &mut rng)
                    .unwrap()
                    .index,
                *b
            );
        }
    }
}

#[test]
fn least_request_prefers_less_loaded() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut lb = balancer(Algorithm::default(), 50, None);
    lb.update(&eps(&[1; 10]), now);
    let busy = lb.pick(&PickContext::default(), now, &mut rng).unwrap();
    for _ in 0..50 {
        lb.on_start(&busy);
    }
    let c = counts(&mut lb, 10_000, now, &mut rng);
    // Two distinct samples: the busy one never wins.
    assert_eq!(c[busy.index], 0, "{c:?}");
    // Weighted: weight 4 vs 1 and equal load: the heavy one wins any pair it is in.
    let mut lb = balancer(Algorithm::default(), 50, None);
    lb.update(&eps(&[4, 1]), now);
    let c = counts(&mut lb, 1000, now, &mut rng);
    assert!(c[0] > 700, "{c:?}");
}

#[test]
fn least_request_balances_live_load() {
    // Requests that stay in flight: P2C keeps the in-flight counts even.
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(6);
    let mut lb = balancer(Algorithm::default(), 50, None);
    lb.update(&eps(&[1; 20]), now);
    for _ in 0..2000 {
        let p = lb.pick(&PickContext::default(), now, &mut rng).unwrap();
        lb.on_start(&p);
    }
    let loads: Vec<u32> = (0..20).map(|i| lb.in_flight(addr(i)).unwrap()).collect();
    let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
    assert!(max - min <= 4, "{loads:?}");
}

#[test]
fn peak_ewma_prefers_faster_and_reacts_to_spike() {
    let t0 = Instant::now();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut lb = balancer(all_algorithms()[4].clone(), 50, None);
    lb.update(&eps(&[1, 1]), t0);
    let mut now = t0;
    let rtt = |index: usize, slow: usize| Duration::from_millis(if index == slow { 80 } else { 2 });
    let mut picks = [0u32; 2];
    for _ in 0..2000 {
        now += Duration::from_millis(1);
        let p = lb.pick(&PickContext::default(), now, &mut rng).unwrap();
        picks[p.index] += 1;
        lb.on_start(&p);
        lb.on_end(&p, rtt(p.index, 1), now);
    }
    assert!(picks[0] > 1800, "fast endpoint preferred: {picks:?}");
    // Endpoint 0 spikes: traffic moves to 1 at once.
    let mut after = [0u32; 2];
    for _ in 0..200 {
        now += Duration::from_millis(1);
        let p = lb.pick(&PickContext::default(), now, &mut rng).unwrap();
        after[p.index] += 1;
        lb.on_start(&p);
        lb.on_end(
            &p,
            if p.index == 0 {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(80)
            },
            now,
        );
    }
    assert!(after[1] > 150, "spike moved traffic: {after:?}");
}

#[test]
fn update_keeps_in_flight_and_feedback_follows_address() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(8);
    let mut lb = balancer(Algorithm::default(), 50, None);
    lb.update(&eps(&[1, 1, 1]), now);
    let p = lb.pick(&PickContext::default(), now, &mut rng).unwrap();
    lb.on_start(&p);
    lb.on_start(&p);
    // Reorder and extend: the count stays with the address.
    let mut next = eps(&[1, 1, 1, 1]);
    next.reverse();
    lb.update(&next, now);
    assert_eq!(lb.in_flight(p.address), Some(2));
    lb.on_end(&p, Duration::from_millis(1), now);
    assert_eq!(lb.in_flight(p.address), Some(1));
    let others: u32 = (0..4)
        .filter(|&i| addr(i) != p.address)
        .map(|i| lb.in_flight(addr(i)).unwrap())
        .sum();
    assert_eq!(others, 0);
    // Removed endpoint: feedback is ignored, nothing else changes.
    let kept: Vec<Endpoint> = next
        .into_iter()
        .filter(|e| e.address != p.address)
        .collect();
    lb.update(&kept, now);
    lb.on_end(&p, Duration::from_millis(1), now);
    assert_eq!(lb.in_flight(p.address), None);
    assert!((0..4).filter_map(|i| lb.in_flight(addr(i))).all(|c| c == 0));
}

#[test]
fn duplicates_and_zero_weights_are_tolerated() {
    let now = Instant::now();
    let mut rng = SmallRng::seed_from_u64(9);
    let mut endpoints = eps(&[1, 2]);
    endpoints.push(Endpoint::new(addr(0)));
    endpoints[1].weight = 0; // hand-built, bypassing the clamp
    for algorithm in all_algorithms() {
        let mut lb = balancer(algorithm, 50, None);
        lb.update(&endpoints, now);
        assert_eq!(lb.len(), 2);
        for _ in 0..100 {
            assert!(
                lb.pick(&PickContext::default(), now, &mut rng)
                    .unwrap()
                    .index
                    < 2
            );
        }
    }
}

#[test]
fn slow_start_ramps_a_new_endpoint() {
    let t0 = Instant::now();
    let window = Duration::from_secs(10);
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
    ] {
        let mut rng = SmallRng::seed_from_u64(10);
        let mut lb = balancer(algorithm.clone(), 50, Some(window));
        lb.update(&eps(&[1, 1, 1]), t0);
        lb.update(&eps(&[1, 1, 1, 1]), t0);
        // share of the newcomer = f / (3 + f), f ramping 0.1 -> 1.0
        for (secs, f) in [
            (0.0, 0.1),
            (2.5, 0.25),
            (5.0, 0.5),
            (7.5, 0.75),
            (10.0, 1.0),
            (30.0, 1.0),
        ] {
            let now = t0 + Duration::from_secs_f64(secs);
            let c = counts(&mut lb, 40_000, now, &mut rng);
            let share = f64::from(c[3]) / 40_000.0;
            let want = f / (3.0 + f);
            assert!(
                (share - want).abs() < 0.015,
                "{algorithm:?} at {secs}s: {share} vs {want}"
            );
        }
    }
}

#[test]
fn unejection_starts_slow_start_and_first_update_does_not() {
    let t0 = Instant::now();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut lb = balancer(
        Algorithm::WeightedRoundRobin,
        0,
        Some(Duration::from_secs(10)),
    );
    lb.update(&eps(&[1, 1]), t0);
    let c = counts(&mut lb, 1000, t0, &mut rng);
    assert_eq!(c, vec![500, 500], "no ramp for the initial set");
    lb.set_ejected(addr(1), true, t0);
    assert_eq!(counts(&mut lb, 100, t0, &mut rng), vec![100, 0]);
    let back = t0 + Duration::from_secs(20);
    lb.set_ejected(addr(1), false, back);
    let c = counts(&mut lb, 1100, back, &mut rng);
    assert!((95..=105).contains(&c[1]), "back at 10%: {c:?}");
    let c = counts(&mut lb, 1000, back + Duration::from_secs(10), &mut rng);
    assert_eq!(c, vec![500, 500]);
}
