//! [`EndpointPool`]: one service's endpoints, balancers and health, shared by
//! every clone of its client stack.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderMap;
use http::uri::Authority;
use mesh_core::Endpoint;
use mesh_core::balance::{BalanceError, Balancer, PickContext, hash_key};
use mesh_core::circuit::ConcurrencyLimits;
use mesh_core::config::{HashOn, LoadBalancerConfig, OutlierConfig, ServiceConfig};
use mesh_core::outlier::{EndpointStats, OutlierConfigError, OutlierDetector, OutlierEvent};
use mesh_core::route::Subsets;
use mesh_discovery::{DiscoveryError, EndpointSet, Update, UpdateStream};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use super::attempt::Attempt;
use super::worker::{self, ConfigFollow};
use crate::connect::Connector;
use crate::health::{HealthChecker, ProbeFn, ProbeSource};
use crate::service::rng::with_rng;

/// Receives what the pool sees, for metrics (every method defaults to doing
/// nothing). Called off the hot path, except [`circuit_open`](Self::circuit_open)
/// on a refused request.
pub trait PoolObserver: Send + Sync {
    /// A request was refused by a concurrency limit.
    fn circuit_open(&self) {}
    /// Outlier detection ejected, un-ejected or returned an endpoint.
    fn outlier_event(&self, _event: &OutlierEvent) {}
    /// The endpoint set or its health changed: so many ready and ejected.
    fn endpoints(&self, _ready: u64, _ejected: u64) {}
    /// The endpoint set or its health changed: so many ready (neither
    /// ejected nor unhealthy), ejected by outlier detection, and failing
    /// active health checks (but not ejected). Defaults to
    /// [`endpoints`](Self::endpoints)`(ready, ejected)`.
    fn endpoint_states(&self, ready: u64, ejected: u64, _unhealthy: u64) {
        self.endpoints(ready, ejected);
    }
}

#[derive(Debug)]
struct NoObserver;
impl PoolObserver for NoObserver {}

/// What discovery has said about the service so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryState {
    /// No answer yet.
    Waiting,
    /// The service exists (its set may still be empty).
    Exists,
    /// The source does not know the service, or could not watch it.
    DoesNotExist,
}

/// The pool could not be built from a service config.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The load balancer config is invalid.
    #[error("load balancer: {0}")]
    Balance(#[from] BalanceError),
    /// The outlier detection config is invalid.
    #[error("outlier detection: {0}")]
    Outlier(#[from] OutlierConfigError),
}

/// One service's endpoint set, a balancer per subset plus one over all
/// endpoints, the concurrency limits and outlier detection (see the
/// [module docs](super)). Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct EndpointPool {
    pub(crate) shared: Arc<PoolShared>,
}

impl std::fmt::Debug for EndpointPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPool")
            .field("service", &self.shared.service)
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

/// Builds an [`EndpointPool`].
pub struct PoolBuilder {
    service: Arc<str>,
    config: ServiceConfig,
    observer: Arc<dyn PoolObserver>,
    wait: Duration,
    source: Option<Source>,
    follow: Option<ConfigFollow>,
    health_connector: Option<Connector>,
    probe: Option<ProbeFn>,
}

type Source = Box<dyn FnOnce() -> Result<UpdateStream, DiscoveryError> + Send>;

/// How long a request waits for endpoints by default.
pub const DEFAULT_WAIT_FOR_ENDPOINTS: Duration = Duration::from_secs(2);

pub(crate) struct PoolShared {
    pub(crate) service: Arc<str>,
    /// The service's name as a `Host` value, for `set_endpoint`.
    pub(crate) host: crate::connect::KnownHost,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) limits: ConcurrencyLimits,
    pub(crate) state: watch::Sender<DiscoveryState>,
    pub(crate) observer: Arc<dyn PoolObserver>,
    pub(crate) wait: Duration,
    /// Why discovery could not watch the service, if it could not.
    pub(crate) failure: Mutex<Option<Arc<str>>>,
    pub(super) inner: Mutex<Inner>,
    /// This pool, for the health-check tasks it starts.
    pub(super) me: Weak<PoolShared>,
    started: AtomicBool,
    start: Mutex<Option<Start>>,
    /// Dropped with the pool: ends the background task.
    _shutdown: oneshot::Sender<()>,
}

struct Start {
    source: Option<Source>,
    follow: Option<ConfigFollow>,
    shutdown: oneshot::Receiver<()>,
}

/// A subset's name and its balancer.
pub(crate) type NamedBalancer = (Arc<str>, Arc<Mutex<Balancer>>);

/// Endpoint address -> entry, looked up on every pick: a fast hasher (the
/// addresses come from config and discovery, and SipHash of a
/// `SocketAddr` costs more than the rest of the lookup).
pub(crate) type EndpointTable =
    HashMap<SocketAddr, Arc<EndpointEntry>, foldhash::fast::RandomState>;

/// What a request reads: swapped whole on every change, never locked.
pub(crate) struct Snapshot {
    pub(crate) all: Arc<Mutex<Balancer>>,
    pub(crate) subsets: Box<[NamedBalancer]>,
    pub(crate) endpoints: EndpointTable,
    pub(crate) hash_on: Option<http::HeaderName>,
    pub(crate) outlier: bool,
}

/// Per endpoint: its outcome counters and its precomputed URI authority.
pub(crate) struct EndpointEntry {
    pub(crate) stats: EndpointStats,
    pub(crate) authority: Authority,
}

/// Owned by the worker (and the rare report path): the set, the detector.
pub(super) struct Inner {
    pub(super) set: EndpointSet,
    pub(super) endpoints: Vec<Endpoint>,
    pub(super) lb: LoadBalancerConfig,
    pub(super) slow_start: Option<Duration>,
    pub(super) subsets: Subsets,
    pub(super) selectors:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    pub(super) outlier: Option<OutlierConfig>,
    pub(super) detector: Option<OutlierDetector>,
    pub(super) health: HealthChecker,
}

pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

// === impl PoolBuilder ===

impl PoolBuilder {
    /// Calls `observer` on circuit-open refusals, outlier events and
    /// endpoint-count changes.
    pub fn observer(mut self, observer: Arc<dyn PoolObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// How long a request waits for endpoints before failing with
    /// [`NoEndpoints`](crate::error::NoEndpoints) (default 2s).
    pub fn wait_for_endpoints(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Follows `service` in `discover` (started on the first request or
    /// [`EndpointPool::start`], inside the tokio runtime).
    pub fn discover<D>(mut self, discover: D) -> Self
    where
        D: mesh_discovery::Discover + 'static,
    {
        let service = self.service.clone();
        self.source = Some(Box::new(move || discover.watch(&service)));
        self
    }

    /// Follows this stream of updates.
    pub fn updates(mut self, updates: UpdateStream) -> Self {
        self.source = Some(Box::new(move || Ok(updates)));
        self
    }

    pub(crate) fn follow(mut self, follow: ConfigFollow) -> Self {
        self.follow = Some(follow);
        self
    }

    /// Sends active health checks (the service's `health_check` block)
    /// through `connector`: the one the client stack uses, so connection
    /// settings and transport security are the same. Without it, the pool
    /// builds a plain connector for the service's protocol when it first
    /// needs one.
    pub fn health_connector(mut self, connector: Connector) -> Self {
        self.health_connector = Some(connector);
        self
    }

    /// Probes endpoints with `probe` instead of the real check (tests).
    #[cfg(test)]
    pub(crate) fn health_probe(mut self, probe: ProbeFn) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Builds the pool. Without [`discover`](Self::discover) or
    /// [`updates`](Self::updates), it is driven by [`EndpointPool::apply`].
    pub fn build(self) -> Result<EndpointPool, PoolError> {
        let c = &self.config;
        let slow_start = c.outlier_detection.as_ref().and_then(|o| o.slow_start);
        let subsets = Subsets::new(c);
        let all = Arc::new(Mutex::new(Balancer::new(&c.load_balancer, slow_start)?));
        let subset_lbs = build_subsets(&subsets, &c.load_balancer, slow_start)?;
        let detector = c
            .outlier_detection
            .clone()
            .map(OutlierDetector::new)
            .transpose()?;
        let (state, _) = watch::channel(DiscoveryState::Waiting);
        let (tx, rx) = oneshot::channel();
        let source = match self.probe {
            Some(probe) => ProbeSource::Custom(probe),
            None => ProbeSource::Real {
                connector: self.health_connector,
                protocol: c.protocol,
                host: self.service.clone(),
            },
        };
        let health = HealthChecker::new(c.health_check.clone(), source);
        let shared = Arc::new_cyclic(|me| PoolShared {
            host: crate::connect::KnownHost::new(self.service.clone()),
            service: self.service,
            snapshot: ArcSwap::from_pointee(Snapshot {
                all,
                subsets: subset_lbs,
                endpoints: EndpointTable::default(),
                hash_on: hash_header(c.hash_on.as_ref()),
                outlier: detector.is_some(),
            }),
            limits: ConcurrencyLimits::new(&c.circuit_breaker),
            state,
            observer: self.observer,
            wait: self.wait,
            failure: Mutex::new(None),
            inner: Mutex::new(Inner {
                set: EndpointSet::new(),
                endpoints: Vec::new(),
                lb: c.load_balancer.clone(),
                slow_start,
                subsets,
                selectors: c.subsets.clone(),
                outlier: c.outlier_detection.clone(),
                detector,
                health,
            }),
            me: me.clone(),
            started: AtomicBool::new(self.source.is_none()),
            start: Mutex::new(Some(Start {
                source: self.source,
                follow: self.follow,
                shutdown: rx,
            })),
            _shutdown: tx,
        });
        Ok(EndpointPool { shared })
    }
}

pub(super) fn build_subsets(
    subsets: &Subsets,
    lb: &LoadBalancerConfig,
    slow_start: Option<Duration>,
) -> Result<Box<[NamedBalancer]>, BalanceError> {
    subsets
        .names()
        .map(|name| {
            Ok((
                Arc::from(name),
                Arc::new(Mutex::new(Balancer::new(lb, slow_start)?)),
            ))
        })
        .collect()
}

pub(super) fn hash_header(hash_on: Option<&HashOn>) -> Option<http::HeaderName> {
    match hash_on? {
        HashOn::Header(name) => {
            match http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    tracing::warn!(header = %name, "hash_on names an invalid header; hashing disabled");
                    None
                }
            }
        }
    }
}

// === impl EndpointPool ===

impl EndpointPool {
    /// A builder for service `service` with `config`'s load balancer,
    /// subsets, `hash_on`, circuit breaker, outlier detection and active
    /// health checks.
    pub fn builder(service: impl Into<Arc<str>>, config: &ServiceConfig) -> PoolBuilder {
        PoolBuilder {
            service: service.into(),
            config: config.clone(),
            observer: Arc::new(NoObserver),
            wait: DEFAULT_WAIT_FOR_ENDPOINTS,
            source: None,
            follow: None,
            health_connector: None,
            probe: None,
        }
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.shared.service
    }

    /// Starts the background task (discovery, outlier evaluation) if it has
    /// not started yet and a tokio runtime is running; otherwise the first
    /// request starts it. Never blocks.
    pub fn start(&self) {
        self.shared.ensure_started();
    }

    /// Applies one discovery update now (what the background task does with
    /// each update of its stream).
    pub fn apply(&self, update: Update) {
        self.shared.apply_update(update);
    }

    /// Applies a new service config live: balancers are rebuilt (keeping the
    /// endpoints and their ejections) when the algorithm, subsets or slow
    /// start change; limits, `hash_on` and outlier settings are updated in
    /// place. In-flight requests are unaffected.
    pub fn set_config(&self, config: &ServiceConfig) {
        self.shared.set_config(config);
    }

    /// The current endpoint addresses, sorted.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.shared.inner.lock().set.addresses()
    }

    /// The addresses outlier detection has ejected now.
    pub fn ejected(&self) -> Vec<SocketAddr> {
        let inner = self.shared.inner.lock();
        match &inner.detector {
            Some(d) => inner
                .set
                .addresses()
                .into_iter()
                .filter(|a| d.is_ejected(*a))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The addresses failing active health checks now (including endpoints
    /// not yet checked), sorted. Empty without a `health_check` block.
    pub fn unhealthy(&self) -> Vec<SocketAddr> {
        let inner = self.shared.inner.lock();
        inner
            .set
            .addresses()
            .into_iter()
            .filter(|a| inner.health.is_unhealthy(*a))
            .collect()
    }

    /// What discovery has said so far.
    pub fn discovery_state(&self) -> DiscoveryState {
        *self.shared.state.borrow()
    }

    /// The service's concurrency limits.
    pub fn limits(&self) -> &ConcurrencyLimits {
        &self.shared.limits
    }
}

// === impl PoolShared ===

impl PoolShared {
    /// One relaxed load once started.
    pub(crate) fn ensure_started(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(start) = self.start.lock().take() else {
            return;
        };
        self.started.store(true, Ordering::Relaxed);
        let updates = start.source.map(|s| s());
        let weak: Weak<PoolShared> = Arc::downgrade(self);
        handle.spawn(worker::run(weak, start.shutdown, updates, start.follow));
    }

    /// The hash of the request's `hash_on` header, if configured and present.
    pub(crate) fn request_hash(snap: &Snapshot, headers: &HeaderMap) -> Option<u64> {
        let name = snap.hash_on.as_ref()?;
        headers.get(name).map(|v| hash_key(v.as_bytes()))
    }

    /// Picks an endpoint of `subset` (all endpoints: `None`) and starts an
    /// attempt on it at `now`. `Ok(None)`: the set is empty for now.
    pub(crate) fn try_pick(
        self: &Arc<Self>,
        snap: &Snapshot,
        subset: Option<usize>,
        hash: Option<u64>,
        tried: &[SocketAddr],
        now: Instant,
    ) -> Result<Option<Attempt>, crate::error::NoEndpoints> {
        let lb = match subset {
            None => &snap.all,
            Some(i) => match snap.subsets.get(i) {
                Some((_, lb)) => lb,
                None => {
                    return Err(crate::error::NoEndpoints {
                        service: self.service.clone(),
                        reason: format!("subset #{i} is not declared"),
                    });
                }
            },
        };
        let ctx = PickContext { hash, tried };
        let picked = {
            let mut guard = lb.lock();
            let Some(picked) = with_rng(|rng| guard.pick(&ctx, now, rng)) else {
                return Ok(None);
            };
            guard.on_start(&picked);
            picked
        };
        let entry = snap.endpoints.get(&picked.address).cloned();
        let Some(entry) = entry else {
            // Balancer and table are updated together; never here.
            lb.lock().on_end(&picked, Duration::ZERO, now);
            return Ok(None);
        };
        Ok(Some(Attempt::new(
            self.clone(),
            lb.clone(),
            picked,
            entry,
            snap.outlier,
            now,
        )))
    }
}
