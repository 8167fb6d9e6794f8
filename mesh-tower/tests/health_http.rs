//! Active HTTP health checks against real axum upstreams on 127.0.0.1:0:
//! an endpoint whose `/healthz` turns 503 loses its traffic after the
//! threshold and gets it back once it passes again; every endpoint failing
//! falls back to all of them (panic mode); the gauge shows the unhealthy one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get as route_get;
use client_common::get;
use http_body_util::BodyExt;
use mesh_core::config::{Format, parse_str};
use mesh_tower::ext::ServedBy;
use mesh_tower::{Mesh, MeshClient};
use parking_lot::Mutex;
use tower::ServiceExt;

/// An upstream with a switchable `/healthz`; remembers what probes sent.
struct Upstream {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    probes: Arc<AtomicU64>,
    probe_headers: Arc<Mutex<Option<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream() -> Upstream {
    let healthy = Arc::new(AtomicBool::new(true));
    let probes = Arc::new(AtomicU64::new(0));
    let probe_headers = Arc::new(Mutex::new(None));
    let (h, p, ph) = (healthy.clone(), probes.clone(), probe_headers.clone());
    let app = Router::new()
        .route(
            "/healthz",
            route_get(move |headers: HeaderMap| {
                let (h, p, ph) = (h.clone(), p.clone(), ph.clone());
                async move {
                    p.fetch_add(1, Ordering::Relaxed);
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    *ph.lock() = Some((header("host"), header("user-agent")));
                    if h.load(Ordering::Relaxed) {
                        (http::StatusCode::OK, "ok")
                    } else {
                        (http::StatusCode::SERVICE_UNAVAILABLE, "draining")
                    }
                }
            }),
        )
        .fallback(|| async { "hello" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Upstream {
        addr,
        healthy,
        probes,
        probe_headers,
        task,
    }
}

fn mesh(a: &Upstream, b: &Upstream, metrics: bool) -> Mesh {
    let yaml = format!(
        "services:
  news:
    load_balancer: round_robin
    endpoints: [{{ address: {} }}, {{ address: {} }}]
    health_check: {{ interval: 50ms, timeout: 40ms, unhealthy_threshold: 2, healthy_threshold: 2 }}
",
        a.addr, b.addr
    );
    let mut builder = Mesh::builder().config(parse_str(&yaml, Format::Yaml, "test.yaml").unwrap());
    if metrics {
        builder = builder.metrics_addr("127.0.0.1:0".parse().unwrap());
    }
    builder.build().unwrap()
}

/// Sends `n` requests one by one; the endpoints that served them (all must
/// succeed).
async fn served(client: &MeshClient, n: usize) -> BTreeSet<SocketAddr> {
    let mut set = BTreeSet::new();
    for _ in 0..n {
        let resp = client.clone().oneshot(get("http://news/")).await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let ServedBy(addr) = *resp.extensions().get::<ServedBy>().unwrap();
        resp.into_body().collect().await.unwrap();
        set.insert(addr);
    }
    set
}

/// Polls until 20 requests in a row are served by exactly `want` (5s at most).
async fn until_served_by(client: &MeshClient, want: &[SocketAddr]) {
    let want: BTreeSet<SocketAddr> = want.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = served(client, 20).await;
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
async fn a_failing_healthz_moves_traffic_away_and_back() {
    let (a, b) = (upstream().await, upstream().await);
    let mesh = mesh(&a, &b, false);
    let client = mesh.client("news");
    until_served_by(&client, &[a.addr, b.addr]).await;
    let (host, agent) = b.probe_headers.lock().clone().unwrap();
    assert_eq!(host, "news", "probes carry the service name as Host");
    assert_eq!(agent, "mesh-health-check");

    b.healthy.store(false, Ordering::Relaxed);
    let probes_at_flip = b.probes.load(Ordering::Relaxed);
    until_served_by(&client, &[a.addr]).await;
    assert!(
        b.probes.load(Ordering::Relaxed) >= probes_at_flip + 2,
        "excluded only after unhealthy_threshold failed probes"
    );
    // Stays out while it fails.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(served(&client, 100).await, BTreeSet::from([a.addr]));

    b.healthy.store(true, Ordering::Relaxed);
    until_served_by(&client, &[a.addr, b.addr]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_failing_still_serves_from_all() {
    let (a, b) = (upstream().await, upstream().await);
    a.healthy.store(false, Ordering::Relaxed);
    b.healthy.store(false, Ordering::Relaxed);
    let mesh = mesh(&a, &b, false);
    let client = mesh.client("news");
    // Well past the thresholds: both have failed many probes.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.probes.load(Ordering::Relaxed) >= 3);
    assert!(b.probes.load(Ordering::Relaxed) >= 3);
    assert_eq!(served(&client, 40).await, BTreeSet::from([a.addr, b.addr]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_gauge_counts_the_unhealthy_endpoint() {
    let (a, b) = (upstream().await, upstream().await);
    b.healthy.store(false, Ordering::Relaxed);
    let mesh = mesh(&a, &b, true);
    let client = mesh.client("news");
    until_served_by(&client, &[a.addr]).await;
    let text = scrape(mesh.metrics_addr().unwrap()).await;
    let line = |state: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("mesh_endpoints{")
                    && l.contains("mesh_service=\"news\"")
                    && l.contains(&format!("mesh_endpoint_state=\"{state}\""))
            })
            .unwrap_or_else(|| panic!("no {state} series in:\n{text}"))
            .to_string()
    };
    assert!(line("unhealthy").ends_with(" 1"), "{}", line("unhealthy"));
    assert!(line("ready").ends_with(" 1"), "{}", line("ready"));
    assert!(line("ejected").ends_with(" 0"), "{}", line("ejected"));
}

async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
