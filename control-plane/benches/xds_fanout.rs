//! Push fan-out of the ADS server: 1,000 connected ADS streams (tonic
//! clients, one HTTP/2 connection each, in this process), each subscribed as
//! a proxyless client (LDS + RDS of one of 50 services, CDS wildcard, EDS of
//! its service). Each round publishes a snapshot changing every service's
//! endpoints and measures, per stream, the time from the publish to the ACK
//! of the new EDS version, and per round the time to the *last* ACK.
//! Memory: RSS growth while opening the streams, divided by their number
//! (client and server ends both live in this process, so it is an upper
//! bound for the server's share).
//!
//! Run: `cargo bench -p mesh-control-plane --bench xds_fanout`
//! (env `FANOUT_STREAMS`, `FANOUT_ROUNDS` to change the defaults 1000, 20).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use mesh_control_plane::state::{Snapshot, XdsStatus, snapshot_channel};
use mesh_control_plane::xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use mesh_core::Endpoint;
use mesh_core::config::{MeshConfig, ServiceConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const SERVICES: usize = 50;

fn config(round: u32) -> MeshConfig {
    let mut c = MeshConfig::default();
    for s in 0..SERVICES {
        let endpoints = (0..3u16)
            .map(|e| {
                let port = 20_000 + (s as u16) * 10 + e;
                Endpoint::new(SocketAddr::from(([127, 0, 0, 1], port)))
                    .with_weight(1 + round % 5 + u32::from(e))
            })
            .collect();
        c.services.insert(
            format!("svc-{s}"),
            ServiceConfig {
                endpoints,
                ..Default::default()
            },
        );
    }
    c
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn req(
    type_url: &str,
    names: &[String],
    version: &str,
    nonce: &str,
    node: bool,
) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node.then(|| Node {
            id: "bench".into(),
            user_agent_name: "bench".into(),
            ..Default::default()
        }),
        type_url: type_url.into(),
        resource_names: names.to_vec(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// One client stream: subscribes, ACKs everything, reports EDS ACKs.
async fn client(
    addr: SocketAddr,
    i: usize,
    ready: mpsc::Sender<()>,
    acks: mpsc::UnboundedSender<(String, Instant)>,
) {
    let mut c = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    let mut inbound = c
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let svc = vec![format!("svc-{}", i % SERVICES)];
    tx.send(req(LISTENER_TYPE, &svc, "", "", true))
        .await
        .unwrap();
    tx.send(req(ROUTE_TYPE, &svc, "", "", false)).await.unwrap();
    tx.send(req(CLUSTER_TYPE, &[], "", "", false))
        .await
        .unwrap();
    tx.send(req(ENDPOINT_TYPE, &svc, "", "", false))
        .await
        .unwrap();
    let mut initial = 4;
    while let Ok(Some(resp)) = inbound.message().await {
        let names = if resp.type_url == CLUSTER_TYPE {
            vec![]
        } else {
            svc.clone()
        };
        tx.send(req(
            &resp.type_url,
            &names,
            &resp.version_info,
            &resp.nonce,
            false,
        ))
        .await
        .unwrap();
        if initial > 0 {
            initial -= 1;
            if initial == 0 {
                ready.send(()).await.unwrap();
            }
        } else if resp.type_url == ENDPOINT_TYPE {
            let _ = acks.send((resp.version_info, Instant::now()));
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let streams: usize = std::env::var("FANOUT_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rounds: u32 = std::env::var("FANOUT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = snapshot_channel(Snapshot {
            version: 1,
            config_version: 1,
            config: Arc::new(config(0)),
            discovered: BTreeMap::new(),
        });
        let status = Arc::new(XdsStatus::default());
        let st = status.clone();
        tokio::spawn(mesh_control_plane::xds::serve(listener, rx, st, std::future::pending()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rss_before = rss_kb();
        let (ready_tx, mut ready_rx) = mpsc::channel(streams);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let opened = Instant::now();
        for i in 0..streams {
            tokio::spawn(client(addr, i, ready_tx.clone(), ack_tx.clone()));
            if i % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for _ in 0..streams {
            ready_rx.recv().await.unwrap();
        }
        let open_time = opened.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss_kb();
        let per_stream_kb = (rss_after.saturating_sub(rss_before)) as f64 / streams as f64;
        let mut last = Vec::new();
        let mut each = Vec::new();
        for round in 1..=rounds {
            let version = u64::from(round) + 1;
            let t0 = Instant::now();
            tx.send_replace(Arc::new(Snapshot {
                version,
                config_version: version,
                config: Arc::new(config(round)),
                discovered: BTreeMap::new(),
            }));
            let want = version.to_string();
            let mut got = 0;
            let mut latest = Duration::ZERO;
            while got < streams {
                let (v, at) = tokio::time::timeout(Duration::from_secs(30), ack_rx.recv()).await.unwrap().unwrap();
                if v != want {
                    continue;
                }
                let d = at - t0;
                each.push(d);
                latest = latest.max(d);
                got += 1;
            }
            last.push(latest);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last.sort();
        each.sort();
        let stats = &status.stats;
        let n = stats.push_latency_count.load(std::sync::atomic::Ordering::Relaxed).max(1);
        let mean_push = stats.push_latency_us_sum.load(std::sync::atomic::Ordering::Relaxed) / n;
        println!("xds_fanout: {streams} ADS streams, {SERVICES} services x 3 endpoints, {rounds} rounds (coalescing window included)");
        println!("  streams opened and initial state ACKed in {open_time:?}");
        println!("  publish -> last ACK per round: p50 {:?}  p99 {:?}  max {:?}", pct(&last, 0.5), pct(&last, 0.99), last.last().unwrap());
        println!("  publish -> ACK per stream:     p50 {:?}  p99 {:?}", pct(&each, 0.5), pct(&each, 0.99));
        println!("  server-recorded push latency (change seen -> response queued) mean {mean_push} us over {n} pushes");
        println!("  RSS {rss_before} kB -> {rss_after} kB: {per_stream_kb:.1} kB per stream (client + server ends)");
    });
}
