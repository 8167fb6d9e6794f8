//! Authorization: the server-side layer that enforces intentions (mesh-core's
//! [`Intentions`](mesh_core::intentions::Intentions)) on every request, for
//! axum/hyper and tonic servers alike.
//!
//! # Where it sits
//!
//! ```text
//! TLS accept -> [PeerIdentity] -> AuthzLayer -> ServerLayer -> handler
//! ```
//!
//! The mTLS acceptor puts the caller's verified SPIFFE ID in the request's
//! [`PeerIdentity`](crate::ext::PeerIdentity) extension. [`AuthzLayer`] decides with it: source = the
//! caller (its service and namespace, from
//! `spiffe://<td>/ns/<ns>/svc/<name>`), destination = this server's service
//! (`MESH_SERVICE`, [`crate::Mesh::local_service`]), and the request's
//! method, path (without query) and headers for L7 permissions.
//!
//! # Decisions
//!
//! Consul's precedence, as mesh-core implements it:
//!
//! | the most specific matching intention is | the request is |
//! | --- | --- |
//! | L4 (`action: allow` / `deny`) | allowed / denied by it (deny wins ties) |
//! | L7, a permission matches | allowed / denied by the first matching permission |
//! | L7, no permission matches | decided by `default_policy` (less specific intentions are not consulted) |
//! | none | decided by `default_policy` |
//!
//! **Anonymous callers.** A request without an identity (no
//! [`PeerIdentity`](crate::ext::PeerIdentity), or `PeerIdentity(None)`: plaintext, permissive mode
//! without a client certificate), or with an identity outside our trust
//! domain or not naming a service, is decided as an *anonymous* source: only
//! intentions whose source is `*` can match it, else `default_policy`. So
//! `* -> news-service: deny` shuts out anonymous callers too, while
//! `app-ui -> news-service: allow` never lets one in.
//!
//! # Responses
//!
//! An allowed request goes to the inner service unchanged. A denied one
//! never reaches it:
//!
//! - HTTP: `403 Forbidden`, body `forbidden`;
//! - gRPC (`content-type: application/grpc*`): HTTP 200, trailers-only,
//!   `grpc-status: 7` (PERMISSION_DENIED), `grpc-message: permission denied`.
//!
//! Neither says which rule decided: that goes to the log (a `tracing` line at
//! `info`, rate-limited to [`LINES_PER_SECOND`] a second, with the caller's
//! SPIFFE ID, the destination, method, path and the rule, e.g. `denied by
//! intention #3 (* -> news-service)`) and to the metrics. Allowed requests
//! are logged at `debug`.
//!
//! # Metrics
//!
//! Counters `mesh.authz.allowed` and `mesh.authz.denied`
//! ([`AuthzMetrics`]), with attributes `mesh.service` (this service),
//! `mesh.source` (the caller's SPIFFE ID; empty for an anonymous caller) and
//! `mesh.authz.rule`: `app-ui -> news-service` for an L4 intention,
//! `prometheus -> * permission 0` for an L7 permission, `prometheus -> * no
//! permission` when an L7 intention matched but none of its permissions did,
//! `default` when no intention matched.
//!
//! # Live policy
//!
//! Built with [`AuthzLayer::watch`] (as [`crate::Mesh::authz_layer`] does),
//! the layer follows the mesh's config: each new config is compiled in a
//! background task and swapped in for the following requests. A config whose
//! intentions do not compile is logged and the previous policy stays.
//!
//! # Cost
//!
//! Per request: one lock-free load of the current policy, one mesh-core
//! decision (a few hash lookups, no allocation), one increment of a counter
//! bound per (caller, rule) series (a [`SeriesCache`] of the layer; the
//! attribute values are cached per caller and per rule).
//!
//! [`SeriesCache`]: crate::metrics::SeriesCache
//!
//! ```
//! use axum::{Router, routing::get};
//! use mesh_core::MeshConfig;
//! use mesh_tower::authz::{AuthzLayer, AuthzMetrics};
//!
//! let config = MeshConfig::default(); // default_policy: allow, no intentions
//! let authz = AuthzLayer::from_config("news-service", &config, AuthzMetrics::global())?;
//! let app: Router = Router::new()
//!     .route("/news", get(|| async { "news" }))
//!     .layer(authz);
//! # let _ = app;
//! # Ok::<(), mesh_tower::authz::AuthzError>(())
//! ```

mod engine;
mod future;
mod log;
mod metrics;
mod service;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use mesh_core::MeshConfig;
use mesh_core::intentions::IntentionsError;
use opentelemetry::Value;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tower::Layer;

pub use engine::DEFAULT_RULE;
pub use future::{AuthzBody, ResponseFuture};
pub use log::LINES_PER_SECOND;
pub use metrics::{ALLOWED, AuthzMetrics, DENIED, RULE};
pub use service::Authz;

use engine::Engine;
use log::LogLimit;
use metrics::{Decisions, SourceLabels};

/// The authorization layer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The server does not know its own service (`MESH_SERVICE`).
    #[error(
        "authorization needs this service's name: set MESH_SERVICE (or MeshBuilder::local_service)"
    )]
    NoLocalService,
    /// The config's intentions do not compile.
    #[error("intentions of service `{service}`: {source}")]
    Intentions {
        /// This server's service.
        service: String,
        /// Why.
        #[source]
        source: IntentionsError,
    },
}

/// Enforces intentions on a server; see the [module docs](self). Cheap to
/// clone; clones share the policy, caches and counters.
#[derive(Debug, Clone)]
pub struct AuthzLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) destination: Arc<str>,
    pub(crate) engine: ArcSwap<Engine>,
    pub(crate) metrics: Decisions,
    pub(crate) sources: SourceLabels,
    pub(crate) log: LogLimit,
    /// A config watch not yet followed (no tokio runtime when built): the
    /// first request starts the task.
    pending: Mutex<Option<watch::Receiver<Arc<MeshConfig>>>>,
    /// Whether `pending` holds a watch (read per request without a lock).
    is_pending: AtomicBool,
    /// Dropped with the layer: ends the watch task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

// === impl AuthzLayer ===

impl AuthzLayer {
    /// A fixed policy: the intentions and default policy of `config`, for
    /// service `local_service` (`name` or `namespace/name`).
    pub fn from_config(
        local_service: impl Into<Arc<str>>,
        config: &MeshConfig,
        metrics: AuthzMetrics,
    ) -> Result<AuthzLayer, AuthzError> {
        let destination = local_service.into();
        let engine = compile(&destination, config)?;
        Ok(AuthzLayer {
            shared: Arc::new(Shared::new(destination, engine, metrics, None)),
        })
    }

    /// A live policy following `config`: the current value must compile;
    /// later ones replace it when they compile, and are logged and ignored
    /// when they do not. The watch runs in a tokio task (started now inside
    /// a runtime, else by the first request) that ends with the layer.
    pub fn watch(
        local_service: impl Into<Arc<str>>,
        config: watch::Receiver<Arc<MeshConfig>>,
        metrics: AuthzMetrics,
    ) -> Result<AuthzLayer, AuthzError> {
        let destination = local_service.into();
        let current = config.borrow().clone();
        let engine = compile(&destination, &current)?;
        let shared = Arc::new(Shared::new(destination, engine, metrics, Some(config)));
        shared.start();
        Ok(AuthzLayer { shared })
    }

    /// The service this layer protects.
    pub fn destination(&self) -> &str {
        &self.shared.destination
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz::new(inner, self.shared.clone())
    }
}

fn compile(destination: &str, config: &MeshConfig) -> Result<Engine, AuthzError> {
    Engine::compile(config).map_err(|source| AuthzError::Intentions {
        service: destination.to_string(),
        source,
    })
}

// === impl Shared ===

impl Shared {
    fn new(
        destination: Arc<str>,
        engine: Engine,
        metrics: AuthzMetrics,
        config: Option<watch::Receiver<Arc<MeshConfig>>>,
    ) -> Shared {
        Shared {
            metrics: Decisions::new(&metrics, Value::from(destination.clone())),
            destination,
            engine: ArcSwap::from_pointee(engine),
            sources: SourceLabels::new(),
            log: LogLimit::new(),
            is_pending: AtomicBool::new(config.is_some()),
            pending: Mutex::new(config),
            stop: Mutex::new(None),
        }
    }

    /// Starts following the config, once, if there is a runtime.
    pub(crate) fn start(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(mut rx) = self.pending.lock().take() else {
            return;
        };
        self.is_pending.store(false, Ordering::Release);
        let (stop_tx, mut stop_rx) = oneshot::channel();
        *self.stop.lock() = Some(stop_tx);
        let weak = Arc::downgrade(self);
        // The value the layer was built with counts as seen.
        rx.mark_unchanged();
        handle.spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    changed = rx.changed() => if changed.is_err() { return },
                }
                let Some(shared) = weak.upgrade() else { return };
                let config = rx.borrow_and_update().clone();
                match compile(&shared.destination, &config) {
                    Ok(engine) => {
                        tracing::info!(
                            service = %shared.destination,
                            intentions = engine.intentions.len(),
                            "authorization policy updated"
                        );
                        shared.engine.store(Arc::new(engine));
                    }
                    Err(error) => tracing::error!(
                        service = %shared.destination,
                        error = %error,
                        "new intentions do not compile; keeping the previous policy"
                    ),
                }
            }
        });
    }

    /// Whether a config watch still waits for a runtime.
    pub(crate) fn is_pending(&self) -> bool {
        self.is_pending.load(Ordering::Acquire)
    }
}
