//! `Mesh::from_env()`: `MESH_ENDPOINTS_<SVC>` and `MESH_METRICS_ADDR`. The
//! mesh runs in a child process of this test binary with its own
//! environment (the environment and the global meter provider are
//! process-wide); the upstreams run in the parent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use client_common::{get, load, upstream};
use mesh_tower::Mesh;

const SERVICE_VAR: &str = "MESH_ENDPOINTS_NEWS_SERVICE";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_discovers_mesh_endpoints_and_serves_metrics() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_from_env",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in [
        "MESH_CONFIG",
        "MESH_DNS_SERVER",
        "MESH_CONTROL_PLANE",
        "GRPC_XDS_BOOTSTRAP",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(SERVICE_VAR, format!("{}=1,{}=3", a.addr, b.addr))
        .env("MESH_METRICS_ADDR", &metrics)
        .env("MESH_SERVICE", "app-ui");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = a.hits.load(Ordering::Relaxed) + b.hits.load(Ordering::Relaxed);
    assert_eq!(total, 400);
}

/// Run by the test above in a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by from_env_discovers_mesh_endpoints_and_serves_metrics"]
async fn child_from_env() {
    let expected: Vec<SocketAddr> = std::env::var(SERVICE_VAR)
        .unwrap()
        .split(',')
        .map(|s| s.split('=').next().unwrap().parse().unwrap())
        .collect();
    let mesh = Mesh::from_env().unwrap();
    assert_eq!(mesh.local_service(), Some("app-ui"));
    let metrics_addr = mesh.metrics_addr().expect("MESH_METRICS_ADDR served");
    let client = mesh.client("news-service");
    let (counts, errors) = load(&client, 400, 4, Duration::from_secs(60), |_| {
        get("http://news-service/")
    })
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    let served: HashMap<_, _> = counts;
    assert!(served.keys().all(|a| expected.contains(a)), "{served:?}");
    assert_eq!(served.values().sum::<u64>(), 400);

    // The same instruments, exposed for Prometheus.
    let text = tokio::task::spawn_blocking(move || {
        mesh_tests::prometheus::http_get(metrics_addr, "/metrics")
    })
    .await
    .unwrap()
    .expect("GET /metrics")
    .1;
    assert!(
        text.contains("http_client_request_duration_seconds"),
        "{text}"
    );
    assert!(text.contains("news-service"), "{text}");
    assert!(text.contains("mesh_endpoints"), "{text}");
}
