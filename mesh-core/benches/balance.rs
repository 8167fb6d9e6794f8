//! `Balancer::pick` per algorithm at 10, 1k and 10k endpoints.
//!
//! Run briefly: `cargo bench -p mesh-core --bench balance -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::Endpoint;
use mesh_core::balance::{Balancer, PickContext};
use mesh_core::config::model::{Algorithm, LoadBalancerConfig};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn endpoints(n: usize) -> Vec<Endpoint> {
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8080));
            // Mixed weights so the weighted paths (EDF cycle, alias, weighted P2C) run.
            Endpoint::new(addr).with_weight(1 + (i % 4) as u32)
        })
        .collect()
}

fn algorithms() -> Vec<Algorithm> {
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

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    let now = Instant::now();
    for algorithm in algorithms() {
        for n in [10usize, 1_000, 10_000] {
            let config = LoadBalancerConfig {
                algorithm: algorithm.clone(),
                panic_threshold_percent: 50,
            };
            let Ok(mut lb) = Balancer::new(&config, None) else {
                continue;
            };
            let eps = endpoints(n);
            lb.update(&eps, now);
            // A fifth of the endpoints ejected: skipping must stay flat.
            for ep in eps.iter().step_by(5) {
                lb.set_ejected(ep.address, true, now);
            }
            let mut rng = SmallRng::seed_from_u64(42);
            let mut key = 0u64;
            group.bench_with_input(BenchmarkId::new(algorithm.name(), n), &n, |b, _| {
                b.iter(|| {
                    key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let ctx = PickContext::with_hash(key);
                    black_box(lb.pick(black_box(&ctx), now, &mut rng))
                })
            });
        }
    }
    // Weighted round robin with huge weights: the cycle is too long to
    // precompute, so this is the live static stride scheduler.
    for n in [10usize, 1_000, 10_000] {
        let config = LoadBalancerConfig {
            algorithm: Algorithm::WeightedRoundRobin,
            panic_threshold_percent: 50,
        };
        let Ok(mut lb) = Balancer::new(&config, None) else {
            continue;
        };
        let eps: Vec<Endpoint> = endpoints(n)
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.with_weight(100_000 + (i as u32 * 7_919) % 900_000))
            .collect();
        lb.update(&eps, now);
        let mut rng = SmallRng::seed_from_u64(42);
        group.bench_with_input(BenchmarkId::new("wrr_live", n), &n, |b, _| {
            b.iter(|| black_box(lb.pick(&PickContext::default(), now, &mut rng)))
        });
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
