//! `app-ui`: an example web app calling `news-service` through the mesh.
//!
//! ```sh
//! MESH_ENDPOINTS_NEWS_SERVICE=127.0.0.1:8081,127.0.0.1:8082 MESH_LISTEN=127.0.0.1:8080 \
//!     cargo run -p mesh-examples --bin app-ui
//! curl http://127.0.0.1:8080/            # HTML with the news
//! curl http://127.0.0.1:8080/api/news    # JSON: version, address, served_by, attempts, items
//! ```
//!
//! Where news-service is, and how to call it (routes, splits, retries,
//! timeouts, outlier detection), comes from the environment:
//! `MESH_CONFIG=examples/mesh.yaml` or `MESH_ENDPOINTS_NEWS_SERVICE`.
//! `MESH_LISTEN` (default `127.0.0.1:8080`; port 0 picks one),
//! `MESH_SERVICE` (default `app-ui`), `MESH_METRICS_ADDR` (Prometheus
//! `/metrics`). Prints `app-ui listening on <addr>` once it accepts.
//!
//! ## mTLS
//!
//! With `MESH_TLS_CERT`, `MESH_TLS_KEY` and `MESH_TLS_CA` set, app-ui calls
//! news-service over mTLS with its own certificate (verifying that the
//! server is `spiffe://<trust_domain>/ns/default/svc/news-service`), and
//! serves its own port in `MESH_TLS_MODE` (default `strict`) under the
//! intentions of `MESH_CONFIG` (`mesh_tower::authz`).

use std::process::ExitCode;

use mesh_core::config::MeshEnv;
use mesh_examples::ui;
use mesh_tower::server::ServerLayer;
use mesh_tower::{BoxError, Mesh, tls};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("app-ui: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let env = MeshEnv::from_vars_os(std::env::vars_os())?;
    let service = env.service.clone().unwrap_or_else(|| "app-ui".into());
    let listen = env.listen.unwrap_or(([127, 0, 0, 1], 8080).into());

    // The whole mesh from the environment: config (watched), endpoints,
    // DNS, /metrics when MESH_METRICS_ADDR is set, mTLS with MESH_TLS_*.
    let mesh = Mesh::builder()
        .env(&env)
        .local_service(service.clone())
        .build()?;
    // One client per upstream; cheap to clone into every handler.
    let news = mesh.client("news-service");

    let metrics = mesh.metrics().clone();
    let mut app =
        ui::router(news).layer(ServerLayer::new(metrics.clone(), metrics.service(service)));
    if mesh.tls().is_some() {
        // Intentions with the caller's verified identity, outermost.
        app = app.layer(mesh.authz_layer()?);
    }

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let acceptor = mesh.acceptor();
    if mesh.tls().is_some() {
        eprintln!("app-ui: mTLS mode {:?}", acceptor.mode());
    }
    println!("app-ui listening on {}", listener.local_addr()?);
    // Plaintext without MESH_TLS_*. Ctrl-C: stop accepting, finish the
    // requests in flight, exit.
    tls::serve(listener, acceptor, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
