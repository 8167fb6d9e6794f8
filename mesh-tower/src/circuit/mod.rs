//! Circuit breaking as a concurrency limit that fails fast.
//!
//! An upstream that slows down makes its callers queue: every waiting
//! request holds memory, a task and often a connection, and latency grows
//! for everyone. A [`CircuitBreaker`] caps the requests in flight through it
//! at `max_requests` ([`CircuitBreakerConfig`]); the next one fails *at
//! once* with a typed [`CircuitOpen`] error instead of waiting, so the
//! caller can shed load and the upstream gets room to recover. As soon as a
//! request finishes, its slot is free again: the "circuit" closes by itself
//! (see [`mesh_core::circuit`] for the Envoy semantics).
//!
//! A slot is held from `call` until the response future completes, or is
//! dropped (a cancelled call gives its slot back). The limit is checked in
//! `call`, not in `poll_ready`: readiness would make callers wait, which is
//! exactly what a breaker must not do.
//!
//! All services made by one [`CircuitBreakerLayer`] (and all their clones)
//! share one set of limits: build one layer per upstream service. The
//! `max_pending` limit is the balancer's (requests waiting for an
//! endpoint); this standalone layer enforces `max_requests`.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response};
//! use mesh_core::config::model::CircuitBreakerConfig;
//! use mesh_tower::body::MeshBody;
//! use mesh_tower::circuit::CircuitBreakerLayer;
//! use mesh_tower::error::{CircuitOpen, ErrorKind, kind};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let layer = CircuitBreakerLayer::new(
//!     &CircuitBreakerConfig { max_requests: 1, max_pending: 1 },
//!     Arc::from("news-service"),
//! );
//! let (tx, rx) = tokio::sync::oneshot::channel::<()>();
//! let rx = std::sync::Mutex::new(Some(rx));
//! let mut svc = ServiceBuilder::new().layer(layer).service_fn(move |_req: Request<MeshBody>| {
//!     let rx = rx.lock().unwrap().take();
//!     async move {
//!         if let Some(rx) = rx { let _ = rx.await; } // the first call hangs until told
//!         Ok::<_, mesh_tower::BoxError>(Response::new(()))
//!     }
//! });
//! let first = svc.ready().await.unwrap().call(Request::new(MeshBody::empty()));
//! // The one slot is taken: the second call fails at once.
//! let err = svc.ready().await.unwrap().call(Request::new(MeshBody::empty())).await.unwrap_err();
//! assert_eq!(kind(&*err), ErrorKind::CircuitOpen);
//! assert_eq!(err.downcast_ref::<CircuitOpen>().unwrap().service.as_ref(), "news-service");
//! tx.send(()).unwrap();
//! first.await.unwrap(); // done: the slot is free again
//! assert!(svc.ready().await.unwrap().call(Request::new(MeshBody::empty())).await.is_ok());
//! # }
//! ```
//!
//! [`CircuitBreakerConfig`]: mesh_core::config::model::CircuitBreakerConfig

mod future;
mod layer;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use mesh_core::circuit::ConcurrencyLimits;
use tower::Service;

use crate::error::{BoxError, CircuitOpen};

pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;

/// A concurrency limit around `S` that fails fast (see the
/// [module docs](self)).
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    limits: ConcurrencyLimits,
    service: Arc<str>,
}

// === impl CircuitBreaker ===

impl<S> CircuitBreaker<S> {
    /// Limits `inner` by `limits` (shared with every other holder of a
    /// clone of `limits`); `service` names the upstream in errors.
    pub fn new(inner: S, limits: ConcurrencyLimits, service: Arc<str>) -> Self {
        Self {
            inner,
            limits,
            service,
        }
    }

    /// The limits (for metrics: [`ConcurrencyLimits::in_flight`]; live
    /// changes: [`ConcurrencyLimits::update`]).
    pub fn limits(&self) -> &ConcurrencyLimits {
        &self.limits
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
}

impl<S, Req> Service<Req> for CircuitBreaker<S>
where
    S: Service<Req, Error = BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limits.try_acquire_request() {
            Ok(permit) => ResponseFuture::called(self.inner.call(req), permit),
            Err(source) => ResponseFuture::open(CircuitOpen {
                service: Arc::clone(&self.service),
                source,
            }),
        }
    }
}
