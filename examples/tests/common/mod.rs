//! Shared by the example tests: the built binaries as child processes,
//! with a clean mesh environment, killed on drop, every wait bounded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use mesh_tower::{Mesh, MeshClient};
use tower::ServiceExt;

/// How long a binary may take to start listening (a cold debug build).
pub const START: Duration = Duration::from_secs(30);

/// `bin` with every mesh variable of the test's own environment removed,
/// listening on a free port.
pub fn command(bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("MESH_") || key.starts_with("OTEL_") || key == "NEWS_VERSION" {
            cmd.env_remove(key);
        }
    }
    cmd.env("MESH_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// A running binary, killed on drop.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` and waits (bounded) for its `... listening on ADDR` line.
pub fn spawn_listening(mut cmd: Command) -> Proc {
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {} // keep the pipe drained
    });
    let line = match rx.recv_timeout(START) {
        Ok(line) => line,
        Err(e) => {
            let _ = child.kill();
            panic!("no `listening on` line within {START:?}: {e}");
        }
    };
    let addr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Proc { child, addr }
}

/// Runs `cmd` to its end (killed after `limit`): exit status and stdout.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (ExitStatus, String) {
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().expect("reader"))
}

/// A mesh client for a service described by a YAML config.
pub fn mesh_client(yaml: &str, service: &str) -> (Mesh, MeshClient) {
    let config = mesh_core::config::parse_str(yaml, mesh_core::config::Format::Yaml, "test.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    let mesh = Mesh::builder().config(config).build().unwrap();
    let client = mesh.client(service);
    (mesh, client)
}

/// GET `uri` through `client`: the response head and the body as text.
pub async fn get(client: &MeshClient, uri: &str) -> (http::response::Parts, String) {
    let request = http::Request::get(uri)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.clone().oneshot(request))
        .await
        .expect("bounded")
        .unwrap_or_else(|e| panic!("GET {uri}: {e}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts, String::from_utf8_lossy(&body).into_owned())
}
