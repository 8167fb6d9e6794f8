//! `meshctl call` as a user runs it: the real binary, a real config file
//! (`MESH_CONFIG`) or `MESH_ENDPOINTS_<SVC>`, real upstreams on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};

use mesh_tests::upstream::{Faults, Options, Upstream};
use serde_json::{Value, json};

fn meshctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MESH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A config file naming `news` with `body` (YAML lines under the service).
fn config(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, format!("services:\n  news:\n{body}")).unwrap();
    path
}

fn endpoints(addrs: &[SocketAddr]) -> String {
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ address: {a} }}"))
        .collect();
    format!("    endpoints: [ {} ]\n", eps.join(", "))
}

fn call(file: &PathBuf, args: &[&str]) -> Output {
    meshctl()
        .arg("call")
        .args(args)
        .env("MESH_CONFIG", file)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn json_report_counts_endpoints() {
    let a = Upstream::start_in_thread(Options::new("a"));
    let b = Upstream::start_in_thread(Options::new("b"));
    let dir = tempfile::tempdir().unwrap();
    let file = config(
        &dir,
        &format!(
            "    load_balancer: round_robin\n{}",
            endpoints(&[a.addr(), b.addr()])
        ),
    );
    let out = call(
        &file,
        &["http://news/hello", "-n", "100", "-c", "4", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json_of(&out);
    assert_eq!(
        keys(&v),
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
    assert_eq!(keys(&v["latency_ms"]), ["max", "p50", "p90", "p99"]);
    assert_eq!(v["requests"], json!(100));
    assert_eq!(v["succeeded"], json!(100));
    assert_eq!(v["failed"], json!(0));
    assert_eq!(v["retries"], json!(0));
    assert_eq!(v["status"], json!({"200": 100}));
    let mut expected = serde_json::Map::new();
    expected.insert(a.addr().to_string(), json!(50));
    expected.insert(b.addr().to_string(), json!(50));
    assert_eq!(v["endpoints"], Value::Object(expected));
    assert_eq!((a.requests(), b.requests()), (50, 50));
    let lat = &v["latency_ms"];
    let p = |k: &str| lat[k].as_f64().unwrap();
    assert!(0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"));
    // stderr is not a terminal here: no progress line.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn failing_upstream_shows_statuses_and_exit_1() {
    let up = Upstream::start_in_thread(Options::new("a").faults(Faults::failing(0.3, 503)).seed(5));
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir, &endpoints(&[up.addr()]));
    let out = call(&file, &["http://news/", "-n", "200", "-c", "2", "--json"]);
    assert_eq!(out.status.code(), Some(1), "some failed: {out:?}");
    let v = json_of(&out);
    let failed = up.counters().status(503);
    assert!((20..120).contains(&failed), "{failed}");
    assert_eq!(v["failed"], json!(failed));
    assert_eq!(v["succeeded"], json!(200 - failed));
    assert_eq!(v["status"], json!({"200": 200 - failed, "503": failed}));
}

#[test]
fn retries_are_counted() {
    let flaky = Upstream::start_in_thread(
        Options::new("flaky")
            .faults(Faults::failing(0.3, 503))
            .seed(9),
    );
    let ok = Upstream::start_in_thread(Options::new("ok"));
    let dir = tempfile::tempdir().unwrap();
    let file = config(
        &dir,
        &format!(
            "    load_balancer: round_robin\n{}    retry: {{ attempts: 3, on: [5xx], backoff: {{ base: 1ms, max: 2ms }} }}\n",
            endpoints(&[flaky.addr(), ok.addr()])
        ),
    );
    let out = call(&file, &["http://news/", "-n", "200", "-c", "2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json_of(&out);
    let failures = flaky.counters().status(503);
    assert!(failures > 0);
    assert_eq!(v["succeeded"], json!(200));
    assert_eq!(v["retries"], json!(failures), "one retry per 503");
    assert_eq!(flaky.requests() + ok.requests(), 200 + failures);
}

#[test]
fn circuit_open_is_a_status() {
    let slow = Upstream::start_in_thread(
        Options::new("slow").faults(Faults::delayed(std::time::Duration::from_millis(300))),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = config(
        &dir,
        &format!(
            "{}    circuit_breaker: {{ max_requests: 1, max_pending: 1 }}\n",
            endpoints(&[slow.addr()])
        ),
    );
    let out = call(&file, &["http://news/", "-n", "8", "-c", "4", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json_of(&out);
    let open = v["status"]["circuit_open"].as_u64().unwrap_or(0);
    let ok = v["status"]["200"].as_u64().unwrap_or(0);
    assert!(open > 0, "{v}");
    assert_eq!(ok + open, 8, "{v}");
    assert_eq!(v["failed"], json!(open));
    assert_eq!(slow.requests(), ok);
}

#[test]
fn open_loop_duration_and_text_report() {
    let up = Upstream::start_in_thread(Options::new("a"));
    // Endpoints from the environment contract this time.
    let out = meshctl()
        .args([
            "call",
            "http://news-service/x",
            "--duration",
            "1s",
            "--rate",
            "40",
            "-c",
            "4",
        ])
        .env("MESH_ENDPOINTS_NEWS_SERVICE", up.addr().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // Due at 0, 25ms, ..., 975ms: 40 requests.
    assert!(text.starts_with("requests:   40 in "), "{text}");
    assert!(text.contains("40 succeeded, 0 failed"), "{text}");
    assert!(text.contains("status:     200=40\n"), "{text}");
    assert!(
        text.contains(&format!("endpoints:  {}=40\n", up.addr())),
        "{text}"
    );
    assert!(text.contains("retries:    0\n"), "{text}");
    assert!(text.contains("latency ms: p50 "), "{text}");
    assert_eq!(up.requests(), 40);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["call", "news/x"][..],
        &["call", "https://news/"],
        &["call", "http://news/", "-H", "no colon"],
        &["call", "http://news/", "-n", "1", "--duration", "1s"],
        &["call", "http://news/", "--rate", "0"],
    ] {
        let out = meshctl().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}
