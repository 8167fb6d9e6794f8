//! The server side: golden signals and trace context for axum and hyper
//! services, and the seam where transport security plugs in.
//!
//! [`ServerLayer`] records `http.server.request.duration` (service, route,
//! method, status code, source) and `http.server.active_requests`, and turns
//! an incoming W3C `traceparent` into a [`crate::trace::TraceContext`]
//! request extension, which the mesh client continues when the handler
//! copies it to an outgoing request.
//!
//! # Where it sits
//!
//! ```text
//! TLS accept -> [PeerIdentity] -> authorization -> ServerLayer -> handler
//! ```
//!
//! The mTLS acceptor (a later layer) inserts [`crate::ext::PeerIdentity`]
//! into every request's extensions; the authorization layer decides on it;
//! this layer labels the metrics with it (`mesh.source`, the caller's
//! SPIFFE ID) and leaves it for the handler. Without an identity layer
//! there is no source label.
//!
//! Route labels come from axum's `MatchedPath` (the path template, e.g.
//! `/news/{id}`, never the raw path): add the layer with `Router::layer` so
//! it runs after routing. Used around a whole router or a plain hyper
//! service, the route is empty.
//!
//! Route templates and callers are formatted once, and the histogram is
//! bound per (route, method, status, caller) series in the layer's
//! [`SeriesCache`]: recording a request makes
//! the SDK hash no attributes.
//!
//! ```
//! use axum::{Router, routing::get};
//! use mesh_tower::metrics::Metrics;
//! use mesh_tower::server::ServerLayer;
//!
//! let metrics = Metrics::global();
//! let app: Router = Router::new()
//!     .route("/news/{id}", get(|| async { "story" }))
//!     .layer(ServerLayer::new(metrics.clone(), metrics.service("news-service")));
//! # let _ = app;
//! ```

mod future;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry::Value;
use opentelemetry::metrics::Histogram;
use tower::{Layer, Service};

use crate::ext::PeerIdentity;
use crate::metrics::{LabelCache, Metrics, SeriesCache, ServiceLabels, method_index};
use crate::trace;

pub use future::ResponseFuture;
use future::ServerRecorder;

/// Server-side golden signals and trace extraction; see the [module
/// docs](self).
#[derive(Debug, Clone)]
pub struct ServerLayer {
    labels: ServiceLabels,
    caches: Arc<Caches>,
}

/// Route templates and caller identities seen, as attribute values, and
/// the bound duration series (shared by every clone of the layer, so each
/// is formatted and bound once).
#[derive(Debug)]
struct Caches {
    routes: LabelCache<Box<str>>,
    sources: LabelCache<mesh_core::identity::SpiffeId>,
    series: SeriesCache<future::SeriesKey, Histogram<f64>>,
}

impl ServerLayer {
    /// The layer for this service (`labels` from
    /// [`Metrics::service`] with this service's name).
    pub fn new(metrics: Metrics, labels: ServiceLabels) -> ServerLayer {
        ServerLayer {
            labels,
            caches: Arc::new(Caches {
                routes: LabelCache::new(),
                sources: LabelCache::new(),
                series: SeriesCache::new(metrics.instruments().server_duration.clone()),
            }),
        }
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerMetrics<S>;

    fn layer(&self, inner: S) -> ServerMetrics<S> {
        ServerMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ServerLayer`].
#[derive(Debug, Clone)]
pub struct ServerMetrics<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S> ServerMetrics<S> {
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

impl Caches {
    fn route(&self, path: &str) -> Value {
        self.routes
            .get_or_insert_with(path, || (path.into(), Value::from(Arc::<str>::from(path))))
    }

    fn source(&self, id: &mesh_core::identity::SpiffeId) -> Value {
        self.sources.get_or_insert_with(id, || {
            (id.clone(), Value::from(Arc::<str>::from(id.as_str())))
        })
    }
}

impl<S, B, RB> Service<http::Request<B>> for ServerMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match trace::extract(req.headers()) {
            Ok(Some(ctx)) => {
                req.extensions_mut().insert(ctx);
            }
            Ok(None) => {}
            Err(error) => {
                // The W3C rule: a malformed parent restarts the trace here.
                tracing::debug!(%error, "ignoring malformed traceparent");
            }
        }
        let caches = &self.layer.caches;
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|m| caches.route(m.as_str()));
        let source = req
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.as_ref())
            .map(|id| caches.source(id));
        let recorder = ServerRecorder::start(
            Arc::clone(&self.layer.caches),
            self.layer.labels.clone(),
            route,
            method_index(req.method()),
            source,
        );
        ResponseFuture::new(self.inner.call(req), recorder)
    }
}
