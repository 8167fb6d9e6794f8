//! The discovery-driven balancer: picks an endpoint for each attempt.
//!
//! # Where it sits
//!
//! Below the retry and per-try timeout layers, above the connector: every
//! *attempt* of a request passes here once. [`Balance`] reads the
//! [`Subset`] the router chose (none: all endpoints) and the
//! [`TriedEndpoints`] of earlier attempts, picks an endpoint with the
//! service's algorithm, rewrites the request's URI to that endpoint
//! ([`set_endpoint`](crate::connect::set_endpoint)) and calls the inner
//! service. The response carries [`ServedBy`](crate::ext::ServedBy); an error is wrapped in
//! [`EndpointError`](crate::error::EndpointError) naming the endpoint, so
//! the retry layer can avoid it next time.
//!
//! # The pool
//!
//! The state lives in an [`EndpointPool`], shared by every clone of the
//! stack: a mesh-core [`Balancer`](mesh_core::balance::Balancer) over all
//! endpoints plus one per subset, the service's
//! [`ConcurrencyLimits`](mesh_core::circuit::ConcurrencyLimits), an
//! [`OutlierDetector`](mesh_core::outlier::OutlierDetector) and one
//! lock-free [`EndpointStats`](mesh_core::outlier::EndpointStats) per
//! endpoint. A background task (one per pool, started inside the tokio
//! runtime, ended when the last handle is dropped) applies the discovery
//! stream's updates and runs outlier detection every `interval`, whose
//! events eject and restore endpoints in every balancer.
//!
//! Per request, nothing is allocated and no lock is held across an await:
//! the request loads the pool's current snapshot (an `ArcSwap`), takes the
//! balancer's short `parking_lot` lock for the pick (mesh-core's balancer
//! needs `&mut`), and again for `on_end` when the attempt ends. Everything a
//! pick needs (schedules, rings, the hashed header name, each endpoint's URI
//! authority) was computed when the set or the config changed.
//!
//! # Live updates
//!
//! An update swaps the endpoint set under the balancers; it never touches a
//! request in flight. A removed endpoint gets no new request but its
//! in-flight requests complete on their pooled connections (draining); a
//! new one joins with slow start when the service configures it
//! (`outlier_detection.slow_start`).
//!
//! # Failing fast
//!
//! - `max_requests` requests in flight (the attempt holds a permit until its
//!   response future completes): the next one fails at once with
//!   [`CircuitOpen`].
//! - No endpoint yet: the request waits, holding a `max_pending` permit
//!   (refused with `CircuitOpen` when none is left), for discovery to
//!   answer, at most the pool's `wait_for_endpoints` (2s by default), then
//!   fails with [`NoEndpoints`]; at once if
//!   discovery says the service does not exist. Nothing queues forever.
//!
//! # Outcomes
//!
//! Each attempt's result is classified once by [`crate::classify`] and
//! recorded into its endpoint's counters (feeding outlier detection) and
//! into the balancer (`on_end` with the round trip, for least request and
//! peak EWMA). An attempt dropped by a timeout above (its per-try timeout
//! from [`RouteInfo`], or the call's
//! [`Deadline`]) counts as a failure of the endpoint;
//! one dropped earlier by the caller is not recorded. A gRPC response
//! whose status comes in its trailers is judged when they arrive
//! ([`LateOutcome`]); a request may observe each of its attempts
//! ([`OnAttemptEnd`]).
//!
//! ```
//! use mesh_core::config::ServiceConfig;
//! use mesh_core::Endpoint;
//! use mesh_discovery::Update;
//! use mesh_tower::balance::{BalanceLayer, EndpointPool};
//! use mesh_tower::connect::{ConnectConfig, Connector};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = EndpointPool::builder("news", &ServiceConfig::default()).build()?;
//! pool.apply(Update::Reset(vec![Endpoint::new("127.0.0.1:8081".parse()?)]));
//! let svc = ServiceBuilder::new()
//!     .layer(BalanceLayer::new(pool))
//!     .service(Connector::new(Default::default(), &ConnectConfig::default()));
//! # let _ = svc;
//! # Ok(())
//! # }
//! ```

mod attempt;
mod future;
mod pool;
mod state;
mod worker;

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

pub use attempt::{AttemptObserver, AttemptReport, LateOutcome, OnAttemptEnd};
pub use future::ResponseFuture;
pub(crate) use pool::PoolShared;
pub use pool::{
    DEFAULT_WAIT_FOR_ENDPOINTS, DiscoveryState, EndpointPool, PoolBuilder, PoolError, PoolObserver,
};
pub(crate) use worker::ConfigFollow;

use crate::error::{BoxError, CircuitOpen, NoEndpoints};
use crate::ext::{AttemptEndpoint, Deadline, RouteInfo, Subset, TriedEndpoints};

/// Applies [`Balance`] over an [`EndpointPool`].
#[derive(Clone, Debug)]
pub struct BalanceLayer {
    pool: EndpointPool,
}

impl BalanceLayer {
    /// A layer balancing over `pool`.
    pub fn new(pool: EndpointPool) -> Self {
        Self { pool }
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;

    fn layer(&self, inner: S) -> Balance<S> {
        Balance {
            inner,
            pool: self.pool.clone(),
        }
    }
}

/// Picks an endpoint per attempt (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Balance<S> {
    inner: S,
    pool: EndpointPool,
}

impl<S> Balance<S> {
    /// Balances `inner`'s requests over `pool`.
    pub fn new(inner: S, pool: EndpointPool) -> Self {
        Self { inner, pool }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The pool.
    pub fn pool(&self) -> &EndpointPool {
        &self.pool
    }
}

impl<S, B, RB> Service<Request<B>> for Balance<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let subset = req.extensions().get::<Subset>().and_then(|s| s.0);
        // One clock read for the attempt's start, its timeout and the pick.
        let now = crate::clock::now();
        let per_try = req
            .extensions()
            .get::<RouteInfo>()
            .and_then(|r| r.0.retry.as_ref())
            .and_then(|p| p.per_try_timeout());
        let deadline = req.extensions().get::<Deadline>().map(|d| d.0);
        let tried = req.extensions().get::<TriedEndpoints>().cloned();
        let plan = AttemptPlan {
            subset,
            tried: tried.as_ref().map_or(&[][..], |t| &t.0[..]),
            timeout_at: attempt_timeout(per_try, deadline, now),
            now,
            observer: None,
        };
        // Picked later: a per-try timeout above learns it from a cell.
        let (future, picked) = start(
            &self.pool.shared,
            &mut self.inner,
            req,
            &plan,
            crate::timeout::attempt::cell,
        );
        if let Some(endpoint) = picked {
            crate::timeout::attempt::picked(endpoint);
        }
        future
    }
}

/// What an attempt starts from, decided above the balancer.
pub(crate) struct AttemptPlan<'a> {
    /// The router's subset (`None`: all endpoints).
    pub(crate) subset: Option<usize>,
    /// Endpoints of earlier attempts, avoided when possible.
    pub(crate) tried: &'a [std::net::SocketAddr],
    /// When the layers above give up on the attempt (dropped after this,
    /// it counts as a timeout of its endpoint).
    pub(crate) timeout_at: Option<tokio::time::Instant>,
    /// The attempt's start.
    pub(crate) now: tokio::time::Instant,
    /// Who is told of the attempt's end, if not an [`OnAttemptEnd`] in the
    /// request's extensions.
    pub(crate) observer: Option<&'a OnAttemptEnd>,
}

/// Starts one attempt of `req` on `pool` through `inner`: takes a
/// `max_requests` permit, picks an endpoint, points the request at it and
/// calls `inner` (or, with no endpoint yet, a boxed bounded wait for one,
/// which fills the cell `later` gives). Also returns the endpoint, if
/// picked at once. Shared by [`Balance`] and the fused client
/// ([`crate::fused`]).
pub(crate) fn start<S, B, RB>(
    pool: &Arc<PoolShared>,
    inner: &mut S,
    req: Request<B>,
    plan: &AttemptPlan<'_>,
    later: impl FnOnce() -> Option<AttemptEndpoint>,
) -> (ResponseFuture<S::Future, RB>, Option<std::net::SocketAddr>)
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
{
    let shared = pool;
    shared.ensure_started();
    let permit = match shared.limits.try_acquire_request() {
        Ok(p) => p,
        Err(source) => {
            shared.observer.circuit_open();
            let err = Box::new(CircuitOpen {
                service: shared.service.clone(),
                source,
            });
            return (ResponseFuture::failed(err), None);
        }
    };
    let (subset, timeout_at) = (plan.subset, plan.timeout_at);
    let snap = shared.snapshot.load();
    let hash = PoolShared::request_hash(&snap, req.headers());
    match shared.try_pick(&snap, subset, hash, plan.tried, plan.now.into_std()) {
        Err(e) => (ResponseFuture::failed(Box::new(e)), None),
        Ok(Some(mut attempt)) => {
            drop(snap);
            attempt.set_timeout_at(timeout_at);
            attempt.observe(plan.observer, req.extensions());
            note_endpoint(&req, &attempt);
            let endpoint = attempt.address();
            let future = match crate::connect::dispatch(
                inner,
                req,
                &attempt.entry.authority,
                &shared.host,
            ) {
                Ok(call) => ResponseFuture::attempt(call, attempt, permit),
                Err(e) => ResponseFuture::failed(e),
            };
            (future, Some(endpoint))
        }
        Ok(None) => {
            let later = later();
            let tried = plan.tried.to_vec();
            let observer = plan.observer.cloned();
            drop(snap);
            let shared = shared.clone();
            let clone = inner.clone();
            let inner = std::mem::replace(inner, clone);
            let future = ResponseFuture::waiting(Box::pin(async move {
                let _permit = permit;
                let mut attempt = wait_pick(&shared, subset, hash, &tried).await?;
                attempt.set_timeout_at(timeout_at);
                attempt.observe(observer.as_ref(), req.extensions());
                if let Some(cell) = &later {
                    cell.set(attempt.address());
                }
                note_endpoint(&req, &attempt);
                let mut inner = inner;
                let result = match inner.ready().await {
                    Ok(svc) => {
                        let (endpoint, host) = (&attempt.entry.authority, &shared.host);
                        match crate::connect::dispatch(svc, req, endpoint, host) {
                            Ok(call) => call.await,
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                attempt.finish(result)
            }));
            (future, None)
        }
    }
}

/// Tells the request's own [`AttemptEndpoint`], if any, where this attempt
/// went.
fn note_endpoint<B>(req: &Request<B>, attempt: &attempt::Attempt) {
    if let Some(cell) = req.extensions().get::<AttemptEndpoint>() {
        cell.set(attempt.address());
    }
}

/// When the layers above give up on an attempt started at `now`: the
/// route's `per_try` timeout, capped by the call's `deadline`.
pub(crate) fn attempt_timeout(
    per_try: Option<std::time::Duration>,
    deadline: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let per_try = per_try.map(|d| now + d);
    match (per_try, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The slow path: wait (bounded, holding a pending permit) until discovery
/// gives the chosen set an endpoint.
async fn wait_pick(
    shared: &Arc<PoolShared>,
    subset: Option<usize>,
    hash: Option<u64>,
    tried: &[std::net::SocketAddr],
) -> Result<attempt::Attempt, BoxError> {
    let _pending = shared.limits.try_acquire_pending().map_err(|source| {
        shared.observer.circuit_open();
        CircuitOpen {
            service: shared.service.clone(),
            source,
        }
    })?;
    let mut rx = shared.state.subscribe();
    let deadline = tokio::time::Instant::now() + shared.wait;
    loop {
        let state = *rx.borrow_and_update();
        let snap = shared.snapshot.load_full();
        if let Some(attempt) = shared.try_pick(&snap, subset, hash, tried, pool::now())? {
            return Ok(attempt);
        }
        let reason = match state {
            DiscoveryState::DoesNotExist => {
                let reason = match &*shared.failure.lock() {
                    Some(failure) => failure.to_string(),
                    None => "service does not exist".into(),
                };
                return Err(Box::new(NoEndpoints {
                    service: shared.service.clone(),
                    reason,
                }));
            }
            DiscoveryState::Waiting => "discovery found none",
            DiscoveryState::Exists => match subset.and_then(|i| snap.subsets.get(i)) {
                Some(_) => "the subset has no endpoints",
                None => "the service has no endpoints",
            },
        };
        drop(snap);
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                let subset_name = subset.and_then(|i| {
                    shared
                        .snapshot
                        .load()
                        .subsets
                        .get(i)
                        .map(|(n, _)| n.clone())
                });
                return Err(Box::new(NoEndpoints {
                    service: shared.service.clone(),
                    reason: match subset_name {
                        Some(name) => {
                            format!("{reason} (subset `{name}`) within {:?}", shared.wait)
                        }
                        None => format!("{reason} within {:?}", shared.wait),
                    },
                }));
            }
        }
    }
}
