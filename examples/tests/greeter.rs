//! `greeter-server` and `greeter-client` as a user runs them: two servers
//! (one failing 30% of its calls with UNAVAILABLE) and the client, configured
//! by a `MESH_CONFIG` file, retrying through to all-success.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{command, run_bounded, spawn_listening};
use serde_json::Value;

const SERVER: &str = env!("CARGO_BIN_EXE_greeter-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_greeter-client");

#[test]
fn the_client_retries_unavailable_to_all_success_over_both_servers() {
    let good = spawn_listening(command(SERVER));
    let mut flaky = command(SERVER);
    flaky.args(["--fail-rate", "0.3", "--seed", "7"]);
    let flaky = spawn_listening(flaky);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mesh.yaml");
    std::fs::write(
        &config,
        format!(
            "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    retry:
      attempts: 3
      on: [unavailable]
      backoff: {{ base: 1ms, max: 5ms }}
      budget: {{ ratio: 1.0, min_per_second: 1000 }}
    endpoints: [{{ address: \"{}\" }}, {{ address: \"{}\" }}]
",
            good.addr, flaky.addr
        ),
    )
    .unwrap();

    let mut client = command(CLIENT);
    client.env("MESH_CONFIG", &config).args([
        "--requests",
        "60",
        "--concurrency",
        "4",
        "--name",
        "test",
        "--json",
    ]);
    let (status, stdout) = run_bounded(client, Duration::from_secs(60));
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"));
    assert!(status.success(), "{status:?}: {report}");

    let mut keys: Vec<_> = report.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "endpoints",
            "failed",
            "latency_ms",
            "requests",
            "retries",
            "status",
            "succeeded"
        ]
    );
    let mut latency: Vec<_> = report["latency_ms"].as_object().unwrap().keys().collect();
    latency.sort();
    assert_eq!(latency, ["max", "p50", "p90", "p99"]);

    assert_eq!(report["requests"], 60, "{report}");
    assert_eq!(report["succeeded"], 60, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(
        report["status"],
        serde_json::json!({ "OK": 60 }),
        "{report}"
    );
    // Both servers answered: the flaky one succeeds 70% of the time.
    let endpoints = report["endpoints"].as_object().unwrap();
    assert_eq!(endpoints.len(), 2, "{report}");
    for addr in [good.addr, flaky.addr] {
        assert!(
            endpoints[&addr.to_string()].as_u64().unwrap() > 0,
            "{addr} missing: {report}"
        );
    }
    // Round robin sends ~30 first attempts to the flaky server: with a fixed
    // seed some of them fail and are retried.
    assert!(report["retries"].as_u64().unwrap() > 0, "{report}");
    let max = report["latency_ms"]["max"].as_f64().unwrap();
    assert!(
        max >= report["latency_ms"]["p50"].as_f64().unwrap(),
        "{report}"
    );
}

#[test]
fn a_bad_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mesh.yaml");
    std::fs::write(&config, "services: [not, a, map]\n").unwrap();
    let mut client = command(CLIENT);
    client.env("MESH_CONFIG", &config).arg("--json");
    let (status, stdout) = run_bounded(client, Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
}
