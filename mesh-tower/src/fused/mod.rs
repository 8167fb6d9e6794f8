//! The fused client path: the whole `MeshClient` stack as one service and
//! one future.
//!
//! [`MeshClient`](crate::MeshClient) behaves exactly as the layers stacked
//! in DESIGN.md's order:
//!
//! ```text
//! MetricsLayer -> RouterLayer -> TimeoutLayer::call -> RetryLayer
//!   -> TimeoutLayer::per_try -> BalanceLayer -> connector
//! ```
//!
//! but as layers, each is its own service and future, and they talk through
//! the request's `http::Extensions` (a map allocated per request and cloned
//! per attempt), each re-reading the clock and arming its own timer.
//! [`FusedClient`] runs the same steps in one `call` and one hand-written
//! state machine ([`FusedFuture`]): the route, the call's deadline, the
//! retry state and the attempt's endpoint travel in the future's own fields;
//! one clock read serves the metrics start, the deadlines, the budget and
//! the first pick; one timer (the earlier of the attempt's and the call's
//! deadline, or the backoff's end) races each step.
//!
//! The policy code is the layers' own, shared: [`RouteTable`]'s decision,
//! the call and per-try deadline computations of [`crate::timeout`], the
//! retry plan, decision and body draining of [`crate::retry`], the
//! balancer's attempt start of [`crate::balance`], and the metrics
//! recorder of [`crate::metrics`]. What a caller puts in the request's
//! extensions is still honoured: a [`Deadline`], an
//! [`OnAttemptEnd`](crate::balance::OnAttemptEnd) observer, an
//! [`AttemptEndpoint`](crate::ext::AttemptEndpoint) cell, [`RouteInfo`],
//! [`Subset`] and [`TriedEndpoints`].
//!
//! Responses carry [`ServedBy`](crate::ext::ServedBy) and
//! [`Attempts`](crate::ext::Attempts) (and a
//! [`LateOutcome`](crate::balance::LateOutcome) for a gRPC response whose
//! status comes in trailers); errors are the layers' errors.

mod future;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{Request, Response};
use tower::Service;

use crate::balance::{EndpointPool, PoolShared};
use crate::body::MeshBody;
use crate::error::{BoxError, TimeoutKind};
use crate::ext::{Deadline, RouteInfo, Subset, TriedEndpoints};
use crate::metrics::MetricsLayer;
use crate::retry::{Plan, RetryLayer};
use crate::router::{RouteTable, RouterLayer};
use crate::timeout::{call_deadline, route_length};

pub use future::FusedFuture;
use future::{Call, Kept, Retrying};

/// The service under the fused path: the connector, or anything standing in
/// for it (a cloneable `Service` of [`MeshBody`] requests whose futures are
/// `Send`).
pub trait Upstream<RB>:
    Service<Request<MeshBody>, Response = Response<RB>, Error = BoxError, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<T, RB> Upstream<RB> for T where
    T: Service<
            Request<MeshBody>,
            Response = Response<RB>,
            Error = BoxError,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// The mesh client's whole request path over `S` (the connector, or any
/// `Service` standing in for it) in one service: see the
/// [module docs](self). Clones share everything.
pub struct FusedClient<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What every call of a [`FusedClient`] shares.
pub(super) struct Shared {
    metrics: MetricsLayer,
    routes: Arc<ArcSwap<RouteTable>>,
    retry: Arc<crate::retry::Shared>,
    pool: Arc<PoolShared>,
}

impl<S: Clone> Clone for FusedClient<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> std::fmt::Debug for FusedClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedClient")
            .field("service", &self.shared.pool.service)
            .finish_non_exhaustive()
    }
}

impl<S> FusedClient<S> {
    /// The path the layers would make of `metrics`, `routes`, a call and a
    /// per-try timeout (no defaults: the route's), `retry`, and a balancer
    /// over `pool`, above `inner`.
    pub fn new(
        inner: S,
        metrics: MetricsLayer,
        routes: RouterLayer,
        retry: RetryLayer,
        pool: EndpointPool,
    ) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                metrics,
                routes: routes.table().clone(),
                retry: retry.shared().clone(),
                pool: pool.shared.clone(),
            }),
        }
    }

    /// The service under the path.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, RB> Service<Request<MeshBody>> for FusedClient<S>
where
    S: Upstream<RB> + Service<Request<MeshBody>, Response = Response<RB>>,
    RB: http_body::Body + Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = FusedFuture<S, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<MeshBody>) -> FusedFuture<S, RB> {
        self.call_with(req, crate::CallOptions::default())
    }
}

impl<S, RB> FusedClient<S>
where
    S: Upstream<RB> + Service<Request<MeshBody>, Response = Response<RB>>,
    RB: http_body::Body + Send + 'static,
{
    /// [`Service::call`] with per-call `options` (see
    /// [`CallOptions`](crate::CallOptions)): `options.deadline` is enforced
    /// as the call's own, failing the call with a call timeout
    /// ([`Elapsed`](crate::error::Elapsed) of kind `Call`) when it passes,
    /// whatever the route's timeout (the earlier wins, with any
    /// [`Deadline`] on the request). Unlike a `Deadline` extension alone,
    /// which only bounds the attempts, this needs no timer of the caller's
    /// own: the call's one timer serves. `options.on_attempt_end` observes
    /// every attempt, in place of an extension.
    pub fn call_with(
        &mut self,
        req: Request<MeshBody>,
        options: crate::CallOptions,
    ) -> FusedFuture<S, RB> {
        let shared = &*self.shared;
        // The call's one clock read (metrics, deadlines, budget, first pick).
        let now = tokio::time::Instant::now();
        let (mut recorder, trace) = shared.metrics.start_untraced(&req, now);

        let decided = shared.routes.load().decide(&req);
        let (route, subset) = match decided {
            Ok(decided) => decided,
            Err(e) => return FusedFuture::failed(recorder, Box::new(e)),
        };
        let ext = req.extensions();
        // The router's decision wins over a caller's, as the layers' inserts.
        let route = route.or_else(|| ext.get::<RouteInfo>().map(|r| r.0.clone()));
        // The metrics know the route here (in the layered stack the router
        // sits inside the metrics layer, which cannot see it).
        if let Some(route) = &route {
            recorder.route_if_unknown(&route.route);
        }
        let subset = subset.or_else(|| ext.get::<Subset>().and_then(|s| s.0));

        // The call timeout: the route's, else the inherited deadline, capped
        // by a caller's `Deadline`. Without one, a caller's `Deadline` still
        // bounds the attempts (as the extension did below the call timeout).
        let existing = ext.get::<Deadline>().map(|d| d.0);
        let configured = route
            .as_ref()
            .and_then(|r| route_length(r, TimeoutKind::Call));
        let call_at = call_deadline(configured, crate::inherit::deadline(), existing, now);
        // A deadline the caller enforces bounds the call itself (an earlier
        // `Deadline` on the request with it).
        let enforced = (options.deadline).map(|at| existing.map_or(at, |e| e.min(at)));
        let call_at = future::earliest(call_at, enforced);
        let tried = ext
            .get::<TriedEndpoints>()
            .map_or(Vec::new(), |t| t.0.clone());

        let mut call = Call {
            shared: Arc::clone(&self.shared),
            per_try: route
                .as_ref()
                .and_then(|r| route_length(r, TimeoutKind::PerTry)),
            route,
            subset,
            call_at,
            call_after: call_at.map_or(std::time::Duration::ZERO, |at| {
                at.saturating_duration_since(now)
            }),
            deadline: call_at.or(existing),
            tried,
            attempts: 1,
            attempt: future::AttemptState::default(),
            trace,
            observer: options.on_attempt_end,
        };
        let plan = crate::retry::plan(&shared.retry, call.policy(), &req, now);
        if plan == Plan::Once {
            let attempt = call.start(&mut self.inner, req, now);
            return FusedFuture::attempt(recorder, call, None, attempt);
        }
        // Keep the service made ready for the first attempt; the clone left
        // behind serves the next request.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let mut again = Retrying {
            service,
            kept: Kept::of(&parts),
            first: Some(parts),
            body: MeshBody::empty(),
        };
        if plan == Plan::Replay {
            again.body = body;
            let req = again.request();
            let attempt = call.start(&mut again.service, req, now);
            FusedFuture::attempt(recorder, call, Some(again), attempt)
        } else {
            FusedFuture::buffering(recorder, call, again, body)
        }
    }
}
