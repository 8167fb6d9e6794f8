//! The response future of [`super::MetricsLayer`]: records when the inner
//! call completes; leaves the in-flight gauge when dropped.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use opentelemetry::Value;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::layer::Shared;
use super::{ENDPOINT, ERROR_TYPE, METHOD, ROUTE, STATUS_CODE, kv};
use crate::error::{BoxError, EndpointError, kind};
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
pub(super) struct Recorder {
    shared: Arc<Shared>,
    route: Option<Arc<str>>,
    method: Value,
    start: Instant,
    done: bool,
}

impl Recorder {
    pub(super) fn start(
        shared: Arc<Shared>,
        route: Option<Arc<str>>,
        method: Value,
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

    fn record<B>(&mut self, result: &Result<http::Response<B>, BoxError>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let (route, endpoint) = match result {
            Ok(resp) => (
                self.route.clone().or_else(|| {
                    resp.extensions()
                        .get::<RouteInfo>()
                        .map(|r| r.0.route.clone())
                }),
                resp.extensions().get::<ServedBy>().map(|s| s.0),
            ),
            Err(e) => (self.route.clone(), endpoint_of(&**e)),
        };
        let labels = &self.shared.labels;
        // Always the same five keys in the same order: the SDK finds the
        // series by this slice without sorting or allocating.
        let attrs = [
            labels.service_kv(),
            match route {
                Some(r) => kv(ROUTE, r),
                None => kv(ROUTE, ""),
            },
            match endpoint {
                Some(ep) => labels.endpoint_kv(ep),
                None => kv(ENDPOINT, ""),
            },
            kv(METHOD, self.method.clone()),
            match result {
                Ok(resp) => kv(STATUS_CODE, i64::from(resp.status().as_u16())),
                Err(e) => kv(ERROR_TYPE, kind(&**e).as_str()),
            },
        ];
        self.shared
            .metrics
            .instruments()
            .client_duration
            .record(elapsed, &attrs);
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
