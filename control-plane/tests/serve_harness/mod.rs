//! `meshctl serve` as a real child process for integration tests: started in
//! its own working directory on port-0 addresses, its printed addresses read
//! from stdout, stopped with SIGTERM (by pid) or killed on drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use mesh_control_plane::client::Client;
use serde_json::Value;

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `meshctl` binary, with no `MESH_*` variables from the caller.
pub fn meshctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MESH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running `meshctl serve`.
pub struct Cp {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The gRPC address printed.
    pub grpc: String,
    /// The working directory (data under `mesh-data/`).
    pub dir: PathBuf,
    stderr: PathBuf,
}

/// Why a start failed: exit code and stderr.
#[derive(Debug)]
pub struct StartFailure {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Cp {
    /// Starts `meshctl serve` in `dir` on 127.0.0.1:0 (both ports) plus `args`.
    pub fn start(dir: &Path, args: &[&str]) -> Cp {
        Self::try_start(dir, args, &[]).unwrap_or_else(|f| panic!("serve failed to start: {f:?}"))
    }

    /// Like [`Cp::start`], with environment variables, and the failure returned.
    /// The port-0 addresses come from `MESH_CP_*_ADDR` unless `env` sets them,
    /// so `args` may be empty: no flags at all.
    pub fn try_start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Cp, StartFailure> {
        let stderr_path = dir.join(format!(
            "serve-stderr-{}.txt",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = meshctl();
        cmd.arg("serve")
            .args(args)
            .current_dir(dir)
            .env("MESH_CP_HTTP_ADDR", "127.0.0.1:0")
            .env("MESH_CP_GRPC_ADDR", "127.0.0.1:0")
            .env("MESH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn meshctl serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut url, mut grpc) = (None, None);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("http: ") {
                        url = Some(u.to_string());
                    } else if let Some(g) = line.strip_prefix("grpc: ") {
                        grpc = Some(g.to_string());
                    }
                }
                Err(_) => {
                    // Exited (stdout closed) or timed out: collect the status.
                    let status = wait_bounded(&mut child, Duration::from_secs(10));
                    return Err(StartFailure {
                        code: status.and_then(|s| s.code()),
                        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                    });
                }
            }
        }
        Ok(Cp {
            child: Some(child),
            url: url.expect("http line"),
            grpc: grpc.expect("grpc line"),
            dir: dir.to_path_buf(),
            stderr: stderr_path,
        })
    }

    /// The server's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM (by pid), then waits for the exit (bounded).
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        match wait_bounded(&mut child, Duration::from_secs(15)) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not stop on SIGTERM; stderr:\n{}", self.stderr());
            }
        }
    }

    /// A `meshctl` command pointed at this server.
    pub fn cli(&self) -> Command {
        let mut cmd = meshctl();
        cmd.env("MESH_CP_URL", &self.url).current_dir(&self.dir);
        cmd
    }

    /// Runs `meshctl ARGS` against this server.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("run meshctl")
    }

    /// One HTTP request with the crate's client: status and JSON body.
    pub fn http(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, &str)>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let client = Client::new(&self.url, token.map(str::to_string)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resp = rt
            .block_on(client.request(
                method,
                path,
                body.map(|(ct, b)| (ct, Bytes::from(b.to_string()))),
            ))
            .expect("request");
        (resp.status, resp.json())
    }

    /// `GET path` -> JSON (asserting 200).
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.http(Method::GET, path, None, None);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// `GET path` -> text (asserting 200).
    pub fn get_text(&self, path: &str) -> String {
        let client = Client::new(&self.url, None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resp = rt.block_on(client.get(path)).expect("request");
        assert_eq!(resp.status, StatusCode::OK, "GET {path}");
        String::from_utf8_lossy(&resp.body).into_owned()
    }

    /// `method path` with a JSON body, no token.
    pub fn json(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        self.http(method, path, Some(("application/json", body)), None)
    }
}

impl Drop for Cp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child` at most `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 50 ms until it returns `Some`, at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
