//! What `AuthzLayer` costs per request: an always-ready inner service behind
//! the layer with the seed example's intentions (examples/mesh.yaml), for an
//! L4 allow (app-ui), an L7 allow and an L7 deny (prometheus), with a no-op
//! meter and with the SDK feeding the Prometheus exporter. Requests are
//! built outside the timed part (`iter_batched`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use mesh_core::config::{Format, parse_str};
use mesh_core::identity::SpiffeId;
use mesh_tower::BoxError;
use mesh_tower::authz::{AuthzLayer, AuthzMetrics};
use mesh_tower::ext::PeerIdentity;
use mesh_tower::metrics::SCOPE;
use opentelemetry::metrics::MeterProvider;
use tower::{Layer, Service};

fn inner() -> impl Service<
    http::Request<()>,
    Response = http::Response<()>,
    Error = BoxError,
    Future = std::future::Ready<Result<http::Response<()>, BoxError>>,
> + Clone {
    tower::service_fn(|_req: http::Request<()>| std::future::ready(Ok(http::Response::new(()))))
}

fn request(peer: &PeerIdentity, method: &str, path: &str) -> http::Request<()> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap();
    req.extensions_mut().insert(peer.clone());
    req
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/mesh.yaml"
    ))
    .unwrap();
    let config = parse_str(&text, Format::Yaml, "mesh.yaml").unwrap();
    let id = |s| {
        PeerIdentity(Some(
            SpiffeId::for_service("mesh.local", "default", s).unwrap(),
        ))
    };
    let (ui, prom) = (id("app-ui"), id("prometheus"));
    let mut g = c.benchmark_group("authz_layer");

    let mut base = inner();
    g.bench_function("baseline_no_layer", |b| {
        b.iter_batched(
            || request(&ui, "GET", "/news"),
            |req| black_box(base.call(req).now_or_never()),
            BatchSize::SmallInput,
        )
    });

    let (provider, _expo) = mesh_tower::metrics::prometheus::pipeline(None).unwrap();
    let meters = [
        ("noop_meter", AuthzMetrics::global()),
        ("sdk_prometheus", AuthzMetrics::new(&provider.meter(SCOPE))),
    ];
    for (meter, metrics) in meters {
        let layer = AuthzLayer::from_config("news-service", &config, metrics).unwrap();
        let mut svc = layer.layer(inner());
        for (case, peer, method, path) in [
            ("l4_allow", &ui, "GET", "/news"),
            ("l7_allow", &prom, "GET", "/metrics"),
            ("l7_deny", &prom, "POST", "/metrics"),
        ] {
            g.bench_function(format!("{meter}/{case}"), |b| {
                b.iter_batched(
                    || request(peer, method, path),
                    |req| black_box(svc.call(req).now_or_never()),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
