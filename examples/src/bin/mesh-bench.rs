//! `mesh-bench`: the mesh client against a plain hyper client and an Envoy
//! sidecar pair, on one hyper server over loopback (see BENCHMARKS.md,
//! "mesh-bench").
//!
//! ```text
//! cargo run --release -p mesh-examples --bin mesh-bench -- [--duration 10s] [--concurrency 32] [--json]
//! cargo run --release -p mesh-examples --bin mesh-bench -- --endpoints 1000
//! cargo run --release -p mesh-examples --bin mesh-bench -- --mtls [--duration 5s]
//! cargo run --release -p mesh-examples --bin mesh-bench -- --mesh-endpoints 1 --no-envoy
//! ```
//!
//! The mesh balances over the server's three ports; plain uses the first
//! one, `plain_rr` all three in turn. `--mesh-endpoints 1` puts the mesh on
//! plain's one port: the mesh stack's own cost, without what spreading
//! requests over several connections does to the tail.
//!
//! Ratios: `*_rps` and `*_p99` compare all rounds pooled; `*_median` is the
//! median of the per-round ratios. Each round runs the modes back to back,
//! so the median is robust to the machine's speed drifting between rounds
//! (a slow stretch lands in one mode's pooled tail, not in both).
//!
//! Thread layout (2-core machine): the load generator runs on its own tokio
//! runtime with `--workers` worker threads (default 1, same for every
//! mode), the server on another runtime with `--server-workers` threads
//! (default 1); Envoy A and B each get `--concurrency` = `--workers`
//! worker threads and compete for the same cores.

#[path = "../bench/envoy.rs"]
mod envoy;
#[path = "../bench/grpc.rs"]
mod grpc;
#[path = "../bench/load.rs"]
mod load;
#[path = "../bench/memory.rs"]
mod memory;
#[path = "../bench/mtls.rs"]
mod mtls;
#[path = "../bench/procfs.rs"]
mod procfs;
#[path = "../bench/server.rs"]
mod server;
#[path = "../bench/stack.rs"]
mod stack;

use std::time::Duration;

use clap::Parser;
use load::Target;
use mesh_core::config::{Format, parse_str};
use mesh_tower::metrics::{Metrics, prometheus};
use opentelemetry::metrics::MeterProvider;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn parse_duration(s: &str) -> Result<Duration, String> {
    mesh_core::config::parse_duration(s).map_err(|e| e.to_string())
}

/// mesh client vs plain hyper vs an Envoy sidecar pair.
#[derive(Parser, Debug)]
#[command(name = "mesh-bench")]
struct Args {
    /// Length of each measured round.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent request loops (same for every mode).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Interleaved rounds per mode and protocol (many short rounds: a
    /// shared machine's speed drifts over seconds, and each round's modes
    /// run back to back).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Warm-up per mode and protocol before the first round.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Worker threads of the load generator's runtime (and of each Envoy).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 1)]
    server_workers: usize,
    /// Skip the Envoy pair even when Envoy is installed.
    #[arg(long)]
    no_envoy: bool,
    /// Only these modes (for profiling one of them), e.g. `--only mesh`;
    /// with `--protocol grpc`: `plain`, `balance_list`, `mesh`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// With `--only stack`: how many of the mesh's layers (0-5, see
    /// src/bench/stack.rs).
    #[arg(long, default_value_t = 5)]
    layers: u8,
    /// Only this protocol: `http1`, `http2` or `grpc` (unary gRPC: plain
    /// tonic `Channel`, `Channel::balance_list`, `MeshChannel`).
    #[arg(long)]
    protocol: Option<String>,
    /// How many of the server's three ports the mesh balances over: `1`
    /// separates what the mesh's own stack does to the tail from what
    /// spreading requests over several connections does (the latter
    /// `plain_rr` shows without the mesh).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    mesh_endpoints: u8,
    /// Measure the memory of this many endpoints configured instead (N/10
    /// services x 10 endpoints).
    #[arg(long)]
    endpoints: Option<usize>,
    /// mTLS on both sides instead: the mesh client vs plain hyper + rustls
    /// with the same certificates, then new TLS connections per second
    /// (src/bench/mtls.rs).
    #[arg(long)]
    mtls: bool,
    /// The mesh client's trace mode, as `MESH_TRACE`: `propagate` (the
    /// library's default: only a caller's context, so none here),
    /// `originate` (a new sampled trace per call: the mesh sends what
    /// `plain_tp` sends) or `off`.
    #[arg(long, default_value = "propagate")]
    trace: mesh_core::config::TraceMode,
    /// Internal: serve on this IP (one listener), print the port, run until
    /// killed.
    #[arg(long, hide = true)]
    serve: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Plain,
    /// The plain client sending a fresh W3C `traceparent` per request, as
    /// the mesh does with `--trace originate` (the header's own cost; with
    /// `--only plain_tp`).
    PlainTraced,
    /// The plain client spreading its requests round-robin over the same
    /// three ports the mesh balances over: the baseline for what spreading
    /// itself does to the tail (on by default; `--only plain_rr`).
    PlainSpread,
    Mesh,
    Envoy,
    Stack,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::PlainTraced => "plain_tp",
            Mode::PlainSpread => "plain_rr",
            Mode::Mesh => "mesh",
            Mode::Envoy => "envoy",
            Mode::Stack => "stack",
        }
    }
}

/// Totals of one mode and protocol over all rounds.
#[derive(Default)]
struct Totals {
    latencies: Vec<u32>,
    /// Requests per second of each round, in order.
    round_rps: Vec<f64>,
    /// The p99 latency of each round, in order.
    round_p99: Vec<f64>,
    errors: u64,
    elapsed: Duration,
    client_cpu: f64,
    server_cpu: f64,
    sidecar_cpu: f64,
    rss: u64,
    sidecar_rss: u64,
    /// Connections the server accepted during this mode's rounds.
    accepted: u64,
}

impl Totals {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn p(&self, q: f64) -> u32 {
        load::quantile(&self.latencies, q)
    }
    /// Client CPU seconds per request.
    fn cpu_per_request(&self) -> f64 {
        self.client_cpu / (self.latencies.len().max(1) as f64)
    }
    fn json(&self) -> Value {
        json!({
            "rps": self.rps().round(),
            "p50_us": self.p(0.5),
            "p99_us": self.p(0.99),
            "errors": self.errors,
        })
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mesh_config(addrs: &[std::net::SocketAddr]) -> Result<mesh_core::MeshConfig, BoxError> {
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ address: \"{a}\" }}"))
        .collect();
    let mut yaml = String::from("services:\n");
    for (name, protocol) in [("bench-h1", "http"), ("bench-h2", "http2")] {
        yaml.push_str(&format!(
            "  {name}:\n    protocol: {protocol}\n    endpoints: [{}]\n    load_balancer: least_request\n    timeout: 2s\n    retry: {{ attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, 5xx] }}\n    routes: [{{ name: all, match: {{ path_prefix: / }} }}]\n",
            eps.join(", ")
        ));
    }
    Ok(parse_str(&yaml, Format::Yaml, "mesh-bench")?)
}

struct Envoys {
    pair: envoy::Pair,
}

fn sidecar_cpu(e: Option<&Envoys>) -> f64 {
    e.map_or(0.0, |e| {
        e.pair
            .procs
            .iter()
            .map(|p| procfs::process_cpu(p.pid()))
            .sum()
    })
}

fn sidecar_rss(e: Option<&Envoys>) -> u64 {
    e.map_or(0, |e| {
        e.pair
            .procs
            .iter()
            .map(|p| procfs::status_kb(Some(p.pid()), "VmRSS"))
            .sum()
    })
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if let Some(ip) = &args.serve {
        let server = server::start(ip, 1, 1)?;
        let port = server.addrs.first().map_or(0, |a| a.port());
        println!("{port}");
        loop {
            std::thread::park();
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    if let Some(n) = args.endpoints {
        eprintln!("load average before: {}", loadavg());
        runtime.block_on(memory::run(n, args.json))?;
        return Ok(());
    }
    if args.mtls {
        eprintln!("load average before: {}", loadavg());
        return runtime.block_on(mtls::run(&mtls::Options {
            duration: args.duration,
            concurrency: args.concurrency,
            rounds: args.rounds,
            warmup: args.warmup,
            server_workers: args.server_workers,
            protocol: args.protocol.clone(),
            json: args.json,
            only: args.only.clone(),
            trace: args.trace,
        }));
    }
    let server = server::start("127.0.0.1", 3, args.server_workers.max(1))?;
    runtime.block_on(bench(&args, &server.addrs))
}

async fn bench(args: &Args, addrs: &[std::net::SocketAddr]) -> Result<(), BoxError> {
    let load_before = loadavg();
    let first = *addrs.first().ok_or("no listener")?;
    let (provider, exposition) = prometheus::pipeline(Some("mesh-bench"))?;
    let mesh = mesh_tower::Mesh::builder()
        .config(mesh_config(
            &addrs[..usize::from(args.mesh_endpoints).min(addrs.len())],
        )?)
        .trace(args.trace)
        .metrics(Metrics::new(&provider.meter(mesh_tower::metrics::SCOPE)))
        .local_service("mesh-bench")
        .build()?;
    let no_envoy = args.no_envoy
        || args.protocol.as_deref() == Some("grpc")
        || !(args.only.is_empty() || args.only.iter().any(|o| o == "envoy"));
    let envoys = match (no_envoy, envoy::envoy_path()) {
        (false, Some(path)) => Some(Envoys {
            pair: envoy::start(&path, addrs, args.workers.max(1))?,
        }),
        (false, None) => {
            eprintln!("envoy not found (scripts/install-peers.sh): skipping the sidecar pair");
            None
        }
        (true, _) => None,
    };
    let mut modes = vec![Mode::Plain, Mode::PlainSpread, Mode::Mesh];
    if envoys.is_some() {
        modes.push(Mode::Envoy);
    }
    if args.only.iter().any(|o| o == "stack") {
        modes.push(Mode::Stack);
    }
    if args.only.iter().any(|o| o == "plain_tp") {
        modes.insert(1, Mode::PlainTraced);
    }
    modes.retain(|m| args.only.is_empty() || args.only.iter().any(|o| o == m.name()));
    let protos = [("http1", false), ("http2", true)];
    let mut targets = Vec::new();
    for (proto, h2) in protos {
        if args.protocol.as_deref().is_some_and(|p| p != proto) {
            continue;
        }
        let plain = load::plain_client(h2);
        let mut per_mode = Vec::new();
        for &mode in &modes {
            let target = match mode {
                Mode::Plain => Target::Plain(plain.clone(), format!("http://{first}/").parse()?),
                Mode::PlainTraced => {
                    Target::PlainTraced(plain.clone(), format!("http://{first}/").parse()?)
                }
                Mode::PlainSpread => {
                    let uris = addrs
                        .iter()
                        .map(|a| format!("http://{a}/").parse())
                        .collect::<Result<Vec<http::Uri>, _>>()?;
                    Target::PlainSpread(plain.clone(), uris.into(), 0)
                }
                Mode::Mesh => {
                    let svc = if h2 { "bench-h2" } else { "bench-h1" };
                    Target::Mesh(mesh.client(svc), format!("http://{svc}/").parse()?)
                }
                Mode::Stack => {
                    let svc = if h2 { "bench-h2" } else { "bench-h1" };
                    let config = mesh.config();
                    let service = config.services.get(svc).ok_or("no service config")?;
                    let stack = stack::build(args.layers, h2, service, addrs, mesh.metrics())?;
                    let uri = if args.layers == 0 {
                        format!("http://{first}/")
                    } else {
                        format!("http://{svc}/")
                    };
                    Target::Stack(stack, uri.parse()?)
                }
                Mode::Envoy => {
                    let pair = &envoys.as_ref().ok_or("no envoy")?.pair;
                    let a = if h2 { pair.h2 } else { pair.h1 };
                    Target::Plain(load::plain_client(h2), format!("http://{a}/").parse()?)
                }
            };
            if !load::wait_ready(&target, Duration::from_secs(20)).await {
                return Err(format!("{proto} {} never answered", mode.name()).into());
            }
            load::run(&target, args.concurrency, args.warmup).await;
            per_mode.push((mode, target, Totals::default()));
        }
        targets.push((proto, per_mode));
    }
    for round in 0..args.rounds {
        for (proto, per_mode) in &mut targets {
            let n = per_mode.len();
            for k in 0..n {
                // Rotate the order each round so no mode always goes first.
                let Some((mode, target, totals)) = per_mode.get_mut((k + round) % n) else {
                    continue;
                };
                let e = envoys.as_ref();
                let (c0, s0, x0) = (
                    procfs::threads_cpu("bench-client", true),
                    procfs::threads_cpu("bench-server", false),
                    sidecar_cpu(e),
                );
                let a0 = server::accepted();
                let r = load::run(target, args.concurrency, args.duration).await;
                totals.accepted += server::accepted() - a0;
                totals.client_cpu += procfs::threads_cpu("bench-client", true) - c0;
                totals.server_cpu += procfs::threads_cpu("bench-server", false) - s0;
                if *mode == Mode::Envoy {
                    totals.sidecar_cpu += sidecar_cpu(e) - x0;
                    totals.sidecar_rss = totals.sidecar_rss.max(sidecar_rss(e));
                }
                totals.rss = totals.rss.max(procfs::status_kb(None, "VmRSS"));
                if !args.json {
                    eprintln!(
                        "round {} {proto} {:<5}: {:>8.0} req/s, {} errors",
                        round + 1,
                        mode.name(),
                        r.latencies_us.len() as f64 / r.elapsed.as_secs_f64().max(1e-9),
                        r.errors
                    );
                }
                totals
                    .round_rps
                    .push(r.latencies_us.len() as f64 / r.elapsed.as_secs_f64().max(1e-9));
                let mut sorted = r.latencies_us;
                sorted.sort_unstable();
                totals
                    .round_p99
                    .push(f64::from(load::quantile(&sorted, 0.99)));
                totals.latencies.extend(sorted);
                totals.errors += r.errors;
                totals.elapsed += r.elapsed;
            }
        }
    }
    // gRPC runs with everything, or alone (`--protocol grpc`, where `--only`
    // picks among plain, balance_list and mesh).
    let run_grpc = match args.protocol.as_deref() {
        None => args.only.is_empty(),
        Some(p) => p == "grpc",
    };
    let grpc = match run_grpc {
        true => Some(
            grpc::run(
                &grpc::Options {
                    concurrency: args.concurrency,
                    duration: args.duration,
                    warmup: args.warmup,
                    rounds: args.rounds,
                    server_workers: args.server_workers,
                    print: !args.json,
                    only: args.only.clone(),
                    trace: args.trace,
                },
                mesh.metrics().clone(),
            )
            .await?,
        ),
        false => None,
    };
    let load_after = loadavg();
    let mut out = serde_json::Map::new();
    for (proto, per_mode) in &mut targets {
        for (_, _, t) in per_mode.iter_mut() {
            t.latencies.sort_unstable();
        }
        let get = |m: Mode| per_mode.iter().find(|(x, _, _)| *x == m).map(|(_, _, t)| t);
        let (Some(plain), Some(mesh_t)) = (get(Mode::Plain), get(Mode::Mesh)) else {
            if !args.json {
                print_table(proto, per_mode, &json!({}), args);
            }
            continue;
        };
        let envoy_t = get(Mode::Envoy);
        let spread = get(Mode::PlainSpread);
        let per_round = round_ratios(&mesh_t.round_rps, &plain.round_rps);
        let p99_per_round = round_ratios(&mesh_t.round_p99, &plain.round_p99);
        let mut ratios = json!({
            "mesh_over_plain_rps": round3(mesh_t.rps() / plain.rps().max(1e-9)),
            "mesh_over_plain_p99": round3(f64::from(mesh_t.p(0.99)) / f64::from(plain.p(0.99).max(1))),
            "mesh_over_plain_rps_median": round3(median(&per_round)),
            "mesh_over_plain_p99_median": round3(median(&p99_per_round)),
            "plain_over_mesh_client_cpu": round3(plain.cpu_per_request() / mesh_t.cpu_per_request().max(1e-12)),
        });
        let mut obj = json!({"plain": plain.json(), "mesh": mesh_t.json()});
        obj["mesh"]["endpoints"] = json!(args.mesh_endpoints);
        if let Some(rr) = spread {
            obj["plain_rr"] = rr.json();
            let per_round = round_ratios(&mesh_t.round_rps, &rr.round_rps);
            ratios["mesh_over_plain_rr_rps_median"] = json!(round3(median(&per_round)));
            let p99_per_round = round_ratios(&mesh_t.round_p99, &rr.round_p99);
            ratios["mesh_over_plain_rr_p99_median"] = json!(round3(median(&p99_per_round)));
            ratios["mesh_over_plain_rr_p99"] = json!(round3(
                f64::from(mesh_t.p(0.99)) / f64::from(rr.p(0.99).max(1))
            ));
        }
        if let Some(e) = envoy_t {
            obj["envoy"] = e.json();
            ratios["mesh_over_envoy_rps"] = json!(round3(mesh_t.rps() / e.rps().max(1e-9)));
        }
        obj["ratios"] = ratios.clone();
        if !args.json {
            print_table(proto, per_mode, &ratios, args);
        }
        out.insert((*proto).to_string(), obj);
    }
    if let Some(grpc) = grpc {
        out.insert("grpc".into(), grpc);
    }
    if args.json {
        println!("{}", Value::Object(out));
    } else {
        let series = exposition
            .render()?
            .lines()
            .filter(|l| l.starts_with("http_client_request_duration_seconds_count"))
            .count();
        println!(
            "load average (1/5/15 min): before {load_before}, after {load_after}; \
             mesh metrics: {series} Prometheus duration series recorded"
        );
    }
    drop(mesh);
    drop(envoys);
    let _ = provider.shutdown();
    Ok(())
}

/// `a[i] / b[i]` for each round both have.
fn round_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b.max(1e-9)).collect()
}

/// The median (0 for none).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_table(proto: &str, per_mode: &[(Mode, Target, Totals)], ratios: &Value, args: &Args) {
    println!(
        "\n{proto}: concurrency {}, {} x {:?} rounds, client workers {}, server workers {}, mesh endpoints {}",
        args.concurrency,
        args.rounds,
        args.duration,
        args.workers,
        args.server_workers,
        args.mesh_endpoints
    );
    println!(
        "{:<6} {:>9} {:>8} {:>8} {:>7} {:>9} {:>10} {:>9} {:>10} {:>8} {:>10} {:>6}",
        "mode",
        "req/s",
        "p50 us",
        "p99 us",
        "errors",
        "client s",
        "client us",
        "server s",
        "sidecars s",
        "RSS MB",
        "envoys MB",
        "conns"
    );
    for (mode, _, t) in per_mode {
        let n = t.latencies.len().max(1) as f64;
        println!(
            "{:<6} {:>9.0} {:>8} {:>8} {:>7} {:>9.2} {:>10.1} {:>9.2} {:>10.2} {:>8.1} {:>10.1} {:>6}",
            mode.name(),
            t.rps(),
            t.p(0.5),
            t.p(0.99),
            t.errors,
            t.client_cpu,
            t.client_cpu * 1e6 / n,
            t.server_cpu,
            t.sidecar_cpu,
            t.rss as f64 / 1_048_576.0,
            t.sidecar_rss as f64 / 1_048_576.0,
            t.accepted
        );
    }
    // The tail in more detail (where a p99 difference comes from).
    for (mode, _, t) in per_mode {
        println!(
            "{:<8} latency us: p90 {} p95 {} p99 {} p99.9 {} max {}",
            mode.name(),
            t.p(0.90),
            t.p(0.95),
            t.p(0.99),
            t.p(0.999),
            t.p(1.0)
        );
    }
    println!("ratios: {ratios}");
}
