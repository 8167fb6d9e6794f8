//! The response future of [`super::MetricsLayer`]: records when the inner
//! call completes; leaves the in-flight gauge when dropped.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use opentelemetry::KeyValue;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::labels::method_name;
use super::layer::Shared;
use super::{ENDPOINT, ERROR_TYPE, METHOD, ROUTE, STATUS_CODE, ServiceLabels, kv};
use crate::error::{BoxError, EndpointError, ErrorKind, kind};
use crate::ext::{RouteInfo, ServedBy};

pin_project! {
    /// Response future of [`super::ClientMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recorder: Recorder,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, recorder: Recorder) -> Self {
        ResponseFuture { inner, recorder }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("service", self.recorder.shared.labels.name())
            .finish_non_exhaustive()
    }
}

/// One call being measured: in flight from `start` until dropped.
pub(crate) struct Recorder {
    shared: Arc<Shared>,
    route: Option<Arc<str>>,
    method: u8,
    start: Instant,
    done: bool,
}

/// The labels that vary between calls of one client: the key of its bound
/// `http.client.request.duration` series.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    route: Option<Arc<str>>,
    endpoint: Option<SocketAddr>,
    /// [`method_index`](super::labels::method_index).
    method: u8,
    outcome: Outcome,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Status(u16),
    Error(ErrorKind),
}

impl SeriesKey {
    /// The attributes of the series: always the same five keys in the same
    /// order.
    fn attrs(&self, labels: &ServiceLabels) -> [KeyValue; 5] {
        [
            labels.service_kv(),
            match &self.route {
                Some(r) => kv(ROUTE, r.clone()),
                None => kv(ROUTE, ""),
            },
            match self.endpoint {
                Some(ep) => labels.endpoint_kv(ep),
                None => kv(ENDPOINT, ""),
            },
            kv(METHOD, method_name(self.method)),
            match self.outcome {
                Outcome::Status(code) => kv(STATUS_CODE, i64::from(code)),
                Outcome::Error(kind) => kv(ERROR_TYPE, kind.as_str()),
            },
        ]
    }
}

impl Recorder {
    /// Labels the call with the route the router chose, unless a route is
    /// known already.
    pub(crate) fn route_if_unknown(&mut self, route: &Arc<str>) {
        if self.route.is_none() {
            self.route = Some(Arc::clone(route));
        }
    }

    pub(super) fn start(
        shared: Arc<Shared>,
        route: Option<Arc<str>>,
        method: u8,
        start: Instant,
    ) -> Recorder {
        shared.labels.client_active(1);
        Recorder {
            shared,
            route,
            method,
            start,
            done: false,
        }
    }

    pub(crate) fn record<B>(&mut self, result: &Result<http::Response<B>, BoxError>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let route = self.route.take();
        let key = match result {
            Ok(resp) => SeriesKey {
                route: route.or_else(|| {
                    resp.extensions()
                        .get::<RouteInfo>()
                        .map(|r| r.0.route.clone())
                }),
                endpoint: resp.extensions().get::<ServedBy>().map(|s| s.0),
                method: self.method,
                outcome: Outcome::Status(resp.status().as_u16()),
            },
            Err(e) => SeriesKey {
                route,
                endpoint: endpoint_of(&**e),
                method: self.method,
                outcome: Outcome::Error(kind(&**e)),
            },
        };
        let shared = &*self.shared;
        shared
            .series
            .record(key, elapsed, |key| key.attrs(&shared.labels));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.shared.labels.client_active(-1);
    }
}

/// The endpoint named by an [`EndpointError`] in the cause chain.
pub(crate) fn endpoint_of(err: &(dyn Error + 'static)) -> Option<SocketAddr> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(ep) = e.downcast_ref::<EndpointError>() {
            return Some(ep.endpoint);
        }
        cur = e.source();
    }
    None
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        this.recorder.record(&result);
        Poll::Ready(result)
    }
}
