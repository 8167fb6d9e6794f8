//! Route matching and split picks: the router's per-request cost.
//!
//! Routes are mixed: path prefixes, header exact matches and path regexes,
//! in turn. The request matches the *last* route, so every route is tried
//! (the worst case of first-match-wins).

#![allow(missing_docs)]
// A benchmark may stop on a broken fixture.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::config::{
    HeaderMatch, HeaderValueMatch, PathMatch, RouteConfig, RouteMatch, ServiceConfig,
};
use mesh_core::route::{Router, SimpleRequest, SplitTable};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn route(i: usize) -> RouteConfig {
    let matches = match i % 3 {
        0 => RouteMatch {
            path: Some(PathMatch::Prefix(format!("/svc{i}/"))),
            ..Default::default()
        },
        1 => RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-tenant".into(),
                value: HeaderValueMatch::Exact(format!("t{i}")),
            }],
            ..Default::default()
        },
        _ => RouteMatch {
            path: Some(PathMatch::Regex(format!("/r{i}/[0-9]+"))),
            methods: vec!["GET".into()],
            ..Default::default()
        },
    };
    RouteConfig {
        name: Some(format!("route-{i}")),
        matches,
        split: [("v1".to_string(), 90), ("v2".to_string(), 10)].into(),
        ..Default::default()
    }
}

/// A request that only route `i` takes.
fn request_for(i: usize) -> SimpleRequest {
    let base = SimpleRequest::new("GET", "/other/path")
        .with_header("user-agent", "bench")
        .with_header("x-tenant", "nobody");
    match i % 3 {
        0 => SimpleRequest {
            path: format!("/svc{i}/items"),
            ..base
        },
        1 => SimpleRequest::new("GET", "/other/path")
            .with_header("user-agent", "bench")
            .with_header("x-tenant", &format!("t{i}")),
        _ => SimpleRequest {
            path: format!("/r{i}/12345"),
            ..base
        },
    }
}

fn service(n: usize) -> ServiceConfig {
    let mut s = ServiceConfig::default();
    s.subsets
        .insert("v1".into(), [("version".into(), "v1".into())].into());
    s.subsets
        .insert("v2".into(), [("version".into(), "v2".into())].into());
    s.routes = (0..n).map(route).collect();
    s
}

fn bench_route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for n in [1usize, 10, 100] {
        let router = Router::new(&service(n)).expect("valid routes");
        let req = request_for(n - 1);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(router.route(&req, &mut rng).is_ok());
        group.bench_with_input(BenchmarkId::new("last_of", n), &req, |b, req| {
            b.iter(|| {
                router
                    .route(black_box(req), &mut rng)
                    .map(|d| (d.index(), d.subset()))
            })
        });
    }
    let router = Router::new(&ServiceConfig::default()).expect("no routes");
    let req = SimpleRequest::new("GET", "/");
    let mut rng = SmallRng::seed_from_u64(1);
    group.bench_function("implicit_catch_all", |b| {
        b.iter(|| router.route(black_box(&req), &mut rng).map(|d| d.index()))
    });
    group.finish();
}

fn bench_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("split_pick");
    for n in [2usize, 10, 100] {
        let table = SplitTable::new((0..n).map(|i| (i, 1 + i as u32))).expect("weights");
        let mut rng = SmallRng::seed_from_u64(2);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(&table).pick(&mut rng))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_route, bench_split);
criterion_main!(benches);
