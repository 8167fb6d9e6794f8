//! Timeouts: the whole call's deadline, and each attempt's.
//!
//! # Two timeouts, one deadline
//!
//! A call through the mesh may take several attempts (see [`crate::retry`]).
//! Two limits apply, as in Envoy and gRPC:
//!
//! - the **call timeout** ([`TimeoutLayer::call`], outside the retry layer)
//!   bounds everything the caller waits for: every attempt and every
//!   backoff. It records when the call must be done as a [`Deadline`]
//!   request extension, so the layers below can plan with it;
//! - the **per-try timeout** ([`TimeoutLayer::per_try`], inside the retry
//!   layer) bounds one attempt, so a hung endpoint costs at most that long
//!   and the retry layer can try another endpoint. It is never longer than
//!   what is left of the [`Deadline`]: an attempt that could not finish in
//!   time is not worth starting a longer timer for.
//!
//! The length comes from the route the request took ([`RouteInfo`], set by
//! the router: the route's `timeout`, or its retry policy's
//! `per_try_timeout`). A request without `RouteInfo` (the layer used alone)
//! gets the layer's default. No timeout at all means no timer: the request
//! passes through untouched.
//!
//! A timeout fails the call with [`Elapsed`] (`kind` says which). When the
//! call's deadline has passed by the time an inner error reaches the call
//! timeout, that error is a consequence of the deadline (a per-try timer
//! clamped to it, say), so the call timeout reports its own `Elapsed { kind:
//! Call }`.
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use mesh_tower::body::MeshBody;
//! use mesh_tower::error::{Elapsed, TimeoutKind};
//! use mesh_tower::timeout::TimeoutLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let slow = tower::service_fn(|_req: Request<MeshBody>| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, mesh_tower::BoxError>(Response::new(()))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::call(Some(Duration::from_millis(10))))
//!     .service(slow);
//! let err = svc.oneshot(Request::new(MeshBody::empty())).await.unwrap_err();
//! assert_eq!(err.downcast_ref::<Elapsed>().unwrap().kind, TimeoutKind::Call);
//! # }
//! ```
//!
//! A gRPC request (`grpc-timeout` present, or a `content-type` of
//! `application/grpc`) gets `grpc-timeout` set on every attempt to the
//! attempt's timeout or what is left of the deadline, if either applies
//! (see [`grpc`]).
//!
//! [`Deadline`]: crate::ext::Deadline
//! [`RouteInfo`]: crate::ext::RouteInfo
//! [`Elapsed`]: crate::error::Elapsed

pub(crate) mod attempt;
pub(crate) mod cover;
mod future;
pub mod grpc;
mod layer;
#[cfg(test)]
mod tests;

use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;

use crate::body::MeshBody;
use crate::error::{BoxError, TimeoutKind};
use crate::ext::{Deadline, RouteInfo, RoutePolicy};
use tokio::time::Instant;

pub use future::ResponseFuture;
pub use layer::TimeoutLayer;

/// A call or per-try timeout around `S` (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    kind: TimeoutKind,
    default: Option<Duration>,
}

// === impl Timeout ===

impl<S> Timeout<S> {
    /// A call timeout: `default` applies to requests without [`RouteInfo`].
    pub fn call(inner: S, default: Option<Duration>) -> Self {
        Self {
            inner,
            kind: TimeoutKind::Call,
            default,
        }
    }

    /// A per-try timeout: `default` applies to requests without [`RouteInfo`].
    pub fn per_try(inner: S, default: Option<Duration>) -> Self {
        Self {
            inner,
            kind: TimeoutKind::PerTry,
            default,
        }
    }

    /// Which timeout this is.
    pub fn kind(&self) -> TimeoutKind {
        self.kind
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The configured length for `req`: the route's if the router set one,
    /// else the default.
    fn configured(&self, req: &http::Request<MeshBody>) -> Option<Duration> {
        match req.extensions().get::<RouteInfo>() {
            Some(route) => route_length(&route.0, self.kind),
            None => self.default,
        }
    }
}

/// The length a route configures for a timeout of `kind`: its `timeout`,
/// or its retry policy's `per_try_timeout`.
pub(crate) fn route_length(route: &RoutePolicy, kind: TimeoutKind) -> Option<Duration> {
    match kind {
        TimeoutKind::Call => route.timeout,
        TimeoutKind::PerTry => route.retry.as_ref().and_then(|p| p.per_try_timeout()),
    }
}

/// When the whole call must be done, from `now`: the configured length (or
/// what is left of the `inherited` deadline), capped by a deadline already
/// set on the request (`existing`) and the inherited one. `None`: no call
/// timer (nothing applies, or too long to represent).
pub(crate) fn call_deadline(
    configured: Option<Duration>,
    inherited: Option<Instant>,
    existing: Option<Instant>,
    now: Instant,
) -> Option<Instant> {
    let length = configured.or(inherited.map(|at| at.saturating_duration_since(now)))?;
    // A deadline already set (by an outer layer, or propagated from the
    // caller's caller) is kept if it is earlier. A timeout too long to
    // represent is no timeout.
    let existing = match (existing, inherited) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match (now.checked_add(length), existing) {
        (Some(at), Some(existing)) => Some(at.min(existing)),
        (Some(at), None) => Some(at),
        (None, existing) => existing,
    }
}

/// An attempt's timer length from `now`: `length`, never past `deadline`.
pub(crate) fn per_try_after(length: Duration, deadline: Option<Instant>, now: Instant) -> Duration {
    match deadline {
        Some(deadline) => length.min(deadline.saturating_duration_since(now)),
        None => length,
    }
}

impl<S, R> Service<http::Request<MeshBody>> for Timeout<S>
where
    S: Service<http::Request<MeshBody>, Response = R, Error = BoxError>,
{
    type Response = R;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<MeshBody>) -> Self::Future {
        let configured = self.configured(&req);
        let now = crate::clock::now();
        let existing = req.extensions().get::<Deadline>().map(|d| d.0);
        match self.kind {
            TimeoutKind::Call => {
                // A deadline inherited from the call being served (see
                // `crate::inherit`) bounds the whole call too.
                let inherited = crate::inherit::deadline();
                let Some(at) = call_deadline(configured, inherited, existing, now) else {
                    return ResponseFuture::passthrough(self.inner.call(req));
                };
                req.extensions_mut().insert(Deadline(at));
                let after = at.saturating_duration_since(now);
                ResponseFuture::timed(self.inner.call(req), at, TimeoutKind::Call, after)
            }
            TimeoutKind::PerTry => {
                let Some(length) = configured else {
                    // No attempt timer, but a gRPC call still tells the
                    // server what is left of its deadline.
                    let left = req.extensions().get::<Deadline>().map(Deadline::remaining);
                    grpc::refresh(&mut req, left);
                    return ResponseFuture::passthrough(self.inner.call(req));
                };
                let after = per_try_after(length, existing, now);
                let Some(at) = now.checked_add(after) else {
                    return ResponseFuture::passthrough(self.inner.call(req));
                };
                // The balancer below tells this scope where the attempt
                // went, so a fired timer can name the endpoint it gave up on.
                grpc::refresh(&mut req, Some(after));
                let inner = &mut self.inner;
                let (future, picked) = attempt::scoped(|| inner.call(req));
                ResponseFuture::timed(future, at, TimeoutKind::PerTry, after).with_endpoint(picked)
            }
        }
    }
}
