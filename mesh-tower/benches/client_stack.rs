//! What each layer of the mesh client costs per call, without the network:
//! the layers of `MeshClient` stacked cumulatively from the bottom over an
//! in-memory upstream whose future is pending once (so timers really arm,
//! as with a socket) and then answers `200`. The configuration is
//! mesh-bench's: `least_request` over three endpoints, `timeout: 2s`,
//! retry `attempts: 2, per_try_timeout: 1s`, one named route, metrics
//! through the OpenTelemetry SDK feeding the Prometheus exporter, W3C
//! `traceparent` injection.
//!
//! `8_fused_client` is the same path as `7_full_client`, fused into one
//! service and one future (what `MeshClient` uses).
//!
//! Each iteration sends 100 calls one after the other on a current-thread
//! runtime; the reported time is per call. The difference between two
//! adjacent stacks is that layer's cost.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::config::{Format, parse_str};
use mesh_tower::BoxError;
use mesh_tower::balance::{BalanceLayer, EndpointPool};
use mesh_tower::body::MeshBody;
use mesh_tower::fused::FusedClient;
use mesh_tower::metrics::{Metrics, MetricsLayer, SCOPE};
use mesh_tower::retry::RetryLayer;
use mesh_tower::router::{RouteTable, RouterLayer};
use mesh_tower::timeout::TimeoutLayer;
use opentelemetry::metrics::MeterProvider;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

type Stack = BoxCloneSyncService<http::Request<MeshBody>, http::Response<MeshBody>, BoxError>;

/// Pending once (waking itself), then a `200`: one trip through the
/// scheduler, like a response arriving from a socket.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = Result<http::Response<MeshBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            return Poll::Ready(Ok(http::Response::new(MeshBody::empty())));
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn upstream() -> impl Service<
    http::Request<MeshBody>,
    Response = http::Response<MeshBody>,
    Error = BoxError,
    Future = PendingOnce,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|_req: http::Request<MeshBody>| PendingOnce(false))
}

const YAML: &str = "services:\n  bench:\n    protocol: http\n    endpoints: [{ address: \"127.0.0.1:1\" }, { address: \"127.0.0.1:2\" }, { address: \"127.0.0.1:3\" }]\n    load_balancer: least_request\n    timeout: 2s\n    retry: { attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, 5xx] }\n    routes: [{ name: all, match: { path_prefix: / } }]\n";

fn stacks() -> Vec<(&'static str, Stack)> {
    let config = parse_str(YAML, Format::Yaml, "bench").unwrap();
    let service = config.services.get("bench").unwrap().clone();
    let pool = || {
        let pool = EndpointPool::builder("bench", &service).build().unwrap();
        pool.apply(mesh_discovery::Update::Reset(service.endpoints.to_vec()));
        pool
    };
    let routes = || RouterLayer::new(RouteTable::new("bench", &service).unwrap());
    let (provider, exporter) = mesh_tower::metrics::prometheus::pipeline(None).unwrap();
    std::mem::forget((provider.clone(), exporter));
    let metrics = Metrics::new(&provider.meter(SCOPE));
    let labels = metrics.service("bench");
    let up = upstream;
    vec![
        ("0_upstream", BoxCloneSyncService::new(up())),
        (
            "1_balancer",
            BoxCloneSyncService::new(BalanceLayer::new(pool()).layer_on(up())),
        ),
        (
            "2_router_balancer",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(routes())
                    .layer(BalanceLayer::new(pool()))
                    .service(up()),
            ),
        ),
        (
            "3_+per_try_timeout",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(routes())
                    .layer(TimeoutLayer::per_try(None))
                    .layer(BalanceLayer::new(pool()))
                    .service(up()),
            ),
        ),
        (
            "4_+retry",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(routes())
                    .layer(RetryLayer::new(None))
                    .layer(TimeoutLayer::per_try(None))
                    .layer(BalanceLayer::new(pool()))
                    .service(up()),
            ),
        ),
        (
            "5_+call_timeout",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(routes())
                    .layer(TimeoutLayer::call(None))
                    .layer(RetryLayer::new(None))
                    .layer(TimeoutLayer::per_try(None))
                    .layer(BalanceLayer::new(pool()))
                    .service(up()),
            ),
        ),
        (
            "6_+metrics_no_trace",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(MetricsLayer::client(metrics.clone(), labels.clone()).without_trace())
                    .layer(routes())
                    .layer(TimeoutLayer::call(None))
                    .layer(RetryLayer::new(None))
                    .layer(TimeoutLayer::per_try(None))
                    .layer(BalanceLayer::new(pool()))
                    .service(up()),
            ),
        ),
        (
            "7_full_client",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(MetricsLayer::client(metrics.clone(), labels.clone()))
                    .layer(routes())
                    .layer(TimeoutLayer::call(None))
                    .layer(RetryLayer::new(None))
                    .layer(TimeoutLayer::per_try(None))
                    .layer(BalanceLayer::new(pool()))
                    .service(up()),
            ),
        ),
        (
            "8_fused_client",
            BoxCloneSyncService::new(FusedClient::new(
                up(),
                MetricsLayer::client(metrics.clone(), labels.clone()),
                routes(),
                RetryLayer::new(None),
                pool(),
            )),
        ),
    ]
}

/// `BalanceLayer` has no `ServiceBuilder` of one; a tiny helper.
trait LayerOn<S> {
    type Out;
    fn layer_on(self, inner: S) -> Self::Out;
}

impl<S, L: tower::Layer<S>> LayerOn<S> for L {
    type Out = L::Service;
    fn layer_on(self, inner: S) -> L::Service {
        self.layer(inner)
    }
}

const CALLS: u64 = 100;

/// `CLIENT_STACK_COUNT=<stack>:<calls>`: instead of Criterion, send
/// `calls` calls through the stack named `<stack>` and exit, for
/// instruction counts on a fixed request count (`perf stat -e
/// instructions:u`, callgrind): per call = (count(N) - count(0)) / N.
fn fixed_count() -> bool {
    let Ok(spec) = std::env::var("CLIENT_STACK_COUNT") else {
        return false;
    };
    let (name, calls) = spec
        .split_once(':')
        .expect("CLIENT_STACK_COUNT=<stack>:<calls>");
    let calls: u64 = calls.parse().expect("a call count");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let stacks = rt.block_on(async { stacks() });
    let (_, stack) = stacks
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a stack name");
    let mut svc = stack;
    rt.block_on(async move {
        for _ in 0..calls {
            let req = http::Request::get("http://bench/hello")
                .body(MeshBody::empty())
                .unwrap();
            let resp = svc.ready().await.unwrap().call(req).await.unwrap();
            std::hint::black_box(resp);
        }
    });
    true
}

fn bench(c: &mut Criterion) {
    if fixed_count() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("client_stack");
    g.throughput(criterion::Throughput::Elements(CALLS));
    for (name, stack) in rt.block_on(async { stacks() }) {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut svc = stack.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters * CALLS {
                        let req = http::Request::get("http://bench/hello")
                            .body(MeshBody::empty())
                            .unwrap();
                        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
                        std::hint::black_box(resp);
                    }
                    start.elapsed().div_f64(CALLS as f64)
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
