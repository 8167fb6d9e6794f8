//! [`Authz`]: the service of [`super::AuthzLayer`], one decision per request.

use std::sync::Arc;
use std::task::{Context, Poll};

use crate::router::View;
use http::{Request, Response};
use tower::Service;

use super::Shared;
use super::future::{AuthzBody, ResponseFuture, denied, is_grpc};
use crate::ext::PeerIdentity;

/// Enforces intentions in front of `S`; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Authz<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Authz<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Authz { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Authz<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<AuthzBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        if shared.is_pending() {
            self.shared.start();
        }
        let peer = req
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.as_ref());
        let engine = shared.engine.load();
        let decision = engine
            .intentions
            .decide(peer, &shared.destination, &View(&req));
        let allowed = decision.is_allowed();
        shared.metrics.record(
            allowed,
            shared.sources.get(peer),
            engine.rule_label(&decision.decided_by),
        );
        if allowed {
            tracing::debug!(
                source = peer.map_or("anonymous", |p| p.as_str()),
                destination = %shared.destination,
                method = %req.method(),
                path = req.uri().path(),
                "{decision}"
            );
            return ResponseFuture::called(self.inner.call(req));
        }
        if let Some(suppressed) = shared.log.admit() {
            tracing::info!(
                source = peer.map_or("anonymous", |p| p.as_str()),
                destination = %shared.destination,
                method = %req.method(),
                path = req.uri().path(),
                suppressed,
                "request {decision}"
            );
        }
        ResponseFuture::denied(denied(is_grpc(req.headers())))
    }
}
