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
use mesh_core::outlier::{
    EndpointStats, Observation, OutlierConfigError, OutlierDetector, OutlierEvent,
};
use mesh_core::route::Subsets;
use mesh_discovery::{DiscoveryError, EndpointSet, Update, UpdateStream};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use super::attempt::Attempt;
use super::worker::{self, ConfigFollow};
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
}

type Source = Box<dyn FnOnce() -> Result<UpdateStream, DiscoveryError> + Send>;

/// How long a request waits for endpoints by default.
pub const DEFAULT_WAIT_FOR_ENDPOINTS: Duration = Duration::from_secs(2);

pub(crate) struct PoolShared {
    pub(crate) service: Arc<str>,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) limits: ConcurrencyLimits,
    pub(crate) state: watch::Sender<DiscoveryState>,
    pub(crate) observer: Arc<dyn PoolObserver>,
    pub(crate) wait: Duration,
    /// Why discovery could not watch the service, if it could not.
    pub(crate) failure: Mutex<Option<Arc<str>>>,
    inner: Mutex<Inner>,
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

/// What a request reads: swapped whole on every change, never locked.
pub(crate) struct Snapshot {
    pub(crate) all: Arc<Mutex<Balancer>>,
    pub(crate) subsets: Box<[NamedBalancer]>,
    pub(crate) endpoints: HashMap<SocketAddr, Arc<EndpointEntry>>,
    pub(crate) hash_on: Option<http::HeaderName>,
    pub(crate) outlier: bool,
}

/// Per endpoint: its outcome counters and its precomputed URI authority.
pub(crate) struct EndpointEntry {
    pub(crate) stats: EndpointStats,
    pub(crate) authority: Authority,
}

/// Owned by the worker (and the rare report path): the set, the detector.
struct Inner {
    set: EndpointSet,
    endpoints: Vec<Endpoint>,
    lb: LoadBalancerConfig,
    slow_start: Option<Duration>,
    subsets: Subsets,
    selectors: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    outlier: Option<OutlierConfig>,
    detector: Option<OutlierDetector>,
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
        let shared = PoolShared {
            service: self.service,
            snapshot: ArcSwap::from_pointee(Snapshot {
                all,
                subsets: subset_lbs,
                endpoints: HashMap::new(),
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
            }),
            started: AtomicBool::new(self.source.is_none()),
            start: Mutex::new(Some(Start {
                source: self.source,
                follow: self.follow,
                shutdown: rx,
            })),
            _shutdown: tx,
        };
        Ok(EndpointPool {
            shared: Arc::new(shared),
        })
    }
}

fn build_subsets(
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

fn hash_header(hash_on: Option<&HashOn>) -> Option<http::HeaderName> {
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
    /// subsets, `hash_on`, circuit breaker and outlier detection.
    pub fn builder(service: impl Into<Arc<str>>, config: &ServiceConfig) -> PoolBuilder {
        PoolBuilder {
            service: service.into(),
            config: config.clone(),
            observer: Arc::new(NoObserver),
            wait: DEFAULT_WAIT_FOR_ENDPOINTS,
            source: None,
            follow: None,
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
    /// attempt on it. `Ok(None)`: the set is empty for now.
    pub(crate) fn try_pick(
        self: &Arc<Self>,
        snap: &Snapshot,
        subset: Option<usize>,
        hash: Option<u64>,
        tried: &[SocketAddr],
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
        let now = now();
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
        )))
    }

    /// An observation [`EndpointStats::record`] asked to report.
    pub(crate) fn report(&self, addr: SocketAddr, observation: Observation) {
        let now = now();
        let mut inner = self.inner.lock();
        let Some(event) = inner
            .detector
            .as_mut()
            .and_then(|d| d.report(addr, observation, now))
        else {
            return;
        };
        let snap = self.snapshot.load();
        apply_event(&snap, &event, now, &*self.observer);
        self.publish_counts(&inner);
    }

    /// The periodic outlier pass.
    pub(crate) fn evaluate(&self) {
        let now = now();
        let mut inner = self.inner.lock();
        let snap = self.snapshot.load();
        let Some(detector) = inner.detector.as_mut() else {
            return;
        };
        let events = detector.evaluate(snap.endpoints.iter().map(|(a, e)| (*a, &e.stats)), now);
        for event in &events {
            apply_event(&snap, event, now, &*self.observer);
        }
        if !events.is_empty() {
            self.publish_counts(&inner);
        }
    }

    /// The outlier evaluation interval, when detection is on.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.inner.lock().outlier.as_ref().map(|o| o.interval)
    }

    pub(crate) fn apply_update(&self, update: Update) {
        let now = now();
        let mut inner = self.inner.lock();
        inner.set.apply(update);
        let exists = inner.set.exists();
        inner.endpoints = inner.set.endpoints();
        let addrs = inner.set.addresses();
        let events = match inner.detector.as_mut() {
            Some(d) => d.set_endpoints(&addrs, now),
            None => Vec::new(),
        };
        let old = self.snapshot.load_full();
        update_balancers(&old, &inner, now);
        let snap = Snapshot {
            all: old.all.clone(),
            subsets: old.subsets.clone(),
            endpoints: entries(&old.endpoints, &inner.endpoints, inner.outlier.as_ref()),
            hash_on: old.hash_on.clone(),
            outlier: old.outlier,
        };
        for event in &events {
            apply_event(&snap, event, now, &*self.observer);
        }
        self.snapshot.store(Arc::new(snap));
        self.publish_counts(&inner);
        drop(inner);
        self.state.send_replace(match exists {
            None => DiscoveryState::Waiting,
            Some(true) => DiscoveryState::Exists,
            Some(false) => DiscoveryState::DoesNotExist,
        });
    }

    /// Marks the service unresolvable (the source failed to watch it).
    pub(crate) fn fail(&self, err: &DiscoveryError) {
        tracing::warn!(service = %self.service, error = %err, "discovery failed");
        *self.failure.lock() = Some(Arc::from(format!("discovery failed: {err}")));
        self.state.send_replace(DiscoveryState::DoesNotExist);
    }

    pub(crate) fn set_config(&self, c: &ServiceConfig) {
        let now = now();
        let mut inner = self.inner.lock();
        self.limits.update(&c.circuit_breaker);
        let slow_start = c.outlier_detection.as_ref().and_then(|o| o.slow_start);
        let old = self.snapshot.load_full();
        let rebuild = inner.lb != c.load_balancer
            || inner.slow_start != slow_start
            || inner.selectors != c.subsets;
        let (all, subsets) = if rebuild {
            let subsets = Subsets::new(c);
            let built = Balancer::new(&c.load_balancer, slow_start)
                .and_then(|all| Ok((all, build_subsets(&subsets, &c.load_balancer, slow_start)?)));
            match built {
                Ok((all, lbs)) => {
                    inner.lb = c.load_balancer.clone();
                    inner.slow_start = slow_start;
                    inner.subsets = subsets;
                    inner.selectors = c.subsets.clone();
                    (Arc::new(Mutex::new(all)), lbs)
                }
                Err(e) => {
                    tracing::warn!(service = %self.service, error = %e, "load balancer config rejected; keeping the previous one");
                    (old.all.clone(), old.subsets.clone())
                }
            }
        } else {
            (old.all.clone(), old.subsets.clone())
        };
        if inner.outlier != c.outlier_detection {
            match &c.outlier_detection {
                None => inner.detector = None,
                Some(cfg) => {
                    let result = match inner.detector.as_mut() {
                        Some(d) => d.set_config(cfg.clone()),
                        None => OutlierDetector::new(cfg.clone()).map(|mut d| {
                            let addrs = inner.set.addresses();
                            d.set_endpoints(&addrs, now);
                            inner.detector = Some(d);
                        }),
                    };
                    if let Err(e) = result {
                        tracing::warn!(service = %self.service, error = %e, "outlier config rejected");
                    }
                }
            }
            inner.outlier = c.outlier_detection.clone();
            let default = OutlierConfig::default();
            for entry in old.endpoints.values() {
                entry
                    .stats
                    .set_config(inner.outlier.as_ref().unwrap_or(&default));
            }
        }
        let snap = Snapshot {
            all,
            subsets,
            endpoints: old.endpoints.clone(),
            hash_on: hash_header(c.hash_on.as_ref()),
            outlier: inner.detector.is_some(),
        };
        if rebuild {
            update_balancers(&snap, &inner, now);
            if let Some(d) = &inner.detector {
                for addr in inner.set.addresses() {
                    if d.is_ejected(addr) {
                        for lb in balancers(&snap) {
                            lb.lock().set_ejected(addr, true, now);
                        }
                    }
                }
            }
        }
        self.snapshot.store(Arc::new(snap));
        self.publish_counts(&inner);
    }

    fn publish_counts(&self, inner: &Inner) {
        let total = inner.endpoints.len() as u64;
        let ejected = inner
            .detector
            .as_ref()
            .map_or(0, |d| d.ejected_count() as u64);
        self.observer
            .endpoints(total.saturating_sub(ejected), ejected);
    }
}

fn balancers(snap: &Snapshot) -> impl Iterator<Item = &Arc<Mutex<Balancer>>> {
    std::iter::once(&snap.all).chain(snap.subsets.iter().map(|(_, lb)| lb))
}

fn update_balancers(snap: &Snapshot, inner: &Inner, now: Instant) {
    snap.all.lock().update(&inner.endpoints, now);
    let parts = inner.subsets.partition(&inner.endpoints);
    for ((_, lb), eps) in snap.subsets.iter().zip(parts) {
        lb.lock().update(&eps, now);
    }
}

fn apply_event(snap: &Snapshot, event: &OutlierEvent, now: Instant, observer: &dyn PoolObserver) {
    let change = match *event {
        OutlierEvent::Ejected { addr, .. } => Some((addr, true)),
        OutlierEvent::Unejected { addr } => Some((addr, false)),
        OutlierEvent::Returned { .. } => None,
    };
    if let Some((addr, ejected)) = change {
        for lb in balancers(snap) {
            lb.lock().set_ejected(addr, ejected, now);
        }
    }
    observer.outlier_event(event);
}

/// The endpoint table for `endpoints`, keeping the entries (and counters)
/// of endpoints that remain.
fn entries(
    old: &HashMap<SocketAddr, Arc<EndpointEntry>>,
    endpoints: &[Endpoint],
    outlier: Option<&OutlierConfig>,
) -> HashMap<SocketAddr, Arc<EndpointEntry>> {
    let default = OutlierConfig::default();
    let config = outlier.unwrap_or(&default);
    endpoints
        .iter()
        .filter_map(|ep| {
            if let Some(e) = old.get(&ep.address) {
                return Some((ep.address, e.clone()));
            }
            let authority = crate::connect::authority(ep.address)?;
            Some((
                ep.address,
                Arc::new(EndpointEntry {
                    stats: EndpointStats::new(config),
                    authority,
                }),
            ))
        })
        .collect()
}
