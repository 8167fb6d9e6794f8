//! A ready-made `grpc.health.v1.Health` service, wired to the server's
//! lifecycle.
//!
//! Health-checking clients (the mesh's own active health checks, Envoy,
//! Kubernetes' gRPC probes, stock gRPC clients with `healthCheckConfig`)
//! ask `grpc.health.v1.Health/Check` or `Watch` whether a server takes
//! traffic. [`Health`] answers for the server as a whole (service `""`) and
//! for each service registered with it:
//!
//! - `SERVING` while the server runs;
//! - `NOT_SERVING` as soon as graceful shutdown begins, so clients stop
//!   sending new calls here while the server still answers the ones in
//!   flight (and any that arrive before the clients notice);
//! - after a drain period, the server stops. Open `Watch` streams are ended
//!   first: a graceful shutdown waits for every stream, and a `Watch` never
//!   ends by itself.
//!
//! [`Health::shutdown_after`] is that sequence as the shutdown future tonic
//! takes, and [`shutdown_signal`] the usual trigger (SIGTERM or Ctrl-C):
//!
//! ```no_run
//! use std::time::Duration;
//! use mesh_tonic::health::{Health, shutdown_signal};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (health, health_service) = Health::new();
//! // health.serving::<GreeterServer<MyGreeter>>().await;
//! tonic::transport::Server::builder()
//!     .add_service(health_service)
//!     // .add_service(GreeterServer::new(MyGreeter))
//!     .serve_with_shutdown(
//!         "127.0.0.1:50051".parse()?,
//!         health.shutdown_after(shutdown_signal(), Duration::from_secs(1)),
//!     )
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Built on the `tonic-health` crate (its generated service and status
//! channels); this module adds the registry of served names and the
//! shutdown sequence.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::{HealthReporter, HealthService};

/// The `grpc.health.v1.Health` service to add to a tonic server.
pub type HealthServer = tonic_health::pb::health_server::HealthServer<HealthService>;

/// The health state of one server: cloneable, clones share it.
#[derive(Debug, Clone)]
pub struct Health {
    reporter: HealthReporter,
    /// Service names registered, `""` (the whole server) first.
    names: Arc<Mutex<Vec<String>>>,
}

impl Health {
    /// A health state where the whole server (`""`) is `SERVING`, and the
    /// service that answers for it.
    pub fn new() -> (Health, HealthServer) {
        let reporter = HealthReporter::new();
        let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        let health = Health {
            reporter,
            names: Arc::new(Mutex::new(vec![String::new()])),
        };
        (health, service)
    }

    /// Registers the service implemented by `S` (its gRPC name, e.g.
    /// `helloworld.Greeter`) as `SERVING`.
    pub async fn serving<S: NamedService>(&self) {
        self.serving_named(S::NAME).await;
    }

    /// Registers service `name` as `SERVING`.
    pub async fn serving_named(&self, name: &str) {
        {
            let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        self.reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }

    /// The registered service names, `""` first.
    pub fn names(&self) -> Vec<String> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the whole server and every registered service to `status`.
    pub async fn set_all(&self, status: ServingStatus) {
        for name in self.names() {
            self.reporter.set_service_status(&name, status).await;
        }
    }

    /// The first step of a graceful shutdown: everything `NOT_SERVING`.
    pub async fn begin_shutdown(&self) {
        self.set_all(ServingStatus::NotServing).await;
    }

    /// The whole shutdown sequence: `NOT_SERVING`, then `drain` for the
    /// clients to notice and move away, then every `Watch` stream is ended
    /// (so the server's graceful shutdown does not wait on them; `Check`
    /// answers NOT_FOUND from then on).
    pub async fn drain(&self, drain: Duration) {
        self.begin_shutdown().await;
        tokio::time::sleep(drain).await;
        let mut reporter = self.reporter.clone();
        for name in self.names() {
            reporter.clear_service_status(&name).await;
        }
    }

    /// A shutdown future for tonic's `serve_with_shutdown`: waits for
    /// `signal`, then runs [`drain`](Self::drain); the server stops when it
    /// resolves.
    pub fn shutdown_after<F>(&self, signal: F, drain: Duration) -> impl Future<Output = ()> + use<F>
    where
        F: Future<Output = ()>,
    {
        let health = self.clone();
        async move {
            signal.await;
            health.drain(drain).await;
        }
    }
}

/// Resolves on SIGTERM (Unix) or Ctrl-C, the usual request to stop. If a
/// handler cannot be installed, that signal is ignored (the other still
/// works).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
