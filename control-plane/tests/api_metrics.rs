//! `/metrics` is valid Prometheus text (checked by the real `promtool`) and
//! counts what the store holds; `/api/v1/xds/nodes` answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use std::io::Write;
use std::process::{Command, Stdio};

use http::{Method, StatusCode};
use serve_harness::Cp;

fn promtool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

#[test]
fn metrics_count_the_store_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let (status, _) = cp.http(
        Method::PUT,
        "/api/v1/config",
        Some(("application/yaml", "services:\n  a: {}\n  b: {}\nintentions:\n  - { source: a, destination: b, action: deny }\n")),
        None,
    );
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cp.json(
        Method::PUT,
        "/api/v1/services/a/endpoints/x",
        r#"{"address":"127.0.0.1:7000"}"#,
    );
    assert_eq!(status, StatusCode::CREATED);
    let text = cp.get_text("/metrics");
    for line in [
        "mesh_cp_config_version 1",
        "mesh_cp_services 2",
        "mesh_cp_intentions 1",
        "mesh_cp_registered_endpoints 1",
        "mesh_cp_discovered_endpoints 1",
        "mesh_cp_xds_connected_streams 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
    }
    let nodes = cp.get("/api/v1/xds/nodes");
    assert!(nodes["nodes"].as_array().unwrap().is_empty());
    assert!(nodes["snapshot_version"].as_u64().unwrap() >= 3);

    let Some(promtool) = promtool() else {
        let msg = "SKIP: promtool not found on PATH (install Prometheus)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg}; failing because CI=true"
        );
        eprintln!("{msg}");
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
