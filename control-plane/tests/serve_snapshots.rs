//! The contract with the xDS side, observed where the xDS server observes
//! it: the snapshot watch channel of a control plane started in-process on
//! real sockets, driven through its REST API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use mesh_control_plane::client::Client;
use mesh_control_plane::serve::{self, Running, ServeOptions};
use mesh_control_plane::state::{Snapshot, SnapshotRx};
use mesh_tests::dnsmasq::{self, Dnsmasq};
use serde_json::json;

async fn start(
    dir: &std::path::Path,
    dns_server: Option<std::net::SocketAddr>,
) -> (Running, Client) {
    let running = serve::start(ServeOptions {
        data_dir: dir.join("mesh-data"),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        token: None,
        insecure: false,
        config: None,
        dns_server,
    })
    .await
    .unwrap();
    let client = Client::new(&format!("http://{}", running.http_addr()), None).unwrap();
    (running, client)
}

/// The next snapshot satisfying `f`, within `limit`.
async fn next_where(
    rx: &mut SnapshotRx,
    limit: Duration,
    f: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    tokio::time::timeout(limit, async {
        loop {
            {
                let cur = rx.borrow_and_update();
                if f(&cur) {
                    return cur.clone();
                }
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the expected snapshot within the limit")
}

async fn put_yaml(client: &Client, text: &str) {
    let resp = client
        .request(
            Method::PUT,
            "/api/v1/config",
            Some(("application/yaml", Bytes::from(text.to_string()))),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.error_message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_publishes_a_snapshot_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client) = start(dir.path(), None).await;
    let mut rx = running.control().subscribe();
    let first = rx.borrow_and_update().clone();
    assert_eq!((first.version, first.config_version), (1, 0));

    put_yaml(
        &client,
        "services:\n  news:\n    endpoints: [{ address: 127.0.0.1:8081 }]\n",
    )
    .await;
    let s = next_where(&mut rx, Duration::from_secs(5), |s| s.config_version == 1).await;
    assert_eq!(s.version, 2);
    assert_eq!(s.endpoints("news").len(), 1);

    let resp = client
        .send_json(
            Method::PUT,
            "/api/v1/services/news/endpoints/b",
            &json!({"address": "127.0.0.1:8082", "weight": 9, "ttl": "1s"}),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::CREATED);
    let s = next_where(&mut rx, Duration::from_secs(5), |s| {
        s.discovered.contains_key("news")
    })
    .await;
    assert_eq!(s.version, 3);
    let eps = s.endpoints("news");
    assert_eq!(eps.len(), 2, "static + registered");
    assert_eq!(eps[1].weight, 9);

    // The TTL runs out: a snapshot without it, from the expiry task.
    let s = next_where(&mut rx, Duration::from_secs(10), |s| {
        s.discovered.is_empty()
    })
    .await;
    assert_eq!(s.version, 4);
    assert_eq!(s.endpoints("news").len(), 1);

    let resp = client
        .send_json(
            Method::POST,
            "/api/v1/intentions",
            &json!({"source": "web", "destination": "news", "action": "deny"}),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::CREATED);
    let s = next_where(&mut rx, Duration::from_secs(5), |s| s.config_version == 2).await;
    assert_eq!(s.config.intentions.len(), 1);

    let resp = client
        .send_json(
            Method::POST,
            "/api/v1/config/rollback",
            &json!({"version": 1}),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    let s = next_where(&mut rx, Duration::from_secs(5), |s| s.config_version == 3).await;
    assert!(
        s.config.intentions.is_empty(),
        "rollback rolls intentions back"
    );
    assert_eq!(s.version, 6, "one snapshot per change, none skipped");

    // A rejected config publishes nothing.
    let resp = client
        .request(
            Method::PUT,
            "/api/v1/config",
            Some(("application/yaml", Bytes::from("services: 3\n"))),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(!rx.has_changed().unwrap());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_services_get_their_endpoints_from_dns() {
    if !dnsmasq::available() {
        return;
    }
    let dns = Dnsmasq::start("127.0.0.5 news.mesh.test\n", &[]);
    let dir = tempfile::tempdir().unwrap();
    let (running, client) = start(dir.path(), Some(dns.addr())).await;
    let mut rx = running.control().subscribe();
    put_yaml(
        &client,
        "services:\n  news:\n    dns: news.mesh.test:8080\n",
    )
    .await;
    let s = next_where(&mut rx, Duration::from_secs(10), |s| {
        s.discovered.contains_key("news")
    })
    .await;
    let addrs: Vec<String> = s
        .endpoints("news")
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(addrs, ["127.0.0.5:8080"]);

    let resp = client.get("/api/v1/services/news").await.unwrap();
    let v = resp.json();
    assert_eq!(v["endpoints"][0]["state"], "dns", "{v}");

    // The DNS answer changes: re-resolved (min TTL 5 s) and republished.
    dns.set_hosts("127.0.0.6 news.mesh.test\n");
    let s = next_where(&mut rx, Duration::from_secs(20), |s| {
        s.endpoints("news")
            .iter()
            .any(|e| e.address.to_string() == "127.0.0.6:8080")
    })
    .await;
    assert_eq!(s.endpoints("news").len(), 1);

    // The service loses `dns:`: its DNS endpoints go with it.
    put_yaml(&client, "services:\n  news: {}\n").await;
    let s = next_where(&mut rx, Duration::from_secs(5), |s| s.config_version == 2).await;
    assert!(s.discovered.is_empty(), "{:?}", s.discovered);
    running.stop().await.unwrap();
}
