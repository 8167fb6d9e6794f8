//! `mesh-bench --mtls`: the mesh client with mTLS against a plain
//! hyper-util client with a hand-rolled rustls connector (what hyper-rustls
//! does), both calling the same hyper server behind the mesh's strict mTLS
//! acceptor, with the same certificates (rcgen, in process) and the same
//! TLS settings (TLS 1.3 only, ring, ALPN `http/1.1` or `h2`, session
//! resumption on). Then new TLS connections per second, one request per
//! connection, with resumption off (full handshakes) and on (resumed).
//!
//! The difference between the two request-rate columns is the mesh's own
//! cost (its layers, the SPIFFE verifier, the per-identity pool), since
//! TLS itself is the same on both sides.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use mesh_core::identity::SpiffeId;
use mesh_tower::MeshClient;
use mesh_tower::metrics::{Metrics, prometheus};
use mesh_tower::tls::{MeshAcceptor, Tls, TlsConfig, TlsMode};
use opentelemetry::metrics::MeterProvider;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower::{Service, ServiceExt};

use super::load::quantile;
use super::server::BODY;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server's SPIFFE ID (both services name it as their `identity`).
const SERVER_ID: &str = "spiffe://mesh.local/ns/default/svc/bench-server";
/// The client's SPIFFE ID.
const CLIENT_ID: &str = "spiffe://mesh.local/ns/default/svc/mesh-bench";

/// What to measure, from the command line.
pub struct Options {
    /// Length of each measured round.
    pub duration: Duration,
    /// Concurrent request loops.
    pub concurrency: usize,
    /// Interleaved rounds per client and protocol.
    pub rounds: usize,
    /// Warm-up per client and protocol.
    pub warmup: Duration,
    /// Worker threads of the server's runtime.
    pub server_workers: usize,
    /// Only this protocol (`http1` or `http2`).
    pub protocol: Option<String>,
    /// One JSON object instead of tables.
    pub json: bool,
    /// The mesh client's trace mode (`--trace`).
    pub trace: mesh_core::config::TraceMode,
    /// Only this client (`plain` or `mesh`; both when empty), for profiling:
    /// no ratios, no handshake rates.
    pub only: Vec<String>,
}

/// The CA, server and client material as PEM files in a temporary dir.
struct Material {
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    server: (std::path::PathBuf, std::path::PathBuf),
    client: (std::path::PathBuf, std::path::PathBuf),
}

fn material() -> Result<Material, BoxError> {
    let dir = tempfile::tempdir()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mesh-bench CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem)?;
    let leaf = |id: &str, file: &str| -> Result<_, BoxError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, id);
        params.subject_alt_names = vec![
            SanType::URI(id.try_into()?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let (c, k) = (
            dir.path().join(format!("{file}.crt")),
            dir.path().join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem())?;
        std::fs::write(&k, key.serialize_pem())?;
        Ok((c, k))
    };
    let server = leaf(SERVER_ID, "server")?;
    let client = leaf(CLIENT_ID, "client")?;
    Ok(Material {
        _dir: dir,
        ca,
        server,
        client,
    })
}

/// The hyper server of the other modes behind the strict mTLS acceptor, on
/// its own runtime; returns its address.
fn start_server(m: &Material, workers: usize) -> Result<SocketAddr, BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let std = std::net::TcpListener::bind("127.0.0.1:0")?;
    std.set_nonblocking(true)?;
    let addr = std.local_addr()?;
    let (listener, tls) = {
        let _guard = runtime.enter();
        let config = TlsConfig::new(&m.server.0, &m.server.1, &m.ca).mode(TlsMode::Strict);
        (tokio::net::TcpListener::from_std(std)?, Tls::load(config)?)
    };
    let service = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(BODY))))
    });
    runtime.spawn(mesh_tower::tls::serve(
        listener,
        MeshAcceptor::new(&tls),
        service,
        std::future::pending(),
    ));
    std::thread::Builder::new()
        .name("bench-server-rt".into())
        .spawn(move || {
            let _tls = tls;
            runtime.block_on(std::future::pending::<()>())
        })?;
    Ok(addr)
}

/// The baseline's rustls config: webpki verification of the server
/// against the CA (its IP SAN), the client certificate, TLS 1.3, ALPN
/// `alpn`, rustls' default resumption (in-memory, 256 sessions).
fn plain_config(m: &Material, alpn: &[u8]) -> Result<Arc<ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&m.ca)? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(&m.client.0)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&m.client.1)?;
    let mut config = ClientConfig::builder_with_provider(mesh_tower::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

// === the baseline's connector (what hyper-rustls does) ===

/// TCP (hyper-util's `HttpConnector`, `TCP_NODELAY`), then rustls.
#[derive(Clone)]
struct PlainTls {
    http: HttpConnector,
    tls: TlsConnector,
}

impl Service<http::Uri> for PlainTls {
    type Response = PlainTlsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<PlainTlsStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::<http::Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tcp = self.http.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = tcp.await?.into_inner();
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
            Ok(PlainTlsStream(TokioIo::new(tls.connect(name, tcp).await?)))
        })
    }
}

struct PlainTlsStream(TokioIo<TlsStream<TcpStream>>);

impl Connection for PlainTlsStream {
    fn connected(&self) -> Connected {
        let (tcp, session) = self.0.inner().get_ref();
        let connected = tcp.connected();
        if session.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for PlainTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PlainTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    // As the mesh's own TLS stream does: without these hyper flattens its
    // writes into one buffer, and the baseline would pay a copy the mesh
    // does not.
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

type PlainClient = Client<PlainTls, Empty<Bytes>>;

/// The same pool settings as the plaintext baseline ([`super::load`]).
fn plain_client(config: Arc<ClientConfig>, h2: bool) -> PlainClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false); // `https://` URIs: TLS is layered on top
    let connector = PlainTls {
        http,
        tls: TlsConnector::from(config),
    };
    super::load::plain_builder(h2).build(connector)
}

// === load ===

// Cloned once per load task, never moved per request (as `load::Target`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Caller {
    Plain(PlainClient, http::Uri),
    Mesh(MeshClient, http::Uri),
}

async fn send(caller: &mut Caller) -> Result<bool, BoxError> {
    let response = match caller {
        Caller::Plain(client, uri) => {
            let req = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())?;
            client.request(req).await?
        }
        Caller::Mesh(client, uri) => {
            let req = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())?;
            ServiceExt::<http::Request<Empty<Bytes>>>::ready(client)
                .await?
                .call(req)
                .await?
        }
    };
    let ok = response.status() == http::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}

/// Latencies (µs) of successful requests, errors, elapsed time, each
/// round's rate and the client threads' CPU seconds.
#[derive(Default)]
struct Totals {
    latencies: Vec<u32>,
    errors: u64,
    elapsed: Duration,
    round_rps: Vec<f64>,
    client_cpu: f64,
}

impl Totals {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn json(&self) -> Value {
        json!({
            "rps": self.rps().round() as u64,
            "p50_us": quantile(&self.latencies, 0.5),
            "p99_us": quantile(&self.latencies, 0.99),
            "errors": self.errors,
            "client_us_per_request": (self.client_cpu * 1e7 / (self.latencies.len().max(1) as f64)).round() / 10.0,
        })
    }
}

async fn round(caller: &Caller, concurrency: usize, duration: Duration, totals: &mut Totals) {
    let cpu = super::procfs::threads_cpu("bench-client", true);
    let before = totals.latencies.len();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut caller = caller.clone();
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::with_capacity(1 << 14), 0u64);
                loop {
                    let t0 = Instant::now();
                    if t0 >= deadline {
                        break;
                    }
                    match send(&mut caller).await {
                        Ok(true) => {
                            lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX))
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    for t in tasks {
        if let Ok((lat, errors)) = t.await {
            totals.latencies.extend(lat);
            totals.errors += errors;
        }
    }
    let elapsed = start.elapsed();
    totals.elapsed += elapsed;
    let done = totals.latencies.len().saturating_sub(before);
    totals
        .round_rps
        .push(done as f64 / elapsed.as_secs_f64().max(1e-9));
    totals.client_cpu += super::procfs::threads_cpu("bench-client", true) - cpu;
}

// === handshakes ===

/// New connections per second with `config`, one `GET /` (HTTP/1.1,
/// `Connection: close`) each: (connections/s, fraction resumed, errors).
async fn handshakes(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
) -> (f64, f64, u64) {
    let connector = TlsConnector::from(config);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let connector = connector.clone();
            tokio::spawn(async move {
                let (mut ok, mut resumed, mut errors) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    match one_connection(&connector, addr).await {
                        Ok(r) => {
                            ok += 1;
                            resumed += u64::from(r);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (ok, resumed, errors)
            })
        })
        .collect();
    let (mut ok, mut resumed, mut errors) = (0u64, 0u64, 0u64);
    for t in tasks {
        if let Ok((o, r, e)) = t.await {
            ok += o;
            resumed += r;
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    (
        ok as f64 / secs,
        resumed as f64 / (ok.max(1) as f64),
        errors,
    )
}

/// One connection, one request: whether the handshake was resumed.
async fn one_connection(connector: &TlsConnector, addr: SocketAddr) -> Result<bool, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let mut tls = connector.connect(name, tcp).await?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    tls.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::with_capacity(256);
    tls.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err("not a 200".into());
    }
    Ok(resumed)
}

// === the run ===

/// Runs the mTLS comparison and prints it (table or JSON).
pub async fn run(opts: &Options) -> Result<(), BoxError> {
    let m = material()?;
    let addr = start_server(&m, opts.server_workers.max(1))?;
    let client_tls = Tls::load(TlsConfig::new(&m.client.0, &m.client.1, &m.ca))?;
    let yaml = format!(
        "services:\n  bench-h1:\n    protocol: http\n    identity: {SERVER_ID}\n    endpoints: [{{ address: \"{addr}\" }}]\n    load_balancer: least_request\n    timeout: 2s\n    retry: {{ attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, 5xx] }}\n    routes: [{{ name: all, match: {{ path_prefix: / }} }}]\n  \
         bench-h2:\n    protocol: http2\n    identity: {SERVER_ID}\n    endpoints: [{{ address: \"{addr}\" }}]\n    load_balancer: least_request\n    timeout: 2s\n    retry: {{ attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, 5xx] }}\n    routes: [{{ name: all, match: {{ path_prefix: / }} }}]\n"
    );
    let config = mesh_core::config::parse_str(&yaml, mesh_core::config::Format::Yaml, "mtls")?;
    let (provider, _exposition) = prometheus::pipeline(Some("mesh-bench"))?;
    let mesh = mesh_tower::Mesh::builder()
        .config(config)
        .trace(opts.trace)
        .metrics(Metrics::new(&provider.meter(mesh_tower::metrics::SCOPE)))
        .local_service("mesh-bench")
        .tls(client_tls.clone())
        .build()?;

    let mut report = serde_json::Map::new();
    for (proto, h2, service) in [("http1", false, "bench-h1"), ("http2", true, "bench-h2")] {
        if opts.protocol.as_deref().is_some_and(|p| p != proto) {
            continue;
        }
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        let plain = Caller::Plain(
            plain_client(plain_config(&m, alpn)?, h2),
            format!("https://127.0.0.1:{}/", addr.port()).parse()?,
        );
        let meshed = Caller::Mesh(mesh.client(service), format!("http://{service}/").parse()?);
        let mut totals = [Totals::default(), Totals::default()];
        let wanted = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == name);
        for (caller, name) in [(&plain, "plain"), (&meshed, "mesh")] {
            if !wanted(name) {
                continue;
            }
            match send(&mut caller.clone()).await {
                Ok(true) => {}
                Ok(false) => return Err(format!("{proto} {name}+mTLS: not a 200").into()),
                Err(e) => return Err(format!("{proto} {name}+mTLS: {e:?}").into()),
            }
            round(
                caller,
                opts.concurrency,
                opts.warmup,
                &mut Totals::default(),
            )
            .await;
        }
        for r in 0..opts.rounds.max(1) {
            // Alternate which client goes first.
            for k in 0..2 {
                let i = (k + r) % 2;
                let (caller, t) = if i == 0 {
                    (&plain, &mut totals[0])
                } else {
                    (&meshed, &mut totals[1])
                };
                if !wanted(if i == 0 { "plain" } else { "mesh" }) {
                    continue;
                }
                round(caller, opts.concurrency, opts.duration, t).await;
            }
        }
        for t in &mut totals {
            t.latencies.sort_unstable();
        }
        let [p, me] = &totals;
        let ratio = super::round3(me.rps() / p.rps().max(1e-9));
        let per_round = super::round_ratios(&me.round_rps, &p.round_rps);
        let cpu = |t: &Totals| t.client_cpu / (t.latencies.len().max(1) as f64);
        report.insert(
            proto.into(),
            json!({
                "plain_rustls": p.json(),
                "mesh_mtls": me.json(),
                "mesh_over_plain_rps": ratio,
                "mesh_over_plain_rps_median": super::round3(super::median(&per_round)),
                "plain_over_mesh_client_cpu": super::round3(cpu(p) / cpu(me).max(1e-12)),
            }),
        );
    }

    if !opts.only.is_empty() {
        return Ok(());
    }
    // Handshakes: the mesh's own client config (SPIFFE verifier), and the
    // baseline's, each with resumption off and on.
    let expected = SpiffeId::parse(SERVER_ID)?;
    let mesh_cfg = client_tls.client_config(expected, vec![b"http/1.1".to_vec()])?;
    let plain_cfg = plain_config(&m, b"http/1.1")?;
    let mut conns = serde_json::Map::new();
    for (name, cfg) in [("mesh", mesh_cfg), ("plain", plain_cfg)] {
        for resumption in [false, true] {
            let mut c = (*cfg).clone();
            c.resumption = if resumption {
                Resumption::in_memory_sessions(256)
            } else {
                Resumption::disabled()
            };
            let (rate, resumed, errors) =
                handshakes(Arc::new(c), addr, opts.concurrency.min(8), opts.duration).await;
            let key = format!("{name}_{}", if resumption { "resumed" } else { "full" });
            conns.insert(
                key,
                json!({ "conns_per_s": rate.round() as u64, "resumed_fraction": (resumed * 100.0).round() / 100.0, "errors": errors }),
            );
        }
    }
    report.insert("new_connections".into(), Value::Object(conns));
    let report = Value::Object(report);
    if opts.json {
        println!("{report}");
    } else {
        print_tables(&report);
    }
    Ok(())
}

fn print_tables(report: &Value) {
    println!(
        "{:<7} {:<12} {:>9} {:>8} {:>8} {:>7}",
        "proto", "client", "rps", "p50_us", "p99_us", "errors"
    );
    for proto in ["http1", "http2"] {
        let Some(r) = report.get(proto) else { continue };
        for client in ["plain_rustls", "mesh_mtls"] {
            let t = &r[client];
            println!(
                "{proto:<7} {client:<12} {:>9} {:>8} {:>8} {:>7}",
                t["rps"], t["p50_us"], t["p99_us"], t["errors"]
            );
        }
        println!(
            "{proto:<7} mesh_over_plain_rps {} (median of rounds {}); client us/request plain {} mesh {}",
            r["mesh_over_plain_rps"],
            r["mesh_over_plain_rps_median"],
            r["plain_rustls"]["client_us_per_request"],
            r["mesh_mtls"]["client_us_per_request"]
        );
    }
    println!("\nnew TLS connections (one HTTP/1.1 request each):");
    if let Some(c) = report["new_connections"].as_object() {
        for (k, v) in c {
            println!(
                "{k:<14} {:>7}/s  resumed {:>4}  errors {}",
                v["conns_per_s"], v["resumed_fraction"], v["errors"]
            );
        }
    }
}
