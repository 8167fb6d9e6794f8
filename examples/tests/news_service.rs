//! `news-service` as a real process behind the mesh client: failure
//! injection, retries across instances, headers and JSON, `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{command, get, mesh_client, spawn_listening};
use mesh_examples::news::News;
use mesh_tower::ext::{Attempts, ServedBy};

const BIN: &str = env!("CARGO_BIN_EXE_news-service");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_over_two_instances_hide_one_failing_30_percent() {
    let healthy = spawn_listening(command(BIN));
    let mut flaky_cmd = command(BIN);
    flaky_cmd.args(["--fail-rate", "0.3", "--seed", "7"]);
    let flaky = spawn_listening(flaky_cmd);

    // Outlier detection off: the retries alone must do it.
    let yaml = format!(
        "services:\n  news-service:\n    endpoints:\n      - {{ address: \"{}\" }}\n      - {{ address: \"{}\" }}\n    \
         load_balancer: round_robin\n    retry: {{ attempts: 3, per_try_timeout: 1s, on: [5xx], \
         budget: {{ ratio: 1.0, min_per_second: 100 }} }}\n    outlier_detection: {{ consecutive_failures: 0 }}\n",
        healthy.addr, flaky.addr
    );
    let (_mesh, client) = mesh_client(&yaml, "news-service");

    let total = 300;
    let (mut ok, mut retried) = (0, 0);
    let mut served_by = HashSet::new();
    for _ in 0..total {
        let (parts, body) = get(&client, "http://news-service/news").await;
        if parts.status.is_success() {
            ok += 1;
            let by = parts.extensions.get::<ServedBy>().expect("ServedBy").0;
            served_by.insert(by);
            let news: News = serde_json::from_str(&body).unwrap();
            assert_eq!(news.address, by.to_string(), "the instance says who it is");
            assert_eq!(news.version, "v1");
            assert_eq!(parts.headers["x-mesh-version"], "v1");
            assert!(!news.items.is_empty());
        }
        if parts.extensions.get::<Attempts>().is_some_and(|a| a.0 > 1) {
            retried += 1;
        }
    }
    assert!(ok * 100 >= total * 99, "{ok}/{total} succeeded");
    assert!(retried > 0, "the flaky instance failed some attempts");
    assert_eq!(served_by, HashSet::from([healthy.addr, flaky.addr]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_rate_one_answers_503_and_metrics_are_served() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = command(BIN);
    cmd.args(["--fail-rate", "1"])
        .env("MESH_METRICS_ADDR", metrics_port.to_string())
        .env("NEWS_VERSION", "v9");
    let news = spawn_listening(cmd);

    let yaml = format!(
        "services:\n  news-service:\n    endpoints: [ {{ address: \"{}\" }} ]\n    outlier_detection: {{ consecutive_failures: 0 }}\n",
        news.addr
    );
    let (_mesh, client) = mesh_client(&yaml, "news-service");
    for _ in 0..5 {
        let (parts, _) = get(&client, "http://news-service/news").await;
        assert_eq!(parts.status, http::StatusCode::SERVICE_UNAVAILABLE);
    }
    let (parts, body) = get(&client, "http://news-service/healthz").await;
    assert_eq!(
        (parts.status, body.as_str()),
        (http::StatusCode::OK, "ok\n")
    );

    let metrics_yaml =
        format!("services:\n  metrics:\n    endpoints: [ {{ address: \"{metrics_port}\" }} ]\n");
    let (_m, metrics) = mesh_client(&metrics_yaml, "metrics");
    let (_, text) = get(&metrics, "http://metrics/metrics").await;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/news\"")
                && l.contains("http_response_status_code=\"503\"")
        })
        .unwrap_or_else(|| panic!("no /news 503 series in:\n{text}"));
    assert!(line.ends_with(" 5"), "{line}");
}

#[test]
fn hang_rate_one_never_answers_and_delay_delays() {
    let mut cmd = command(BIN);
    cmd.args(["--hang-rate", "1"]);
    let hung = spawn_listening(cmd);
    let mut stream = std::net::TcpStream::connect(hung.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stream
        .write_all(b"GET /news HTTP/1.1\r\nhost: news\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf).expect_err("no answer");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );

    let mut cmd = command(BIN);
    cmd.args(["--delay", "200ms"]);
    let slow = spawn_listening(cmd);
    let mut stream = std::net::TcpStream::connect(slow.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sent = Instant::now();
    stream
        .write_all(b"GET /news HTTP/1.1\r\nhost: news\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    // A lower bound only: the injected delay cannot be skipped.
    assert!(sent.elapsed() >= Duration::from_millis(200));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn bad_flags_are_refused() {
    let mut cmd = command(BIN);
    cmd.args(["--fail-rate", "1.5"])
        .stderr(std::process::Stdio::null());
    let (status, _) = common::run_bounded(cmd, Duration::from_secs(30));
    assert!(!status.success());
}
