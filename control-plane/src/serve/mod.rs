//! `meshctl serve`: opens the store, starts the REST API and the xDS server.
//!
//! [`start`] does, in order, and stops at the first failure with an error
//! that says what to fix:
//!
//! 1. refuses a non-loopback listen address without a token (unless
//!    `insecure`): the API changes what every service in the mesh does;
//! 2. reads and validates the `--config` file, if any (an invalid file is
//!    [`ServeError::Config`] with every error, before anything is touched);
//! 3. opens the SQLite store in the data directory (locked for this process;
//!    a locked or corrupt file is an error naming the file), expires
//!    registrations whose TTL ran out while stopped, and loads the running
//!    config;
//! 4. applies the `--config` file, as a new version if it differs from the
//!    running config (so restarting with the same file adds nothing);
//! 5. binds both addresses (port 0 picks a free port; [`Running`] tells which),
//!    starts the API, the xDS server, TTL expiry and DNS watches.
//!
//! [`Running::stop`] shuts everything down: the HTTP server finishes its
//! requests, the xDS server closes its streams, and the store is closed
//! (releasing its lock).

mod background;
pub mod control;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use mesh_core::config::{self, ConfigErrors, Format};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::state::{SnapshotRx, XdsStatus};
use crate::store::{Store, StoreError};

pub use control::{Applied, ChangeError, ControlPlane, OpenError};

/// Default HTTP (REST API, `/metrics`, `/healthz`) address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:15000";
/// Default gRPC (xDS) address.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:15010";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "mesh-data";

/// What `meshctl serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the SQLite database lives.
    pub data_dir: PathBuf,
    /// REST API address.
    pub http_addr: SocketAddr,
    /// xDS address.
    pub grpc_addr: SocketAddr,
    /// Bearer token required for writes.
    pub token: Option<String>,
    /// Allow a non-loopback address without a token.
    pub insecure: bool,
    /// A config file applied at start.
    pub config: Option<PathBuf>,
    /// DNS server for services with `dns:` (`MESH_DNS_SERVER`); `None`: the system's.
    pub dns_server: Option<SocketAddr>,
}

/// Why `meshctl serve` could not start (or failed while running).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token and without `--insecure`.
    #[error(
        "refusing to listen on {addr} (not a loopback address) without a token: \
         set --token (MESH_CP_TOKEN), or pass --insecure to accept unauthenticated writes"
    )]
    NeedsToken {
        /// The address.
        addr: SocketAddr,
    },
    /// The `--config` file could not be read.
    #[error("cannot read the config file {}", file.display())]
    ReadConfig {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `--config` file is invalid.
    #[error("the config file is invalid:\n{0}")]
    Config(ConfigErrors),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored state could not be loaded.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Applying the `--config` file failed.
    #[error("cannot apply the config file")]
    Apply(#[source] ChangeError),
    /// An address could not be bound.
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        /// `http` or `grpc`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("the {what} server failed: {message}")]
    Server {
        /// `http` or `grpc`.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// A running control plane.
#[derive(Debug)]
pub struct Running {
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    control: Arc<ControlPlane>,
    status: Arc<XdsStatus>,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<Result<(), String>>,
    xds: JoinHandle<Result<(), String>>,
    background: Vec<JoinHandle<()>>,
}

/// Starts the control plane (see the module docs).
pub async fn start(opts: ServeOptions) -> Result<Running, ServeError> {
    if opts.token.is_none() && !opts.insecure {
        for addr in [opts.http_addr, opts.grpc_addr] {
            if !addr.ip().is_loopback() {
                return Err(ServeError::NeedsToken { addr });
            }
        }
    }
    let initial = match &opts.config {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|source| ServeError::ReadConfig {
                file: file.clone(),
                source,
            })?;
            let format = Format::from_path(file);
            let origin = file.display().to_string();
            config::parse_str(&text, format, &origin).map_err(ServeError::Config)?;
            Some((text, format, origin))
        }
        None => None,
    };
    let store = Store::open_dir(&opts.data_dir)?;
    let control = Arc::new(ControlPlane::open(store, SystemTime::now())?);
    if let Some((text, format, origin)) = initial {
        control
            .apply(&text, format, &format!("--config {origin}"))
            .map_err(ServeError::Apply)?;
    }
    let bind = |what: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { what, addr, source })
    };
    let http_listener = bind("http", opts.http_addr).await?;
    let grpc_listener = bind("grpc", opts.grpc_addr).await?;
    let local = |what: &'static str, l: &TcpListener, addr: SocketAddr| {
        l.local_addr()
            .map_err(|source| ServeError::Bind { what, addr, source })
    };
    let http_addr = local("http", &http_listener, opts.http_addr)?;
    let grpc_addr = local("grpc", &grpc_listener, opts.grpc_addr)?;

    let status = Arc::new(XdsStatus::default());
    let (shutdown, _) = watch::channel(false);
    let router = api::router(ApiState::new(
        control.clone(),
        status.clone(),
        opts.token.clone(),
    ));
    let http_shutdown = signal(&shutdown);
    let http = tokio::spawn(async move {
        axum::serve(http_listener, router)
            .with_graceful_shutdown(http_shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    let xds = start_xds(
        grpc_listener,
        control.subscribe(),
        status.clone(),
        signal(&shutdown),
    );
    let background = vec![
        tokio::spawn(background::expire(control.clone())),
        tokio::spawn(background::dns(control.clone(), opts.dns_server)),
    ];
    Ok(Running {
        http_addr,
        grpc_addr,
        control,
        status,
        shutdown,
        http,
        xds,
        background,
    })
}

/// Starts the xDS server ([`crate::xds::serve`]) on `listener`.
fn start_xds(
    listener: TcpListener,
    snapshots: SnapshotRx,
    status: Arc<XdsStatus>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        crate::xds::serve(listener, snapshots, status, shutdown)
            .await
            .map_err(|e| crate::api::error_chain(&e))
    })
}

/// A future that resolves once `stop` is called.
fn signal(tx: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = tx.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl Running {
    /// The bound HTTP address (the real port when 0 was asked).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound gRPC (xDS) address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The core: store, running state, publisher.
    pub fn control(&self) -> &Arc<ControlPlane> {
        &self.control
    }

    /// What the xDS server reports.
    pub fn status(&self) -> &Arc<XdsStatus> {
        &self.status
    }

    /// Waits until `signal` resolves or a server fails, then stops.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServeError> {
        let failed = tokio::select! {
            () = signal => None,
            r = &mut self.http => Some(("http", r)),
            r = &mut self.xds => Some(("grpc", r)),
        };
        if let Some((what, result)) = failed {
            self.stop().await?;
            let message = match result {
                Ok(Ok(())) => "stopped unexpectedly".to_string(),
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
            };
            return Err(ServeError::Server { what, message });
        }
        self.stop().await
    }

    /// Stops everything and closes the store.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        for task in &self.background {
            task.abort();
        }
        let join = |what: &'static str, r: Result<Result<(), String>, tokio::task::JoinError>| {
            match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(ServeError::Server { what, message }),
                // Already finished and collected by `run_until`, or cancelled.
                Err(_) => Ok(()),
            }
        };
        let http = if self.http.is_finished() {
            Ok(())
        } else {
            join("http", self.http.await)
        };
        let xds = if self.xds.is_finished() {
            Ok(())
        } else {
            join("grpc", self.xds.await)
        };
        for task in self.background {
            let _ = task.await;
        }
        http.and(xds)
    }
}
