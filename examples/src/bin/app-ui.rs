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

use std::process::ExitCode;

use mesh_core::config::MeshEnv;
use mesh_examples::ui;
use mesh_tower::server::ServerLayer;
use mesh_tower::{BoxError, Mesh};

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
    let service = env.service.unwrap_or_else(|| "app-ui".into());
    let listen = env.listen.unwrap_or(([127, 0, 0, 1], 8080).into());

    // The whole mesh from the environment: config (watched), endpoints,
    // DNS, and /metrics when MESH_METRICS_ADDR is set.
    let mesh = Mesh::from_env()?;
    // One client per upstream; cheap to clone into every handler.
    let news = mesh.client("news-service");

    let metrics = mesh.metrics().clone();
    let app = ui::router(news).layer(ServerLayer::new(metrics.clone(), metrics.service(service)));

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("app-ui listening on {}", listener.local_addr()?);
    // Ctrl-C: stop accepting, finish the requests in flight, exit.
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
