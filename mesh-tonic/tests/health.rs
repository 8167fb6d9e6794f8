//! Active gRPC health checks (`grpc.health.v1.Health/Check`) against real
//! tonic servers running tonic-health: a server reporting NOT_SERVING loses
//! its MeshChannel traffic and gets it back once SERVING again; every server
//! NOT_SERVING still serves (panic mode).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::helloworld::greeter_client::GreeterClient;
use common::helloworld::greeter_server::{Greeter, GreeterServer};
use common::helloworld::{HelloReply, HelloRequest};
use common::{endpoints, mesh};
use mesh_tonic::{MeshChannel, MeshGrpcExt};
use mesh_tower::ext::ServedBy;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

const GREETER: &str = "helloworld.Greeter";

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(&self, r: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: format!("Hello {}", r.into_inner().name),
        }))
    }
}

/// A greeter with tonic-health beside it; stops when dropped.
struct Server {
    addr: SocketAddr,
    health: HealthReporter,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status(GREETER, status).await;
    }
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(GREETER, ServingStatus::Serving)
        .await;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(GreeterServer::new(Hello))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Server {
        addr,
        health,
        _stop: stop,
    }
}

fn channel(servers: &[&Server]) -> (mesh_tower::Mesh, MeshChannel) {
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let mesh = mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    endpoints: {}
    health_check: {{ interval: 50ms, timeout: 40ms, unhealthy_threshold: 2, healthy_threshold: 2, grpc_service: {GREETER} }}
",
        endpoints(&addrs)
    ));
    let channel = mesh.grpc_channel("greeter");
    (mesh, channel)
}

/// Sends `n` calls; the servers that answered (all must succeed).
async fn served(channel: &MeshChannel, n: usize) -> BTreeSet<SocketAddr> {
    let mut client = GreeterClient::new(channel.clone());
    let mut set = BTreeSet::new();
    for i in 0..n {
        let resp = client
            .say_hello(HelloRequest {
                name: format!("n{i}"),
            })
            .await
            .unwrap();
        set.insert(resp.extensions().get::<ServedBy>().unwrap().0);
    }
    set
}

async fn until_served_by(channel: &MeshChannel, want: &[SocketAddr]) {
    let want: BTreeSet<SocketAddr> = want.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = served(channel, 20).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served by {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_serving_moves_grpc_traffic_away_and_back() {
    let (a, b) = (server().await, server().await);
    let (_mesh, channel) = channel(&[&a, &b]);
    until_served_by(&channel, &[a.addr, b.addr]).await;

    b.set(false).await;
    until_served_by(&channel, &[a.addr]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(served(&channel, 100).await, BTreeSet::from([a.addr]));

    b.set(true).await;
    until_served_by(&channel, &[a.addr, b.addr]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_not_serving_still_serves_from_all() {
    let (a, b) = (server().await, server().await);
    a.set(false).await;
    b.set(false).await;
    let (_mesh, channel) = channel(&[&a, &b]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(served(&channel, 40).await, BTreeSet::from([a.addr, b.addr]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_passes_only_on_serving() {
    use mesh_core::config::{HealthCheckConfig, Protocol};
    use mesh_tower::connect::{ConnectConfig, Connector};
    use mesh_tower::health::{ProbeError, check};
    let s = server().await;
    let connector = Connector::new(Protocol::Grpc, &ConnectConfig::default());
    let mut config = HealthCheckConfig {
        grpc_service: GREETER.into(),
        ..HealthCheckConfig::default()
    };
    check(&connector, s.addr, "greeter", Protocol::Grpc, &config)
        .await
        .unwrap();
    // The whole server ("") is SERVING too.
    config.grpc_service.clear();
    check(&connector, s.addr, "greeter", Protocol::Grpc, &config)
        .await
        .unwrap();
    s.set(false).await;
    config.grpc_service = GREETER.into();
    let err = check(&connector, s.addr, "greeter", Protocol::Grpc, &config)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::NotServing(2)), "{err:?}");
    // An unknown service: NOT_FOUND (5) from the health service.
    config.grpc_service = "no.Such".into();
    let err = check(&connector, s.addr, "greeter", Protocol::Grpc, &config)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Grpc { code: 5, .. }), "{err:?}");
    // A server without the health service: UNIMPLEMENTED (12).
    let plain = common::server(common::Behaviour::Ok, 1).await;
    let err = check(&connector, plain.addr, "greeter", Protocol::Grpc, &config)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Grpc { code: 12, .. }), "{err:?}");
    // Nobody listening: a send error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = check(&connector, closed, "greeter", Protocol::Grpc, &config)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Send(_)), "{err:?}");
}
