//! `meshctl resolve` as a user runs it: the real binary, real config files,
//! the real environment contract and a real DNS server (dnsmasq).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mesh_tests::dnsmasq::{self, Dnsmasq};
use serde_json::{Value, json};

fn meshctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    // Only what each test sets: no MESH_* leaking in from the caller.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MESH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run meshctl")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn static_target_json() {
    let out = run(meshctl().args([
        "resolve",
        "--json",
        "static:///127.0.0.1:8080=10,[::1]:8081",
    ]));
    assert_eq!(
        stdout_json(&out),
        json!({"endpoints": [
            {"address": "127.0.0.1:8080", "weight": 10},
            {"address": "[::1]:8081", "weight": 1},
        ]})
    );
}

#[test]
fn service_from_config_file_beats_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(
        &file,
        "services:\n  news-service:\n    endpoints:\n      - { address: 127.0.0.1:8081, weight: 3, labels: { version: v1 } }\n",
    )
    .unwrap();
    let out = run(meshctl()
        .args(["resolve", "news-service"])
        .env("MESH_CONFIG", &file)
        .env("MESH_ENDPOINTS_NEWS_SERVICE", "127.0.0.1:9999"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 endpoint (static, from config)"), "{text}");
    assert!(
        text.contains("127.0.0.1:8081  weight=3  version=v1"),
        "{text}"
    );
    assert!(!text.contains("9999"), "config wins over env: {text}");

    // A service the file does not name comes from MESH_ENDPOINTS_<SVC>.
    let out = run(meshctl()
        .args(["resolve", "--json", "app-ui"])
        .env("MESH_CONFIG", &file)
        .env("MESH_ENDPOINTS_APP_UI", "127.0.0.1:7001=2,127.0.0.1:7002"));
    assert_eq!(
        stdout_json(&out),
        json!({"endpoints": [
            {"address": "127.0.0.1:7001", "weight": 2},
            {"address": "127.0.0.1:7002", "weight": 1},
        ]})
    );
}

#[test]
fn bad_input_is_named_and_exits_2() {
    let out = run(meshctl().args(["resolve", "static:///nope"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is not an address"));

    let out = run(meshctl().args(["resolve", "xds:///news"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported yet"));

    let out = run(meshctl()
        .args(["resolve", "news"])
        .env("MESH_ENDPOINTS_NEWS", "127.0.0.1:1=0"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MESH_ENDPOINTS_NEWS"),
        "the variable is named: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, "services:\n  news:\n    retry: { attempts: 0 }\n").unwrap();
    let out = run(meshctl()
        .args(["resolve", "news"])
        .env("MESH_CONFIG", &file));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("services.news.retry.attempts"), "{stderr}");
}

#[test]
fn srv_weights_and_ports_from_dnsmasq() {
    if !dnsmasq::available() {
        return;
    }
    let dns = Dnsmasq::start(
        "127.0.0.1 news-1.mesh.local\n127.0.0.2 news-2.mesh.local\n",
        &[
            "--srv-host=_http._tcp.news.mesh.local,news-1.mesh.local,8080,0,10",
            "--srv-host=_http._tcp.news.mesh.local,news-2.mesh.local,8081,0,20",
        ],
    );
    let out = run(meshctl()
        .args(["resolve", "--json", "dns:///_http._tcp.news.mesh.local"])
        .env("MESH_DNS_SERVER", dns.addr().to_string()));
    assert_eq!(
        stdout_json(&out),
        json!({"endpoints": [
            {"address": "127.0.0.1:8080", "weight": 10},
            {"address": "127.0.0.2:8081", "weight": 20},
        ]})
    );

    // A name DNS does not know resolves to nothing: exit 1.
    let out = run(meshctl()
        .args(["resolve", "dns:///nowhere.mesh.local:80"])
        .env("MESH_DNS_SERVER", dns.addr().to_string()));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_prints_each_change_of_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    let one = "services:\n  news:\n    endpoints: [{ address: 127.0.0.1:8081 }]\n";
    std::fs::write(&file, one).unwrap();
    let mut child = KillOnDrop(
        meshctl()
            .args(["resolve", "--watch", "--json", "news"])
            .env("MESH_CONFIG", &file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a line within 10s");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(
        next(),
        json!({"endpoints": [{"address": "127.0.0.1:8081", "weight": 1}]})
    );

    // A bad edit changes nothing (the last good config stays) ...
    std::fs::write(
        &file,
        "services:\n  news:\n    endpoints: [{ address: nope }]\n",
    )
    .unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a bad edit prints nothing"
    );
    // ... and a good one is printed.
    std::fs::write(
        &file,
        "services:\n  news:\n    endpoints: [{ address: 127.0.0.1:8081 }, { address: 127.0.0.1:8082, weight: 5 }]\n",
    )
    .unwrap();
    assert_eq!(
        next(),
        json!({"endpoints": [
            {"address": "127.0.0.1:8081", "weight": 1},
            {"address": "127.0.0.1:8082", "weight": 5},
        ]})
    );
}
