//! `mesh-bench --json` runs briefly (a smoke test: its figures are for
//! BENCHMARKS.md, not for a timed test) and prints every mode it promises
//! with traffic and no errors, and the ratios the targets are read from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use serde_json::Value;

fn served(json: &Value, proto: &str, mode: &str) {
    let m = &json[proto][mode];
    assert!(
        m["rps"].as_f64().unwrap_or(0.0) > 0.0,
        "{proto} {mode}: {m}"
    );
    assert_eq!(m["errors"].as_u64(), Some(0), "{proto} {mode}: {m}");
    assert!(m["p99_us"].as_u64().unwrap_or(0) >= m["p50_us"].as_u64().unwrap_or(u64::MAX));
}

fn ratio(json: &Value, proto: &str, key: &str) -> f64 {
    let r = json[proto]["ratios"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {proto} ratio {key} in {json}"));
    assert!(r.is_finite() && r > 0.0, "{proto} {key} = {r}");
    r
}

/// The one JSON object `--json` prints.
fn json_line(out: &str) -> Value {
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {out}"));
    serde_json::from_str(line).expect("valid JSON")
}

#[test]
fn a_short_run_reports_every_mode_and_ratio() {
    let mut cmd = common::command(env!("CARGO_BIN_EXE_mesh-bench"));
    cmd.args([
        "--json",
        "--no-envoy",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--rounds",
        "2",
        "--concurrency",
        "4",
    ]);
    let (status, out) = common::run_bounded(cmd, Duration::from_secs(120));
    assert!(status.success(), "{status}\n{out}");
    let json = json_line(&out);

    for proto in ["http1", "http2"] {
        for mode in ["plain", "plain_rr", "mesh"] {
            served(&json, proto, mode);
        }
        assert!(json[proto].get("envoy").is_none(), "--no-envoy: {json}");
        assert_eq!(json[proto]["mesh"]["endpoints"], 3, "{json}");
        for key in [
            "mesh_over_plain_rps",
            "mesh_over_plain_rps_median",
            "mesh_over_plain_p99",
            "mesh_over_plain_p99_median",
            "mesh_over_plain_rr_rps_median",
            "mesh_over_plain_rr_p99",
            "mesh_over_plain_rr_p99_median",
            "plain_over_mesh_client_cpu",
        ] {
            ratio(&json, proto, key);
        }
    }
    for mode in ["plain", "balance_list", "mesh"] {
        served(&json, "grpc", mode);
    }
    for key in ["mesh_over_plain_rps", "mesh_over_balance_list_rps"] {
        ratio(&json, "grpc", key);
    }
}

#[test]
fn the_mesh_can_balance_over_one_port_and_a_bad_count_is_refused() {
    let mut cmd = common::command(env!("CARGO_BIN_EXE_mesh-bench"));
    cmd.args([
        "--json",
        "--no-envoy",
        "--protocol",
        "http1",
        "--mesh-endpoints",
        "1",
        "--duration",
        "200ms",
        "--warmup",
        "100ms",
        "--rounds",
        "1",
        "--concurrency",
        "4",
    ]);
    let (status, out) = common::run_bounded(cmd, Duration::from_secs(60));
    assert!(status.success(), "{status}\n{out}");
    let json = json_line(&out);
    served(&json, "http1", "mesh");
    assert_eq!(json["http1"]["mesh"]["endpoints"], 1, "{json}");

    // Refused before anything starts, naming the flag and the range.
    let refused = common::command(env!("CARGO_BIN_EXE_mesh-bench"))
        .args(["--mesh-endpoints", "4"])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("--mesh-endpoints") && err.contains("1..=3"),
        "{err}"
    );
}
