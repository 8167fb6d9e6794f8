//! Per-service shared state: what every client of one upstream service
//! shares, compiled from its config and kept live.
//!
//! [`Mesh::client`](crate::Mesh::client) builds one [`ServiceState`] per
//! service name (and reuses it for further clients of the same name):
//!
//! - the [`RouteTable`] (routes, splits, per-route timeout and retry policy),
//!   behind an `ArcSwap` the router reads per request;
//! - the [`EndpointPool`] (balancers per subset and over all endpoints,
//!   concurrency limits, outlier detection), whose background task follows
//!   the service's discovery stream *and* the mesh config: on every config
//!   change that touches the service, the route table is recompiled and
//!   swapped, and the pool's policy updated in place;
//! - the retry budget shared by all requests to the service.
//!
//! Nothing here is on the per-request path except the snapshots the layers
//! load.

pub(crate) mod rng;

use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_core::MeshConfig;
use mesh_core::config::ServiceConfig;
use mesh_core::retry::{BudgetError, RetryBudget};
use mesh_core::route::RouteError;
use mesh_discovery::Discover;
use tokio::sync::watch;

use crate::balance::{ConfigFollow, EndpointPool, PoolError, PoolObserver};
use crate::connect::Connector;
use crate::metrics::{Metrics, ServiceLabels};
use crate::router::RouteTable;
use mesh_core::identity::SpiffeId;
use mesh_core::outlier::OutlierEvent;

/// A service's config could not be compiled into a client.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Its routes.
    #[error("routes: {0}")]
    Route(#[from] RouteError),
    /// Its load balancer or outlier detection.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// Its retry budget.
    #[error("retry budget: {0}")]
    Budget(#[from] BudgetError),
}

/// How a service's mTLS connector follows config: the identity expected
/// now, the slot its clients send through, and how to make the connector
/// for a config.
pub(crate) struct IdentityFollow {
    pub(crate) expected: SpiffeId,
    pub(crate) slot: Arc<ArcSwap<Connector>>,
    #[allow(clippy::type_complexity)]
    pub(crate) make:
        Box<dyn Fn(&MeshConfig) -> Result<(Option<SpiffeId>, Connector), String> + Send + Sync>,
}

impl IdentityFollow {
    /// Swaps the connector if `mesh` expects another identity; a connector
    /// that cannot be made keeps the current one (logged).
    fn apply(&mut self, service: &str, mesh: &MeshConfig) {
        match (self.make)(mesh) {
            Ok((Some(expected), connector)) if expected != self.expected => {
                tracing::info!(
                    service,
                    from = %self.expected,
                    to = %expected,
                    "expected server identity changed; new connections verify the new one"
                );
                self.slot.store(Arc::new(connector));
                self.expected = expected;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(service, %error, "identity change rejected; keeping the previous one");
            }
        }
    }
}

/// One upstream service's shared state (see the [module docs](self)).
pub(crate) struct ServiceState {
    pub(crate) name: Arc<str>,
    pub(crate) routes: Arc<ArcSwap<RouteTable>>,
    pub(crate) pool: EndpointPool,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) metrics: Metrics,
    pub(crate) labels: ServiceLabels,
    /// What every client of the service sends through (health probes too).
    pub(crate) connector: Connector,
}

/// Feeds the pool's events to the service's golden-signal instruments.
struct MetricsObserver {
    metrics: Metrics,
    labels: ServiceLabels,
}

impl PoolObserver for MetricsObserver {
    fn circuit_open(&self) {
        self.metrics.record_circuit_open(&self.labels);
    }

    fn outlier_event(&self, event: &OutlierEvent) {
        if let OutlierEvent::Ejected { addr, .. } = event {
            self.metrics.record_ejection(&self.labels, *addr);
        }
    }

    fn endpoints(&self, ready: u64, ejected: u64) {
        self.metrics.set_endpoints(&self.labels, ready, ejected);
    }

    fn endpoint_states(&self, ready: u64, ejected: u64, unhealthy: u64) {
        self.metrics.set_endpoints(&self.labels, ready, ejected);
        self.metrics
            .set_unhealthy_endpoints(&self.labels, unhealthy);
    }
}

/// The service's config in `mesh` (the defaults if it is not there).
pub(crate) fn service_config(mesh: &MeshConfig, name: &str) -> ServiceConfig {
    mesh.services.get(name).cloned().unwrap_or_default()
}

impl ServiceState {
    pub(crate) fn new(
        name: &str,
        config: watch::Receiver<Arc<MeshConfig>>,
        discover: Arc<dyn Discover>,
        wait: std::time::Duration,
        metrics: Metrics,
        connector: Connector,
        mut identity: Option<IdentityFollow>,
    ) -> Result<Self, ServiceError> {
        let name: Arc<str> = Arc::from(name);
        let labels = metrics.service(name.clone());
        let observer = Arc::new(MetricsObserver {
            metrics: metrics.clone(),
            labels: labels.clone(),
        });
        let current = service_config(&config.borrow(), &name);
        let routes = Arc::new(ArcSwap::from_pointee(RouteTable::new(
            name.clone(),
            &current,
        )?));
        let budget_config = current.retry.as_ref().map(|r| r.budget).unwrap_or_default();
        // tokio's clock, as the retry layer reads it (paused-time tests agree).
        let epoch = tokio::time::Instant::now().into_std();
        let budget = Arc::new(RetryBudget::with_epoch(&budget_config, epoch)?);
        let follow = {
            let routes = routes.clone();
            let name = name.clone();
            let mut last = current.clone();
            ConfigFollow {
                rx: config,
                apply: Box::new(move |pool, mesh| {
                    // Before the early return: the default identity follows
                    // the mesh's trust domain, not only the service's config.
                    if let Some(identity) = identity.as_mut() {
                        identity.apply(&name, mesh);
                    }
                    let next = service_config(mesh, &name);
                    if next == last {
                        return;
                    }
                    match RouteTable::new(name.clone(), &next) {
                        Ok(table) => routes.store(Arc::new(table)),
                        Err(e) => {
                            tracing::warn!(service = %name, error = %e, "routes rejected; keeping the previous ones");
                        }
                    }
                    pool.set_config(&next);
                    last = next;
                }),
            }
        };
        let pool = EndpointPool::builder(name.clone(), &current)
            .observer(observer)
            .wait_for_endpoints(wait)
            .discover(discover)
            .follow(follow)
            .health_connector(connector.clone())
            .build()?;
        Ok(Self {
            name,
            routes,
            pool,
            budget,
            metrics,
            labels,
            connector,
        })
    }
}
