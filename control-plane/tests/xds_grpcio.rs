//! Stock gRPC (Python grpcio) as xDS client and xDS-enabled server, driven
//! by our ADS server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod xds_support;

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_tests::envoy::free_port;
use mesh_tests::grpcio::{self, GreeterServer, run_client, write_bootstrap};
use serde_json::Value;
use xds_support::Xds;

fn count(v: &Value, name: &str) -> u64 {
    v["counts"][name].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_xds_client_follows_weights_and_split() {
    if !grpcio::available() {
        return;
    }
    let a = GreeterServer::start("a");
    let b = GreeterServer::start("b");
    let c = GreeterServer::start("c");
    // v1 = a (weight 3) + b (weight 1); v2 = c; split 75/25.
    // Expected shares: a 56%, b 19%, c 25%.
    let yaml = format!(
        r#"
services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    endpoints:
      - {{ address: "127.0.0.1:{}", weight: 3, labels: {{ version: v1 }} }}
      - {{ address: "127.0.0.1:{}", weight: 1, labels: {{ version: v1 }} }}
      - {{ address: "127.0.0.1:{}", labels: {{ version: v2 }} }}
    subsets: {{ v1: {{ version: v1 }}, v2: {{ version: v2 }} }}
    routes:
      - match: {{ path_prefix: / }}
        split: {{ v1: 75, v2: 25 }}
"#,
        a.port, b.port, c.port
    );
    let xds = Xds::start(&yaml).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_bootstrap(dir.path(), xds.addr, "py-client");
    let n = 800;
    let out = tokio::task::spawn_blocking(move || {
        run_client(
            "xds:///greeter",
            n,
            Some(&bootstrap),
            Duration::from_secs(90),
        )
    })
    .await
    .unwrap();
    eprintln!("grpcio xds:///greeter -> {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"], serde_json::json!({}), "{out}");
    let share = |name| count(&v, name) as f64 / n as f64;
    assert!((0.46..=0.66).contains(&share("a")), "a {out}");
    assert!((0.11..=0.27).contains(&share("b")), "b {out}");
    assert!((0.17..=0.33).contains(&share("c")), "c {out}");
    let stats = &xds.status.stats;
    assert_eq!(
        stats.nacks.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the client NACKed"
    );
    assert!(
        stats.acks.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "LDS, RDS, CDS, EDS ACKed"
    );
    xds.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_xds_server_enforces_intentions() {
    if !grpcio::available() {
        return;
    }
    let port = free_port();
    let yaml = |action: &str| {
        format!(
            r#"
services:
  greeter:
    protocol: grpc
    endpoints: [ {{ address: "127.0.0.1:{port}" }} ]
intentions:
  - {{ source: "*", destination: greeter, action: {action} }}
"#
        )
    };
    let mut xds = Xds::start(&yaml("deny")).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_bootstrap(dir.path(), xds.addr, "greeter-server");
    let _server = GreeterServer::start_xds("s", port, &bootstrap);
    let target = format!("127.0.0.1:{port}");

    // It serves once it has its Listener: a plaintext caller is denied.
    let t = target.clone();
    let out = tokio::task::spawn_blocking(move || run_client(&t, 5, None, Duration::from_secs(60)))
        .await
        .unwrap();
    eprintln!("deny -> {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"]["PERMISSION_DENIED"], 5, "{out}");
    let nodes = xds.status.nodes();
    let node = nodes
        .iter()
        .find(|n| n.node_id == "greeter-server")
        .unwrap();
    assert!(
        node.last_nack.is_none(),
        "server NACKed: {:?}",
        node.last_nack
    );

    // Allow: the same caller gets through (new connections take the new Listener).
    xds.publish(&yaml("allow"), BTreeMap::new());
    let mut last = String::new();
    for _ in 0..50 {
        let t = target.clone();
        last =
            tokio::task::spawn_blocking(move || run_client(&t, 3, None, Duration::from_secs(30)))
                .await
                .unwrap();
        let v: Value = serde_json::from_str(&last).unwrap();
        if count(&v, "s") == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("allow -> {last}");
    let v: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(count(&v, "s"), 3, "{last}");
    let nodes = xds.status.nodes();
    let node = nodes
        .iter()
        .find(|n| n.node_id == "greeter-server")
        .unwrap();
    assert!(
        node.last_nack.is_none(),
        "server NACKed: {:?}",
        node.last_nack
    );
    assert!(
        node.acked
            .contains_key(mesh_control_plane::xds::LISTENER_TYPE),
        "{node:?}"
    );
    xds.shutdown().await;
}
