//! PEER test: stock Python grpcio greeter servers with the standard
//! grpcio-health-checking service as upstreams. One server turning
//! NOT_SERVING loses its MeshChannel traffic after the threshold and gets it
//! back once SERVING. Skips without grpcio; fails when `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::helloworld::HelloRequest;
use common::helloworld::greeter_client::GreeterClient;
use common::mesh;
use mesh_tests::grpcio::{self, GreeterServer};
use mesh_tonic::{MeshChannel, MeshGrpcExt};
use mesh_tower::ext::ServedBy;

/// Sends `n` calls; which reply (server name) each endpoint gave.
async fn served(channel: &MeshChannel, n: usize) -> BTreeMap<SocketAddr, String> {
    let mut client = GreeterClient::new(channel.clone());
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let resp = client
            .say_hello(HelloRequest {
                name: format!("n{i}"),
            })
            .await
            .unwrap();
        let by = resp.extensions().get::<ServedBy>().unwrap().0;
        seen.insert(by, resp.into_inner().message);
    }
    seen
}

async fn until_served_by(channel: &MeshChannel, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = served(channel, 20).await;
        let names: Vec<&str> = got.values().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        if sorted == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served by {names:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_health_service_drives_readiness() {
    if !grpcio::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = GreeterServer::start_with_health("a", &dir.path().join("a.down"));
    let b = GreeterServer::start_with_health("b", &dir.path().join("b.down"));
    let mesh = mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    endpoints: [{{ address: 127.0.0.1:{} }}, {{ address: 127.0.0.1:{} }}]
    health_check: {{ interval: 50ms, timeout: 45ms, unhealthy_threshold: 2, healthy_threshold: 2, grpc_service: helloworld.Greeter }}
",
        a.port, b.port
    ));
    let channel = mesh.grpc_channel("greeter");
    until_served_by(&channel, &["a", "b"]).await;

    b.set_serving(false);
    until_served_by(&channel, &["a"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = served(&channel, 50).await;
    assert_eq!(got.values().collect::<Vec<_>>(), vec!["a"], "{got:?}");

    b.set_serving(true);
    until_served_by(&channel, &["a", "b"]).await;
}
