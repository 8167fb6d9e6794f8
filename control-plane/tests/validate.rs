//! `meshctl validate` as a user runs it: the real binary on real files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::path::Path;
use std::process::{Command, Output};

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .output()
        .expect("run meshctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn example_config_is_valid_and_summarised() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh.yaml");
    let out = meshctl(&["validate", example.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "one-line summary: {stdout}");
    for word in ["valid", "service", "endpoint", "route", "intention"] {
        assert!(stdout.contains(word), "summary lacks {word}: {stdout}");
    }
}

#[test]
fn every_error_is_reported_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "services:\n  news:\n    retry:\n      attempts: 0\n    load_balancer: fastest\n    timeuot: 2s\n",
    )
    .unwrap();
    let out = meshctl(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("services.news.retry.attempts"),
        "attempts error: {stderr}"
    );
    assert!(stderr.contains(":4:"), "line of attempts: {stderr}");
    assert!(
        stderr.contains("services.news.load_balancer"),
        "algorithm error: {stderr}"
    );
    assert!(stderr.contains("timeuot"), "unknown field error: {stderr}");
    assert!(stderr.contains("3 errors"), "count: {stderr}");
}

#[test]
fn formats_by_extension_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("mesh.toml");
    std::fs::write(
        &toml,
        "[services.news]\nendpoints = [{ address = \"127.0.0.1:8081\", weight = 3 }]\n",
    )
    .unwrap();
    let out = meshctl(&["validate", toml.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 service"));

    let json = dir.path().join("mesh.conf");
    std::fs::write(&json, r#"{"services": {"news": {"protocol": "grpc"}}}"#).unwrap();
    let out = meshctl(&["validate", "--format", "json", json.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
}

#[test]
fn unreadable_file_is_a_usage_error() {
    let out = meshctl(&["validate", "/nonexistent/mesh.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/mesh.yaml"));
}
