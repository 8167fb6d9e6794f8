//! Bound series through [`SeriesCache`], read back from a real SDK
//! collection (the Prometheus exposition of the test pipeline).

use std::net::SocketAddr;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider};
use tower::{Layer, Service, ServiceExt};

use super::tests::{Scrape, setup};
use super::*;
use crate::error::BoxError;
use crate::ext::{RouteInfo, RoutePolicy, ServedBy};

const COUNT: &str = "test_seconds_count";
const SUM: &str = "test_seconds_sum";

fn histogram(provider: &opentelemetry_sdk::metrics::SdkMeterProvider) -> Histogram<f64> {
    provider
        .meter(SCOPE)
        .f64_histogram("test")
        .with_unit("s")
        .build()
}

fn attrs(route: &str) -> [KeyValue; 2] {
    [kv(SERVICE, "news"), kv(ROUTE, route.to_string())]
}

/// How many series of `name` the exposition has.
fn series(expo: &super::prometheus::Exposition, name: &str) -> usize {
    let text = expo.render().unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .count()
}

#[test]
fn one_series_recorded_1000_times_is_one_point_shared_with_unbound_records() {
    let (provider, expo, _metrics) = setup();
    let h = histogram(&provider);
    let cache: SeriesCache<u8, Histogram<f64>> = SeriesCache::new(h.clone());
    let mut built = 0;
    for _ in 0..1000 {
        cache.record(7, 0.25, |_| {
            built += 1;
            attrs("api")
        });
    }
    assert_eq!(built, 1, "attributes are built on the miss only");
    assert_eq!(cache.len(), 1);
    let want = [("mesh_service", "news"), ("http_route", "api")];
    let s = Scrape::of(&expo);
    assert_eq!(s.get(COUNT, &want), 1000.0);
    assert_eq!(s.get(SUM, &want), 250.0);
    // An unbound record with the same attributes lands in the same series:
    // the bound one carries exactly these attributes.
    h.record(1.0, &attrs("api"));
    let s = Scrape::of(&expo);
    assert_eq!(s.get(COUNT, &want), 1001.0);
    assert_eq!(s.get(SUM, &want), 251.0);
    assert_eq!(series(&expo, COUNT), 1);
}

#[test]
fn past_the_cap_records_land_unbound_with_their_attributes() {
    let (provider, expo, _metrics) = setup();
    let cache = SeriesCache::with_cap(histogram(&provider), 2);
    for _ in 0..3 {
        for k in 0..5u8 {
            cache.record(k, 0.5, |k| attrs(&format!("r{k}")));
        }
    }
    assert_eq!(cache.len(), 2, "the cache stops growing at its cap");
    let s = Scrape::of(&expo);
    for k in 0..5 {
        let route = format!("r{k}");
        let want = [("mesh_service", "news"), ("http_route", route.as_str())];
        assert_eq!(s.get(COUNT, &want), 3.0, "route {route}");
        assert_eq!(s.get(SUM, &want), 1.5, "route {route}");
    }
    assert_eq!(series(&expo, COUNT), 5);
    assert!(format!("{cache:?}").contains("len: 2"));
}

#[test]
fn value_keys_compare_by_text() {
    let a = ValueKey(opentelemetry::Value::from("x"));
    let b = ValueKey(opentelemetry::Value::from(Arc::<str>::from("x")));
    let c = ValueKey(opentelemetry::Value::from("y"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let hash = |k: &ValueKey| {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(1).hash_one(k)
    };
    assert_eq!(hash(&a), hash(&b));
}

/// A call to `/{status}/{port}` on route `route`, answered by a service
/// that replies with that status from endpoint 127.0.0.1:`port`.
fn call(route: &str, status: u16, port: u16) -> http::Request<()> {
    let mut req = http::Request::get(format!("http://news/{status}/{port}"))
        .body(())
        .unwrap();
    req.extensions_mut().insert(RouteInfo(Arc::new(RoutePolicy {
        service: "news".into(),
        route: route.into(),
        timeout: None,
        retry: None,
    })));
    req
}

#[tokio::test]
async fn client_calls_differing_in_route_endpoint_or_status_are_distinct_series() {
    let (_p, expo, metrics) = setup();
    let layer = MetricsLayer::client(metrics.clone(), metrics.service("news")).without_trace();
    let mut svc = layer.layer(tower::service_fn(|req: http::Request<()>| async move {
        let mut parts = req.uri().path().trim_start_matches('/').split('/');
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let port: u16 = parts.next().unwrap().parse().unwrap();
        let mut resp = http::Response::builder().status(status).body(()).unwrap();
        resp.extensions_mut()
            .insert(ServedBy(SocketAddr::from(([127, 0, 0, 1], port))));
        Ok::<_, BoxError>(resp)
    }));
    let cases = [
        ("a", 200, 1, 5),
        ("b", 200, 1, 4),
        ("a", 200, 2, 3),
        ("a", 503, 1, 2),
        ("b", 404, 2, 1),
    ];
    for (route, status, port, n) in cases {
        for _ in 0..n {
            svc.ready()
                .await
                .unwrap()
                .call(call(route, status, port))
                .await
                .unwrap();
        }
    }
    let s = Scrape::of(&expo);
    for (route, status, port, n) in cases {
        let ep = format!("127.0.0.1:{port}");
        let status = status.to_string();
        let want = [
            ("mesh_service", "news"),
            ("http_route", route),
            ("mesh_endpoint", ep.as_str()),
            ("http_request_method", "GET"),
            ("http_response_status_code", status.as_str()),
        ];
        assert_eq!(
            s.get("http_client_request_duration_seconds_count", &want),
            f64::from(n),
            "{want:?}"
        );
    }
    assert_eq!(
        series(&expo, "http_client_request_duration_seconds_count"),
        cases.len()
    );
}

#[test]
fn retries_and_circuit_open_are_bound_per_service_and_fall_back_unbound() {
    let (_p, expo, metrics) = setup();
    let news = metrics.service("news");
    for _ in 0..3 {
        metrics.record_retry(&news);
    }
    metrics.record_circuit_open(&news);
    // Labels made by another `Metrics` are recorded unbound on this one.
    let stranger = Metrics::global().service("news");
    assert!(news.counters(&metrics.inner).is_some());
    assert!(stranger.counters(&metrics.inner).is_none());
    metrics.record_retry(&stranger);
    let s = Scrape::of(&expo);
    let svc = [("mesh_service", "news")];
    assert_eq!(s.get("mesh_client_retries_total", &svc), 4.0);
    assert_eq!(s.get("mesh_client_circuit_open_total", &svc), 1.0);
}

#[test]
fn service_counters_appear_only_once_counted() {
    let (_p, expo, metrics) = setup();
    // Labels are made for servers and for upstreams alike: none of them
    // shows a client counter before the first count.
    let news = metrics.service("news");
    let _local = metrics.service("app-ui");
    assert_eq!(series(&expo, "mesh_client_retries_total"), 0);
    assert_eq!(series(&expo, "mesh_client_circuit_open_total"), 0);
    metrics.record_retry(&news);
    assert_eq!(series(&expo, "mesh_client_retries_total"), 1);
    assert_eq!(series(&expo, "mesh_client_circuit_open_total"), 0);
    let s = Scrape::of(&expo);
    assert_eq!(
        s.get("mesh_client_retries_total", &[("mesh_service", "news")]),
        1.0
    );
}
