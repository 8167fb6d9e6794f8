//! `greeter-server`: the canonical gRPC helloworld server
//! (`helloworld.Greeter/SayHello`), with failure injection, to try the
//! mesh's gRPC client against.
//!
//! ```sh
//! MESH_LISTEN=127.0.0.1:50051 cargo run -p mesh-examples --bin greeter-server -- --fail-rate 0.3
//! grpcurl -plaintext -d '{"name":"you"}' 127.0.0.1:50051 helloworld.Greeter/SayHello
//! ```
//!
//! Environment: `MESH_LISTEN` (default `127.0.0.1:50051`; port 0 picks one),
//! `MESH_SERVICE` (its name in metrics, default `greeter`),
//! `MESH_METRICS_ADDR` (serve Prometheus `/metrics` there:
//! `grpc_server_call_duration_seconds` by method and status).
//! Prints `greeter-server listening on <addr>` once it accepts. The reply
//! names the server (`Hello NAME from ADDR`), so a client sees who served it.
//!
//! It serves `grpc.health.v1.Health` too (`""` and `helloworld.Greeter`).
//! On SIGTERM or Ctrl-C it turns NOT_SERVING, keeps answering for the
//! `--drain` period so health-checking clients move away, then exits:
//!
//! ```sh
//! grpc-health-probe -addr 127.0.0.1:50051 -service helloworld.Greeter
//! ```
//!
//! ## mTLS
//!
//! With `MESH_TLS_CERT`, `MESH_TLS_KEY` and `MESH_TLS_CA` set, it serves
//! gRPC over mTLS in `MESH_TLS_MODE` (`strict` by default), and each call
//! carries the caller's SPIFFE ID ([`PeerIdentity`](mesh_tower::ext::PeerIdentity)),
//! which the intentions of `MESH_CONFIG` (`mesh_tower::authz`) judge: a
//! denied call gets `PERMISSION_DENIED`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mesh_core::config::MeshEnv;
use mesh_examples::faults::{Fault, Faults};
use mesh_examples::{parse_duration_arg, parse_rate_arg};
use mesh_tonic::health::{Health, shutdown_signal};
use mesh_tonic::server::GrpcServerLayer;
use mesh_tower::metrics::{Metrics, prometheus};
use mesh_tower::tls::{self, PeerIdentityLayer};
use mesh_tower::{BoxError, Mesh};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The code generated from `helloworld.proto` (see `build.rs`).
mod helloworld {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("helloworld");
}

use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// Failure injection, for tests and demos.
#[derive(Debug, Parser)]
#[command(version, about = "Example gRPC greeter (failure injection included)")]
struct Args {
    /// Answer this fraction of calls with UNAVAILABLE (0..1).
    #[arg(long, default_value = "0", value_parser = parse_rate_arg)]
    fail_rate: f64,
    /// Delay every answer this long (e.g. 200ms).
    #[arg(long, value_parser = parse_duration_arg)]
    delay: Option<Duration>,
    /// Seed of the fault decisions (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// On SIGTERM/Ctrl-C: how long to stay up answering NOT_SERVING to
    /// health checks (and serving calls) before exiting.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    drain: Duration,
}

/// One greeter instance: its address (for the reply) and its faults.
struct Greeting {
    address: SocketAddr,
    faults: Faults,
}

#[tonic::async_trait]
impl Greeter for Greeting {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        tokio::time::sleep(self.faults.delay()).await;
        // UNAVAILABLE before any message (a "trailers-only" answer): the
        // mesh retries it when the service's retry policy has `unavailable`.
        if self.faults.decide() == Fault::Fail {
            return Err(Status::unavailable("injected failure"));
        }
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name} from {}", self.address),
        }))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greeter-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    // The mesh's environment contract: MESH_LISTEN.
    let env = MeshEnv::from_vars_os(std::env::vars_os())?;
    let listen = env.listen.unwrap_or(([127, 0, 0, 1], 50051).into());
    let service = env.service.clone().unwrap_or_else(|| "greeter".into());

    // With MESH_METRICS_ADDR set, Prometheus /metrics (see news-service).
    let _telemetry = prometheus::init_from_env().await?;
    let metrics = Metrics::global();
    // MESH_TLS_* (mTLS material), MESH_CONFIG (intentions); /metrics is
    // served above.
    let mut mesh_env = env.clone();
    mesh_env.metrics_addr = None;
    let mesh = Mesh::builder()
        .env(&mesh_env)
        .local_service(service.clone())
        .metrics(metrics.clone())
        .build()?;
    let (health, health_service) = Health::new();
    health.serving::<GreeterServer<Greeting>>().await;

    let faults = Faults::new(args.seed.unwrap_or_else(Faults::random_seed));
    faults.set_fail_rate(args.fail_rate);
    faults.set_delay(args.delay.unwrap_or_default());

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let drain = args.drain;
    let shutdown = health.shutdown_after(
        async move {
            shutdown_signal().await;
            eprintln!("greeter-server: shutting down (NOT_SERVING, draining {drain:?})");
        },
        drain,
    );
    let greeter = GreeterServer::new(Greeting { address, faults });
    if mesh.tls().is_none() {
        println!("greeter-server listening on {address}");
        Server::builder()
            .layer(GrpcServerLayer::new(&metrics, service))
            .add_service(health_service)
            .add_service(greeter)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
            .await?;
        return Ok(());
    }
    let acceptor = mesh.acceptor();
    eprintln!("greeter-server: mTLS mode {:?}", acceptor.mode());
    println!("greeter-server listening on {address}");
    // The caller's SPIFFE ID from the handshake into PeerIdentity, for the
    // layers after it and the handlers.
    let authz = mesh.authz_layer()?;
    Server::builder()
        .layer(PeerIdentityLayer)
        // Intentions (MESH_CONFIG): a denied call gets PERMISSION_DENIED.
        .layer(authz)
        .layer(GrpcServerLayer::new(&metrics, service))
        .add_service(health_service)
        .add_service(greeter)
        .serve_with_incoming_shutdown(tls::incoming(listener, acceptor), shutdown)
        .await?;
    Ok(())
}
