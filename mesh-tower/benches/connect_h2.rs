//! The HTTP/2 connector (per-endpoint connection sets) against hyper-util's
//! legacy pooled client with `http2_only` (what the connector used before),
//! both sending GETs to the same local hyper h2c server with 32 requests in
//! flight. The reported time is wall time per request (each criterion
//! iteration is one request; client and server share the runtime's 2
//! workers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_core::config::Protocol;
use mesh_tower::body::MeshBody;
use mesh_tower::connect::{ConnectConfig, Connector, authority, set_endpoint};
use tower::{Service, ServiceExt};

const IN_FLIGHT: u64 = 32;
const PER_TASK: u64 = 50;

async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

type Send = std::sync::Arc<
    dyn Fn(Request<MeshBody>) -> futures_util::future::BoxFuture<'static, Response<Incoming>>
        + std::marker::Send
        + Sync,
>;

async fn run(send: Send, addr: SocketAddr, rounds: u64) -> Duration {
    let endpoint = authority(addr).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (send, endpoint) = (send.clone(), endpoint.clone());
            tokio::spawn(async move {
                for _ in 0..rounds * PER_TASK {
                    let mut req = Request::get("http://bench/hello")
                        .body(MeshBody::empty())
                        .unwrap();
                    set_endpoint(&mut req, &endpoint);
                    let body = send(req).await.into_body().collect().await.unwrap();
                    std::hint::black_box(body);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed().div_f64((IN_FLIGHT * PER_TASK) as f64)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(server());
    let connector = Connector::new(Protocol::Http2, &ConnectConfig::default());
    let sets: Send = std::sync::Arc::new(move |req| {
        let c = connector.clone();
        Box::pin(async move { c.oneshot(req).await.unwrap() })
    });
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let legacy = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build::<_, MeshBody>(http);
    let legacy: Send = std::sync::Arc::new(move |req| {
        let mut c = legacy.clone();
        Box::pin(async move { c.call(req).await.unwrap() })
    });
    let mut g = c.benchmark_group("connect_h2");
    for (name, send) in [("connection_sets", sets), ("legacy_http2_only", legacy)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(run(send.clone(), addr, iters)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
