//! dnsmasq as a peer: started in the foreground on a free port of 127.0.0.1
//! with `--local-ttl=1`, records from an `--addn-hosts` file (re-read on
//! SIGHUP) plus any extra arguments (`--srv-host=...`), killed on drop.
//!
//! This is test-harness code: failing loudly (panicking) is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A dnsmasq child process serving on 127.0.0.1, killed on drop.
pub struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    hosts: PathBuf,
    extra: Vec<String>,
    _dir: tempfile::TempDir,
}

/// dnsmasq on `PATH`, or in `/usr/sbin` (where Debian puts it).
pub fn dnsmasq_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("dnsmasq"))
        .find(|p| p.is_file())
}

/// Whether dnsmasq is installed. When it is not, prints a skip message and
/// returns false, or fails the test when `CI=true`.
pub fn available() -> bool {
    if dnsmasq_path().is_some() {
        return true;
    }
    let msg = "SKIP: dnsmasq not found on PATH or in /usr/sbin (apt-get install -y dnsmasq)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}; failing because CI=true"
    );
    eprintln!("{msg}");
    false
}

impl Dnsmasq {
    /// Starts dnsmasq with `hosts` as the addn-hosts file content and `extra`
    /// arguments (e.g. `--srv-host=...`), on a free port.
    pub fn start(hosts: &str, extra: &[&str]) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, hosts).unwrap();
        let mut d = Dnsmasq {
            child: None,
            port: 0,
            hosts: path,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
        };
        for _ in 0..10 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if d.spawn_on(port) {
                return d;
            }
        }
        panic!("could not start dnsmasq on a free port");
    }

    /// Spawns on `port`; false if it exited (port taken).
    fn spawn_on(&mut self, port: u16) -> bool {
        let mut cmd = Command::new(dnsmasq_path().expect("dnsmasq"));
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--local=/mesh.local/",
            "--local-ttl=1",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", self.hosts.display()))
        .args(&self.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                self.child = Some(child);
                self.port = port;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Where it serves (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Rewrites the addn-hosts file, to be read at the next start.
    pub fn write_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
    }

    /// Rewrites the addn-hosts file and makes dnsmasq re-read it (SIGHUP).
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        let pid = self.child.as_ref().unwrap().id();
        // The shell's builtin `kill`: no dependency on procps.
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -HUP {pid}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "SIGHUP to dnsmasq failed");
    }

    /// Stops it; [`Dnsmasq::restart`] starts it again on the same port.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port (after `kill`).
    pub fn restart(&mut self) {
        let port = self.port;
        let mut started = false;
        for _ in 0..20 {
            if self.spawn_on(port) {
                started = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(started, "dnsmasq did not restart on port {port}");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.kill();
    }
}
