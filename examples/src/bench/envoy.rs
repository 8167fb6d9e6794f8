//! The sidecar baseline: two Envoys from static bootstraps, client ->
//! Envoy A (the caller's sidecar) -> Envoy B (the server's sidecar) ->
//! server, one listener pair for HTTP/1.1 and one for HTTP/2 (h2c prior
//! knowledge on every hop).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// The envoy binary from the peers venv, if installed.
pub fn envoy_path() -> Option<PathBuf> {
    let venv = std::env::var_os("MESH_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mesh-peers"));
    [
        venv.join("bin/envoy"),
        venv.join("lib/python3.11/site-packages/envoy/_bin/envoy"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// A free port on 127.0.0.1 (bound, then released).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn listener(name: &str, port: u16, cluster: &str) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "codec_type": "AUTO",
                "route_config": {"virtual_hosts": [{
                    "name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]
                }]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                }]
            }
        }]}]
    })
}

fn cluster(name: &str, h2: bool, endpoints: &[SocketAddr]) -> Value {
    let lb: Vec<Value> = endpoints
        .iter()
        .map(|a| {
            json!({"endpoint": {"address": {"socket_address": {
            "address": a.ip().to_string(), "port_value": a.port()}}}})
        })
        .collect();
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb}]}
    });
    if h2 && let Some(obj) = c.as_object_mut() {
        obj.insert(
            "typed_extension_protocol_options".into(),
            json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}
            }}),
        );
    }
    c
}

/// One Envoy's bootstrap: listeners `h1`/`h2` to clusters over `h1`/`h2`
/// upstreams (`upstream_h1`, `upstream_h2`: the endpoints of each).
fn bootstrap(
    admin: u16,
    ports: (u16, u16),
    upstream_h1: &[SocketAddr],
    upstream_h2: &[SocketAddr],
) -> Value {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [listener("h1", ports.0, "up_h1"), listener("h2", ports.1, "up_h2")],
            "clusters": [cluster("up_h1", false, upstream_h1), cluster("up_h2", true, upstream_h2)]
        }
    })
}

/// A running Envoy process, killed on drop.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sidecar pair and where the client connects.
pub struct Pair {
    /// Envoy A (client side) and B (server side).
    pub procs: [Proc; 2],
    /// Envoy A's HTTP/1.1 listener.
    pub h1: SocketAddr,
    /// Envoy A's HTTP/2 listener.
    pub h2: SocketAddr,
    _dir: tempfile::TempDir,
}

fn spawn(
    path: &PathBuf,
    dir: &std::path::Path,
    name: &str,
    config: &Value,
    concurrency: usize,
    base_id: u32,
) -> std::io::Result<Proc> {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, config.to_string())?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new(path)
        .arg("-c")
        .arg(&file)
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--base-id", &base_id.to_string()])
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Proc { child })
}

/// Starts Envoy B (in front of `server`) and Envoy A (in front of B), each
/// with `concurrency` workers.
pub fn start(path: &PathBuf, server: &[SocketAddr], concurrency: usize) -> std::io::Result<Pair> {
    let dir = tempfile::tempdir()?;
    let b_ports = (free_port()?, free_port()?);
    let a_ports = (free_port()?, free_port()?);
    let b_h1 = [SocketAddr::from(([127, 0, 0, 1], b_ports.0))];
    let b_h2 = [SocketAddr::from(([127, 0, 0, 1], b_ports.1))];
    let base = 1000 + std::process::id() % 10_000 * 2;
    let b = spawn(
        path,
        dir.path(),
        "envoy-b",
        &bootstrap(free_port()?, b_ports, server, server),
        concurrency,
        base,
    )?;
    let a = spawn(
        path,
        dir.path(),
        "envoy-a",
        &bootstrap(free_port()?, a_ports, &b_h1, &b_h2),
        concurrency,
        base + 1,
    )?;
    Ok(Pair {
        procs: [a, b],
        h1: SocketAddr::from(([127, 0, 0, 1], a_ports.0)),
        h2: SocketAddr::from(([127, 0, 0, 1], a_ports.1)),
        _dir: dir,
    })
}
