//! Prometheus as a peer: started in the foreground on a free port of
//! 127.0.0.1 with a temporary storage directory and a config scraping the
//! given targets every second; killed on drop. Queries go to its HTTP API
//! (`/api/v1/targets`, `/api/v1/query`).
//!
//! This is test-harness code: failing loudly (panicking) is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus child process, killed on drop.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// prometheus on `PATH`, or in `/usr/bin` (where Debian puts it).
pub fn prometheus_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

/// Whether Prometheus is installed. When it is not, prints a skip message
/// and returns false, or fails the test when `CI=true`.
pub fn available() -> bool {
    if prometheus_path().is_some() {
        return true;
    }
    let msg = "SKIP: prometheus not found on PATH or in /usr/bin \
               (apt-get install -y --no-install-recommends prometheus)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}; failing because CI=true"
    );
    eprintln!("{msg}");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`/metrics`, every second) as
    /// job `mesh`.
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mesh\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let config_path = dir.path().join("prom.yml");
        std::fs::write(&config_path, config).unwrap();
        let storage = dir.path().join("data");
        let bin = prometheus_path().expect("prometheus");
        for _ in 0..5 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let mut child = Command::new(&bin)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"))
                .args([
                    "--web.console.templates=/etc/prometheus/consoles",
                    "--web.console.libraries=/etc/prometheus/console_libraries",
                    "--log.level=warn",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut ready = false;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // port taken, or a bad config: try again
                }
                if let Some((200, _)) = http_get(addr, "/-/ready") {
                    ready = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if ready {
                return Prometheus {
                    child,
                    addr,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start prometheus on a free port");
    }

    /// Its HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until every active target reports `health: up` (the first
    /// scrape lands a few seconds after start); panics after `timeout` with
    /// the targets' state.
    pub fn wait_targets_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some((200, body)) = http_get(self.addr, "/api/v1/targets") {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let active = v["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !active.is_empty() && active.iter().all(|t| t["health"] == "up") {
                    return;
                }
                last = body;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("prometheus targets not up after {timeout:?}: {last}");
    }

    /// Runs an instant query; returns the result vector as
    /// `(labels, value)` pairs.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let (status, body) = http_get(self.addr, &path).expect("prometheus API reachable");
        assert_eq!(status, 200, "query {expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "query {expr}: {body}");
        v["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// Polls `expr` until its single result equals `want` (scrapes are
    /// periodic); panics after `timeout` with the last result.
    pub fn wait_for_value(&self, expr: &str, want: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(expr);
            if let [(_, v)] = last.as_slice()
                && *v == want
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("`{expr}` did not become {want} within {timeout:?}; last result: {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A plain HTTP/1.0 GET (the harness needs no client library): status and
/// body, or `None` when the connection fails.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
