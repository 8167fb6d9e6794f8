//! `news-service`: an example upstream served with the mesh's server layer.
//!
//! ```sh
//! MESH_LISTEN=127.0.0.1:8081 NEWS_VERSION=v1 MESH_METRICS_ADDR=127.0.0.1:9464 \
//!     cargo run -p mesh-examples --bin news-service -- --fail-rate 0.3
//! curl -i http://127.0.0.1:8081/news        # JSON; header x-mesh-version: v1
//! curl http://127.0.0.1:9464/metrics        # http_server_request_duration_seconds ...
//! ```
//!
//! Environment: `MESH_SERVICE` (default `news-service`), `MESH_LISTEN`
//! (default `127.0.0.1:8081`; port 0 picks one), `NEWS_VERSION` (default
//! `v1`), `MESH_METRICS_ADDR` (serve Prometheus `/metrics` there). Prints
//! `news-service <version> listening on <addr>` once it accepts.
//!
//! ## mTLS
//!
//! With `MESH_TLS_CERT`, `MESH_TLS_KEY` and `MESH_TLS_CA` set, the app port
//! speaks mTLS in `MESH_TLS_MODE` (`strict`, the default: a client
//! certificate from the CA is required; `permissive`: plaintext too;
//! `disabled`), the certificate files are reloaded on change, and, with
//! `MESH_METRICS_ADDR` set, the app port also answers `GET /metrics` (so a
//! scraper with a mesh identity scrapes over mTLS; the plaintext metrics
//! listener stays). Every request on the app port then goes through the
//! intentions of `MESH_CONFIG` (`mesh_tower::authz`): with
//! `examples/mesh.yaml`, `app-ui` may call it, `prometheus` may only
//! `GET /metrics`, anyone else gets 403.
//!
//! ```sh
//! MESH_TLS_CERT=news.crt MESH_TLS_KEY=news.key MESH_TLS_CA=ca.pem \
//!     MESH_LISTEN=127.0.0.1:8443 cargo run -p mesh-examples --bin news-service
//! curl --cacert ca.pem --cert app-ui.crt --key app-ui.key https://127.0.0.1:8443/news
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mesh_core::config::MeshEnv;
use mesh_examples::faults::Faults;
use mesh_examples::news::{self, Instance};
use mesh_examples::{parse_duration_arg, parse_rate_arg};
use mesh_tower::metrics::{Metrics, prometheus};
use mesh_tower::server::ServerLayer;
use mesh_tower::tls;
use mesh_tower::{BoxError, Mesh};

/// Failure injection, for tests and demos.
#[derive(Debug, Parser)]
#[command(version, about = "Example news service (failure injection included)")]
struct Args {
    /// Answer this fraction of requests with 503 (0..1).
    #[arg(long, default_value = "0", value_parser = parse_rate_arg)]
    fail_rate: f64,
    /// Never answer this fraction of requests (0..1).
    #[arg(long, default_value = "0", value_parser = parse_rate_arg)]
    hang_rate: f64,
    /// Delay every answer this long (e.g. 200ms).
    #[arg(long, value_parser = parse_duration_arg)]
    delay: Option<Duration>,
    /// Seed of the fault decisions (default: random).
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("news-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    // The mesh's environment contract: MESH_SERVICE, MESH_LISTEN, ...
    let env = MeshEnv::from_vars_os(std::env::vars_os())?;
    let service = env.service.clone().unwrap_or_else(|| "news-service".into());
    let listen = env.listen.unwrap_or(([127, 0, 0, 1], 8081).into());
    let version = std::env::var("NEWS_VERSION").unwrap_or_else(|_| "v1".into());

    // Golden signals: with MESH_METRICS_ADDR set, this installs the
    // Prometheus pipeline as the global meter provider and serves /metrics;
    // Metrics::global() then records into it (a no-op otherwise).
    let telemetry = prometheus::init_from_env().await?;
    let metrics = Metrics::global();

    // The rest of the environment (MESH_TLS_*, MESH_CONFIG): the mTLS
    // material and the intentions. /metrics is already served above.
    let mut mesh_env = env.clone();
    mesh_env.metrics_addr = None;
    let mesh = Mesh::builder()
        .env(&mesh_env)
        .local_service(service.clone())
        .metrics(metrics.clone())
        .build()?;

    let faults = Arc::new(Faults::new(args.seed.unwrap_or_else(Faults::random_seed)));
    faults.set_fail_rate(args.fail_rate);
    faults.set_hang_rate(args.hang_rate);
    faults.set_delay(args.delay.unwrap_or_default());

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let mut app = news::router(Instance {
        version: version.clone(),
        address,
        faults,
    });
    if let (Some(_), Some(telemetry)) = (mesh.tls(), &telemetry) {
        app = app.merge(news::metrics_router(telemetry.exposition.clone()));
    }
    // After the routes, so metrics are labelled with the route template.
    let mut app = app.layer(ServerLayer::new(metrics.clone(), metrics.service(service)));
    if mesh.tls().is_some() {
        // Outermost: intentions decide with the caller's verified identity
        // (MESH_CONFIG, followed live) before anything else runs.
        app = app.layer(mesh.authz_layer()?);
    }

    let acceptor = mesh.acceptor();
    if mesh.tls().is_some() {
        eprintln!("news-service: mTLS mode {:?}", acceptor.mode());
    }
    println!("news-service {version} listening on {address}");
    // Plaintext without MESH_TLS_*, else the mode's handshake; each request
    // carries the caller's PeerIdentity.
    tls::serve(listener, acceptor, app, std::future::pending()).await?;
    Ok(())
}
