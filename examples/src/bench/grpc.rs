//! mesh-bench's gRPC mode: unary `helloworld.Greeter/SayHello` against one
//! tonic server listening on three ports, through
//!
//! - `plain`: a tonic `Channel` to the first port (the baseline);
//! - `balance_list`: tonic's own `Channel::balance_list` over the three
//!   (what a tonic user would pick to spread load without a mesh);
//! - `mesh`: a [`MeshChannel`] over the three (least request, timeout,
//!   retry policy and metrics on, as in the HTTP modes).
//!
//! Same load generator shape as the HTTP modes: `concurrency` tasks each
//! sending one call after the other, interleaved rounds with a rotating
//! order, latencies of successful calls, CPU seconds of the client's and
//! the server's threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::config::{Format, parse_str};
use mesh_tonic::MeshChannel;
use mesh_tower::metrics::Metrics;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

use super::{load, procfs};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The code generated from `helloworld.proto` (see `build.rs`).
mod helloworld {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("helloworld");
}

use helloworld::greeter_client::GreeterClient;
use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// Answers every call with the same reply.
#[derive(Clone, Copy)]
struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        _request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply {
            message: "hello world".into(),
        }))
    }
}

/// Starts one tonic server on `listeners` ports of 127.0.0.1, on its own
/// runtime with `workers` threads named `bench-server`.
pub fn start_server(listeners: usize, workers: usize) -> std::io::Result<Vec<SocketAddr>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let mut addrs = Vec::new();
    for _ in 0..listeners {
        let std = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std.set_nonblocking(true)?;
        addrs.push(std.local_addr()?);
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std)?
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(GreeterServer::new(Hello))
                .serve_with_incoming(incoming),
        );
    }
    std::thread::Builder::new()
        .name("bench-server-rt".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(addrs)
}

#[derive(Clone)]
enum Client {
    Tonic(GreeterClient<Channel>),
    Mesh(GreeterClient<MeshChannel>),
}

impl Client {
    async fn call(&mut self) -> bool {
        let request = tonic::Request::new(HelloRequest {
            name: "bench".into(),
        });
        match self {
            Client::Tonic(c) => c.say_hello(request).await.is_ok(),
            Client::Mesh(c) => c.say_hello(request).await.is_ok(),
        }
    }
}

const MODES: [&str; 3] = ["plain", "balance_list", "mesh"];

#[derive(Default)]
struct Totals {
    latencies: Vec<u32>,
    round_rps: Vec<f64>,
    errors: u64,
    elapsed: Duration,
    client_cpu: f64,
    server_cpu: f64,
}

impl Totals {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn p(&self, q: f64) -> u32 {
        load::quantile(&self.latencies, q)
    }
}

/// How to run the gRPC rounds.
pub struct Options {
    /// Concurrent call loops.
    pub concurrency: usize,
    /// Length of each measured round.
    pub duration: Duration,
    /// Warm-up per mode.
    pub warmup: Duration,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Server runtime threads.
    pub server_workers: usize,
    /// Print tables (else only return the JSON).
    pub print: bool,
    /// Only these modes (`plain`, `balance_list`, `mesh`; all when empty).
    pub only: Vec<String>,
    /// The mesh client's trace mode (`--trace`).
    pub trace: mesh_core::config::TraceMode,
}

/// Runs the three modes; returns the `"grpc"` JSON object.
pub async fn run(opts: &Options, metrics: Metrics) -> Result<Value, BoxError> {
    let addrs = start_server(3, opts.server_workers.max(1))?;
    let first = *addrs.first().ok_or("no listener")?;
    let plain = Endpoint::from_shared(format!("http://{first}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let endpoints: Vec<Endpoint> = addrs
        .iter()
        .map(|a| Endpoint::from_shared(format!("http://{a}")).map(|e| e.tcp_nodelay(true)))
        .collect::<Result<_, _>>()?;
    let balanced = Channel::balance_list(endpoints.into_iter());
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ address: \"{a}\" }}"))
        .collect();
    let yaml = format!(
        "services:\n  bench-grpc:\n    protocol: grpc\n    endpoints: [{}]\n    load_balancer: least_request\n    timeout: 2s\n    retry: {{ attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, unavailable] }}\n",
        eps.join(", ")
    );
    let mesh = mesh_tower::Mesh::builder()
        .config(parse_str(&yaml, Format::Yaml, "mesh-bench-grpc")?)
        .trace(opts.trace)
        .metrics(metrics)
        .local_service("mesh-bench")
        .build()?;
    let clients = [
        Client::Tonic(GreeterClient::new(plain)),
        Client::Tonic(GreeterClient::new(balanced)),
        Client::Mesh(GreeterClient::new(MeshChannel::new(&mesh, "bench-grpc"))),
    ];
    let run_mode = |mode: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == mode);
    for (client, mode) in clients.iter().zip(MODES) {
        if !run_mode(mode) {
            continue;
        }
        if !wait_ready(client, Duration::from_secs(20)).await {
            return Err(format!("grpc {mode} never answered").into());
        }
        round(client, opts.concurrency, opts.warmup).await;
    }
    let mut totals: [Totals; 3] = Default::default();
    for r in 0..opts.rounds {
        for k in 0..MODES.len() {
            let i = (k + r) % MODES.len();
            let (Some(client), Some(t), Some(mode)) =
                (clients.get(i), totals.get_mut(i), MODES.get(i))
            else {
                continue;
            };
            if !run_mode(mode) {
                continue;
            }
            let (c0, s0) = (
                procfs::threads_cpu("bench-client", true),
                procfs::threads_cpu("bench-server", false),
            );
            let res = round(client, opts.concurrency, opts.duration).await;
            t.client_cpu += procfs::threads_cpu("bench-client", true) - c0;
            t.server_cpu += procfs::threads_cpu("bench-server", false) - s0;
            if opts.print {
                eprintln!(
                    "round {} grpc  {:<12}: {:>8.0} req/s, {} errors",
                    r + 1,
                    MODES.get(i).copied().unwrap_or(""),
                    res.latencies_us.len() as f64 / res.elapsed.as_secs_f64().max(1e-9),
                    res.errors
                );
            }
            t.round_rps
                .push(res.latencies_us.len() as f64 / res.elapsed.as_secs_f64().max(1e-9));
            t.latencies.extend(res.latencies_us);
            t.errors += res.errors;
            t.elapsed += res.elapsed;
        }
    }
    let mut obj = serde_json::Map::new();
    for (t, mode) in totals.iter_mut().zip(MODES) {
        t.latencies.sort_unstable();
        obj.insert(
            mode.to_string(),
            json!({
                "rps": t.rps().round(),
                "p50_us": t.p(0.5),
                "p99_us": t.p(0.99),
                "errors": t.errors,
                "client_cpu_s": super::round3(t.client_cpu),
                "server_cpu_s": super::round3(t.server_cpu),
            }),
        );
    }
    let [plain_t, balance_t, mesh_t] = &totals;
    let per_round = |a: &Totals, b: &Totals| super::round_ratios(&a.round_rps, &b.round_rps);
    let cpu = |t: &Totals| t.client_cpu / (t.latencies.len().max(1) as f64);
    let ratios = json!({
        "mesh_over_plain_rps": super::round3(mesh_t.rps() / plain_t.rps().max(1e-9)),
        "mesh_over_balance_list_rps": super::round3(mesh_t.rps() / balance_t.rps().max(1e-9)),
        "mesh_over_plain_p99": super::round3(f64::from(mesh_t.p(0.99)) / f64::from(plain_t.p(0.99).max(1))),
        "mesh_over_plain_rps_median": super::round3(super::median(&per_round(mesh_t, plain_t))),
        "mesh_over_balance_list_rps_median": super::round3(super::median(&per_round(mesh_t, balance_t))),
        "plain_over_mesh_client_cpu": super::round3(cpu(plain_t) / cpu(mesh_t).max(1e-12)),
        "balance_list_over_mesh_client_cpu": super::round3(cpu(balance_t) / cpu(mesh_t).max(1e-12)),
    });
    if opts.print {
        print_table(&totals, &ratios, opts);
    }
    obj.insert("ratios".into(), ratios);
    Ok(Value::Object(obj))
}

fn print_table(totals: &[Totals; 3], ratios: &Value, opts: &Options) {
    println!(
        "\ngrpc (unary SayHello): concurrency {}, {} x {:?} rounds, server workers {}",
        opts.concurrency, opts.rounds, opts.duration, opts.server_workers
    );
    println!(
        "{:<13} {:>9} {:>8} {:>8} {:>7} {:>9} {:>10} {:>9}",
        "mode", "req/s", "p50 us", "p99 us", "errors", "client s", "client us", "server s"
    );
    for (t, mode) in totals.iter().zip(MODES) {
        let n = t.latencies.len().max(1) as f64;
        println!(
            "{:<13} {:>9.0} {:>8} {:>8} {:>7} {:>9.2} {:>10.1} {:>9.2}",
            mode,
            t.rps(),
            t.p(0.5),
            t.p(0.99),
            t.errors,
            t.client_cpu,
            t.client_cpu * 1e6 / n,
            t.server_cpu
        );
    }
    println!("ratios: {ratios}");
}

async fn wait_ready(client: &Client, within: Duration) -> bool {
    let mut client = client.clone();
    let end = Instant::now() + within;
    while Instant::now() < end {
        if client.call().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `concurrency` tasks calling for `duration`.
async fn round(client: &Client, concurrency: usize, duration: Duration) -> load::Round {
    let start = Instant::now();
    let deadline = Arc::new(start + duration);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut client = client.clone();
        let deadline = deadline.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= *deadline {
                    break;
                }
                if client.call().await {
                    let us = t0.elapsed().as_micros();
                    latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut out = load::Round::default();
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            out.latencies_us.extend(latencies);
            out.errors += errors;
        }
    }
    out.elapsed = start.elapsed();
    out
}
