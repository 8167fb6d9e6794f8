//! The response future of [`super::ServerLayer`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use opentelemetry::Value;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::metrics::{
    Attrs, ERROR_TYPE, METHOD, Metrics, ROUTE, SOURCE, STATUS_CODE, ServiceLabels, kv,
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
    metrics: Metrics,
    labels: ServiceLabels,
    route: Option<Value>,
    method: Value,
    source: Option<Value>,
    start: Instant,
    done: bool,
}

impl ServerRecorder {
    pub(super) fn start(
        metrics: Metrics,
        labels: ServiceLabels,
        route: Option<Value>,
        method: Value,
        source: Option<Value>,
    ) -> ServerRecorder {
        labels.server_active(1);
        ServerRecorder {
            metrics,
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
        let mut attrs = Attrs::new();
        attrs.push(self.labels.service_kv());
        attrs.push(kv(ROUTE, self.route.clone().unwrap_or(Value::from(""))));
        attrs.push(kv(METHOD, self.method.clone()));
        attrs.push(match status {
            Some(s) => kv(STATUS_CODE, i64::from(s)),
            // The semantic conventions' fallback for an unclassified error.
            None => kv(ERROR_TYPE, "_OTHER"),
        });
        if let Some(src) = &self.source {
            attrs.push(kv(SOURCE, src.clone()));
        }
        self.metrics
            .instruments()
            .server_duration
            .record(elapsed, attrs.as_slice());
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
