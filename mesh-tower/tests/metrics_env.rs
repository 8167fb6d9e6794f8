//! `init_from_env`: the global provider and `/metrics` from
//! `MESH_METRICS_ADDR`. Each case runs in a child process of this test
//! binary with its own environment (the global provider and the
//! environment are process-wide).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use mesh_tests::prometheus::http_get;
use mesh_tower::metrics::Metrics;
use mesh_tower::metrics::prometheus::{MetricsError, init_from_env};

fn run_child(test: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("MESH_METRICS_ADDR")
    .env_remove("MESH_SERVICE")
    .env_remove("OTEL_SERVICE_NAME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serves_the_global_pipeline_when_the_address_is_set() {
    let addr = format!("127.0.0.1:{}", free_port());
    run_child(
        "child_serves_metrics",
        &[
            ("MESH_METRICS_ADDR", &addr),
            ("MESH_SERVICE", "news-service"),
        ],
    );
}

#[test]
fn unset_is_off_and_a_bad_address_is_a_typed_error() {
    run_child("child_unset", &[]);
    run_child("child_bad_addr", &[("MESH_METRICS_ADDR", "localhost:90x")]);
}

#[tokio::test]
#[ignore = "run by serves_the_global_pipeline_when_the_address_is_set"]
async fn child_serves_metrics() {
    let telemetry = init_from_env()
        .await
        .unwrap()
        .expect("MESH_METRICS_ADDR is set");
    let addr = telemetry.server.local_addr();
    assert_eq!(
        addr.to_string(),
        std::env::var("MESH_METRICS_ADDR").unwrap()
    );
    let metrics = Metrics::global();
    let news = metrics.service("news-service");
    metrics.record_retry(&news);
    metrics.set_endpoints(&news, 2, 1);

    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"mesh_client_retries_total{mesh_service="news-service",otel_scope_name="mesh-tower"} 1"#),
        "{body}"
    );
    assert!(body.contains(r#"mesh_endpoint_state="ejected""#), "{body}");
    assert!(body.contains(r#"service_name="news-service""#), "{body}");
    let (status, _) = tokio::task::spawn_blocking(move || http_get(addr, "/other"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 404);

    telemetry.shutdown().await;
    let gone = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(gone.is_none(), "server stopped");
}

#[tokio::test]
#[ignore = "run by unset_is_off_and_a_bad_address_is_a_typed_error"]
async fn child_unset() {
    assert!(init_from_env().await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "run by unset_is_off_and_a_bad_address_is_a_typed_error"]
async fn child_bad_addr() {
    match init_from_env().await {
        Err(e @ MetricsError::Addr { .. }) => {
            assert_eq!(
                e.to_string(),
                "MESH_METRICS_ADDR `localhost:90x` is not an ip:port address"
            );
            assert!(std::error::Error::source(&e).is_some(), "cause kept");
        }
        other => panic!("expected an Addr error, got {other:?}"),
    }
}
