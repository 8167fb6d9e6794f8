//! What [`MeshChannel`] costs per unary call next to a plain tonic
//! `Channel`: one in-process tonic helloworld Greeter on 127.0.0.1:0, on
//! the same current-thread runtime as the client, and sequential
//! `SayHello` calls through either channel. The mesh configuration is
//! mesh-bench's gRPC mode (one service, `protocol: grpc`, `least_request`,
//! `timeout: 2s`, retry `attempts: 2, per_try_timeout: 1s` on
//! connect-failure, reset, unavailable; metrics through the OpenTelemetry
//! SDK feeding the Prometheus exporter).
//!
//! - `CHANNEL_COUNT=<plain|mesh>:<N>`: send `N` calls and exit, for
//!   instruction counts on a fixed call count (callgrind, `perf stat`):
//!   per call = (count(3000) - count(1000)) / 2000. The server's share is
//!   the same for both channels, so mesh - plain is what the mesh adds.
//! - without it: a short wall-clock run of each (noisy on a shared
//!   machine; instruction counts are the figure to trust).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use mesh_core::config::{Format, parse_str};
use mesh_tonic::MeshChannel;
use mesh_tower::metrics::{Metrics, SCOPE, prometheus};
use opentelemetry::metrics::MeterProvider;
use tonic::transport::{Channel, Endpoint};

mod helloworld {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("helloworld");
}

use helloworld::greeter_client::GreeterClient;
use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// Answers every call with the same reply.
#[derive(Clone, Copy)]
struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        _request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply {
            message: "hello world".into(),
        }))
    }
}

enum Client {
    Plain(GreeterClient<Channel>),
    Mesh(GreeterClient<MeshChannel>),
}

impl Client {
    async fn call(&mut self) {
        let request = tonic::Request::new(HelloRequest {
            name: "bench".into(),
        });
        let reply = match self {
            Client::Plain(c) => c.say_hello(request).await,
            Client::Mesh(c) => c.say_hello(request).await,
        };
        let reply = reply.expect("SayHello");
        assert_eq!(reply.get_ref().message, "hello world");
        std::hint::black_box(reply);
    }
}

/// The server (spawned on the current runtime) and a client of `kind`.
async fn setup(kind: &str) -> (Client, Option<mesh_tower::Mesh>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(Hello))
            .serve_with_incoming(incoming),
    );
    match kind {
        "plain" => {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap();
            (Client::Plain(GreeterClient::new(channel)), None)
        }
        "mesh" => {
            let yaml = format!(
                "services:\n  bench-grpc:\n    protocol: grpc\n    endpoints: [{{ address: \"{addr}\" }}]\n    load_balancer: least_request\n    timeout: 2s\n    retry: {{ attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, unavailable] }}\n"
            );
            let (provider, _exposition) = prometheus::pipeline(Some("channel-bench")).unwrap();
            let mesh = mesh_tower::Mesh::builder()
                .config(parse_str(&yaml, Format::Yaml, "channel-bench").unwrap())
                .metrics(Metrics::new(&provider.meter(SCOPE)))
                .local_service("channel-bench")
                .build()
                .unwrap();
            let channel = MeshChannel::new(&mesh, "bench-grpc");
            (Client::Mesh(GreeterClient::new(channel)), Some(mesh))
        }
        other => panic!("unknown channel `{other}` (plain or mesh)"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    if let Ok(spec) = std::env::var("CHANNEL_COUNT") {
        let (kind, calls) = spec
            .split_once(':')
            .expect("CHANNEL_COUNT=<plain|mesh>:<calls>");
        let calls: u64 = calls.parse().expect("a call count");
        runtime().block_on(async {
            let (mut client, _mesh) = setup(kind).await;
            for _ in 0..calls {
                client.call().await;
            }
        });
        return;
    }
    // Wall clock: warm up, then a bounded timed loop per channel.
    for kind in ["plain", "mesh"] {
        runtime().block_on(async {
            let (mut client, _mesh) = setup(kind).await;
            for _ in 0..2_000 {
                client.call().await;
            }
            let (mut n, start) = (0u32, Instant::now());
            while n < 200_000 && start.elapsed() < Duration::from_secs(2) {
                client.call().await;
                n += 1;
            }
            let per = start.elapsed() / n.max(1);
            println!("{kind:<6} {n:>7} calls, {per:?} per call (client + server, one thread)");
        });
    }
}
