//! A gRPC call through the mesh records four histograms, all through bound
//! instruments: the mesh client's `http.client.request.duration` and gRFC
//! A66's attempt, call and server durations. Many calls of one series must
//! stay one series per histogram, with A66's attributes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod server_support;

use std::time::Duration;

use common::endpoints;
use common::helloworld::greeter_client::GreeterClient;
use mesh_core::config::{Format, parse_str};
use mesh_tonic::MeshChannel;
use mesh_tonic::server::GrpcServerLayer;
use server_support::{Probe, hello, layered, telemetry};

const METHOD: (&str, &str) = ("grpc_method", "helloworld.Greeter/SayHello");
const CALLS: u32 = 200;

/// How many series named `name` the exposition has.
fn series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_calls_histograms_keep_their_a66_attributes_when_bound() {
    let t = telemetry();
    let server = layered(
        GrpcServerLayer::new(&t.metrics, "greeter"),
        Probe::default(),
    )
    .await;
    let config = parse_str(
        &format!(
            "services:\n  greeter:\n    protocol: grpc\n    endpoints: {}\n",
            endpoints(&[server.addr])
        ),
        Format::Yaml,
        "test.yaml",
    )
    .unwrap();
    let mesh = mesh_tower::Mesh::builder()
        .config(config)
        .metrics(t.metrics.clone())
        .wait_for_endpoints(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut client = GreeterClient::new(MeshChannel::new(&mesh, "greeter"));
    for _ in 0..CALLS {
        client.say_hello(hello("ok")).await.unwrap();
    }
    let n = f64::from(CALLS);
    let ep = server.addr.to_string();
    let ok = ("grpc_status", "OK");
    let target = ("grpc_target", "greeter");
    let service = ("mesh_service", "greeter");
    let endpoint = ("mesh_endpoint", ep.as_str());
    let attempt = "grpc_client_attempt_duration_seconds_count";
    let call = "grpc_client_call_duration_seconds_count";
    let served = "grpc_server_call_duration_seconds_count";
    let http = "http_client_request_duration_seconds_count";
    assert_eq!(
        t.get(attempt, &[METHOD, ok, target, service, endpoint]),
        n,
        "{}",
        t.text()
    );
    assert_eq!(
        t.get(call, &[METHOD, ok, target, service]),
        n,
        "{}",
        t.text()
    );
    assert_eq!(
        t.wait_calls(&[METHOD, ok, service], n).await,
        n,
        "{}",
        t.text()
    );
    assert_eq!(
        t.get(
            http,
            &[
                service,
                endpoint,
                ("http_request_method", "POST"),
                ("http_response_status_code", "200")
            ]
        ),
        n,
        "{}",
        t.text()
    );
    let text = t.text();
    for name in [attempt, call, served, http] {
        assert_eq!(series(&text, name), 1, "{name}: {text}");
    }
    // The call histogram has no endpoint (A66): four attributes, plus the
    // exposition's scope labels.
    let line = text.lines().find(|l| l.starts_with(call)).unwrap();
    assert!(!line.contains("mesh_endpoint"), "{line}");
}
