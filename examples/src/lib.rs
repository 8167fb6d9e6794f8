//! # mesh-examples: runnable services and tools
//!
//! Documentation by example: the binaries use only the public API a user
//! would use.
//!
//! | binary | what it shows |
//! | --- | --- |
//! | `news-service` | a server: [`mesh_tower::server::ServerLayer`] for golden signals and trace context, `/metrics` on `MESH_METRICS_ADDR`, failure injection ([`faults`]) |
//! | `app-ui` | a client: [`mesh_tower::Mesh::from_env`] and `mesh.client("news-service")` inside axum handlers ([`ui`]) |
//! | `greeter-server` | the canonical gRPC helloworld server (tonic, `helloworld.Greeter/SayHello`) with failure injection (`--fail-rate` answers UNAVAILABLE, `--delay`) |
//! | `greeter-client` | a generated tonic client through the mesh: `GreeterClient::new(mesh.grpc_channel("greeter"))`, summary in `meshctl call --json`'s shape |
//! | `mesh-demo` | the whole picture in one command: instances, a 90/10 split, retries, outlier ejection and a live golden-signal table ([`demo`]) |
//!
//! The handlers live in this library ([`news`], [`ui`]) so that `mesh-demo`
//! runs the very same services in-process.

pub mod demo;
pub mod faults;
pub mod news;
pub mod ui;

/// Parses a duration flag such as `200ms`, `5s` or `1m` (the config's
/// syntax), for `clap`'s `value_parser`.
pub fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    mesh_core::config::parse_duration(text).map_err(|e| e.to_string())
}

/// Parses a probability flag (`0.3`), for `clap`'s `value_parser`.
pub fn parse_rate_arg(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        Ok(rate) => Err(format!("{rate} is not between 0 and 1")),
        Err(e) => Err(format!("`{text}` is not a number: {e}")),
    }
}
