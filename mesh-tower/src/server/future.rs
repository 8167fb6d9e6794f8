//! The response future of [`super::ServerLayer`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use opentelemetry::Value;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::Caches;
use crate::metrics::{
    Attrs, ERROR_TYPE, METHOD, ROUTE, SOURCE, STATUS_CODE, ServiceLabels, ValueKey, kv, method_name,
};

pin_project! {
    /// Response future of [`super::ServerMetrics`]: records when the
    /// handler's response head is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recorder: ServerRecorder,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, recorder: ServerRecorder) -> Self {
        ResponseFuture { inner, recorder }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("service", self.recorder.labels.name())
            .finish_non_exhaustive()
    }
}

pub(super) struct ServerRecorder {
    caches: Arc<Caches>,
    labels: ServiceLabels,
    route: Option<Value>,
    method: u8,
    source: Option<Value>,
    start: Instant,
    done: bool,
}

/// The labels that vary between requests of one server: the key of its
/// bound `http.server.request.duration` series.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    route: Option<ValueKey>,
    /// [`crate::metrics::method_index`].
    method: u8,
    /// `None`: failed without a response.
    status: Option<u16>,
    source: Option<ValueKey>,
}

impl SeriesKey {
    fn attrs(&self, labels: &ServiceLabels) -> Attrs {
        let mut attrs = Attrs::new();
        attrs.push(labels.service_kv());
        attrs.push(kv(
            ROUTE,
            self.route.as_ref().map_or(Value::from(""), |r| r.0.clone()),
        ));
        attrs.push(kv(METHOD, method_name(self.method)));
        attrs.push(match self.status {
            Some(s) => kv(STATUS_CODE, i64::from(s)),
            // The semantic conventions' fallback for an unclassified error.
            None => kv(ERROR_TYPE, "_OTHER"),
        });
        if let Some(src) = &self.source {
            attrs.push(kv(SOURCE, src.0.clone()));
        }
        attrs
    }
}

impl ServerRecorder {
    pub(super) fn start(
        caches: Arc<Caches>,
        labels: ServiceLabels,
        route: Option<Value>,
        method: u8,
        source: Option<Value>,
    ) -> ServerRecorder {
        labels.server_active(1);
        ServerRecorder {
            caches,
            labels,
            route,
            method,
            source,
            start: Instant::now(),
            done: false,
        }
    }

    fn record(&mut self, status: Option<u16>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let key = SeriesKey {
            route: self.route.take().map(ValueKey),
            method: self.method,
            status,
            source: self.source.take().map(ValueKey),
        };
        let labels = &self.labels;
        self.caches
            .series
            .record(key, elapsed, |key| key.attrs(labels));
    }
}

impl Drop for ServerRecorder {
    fn drop(&mut self) {
        self.labels.server_active(-1);
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        this.recorder
            .record(result.as_ref().ok().map(|r| r.status().as_u16()));
        Poll::Ready(result)
    }
}
