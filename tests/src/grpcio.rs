//! Python grpcio as a peer: the helloworld greeter server and client of
//! `tests/py/` run with the peers venv's Python, as plain gRPC or as stock
//! gRPC xDS clients and xDS-enabled servers (`GRPC_XDS_BOOTSTRAP`).
//!
//! This is test-harness code: failing loudly (panicking) is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::envoy::venv;

/// The venv's Python, if grpcio is importable with it.
pub fn python() -> Option<PathBuf> {
    let py = venv().join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import grpc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(py)
}

/// Whether grpcio is installed. When it is not, prints a skip message and
/// returns false, or fails the test when `CI=true`.
pub fn available() -> bool {
    if python().is_some() {
        return true;
    }
    let msg = format!(
        "SKIP: python grpcio not found in {} (scripts/install-peers.sh)",
        venv().display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}; failing because CI=true"
    );
    eprintln!("{msg}");
    false
}

/// `tests/py/<name>`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// Writes a gRPC xDS bootstrap for node `node_id` pointing at `xds` into
/// `dir`; returns its path.
pub fn write_bootstrap(dir: &Path, xds: SocketAddr, node_id: &str) -> PathBuf {
    let path = dir.join(format!("bootstrap-{node_id}.json"));
    let json = format!(
        r#"{{"xds_servers":[{{"server_uri":"{xds}","channel_creds":[{{"type":"insecure"}}],"server_features":["xds_v3"]}}],"node":{{"id":"{node_id}","locality":{{}}}},"server_listener_resource_name_template":"grpc/server?xds.resource.listening_address=%s"}}"#
    );
    std::fs::write(&path, json).unwrap();
    path
}

/// A greeter server process, killed on drop.
pub struct GreeterServer {
    child: Child,
    /// Where it listens.
    pub port: u16,
    /// The flag file of [`start_with_health`](Self::start_with_health).
    health_file: Option<PathBuf>,
}

impl GreeterServer {
    /// A plain greeter answering `name`, on a free port.
    pub fn start(name: &str) -> GreeterServer {
        Self::spawn(&["--name", name], None)
    }

    /// A plain greeter answering `name`, with `flags` of
    /// `greeter_server.py` (`--fail-rate 0.3`, `--fail-mode after-message`,
    /// `--delay 200`, `--report-deadline`, `--seed 7`), on a free port.
    pub fn start_with(name: &str, flags: &[&str]) -> GreeterServer {
        let mut args = vec!["--name", name];
        args.extend_from_slice(flags);
        Self::spawn(&args, None)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server now (SIGKILL: connections drop mid-call).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A plain greeter that also serves `grpc.health.v1.Health`
    /// (grpcio-health-checking); `health_file` must not exist yet. The
    /// server and `helloworld.Greeter` report SERVING until
    /// [`set_serving`](Self::set_serving)`(false)`.
    pub fn start_with_health(name: &str, health_file: &Path) -> GreeterServer {
        let file = health_file.to_str().expect("a UTF-8 path");
        let mut server = Self::spawn(&["--name", name, "--health-file", file], None);
        server.health_file = Some(health_file.to_path_buf());
        server
    }

    /// Switches the reported health (the server polls its flag file every
    /// 20ms). Only for servers started with health.
    pub fn set_serving(&self, serving: bool) {
        let file = self
            .health_file
            .as_ref()
            .expect("started with start_with_health");
        if serving {
            std::fs::remove_file(file).unwrap();
        } else {
            std::fs::write(file, b"NOT_SERVING").unwrap();
        }
    }

    /// An xDS-enabled greeter on `port`, using `bootstrap`. It serves once
    /// the control plane sends its Listener.
    pub fn start_xds(name: &str, port: u16, bootstrap: &Path) -> GreeterServer {
        Self::spawn(
            &["--name", name, "--port", &port.to_string(), "--xds"],
            Some(bootstrap),
        )
    }

    fn spawn(args: &[&str], bootstrap: Option<&Path>) -> GreeterServer {
        let mut cmd = Command::new(python().expect("grpcio installed"));
        cmd.arg(script("greeter_server.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(b) = bootstrap {
            cmd.env("GRPC_XDS_BOOTSTRAP", b);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("greeter_server.py did not print its port: {line:?}")
            });
        GreeterServer {
            child,
            port,
            health_file: None,
        }
    }
}

impl Drop for GreeterServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `greeter_client.py` against `target` for `n` calls (with
/// `bootstrap` as `GRPC_XDS_BOOTSTRAP` when given) and returns its JSON line
/// (`{"counts": {...}, "errors": {...}}`). Killed after `timeout`.
pub fn run_client(target: &str, n: usize, bootstrap: Option<&Path>, timeout: Duration) -> String {
    let mut cmd = Command::new(python().expect("grpcio installed"));
    cmd.arg(script("greeter_client.py"))
        .args(["--target", target, "-n", &n.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(b) = bootstrap {
        cmd.env("GRPC_XDS_BOOTSTRAP", b);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("greeter_client.py {target} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "greeter_client.py failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

/// Runs `greeter_tls_client.py` against `target` (`127.0.0.1:PORT`) for `n`
/// calls over TLS trusting `ca`, presenting `client` (certificate, key)
/// when given, and returns its JSON line (`{"counts": {...}, "errors":
/// {...}}`; a refused handshake counts as `UNAVAILABLE`). Killed after
/// `timeout`.
pub fn run_tls_client(
    target: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    n: usize,
    timeout: Duration,
) -> String {
    let mut cmd = Command::new(python().expect("grpcio installed"));
    cmd.arg(script("greeter_tls_client.py"))
        .args(["--target", target, "-n", &n.to_string()])
        .arg("--ca")
        .arg(ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("greeter_tls_client.py {target} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "greeter_tls_client.py failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}
