//! `greeter-client`: a generated tonic client calling `greeter` through the
//! mesh, with a summary of what happened.
//!
//! ```sh
//! cat > mesh.yaml <<'YAML'
//! services:
//!   greeter:
//!     protocol: grpc
//!     retry: { attempts: 3, on: [unavailable] }
//!     endpoints: [{ address: 127.0.0.1:50051 }, { address: 127.0.0.1:50052 }]
//! YAML
//! MESH_CONFIG=mesh.yaml cargo run -p mesh-examples --bin greeter-client -- \
//!     --requests 100 --concurrency 4 --json
//! ```
//!
//! The mesh is configured from the environment (`MESH_CONFIG`, ...), as any
//! mesh application; the only mesh line in the calling code is
//! `GreeterClient::new(mesh.grpc_channel("greeter"))`.
//!
//! The summary (text, or one JSON object with `--json`) has the keys of
//! `meshctl call --json`: `requests`, `succeeded`, `failed`, `status` (by
//! gRPC code name: `OK`, `UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...),
//! `endpoints` (successful calls by the endpoint that served them, from the
//! mesh's `ServedBy` response extension), `retries` (sum of `Attempts - 1`
//! over successful calls) and `latency_ms` (`p50`, `p90`, `p99`, `max`).
//! A failed call comes back as a bare `Status`, so it is counted in `status`
//! and latency only.
//!
//! Exit status: 0 when every call succeeded, 1 otherwise, 2 on a usage or
//! configuration error.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mesh_core::config::MeshEnv;
use mesh_tonic::{MeshChannel, MeshGrpcExt};
use mesh_tower::Mesh;
use mesh_tower::ext::{Attempts, ServedBy};
use serde_json::{Value, json};
use tonic::Code;

/// The code generated from `helloworld.proto` (see `build.rs`).
mod helloworld {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("helloworld");
}

use helloworld::HelloRequest;
use helloworld::greeter_client::GreeterClient;

/// Exit status of a usage or configuration error (clap's own, too).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(version, about = "Calls helloworld.Greeter/SayHello through the mesh")]
struct Args {
    /// Calls to make in all.
    #[arg(long, default_value = "10")]
    requests: u64,
    /// Calls in flight at once.
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// The name to greet.
    #[arg(long, default_value = "world")]
    name: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What the calls of one worker (or of all, merged) came to.
#[derive(Debug, Default)]
struct Summary {
    succeeded: u64,
    failed: u64,
    status: BTreeMap<&'static str, u64>,
    endpoints: BTreeMap<String, u64>,
    retries: u64,
    latencies: Vec<Duration>,
}

impl Summary {
    fn merge(&mut self, other: Summary) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        for (k, v) in other.status {
            *self.status.entry(k).or_default() += v;
        }
        for (k, v) in other.endpoints {
            *self.endpoints.entry(k).or_default() += v;
        }
        self.retries += other.retries;
        self.latencies.extend(other.latencies);
    }

    /// The `meshctl call --json` shape.
    fn to_json(&self) -> Value {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let ms = |q: f64| {
            // Nearest rank; 0 when nothing was measured.
            let rank = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1);
            sorted
                .get(rank)
                .map_or(0.0, |d| d.as_micros() as f64 / 1000.0)
        };
        json!({
            "requests": self.succeeded + self.failed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "status": self.status,
            "endpoints": self.endpoints,
            "retries": self.retries,
            "latency_ms": { "p50": ms(0.50), "p90": ms(0.90), "p99": ms(0.99), "max": ms(1.0) },
        })
    }
}

/// One worker: takes call numbers from `next` until `total` are taken.
async fn worker(channel: MeshChannel, name: String, next: Arc<AtomicU64>, total: u64) -> Summary {
    let mut client = GreeterClient::new(channel);
    let mut summary = Summary::default();
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let started = Instant::now();
        let request = HelloRequest { name: name.clone() };
        match client.say_hello(request).await {
            Ok(response) => {
                summary.succeeded += 1;
                *summary
                    .status
                    .entry(mesh_tonic::server::code_name(Code::Ok))
                    .or_default() += 1;
                // The mesh says who answered, and after how many attempts.
                if let Some(ServedBy(addr)) = response.extensions().get::<ServedBy>() {
                    *summary.endpoints.entry(addr.to_string()).or_default() += 1;
                }
                if let Some(Attempts(n)) = response.extensions().get::<Attempts>() {
                    summary.retries += u64::from(n.saturating_sub(1));
                }
            }
            Err(status) => {
                summary.failed += 1;
                *summary
                    .status
                    .entry(mesh_tonic::server::code_name(status.code()))
                    .or_default() += 1;
            }
        }
        summary.latencies.push(started.elapsed());
    }
    summary
}

/// An error and its causes, on one line, each said once.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Skip a cause the message already quotes.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The mesh's environment contract (MESH_CONFIG, ...), read without
    // panicking on variables that are not UTF-8.
    let mesh = match MeshEnv::from_vars_os(std::env::vars_os())
        .map_err(|e| chain(&e))
        .and_then(|env| Mesh::builder().env(&env).build().map_err(|e| chain(&e)))
    {
        Ok(mesh) => mesh,
        Err(e) => {
            eprintln!("greeter-client: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let channel = mesh.grpc_channel("greeter");

    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..args.concurrency.min(args.requests.max(1)))
        .map(|_| {
            let work = worker(
                channel.clone(),
                args.name.clone(),
                next.clone(),
                args.requests,
            );
            tokio::spawn(work)
        })
        .collect();
    let mut summary = Summary::default();
    for w in workers {
        match w.await {
            Ok(part) => summary.merge(part),
            Err(e) => {
                eprintln!("greeter-client: a worker failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let report = summary.to_json();
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} calls: {} succeeded, {} failed, {} retries",
            summary.succeeded + summary.failed,
            summary.succeeded,
            summary.failed,
            summary.retries
        );
        println!("status:    {}", report["status"]);
        println!("endpoints: {}", report["endpoints"]);
        println!("latency:   {} (ms)", report["latency_ms"]);
    }
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
