//! Retries: turning transient failures into successes, within a budget.
//!
//! # What is retried
//!
//! After each attempt the layer classifies what happened, once, with
//! [`crate::classify`] (a response's status and `grpc-status`, or an
//! error's kind: connect failure, reset, per-try timeout) and asks
//! [`RetryPolicy::decide`]:
//!
//! - the policy's `on` conditions must cover the outcome (Envoy's
//!   `retry_on`: `5xx`, `gateway-error`, `reset`, `connect-failure`, listed
//!   status codes, gRPC's `unavailable`, ...; a per-try timeout is retried
//!   under `5xx`, `gateway-error` and `reset`);
//! - non-idempotent methods (POST, PATCH) are only retried after a connect
//!   failure (nothing was sent) unless the policy says `non_idempotent`;
//! - attempts must remain (`attempts` counts the first one);
//! - the server's pushback replaces the backoff: `grpc-retry-pushback-ms`
//!   (a negative or garbled value means "do not retry"), else
//!   `Retry-After` (seconds or an HTTP date). A pushback longer than
//!   [`RetryLayer::max_pushback`] stops retrying;
//! - the wait (pushback, or exponential backoff with full jitter) must end
//!   before the call's [`Deadline`]: a retry that cannot finish in time is
//!   not sent, and nothing is ever sent after the deadline;
//! - finally the **retry budget** must pay for it (see
//!   [`mesh_core::retry`] for why retries need a budget: without one, a
//!   struggling service gets up to `attempts` times its load exactly when it
//!   can least take it). Every original request deposits into the budget,
//!   every retry withdraws from it; when it is empty, the failure goes back
//!   to the caller at once.
//!
//! The policy is the request's route's ([`RouteInfo`]`.retry`, set by the
//! router; `None` means one attempt), or the layer's default for a request
//! without `RouteInfo`. The budget is the one given with
//! [`RetryLayer::budget`] (one per upstream service, shared by its routes);
//! **a layer built without one uses its own budget with the default config**
//! (20% of recent requests plus 10 retries per second), so a `RetryLayer`
//! is never unbounded.
//!
//! # Bodies
//!
//! A retry must send the same body again. A buffered [`MeshBody`] (`full`)
//! is replayed as is (a reference-counted copy, no allocation). A streaming
//! body whose size hint says it fits in [`RetryLayer::max_buffer`] (64 KiB
//! by default) is collected first; anything larger, or of unknown size, is
//! streamed once and never retried. A request its policy can never retry
//! (one attempt, or a non-idempotent method whose policy retries neither
//! non-idempotent requests nor a method-free outcome such as a connect
//! failure) is decided before anything is copied: it goes down as it is,
//! its head not copied and its body not buffered.
//!
//! The body of a failed response that will be retried is read and discarded
//! (up to 64 KiB) while backing off, then dropped, so that its connection
//! can go back to the pool instead of being closed.
//!
//! # Cost on the happy path
//!
//! A request whose route allows no retries, or whose body is not
//! replayable, goes straight to the inner service: one budget deposit (an
//! atomic add), no clone. A request that may be retried costs one clone of
//! its head (method, URI, headers, extensions) and of the inner service;
//! everything else ([`TriedEndpoints`], the jitter RNG, the backoff timer)
//! only exists once a retry is decided. Every response gets [`Attempts`].
//!
//! # Extensions
//!
//! - reads [`RouteInfo`] (policy) and [`Deadline`] (set by
//!   [`TimeoutLayer::call`](crate::timeout::TimeoutLayer::call)) from the
//!   request;
//! - adds to each retry's request the [`TriedEndpoints`] of the failed
//!   attempts (from [`ServedBy`] on responses and
//!   [`EndpointError`](crate::error::EndpointError) in error chains), so
//!   the balancer picks another endpoint when it can;
//! - sets [`Attempts`] on the response returned.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use http::{Request, Response, StatusCode};
//! use mesh_core::config::{RetryConfig, RetryOn};
//! use mesh_core::retry::RetryPolicy;
//! use mesh_tower::body::MeshBody;
//! use mesh_tower::ext::Attempts;
//! use mesh_tower::retry::RetryLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // An upstream that fails the first two calls with 503.
//! let calls = Arc::new(AtomicU32::new(0));
//! let upstream = {
//!     let calls = calls.clone();
//!     tower::service_fn(move |req: Request<MeshBody>| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             let status = if n < 2 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
//!             let mut resp = Response::new(req.into_body());
//!             *resp.status_mut() = status;
//!             Ok::<_, mesh_tower::BoxError>(resp)
//!         }
//!     })
//! };
//! let policy = RetryPolicy::new(&RetryConfig {
//!     on: vec![RetryOn::Server5xx],
//!     ..RetryConfig::default() // 3 attempts, 25ms..250ms backoff
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new(Some(policy)))
//!     .service(upstream);
//! let resp = svc.oneshot(Request::new(MeshBody::full("hello"))).await.unwrap();
//! assert_eq!(resp.status(), StatusCode::OK);
//! assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(3)));
//! # }
//! ```
//!
//! [`RetryPolicy::decide`]: mesh_core::retry::RetryPolicy::decide
//! [`RouteInfo`]: crate::ext::RouteInfo
//! [`Deadline`]: crate::ext::Deadline
//! [`TriedEndpoints`]: crate::ext::TriedEndpoints
//! [`ServedBy`]: crate::ext::ServedBy
//! [`Attempts`]: crate::ext::Attempts

mod attempt;
mod future;
mod layer;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower::Service;

use crate::body::MeshBody;
use crate::error::BoxError;
use crate::ext::RouteInfo;
use attempt::Retrying;
pub(crate) use attempt::{Head, decide, rebuild};
pub(crate) use future::{finish, poll_drain};
pub(crate) use layer::Shared;
use mesh_core::retry::{Decision, Outcome, RetryPolicy, StopReason, is_idempotent};

pub use future::ResponseFuture;
pub use layer::{DEFAULT_MAX_BUFFER, DEFAULT_MAX_PUSHBACK, OnRetry, RetryLayer};

/// Retries requests to `S` by policy, within a budget (see the
/// [module docs](self)). Built by [`RetryLayer`].
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

// === impl Retry ===

impl<S> Retry<S> {
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
}

impl<S: std::fmt::Debug> std::fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<http::Request<MeshBody>> for Retry<S>
where
    S: Service<http::Request<MeshBody>, Response = http::Response<B>, Error = BoxError> + Clone,
    B: Body,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<MeshBody>) -> Self::Future {
        let policy = match req.extensions().get::<RouteInfo>() {
            Some(route) => route.0.retry.as_ref(),
            None => self.shared.default_policy.as_ref(),
        };
        let buffered = match plan(&self.shared, policy, &req, crate::clock::now()) {
            Plan::Once => return ResponseFuture::passthrough(self.inner.call(req)),
            Plan::Replay => true,
            Plan::Buffer => false,
        };

        // Keep the service that was made ready for the first attempt; the
        // clone left behind serves the next request.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let route = req
            .extensions()
            .get::<RouteInfo>()
            .map(|r| Arc::clone(&r.0));
        let (parts, body) = req.into_parts();
        let mut retry = Retrying {
            service,
            shared: Arc::clone(&self.shared),
            route,
            parts,
            body: MeshBody::empty(),
            attempts: 1,
        };
        if buffered {
            retry.body = body;
            let future = retry.service.call(retry.request());
            ResponseFuture::called(future, retry)
        } else {
            let collect = Limited::new(body, self.shared.max_buffer).collect();
            ResponseFuture::buffering(collect, retry)
        }
    }
}

/// How a request goes down, decided before anything is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One attempt, as it is (no budget, not replayable, or its policy can
    /// never retry it).
    Once,
    /// May be retried; its body is buffered already.
    Replay,
    /// May be retried once its (small) streaming body is collected.
    Buffer,
}

/// Plans `req` under `policy` at `now`: deposits into the budget (every
/// original request does), then decides whether it may be retried.
/// Shared by [`Retry`] and the fused client ([`crate::fused`]).
pub(crate) fn plan(
    shared: &Shared,
    policy: Option<&RetryPolicy>,
    req: &http::Request<MeshBody>,
    now: tokio::time::Instant,
) -> Plan {
    let Some(budget) = &shared.budget else {
        return Plan::Once;
    };
    budget.deposit(now.into_std());
    let buffered = req.body().is_buffered();
    let replayable = buffered
        || req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|upper| upper <= shared.max_buffer as u64);
    // Decide before copying anything: a request its policy can never
    // retry goes down as it is.
    if !replayable || policy.is_none_or(|p| !may_retry(p, req.method())) {
        return Plan::Once;
    }
    if buffered { Plan::Replay } else { Plan::Buffer }
}

/// Whether some outcome of the first attempt of a `method` request could be
/// retried under `policy`. Exact for idempotent methods (attempts left);
/// for the others it probes the outcomes a method does not restrict
/// (connect failures, gRPC statuses) and, when the policy turns out to allow
/// non-idempotent retries, answers yes (its status list is not enumerated).
fn may_retry(policy: &RetryPolicy, method: &http::Method) -> bool {
    if policy.attempts() <= 1 {
        return false;
    }
    let method = method.as_str();
    if is_idempotent(method) {
        return true;
    }
    let grpc = |code| Outcome::Response {
        status: 200,
        grpc_status: Some(code),
    };
    let probes = [
        Outcome::ConnectFailure,
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::Response {
            status: 503,
            grpc_status: None,
        },
        grpc(1),
        grpc(4),
        grpc(8),
        grpc(13),
        grpc(14),
    ];
    let mut method_blocked = false;
    for outcome in probes {
        match policy.should_retry(outcome, 1, method) {
            Decision::RetryAfter(_) => return true,
            Decision::Stop(StopReason::NonIdempotent) => method_blocked = true,
            Decision::Stop(_) => {}
        }
    }
    // Blocked by the method: only the method-free outcomes probed above
    // could have been retried, and none is. Otherwise the policy may retry
    // non-idempotent requests on a listed status: keep the copy.
    !method_blocked
}
