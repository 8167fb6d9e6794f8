//! Hot-path costs of circuit breaking and outlier detection.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::circuit::ConcurrencyLimits;
use mesh_core::config::model::{
    CircuitBreakerConfig, FailureRateConfig, OutlierConfig, SuccessRateConfig,
};
use mesh_core::outlier::{EndpointStats, Observation, OutlierDetector};

fn circuit(c: &mut Criterion) {
    let limits = ConcurrencyLimits::new(&CircuitBreakerConfig::default());
    c.bench_function("circuit/acquire_release_request", |b| {
        b.iter(|| drop(black_box(limits.try_acquire_request())))
    });
}

fn outlier(c: &mut Criterion) {
    let config = OutlierConfig {
        failure_rate: Some(FailureRateConfig {
            threshold: 0.5,
            min_requests: 20,
        }),
        success_rate: Some(SuccessRateConfig::default()),
        ..OutlierConfig::default()
    };
    let stats = EndpointStats::new(&config);
    c.bench_function("outlier/record_success", |b| {
        b.iter(|| black_box(stats.record(black_box(Observation::Success))))
    });

    let addrs: Vec<SocketAddr> = (0..100u16)
        .map(|i| SocketAddr::from(([10, 0, 0, i as u8], 80 + i)))
        .collect();
    let all: Vec<EndpointStats> = addrs.iter().map(|_| EndpointStats::new(&config)).collect();
    let mut detector = OutlierDetector::new(config).unwrap();
    let mut now = Instant::now();
    detector.set_endpoints(&addrs, now);
    c.bench_function("outlier/evaluate_100_endpoints", |b| {
        b.iter(|| {
            for (i, s) in all.iter().enumerate() {
                for _ in 0..(100 + i % 7) {
                    s.record(Observation::Success);
                }
                s.record(Observation::Failure);
            }
            now += Duration::from_secs(10);
            black_box(detector.evaluate(addrs.iter().copied().zip(all.iter()), now))
        })
    });
}

criterion_group!(benches, circuit, outlier);
criterion_main!(benches);
