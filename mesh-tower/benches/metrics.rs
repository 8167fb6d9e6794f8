//! What `MetricsLayer` costs per call: an always-ready inner service, the
//! layer's bookkeeping (in-flight +1/-1, labels, one histogram record, and
//! optionally traceparent injection), with a no-op meter and with the SDK
//! feeding the Prometheus exporter.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use mesh_tower::BoxError;
use mesh_tower::ext::{RouteInfo, RoutePolicy, ServedBy};
use mesh_tower::metrics::{Metrics, MetricsLayer, SCOPE};
use opentelemetry::metrics::MeterProvider;
use tower::{Layer, Service};

fn inner() -> impl Service<
    http::Request<()>,
    Response = http::Response<()>,
    Error = BoxError,
    Future = std::future::Ready<Result<http::Response<()>, BoxError>>,
> + Clone {
    let ep: SocketAddr = "10.0.0.7:8080".parse().unwrap();
    tower::service_fn(move |_req: http::Request<()>| {
        let mut resp = http::Response::new(());
        resp.extensions_mut().insert(ServedBy(ep));
        std::future::ready(Ok(resp))
    })
}

fn request(route: &RouteInfo) -> http::Request<()> {
    let mut req = http::Request::get("http://news-service/x")
        .body(())
        .unwrap();
    req.extensions_mut().insert(route.clone());
    req
}

fn bench(c: &mut Criterion) {
    let route = RouteInfo(Arc::new(RoutePolicy {
        service: "news-service".into(),
        route: "default".into(),
        timeout: None,
        retry: None,
    }));
    let mut g = c.benchmark_group("metrics_layer");

    let mut base = inner();
    g.bench_function("baseline_no_layer", |b| {
        b.iter(|| {
            black_box(base.call(request(&route)).now_or_never());
        })
    });

    let noop = Metrics::global();
    let mut svc = MetricsLayer::client(noop.clone(), noop.service("news-service"))
        .without_trace()
        .layer(inner());
    g.bench_function("noop_meter", |b| {
        b.iter(|| black_box(svc.call(request(&route)).now_or_never()))
    });

    let (provider, _expo) = mesh_tower::metrics::prometheus::pipeline(None).unwrap();
    let sdk = Metrics::new(&provider.meter(SCOPE));
    let mut svc = MetricsLayer::client(sdk.clone(), sdk.service("news-service"))
        .without_trace()
        .layer(inner());
    g.bench_function("sdk_prometheus", |b| {
        b.iter(|| black_box(svc.call(request(&route)).now_or_never()))
    });

    // The same without ServedBy: the difference is the endpoint label's
    // cache lookup (a lock-free map hit instead of formatting `ip:port`).
    let mut svc = MetricsLayer::client(sdk.clone(), sdk.service("news-service"))
        .without_trace()
        .layer(tower::service_fn(|_req: http::Request<()>| {
            std::future::ready(Ok::<_, BoxError>(http::Response::new(())))
        }));
    g.bench_function("sdk_prometheus_no_endpoint_label", |b| {
        b.iter(|| black_box(svc.call(request(&route)).now_or_never()))
    });

    let mut svc = MetricsLayer::client(sdk.clone(), sdk.service("news-service")).layer(inner());
    g.bench_function("sdk_prometheus_with_traceparent", |b| {
        b.iter(|| black_box(svc.call(request(&route)).now_or_never()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
