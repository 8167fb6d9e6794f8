//! [`MetricsLayer`]: the client's golden signals (and trace injection), the
//! outermost layer of the mesh client.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use opentelemetry::metrics::Histogram;

use super::future::{Recorder, ResponseFuture, SeriesKey};
use super::labels::method_index;
use super::{Metrics, SeriesCache, ServiceLabels};
use crate::error::BoxError;
use crate::ext::RouteInfo;
use crate::trace::{self, IdGenerator, RandomIds, TraceFlags};
use mesh_core::config::TraceMode;

/// Records `http.client.request.duration` and `http.client.active_requests`
/// for every call to one service, and injects W3C `traceparent`.
///
/// Labels: the service (from [`ServiceLabels`]), the route
/// ([`RouteInfo`] on the request, or on the response when a router inside
/// copies it there), the endpoint ([`crate::ext::ServedBy`] on the
/// response, or [`crate::error::EndpointError`] in the error's cause
/// chain), the method, and the status code, or `error.type` (the
/// [`crate::error::kind`] of the error) when the call failed without a
/// response. The duration ends when the response head arrives (body
/// streaming is not included). A call whose future is dropped before it
/// completes is not recorded as a duration, but leaves the in-flight gauge.
///
/// ```
/// use mesh_tower::metrics::{Metrics, MetricsLayer};
/// use tower::ServiceBuilder;
///
/// let metrics = Metrics::global();
/// let svc = ServiceBuilder::new()
///     .layer(MetricsLayer::client(metrics.clone(), metrics.service("news-service")))
///     .service(tower::service_fn(|_req: http::Request<()>| async {
///         Ok::<_, mesh_tower::BoxError>(http::Response::new(()))
///     }));
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    shared: Arc<Shared>,
}

/// What every call of a layer shares: one `Arc` clone per call.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) metrics: Metrics,
    pub(super) labels: ServiceLabels,
    /// This client's bound `http.client.request.duration` series.
    pub(super) series: Arc<SeriesCache<SeriesKey, Histogram<f64>>>,
    ids: Option<Arc<dyn IdGenerator>>,
    flags: TraceFlags,
    /// Whether a call with no trace context starts a new trace.
    originate: bool,
}

impl MetricsLayer {
    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> MetricsLayer {
        match Arc::get_mut(&mut self.shared) {
            Some(s) => f(s),
            None => {
                let mut s = Shared {
                    metrics: self.shared.metrics.clone(),
                    labels: self.shared.labels.clone(),
                    series: self.shared.series.clone(),
                    ids: self.shared.ids.clone(),
                    flags: self.shared.flags,
                    originate: self.shared.originate,
                };
                f(&mut s);
                self.shared = Arc::new(s);
            }
        }
        self
    }
}

impl MetricsLayer {
    /// The client layer for calls to the service of `labels`. Trace
    /// propagation is on, with random ids ([`TraceMode::Propagate`]: a
    /// request with a [`TraceContext`](trace::TraceContext) goes out with a
    /// child of it; none starts a trace).
    pub fn client(metrics: Metrics, labels: ServiceLabels) -> MetricsLayer {
        MetricsLayer {
            shared: Arc::new(Shared {
                series: Arc::new(SeriesCache::new(
                    metrics.instruments().client_duration.clone(),
                )),
                metrics,
                labels,
                ids: Some(Arc::new(RandomIds)),
                flags: TraceFlags::SAMPLED,
                originate: TraceMode::default() == TraceMode::Originate,
            }),
        }
    }

    /// Uses `ids` for new trace and span ids (e.g. [`trace::SeededIds`] in
    /// tests).
    pub fn with_ids(self, ids: Arc<dyn IdGenerator>) -> MetricsLayer {
        self.edit(|s| s.ids = Some(ids))
    }

    /// The flags of traces this layer starts (default: sampled).
    pub fn new_trace_flags(self, flags: TraceFlags) -> MetricsLayer {
        self.edit(|s| s.flags = flags)
    }

    /// Turns `traceparent` injection off (metrics only).
    pub fn without_trace(self) -> MetricsLayer {
        self.edit(|s| s.ids = None)
    }

    /// What the layer does with trace context (`MESH_TRACE`): see
    /// [`TraceMode`]. [`Propagate`](TraceMode::Propagate), the default,
    /// injects only a child of the request's own
    /// [`TraceContext`](trace::TraceContext);
    /// [`Originate`](TraceMode::Originate) also starts a new trace (with
    /// [`new_trace_flags`](Self::new_trace_flags)) for a request without one;
    /// [`Off`](TraceMode::Off) is [`without_trace`](Self::without_trace).
    pub fn trace_mode(self, mode: TraceMode) -> MetricsLayer {
        if mode == TraceMode::Off {
            return self.without_trace();
        }
        self.edit(|s| {
            s.originate = mode == TraceMode::Originate;
            if s.ids.is_none() {
                s.ids = Some(Arc::new(RandomIds));
            }
        })
    }
}

impl MetricsLayer {
    /// Starts measuring a call at `now`: injects `traceparent` (if on) and
    /// enters the in-flight gauge. Shared by [`ClientMetrics`] and the
    /// fused client ([`crate::fused`]).
    pub(crate) fn start<B>(
        &self,
        req: &mut http::Request<B>,
        now: tokio::time::Instant,
    ) -> Recorder {
        let (recorder, outgoing) = self.start_untraced(req, now);
        if let Some(outgoing) = outgoing {
            outgoing.set(req.headers_mut());
        }
        recorder
    }

    /// [`start`](Self::start) for the fused path, which sets the trace
    /// headers on each attempt's request itself: they stay out of the head
    /// it keeps for retries.
    pub(crate) fn start_untraced<B>(
        &self,
        req: &http::Request<B>,
        now: tokio::time::Instant,
    ) -> (Recorder, Option<trace::Outgoing>) {
        let l = &self.shared;
        let outgoing = (l.ids.as_ref())
            .and_then(|ids| trace::outgoing(req, ids.as_ref(), l.flags, l.originate));
        let route = req
            .extensions()
            .get::<RouteInfo>()
            .map(|r| r.0.route.clone());
        let recorder = Recorder::start(l.clone(), route, method_index(req.method()), now);
        (recorder, outgoing)
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = ClientMetrics<S>;

    fn layer(&self, inner: S) -> ClientMetrics<S> {
        ClientMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct ClientMetrics<S> {
    inner: S,
    layer: MetricsLayer,
}

impl<S> ClientMetrics<S> {
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

impl<S, B, RB> Service<http::Request<B>> for ClientMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The call's one clock read, shared with the layers below.
        let now = tokio::time::Instant::now();
        let recorder = self.layer.start(&mut req, now);
        let inner = &mut self.inner;
        ResponseFuture::new(crate::clock::scoped(now, || inner.call(req)), recorder)
    }
}
