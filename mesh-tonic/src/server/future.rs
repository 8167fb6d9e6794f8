//! The response future and body of [`super::GrpcServerLayer`], and the
//! recorder they hand over: a call is measured until its status is known,
//! which is at the response head for a trailers-only answer and at the
//! trailers otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use mesh_tower::BoxError;
use mesh_tower::inherit;
use mesh_tower::metrics::ValueKey;
use opentelemetry::{KeyValue, Value};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tonic::{Code, Status};

use super::labels::{code_name, grpc_status};
use super::{GRPC_METHOD, GRPC_STATUS, SOURCE, Shared};

/// The labels that vary between calls of one server: the key of its bound
/// `grpc.server.call.duration` series.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    method: ValueKey,
    code: i32,
    source: Option<ValueKey>,
}

/// One call's measurement; records exactly once. Dropped before the status
/// is known, the call was cancelled (or its deadline passed: tonic's own
/// deadline enforcement drops the handler).
pub(super) struct Recorder {
    pub(super) shared: Arc<Shared>,
    /// The request path, as received.
    pub(super) path: Option<Box<str>>,
    /// Its `grpc.method` value when already cached.
    pub(super) method: Option<Value>,
    pub(super) source: Option<Value>,
    pub(super) start: Instant,
    pub(super) deadline: Option<Instant>,
    pub(super) done: bool,
}

impl Recorder {
    pub(super) fn record(&mut self, code: Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let shared = &self.shared;
        let method = match (code, self.method.take()) {
            // An unknown method is `other` (gRFC A66): request paths are
            // the client's to choose, the label set must stay bounded.
            (Code::Unimplemented, _) => Value::from("other"),
            (_, Some(v)) => v,
            (_, None) => shared.method(self.path.take().unwrap_or_default()),
        };
        let key = SeriesKey {
            method: ValueKey(method),
            code: i32::from(code),
            source: self.source.take().map(ValueKey),
        };
        shared.series.record(key, elapsed, |key| {
            // Built on a miss only: a Vec is fine.
            let mut attrs = vec![
                shared.service.clone(),
                KeyValue::new(GRPC_METHOD, key.method.0.clone()),
                KeyValue::new(GRPC_STATUS, code_name(code)),
            ];
            if let Some(source) = &key.source {
                attrs.push(KeyValue::new(SOURCE, source.0.clone()));
            }
            attrs
        });
    }

    fn scoped<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
        match deadline {
            Some(at) => inherit::sync_scope(at, f),
            None => f(),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.done {
            let expired = self.deadline.is_some_and(|at| Instant::now() >= at);
            self.record(if expired {
                Code::DeadlineExceeded
            } else {
                Code::Cancelled
            });
        }
    }
}

pin_project! {
    /// Response future of [`super::GrpcServerMetrics`]: polls the handler
    /// inside its inherited deadline, then hands the recorder to the body
    /// (or records a trailers-only status at once).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recorder: Option<Recorder>,
        deadline: Option<Instant>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, recorder: Recorder) -> Self {
        let deadline = recorder.deadline;
        ResponseFuture {
            inner,
            recorder: Some(recorder),
            deadline,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: Body,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let result = ready!(Recorder::scoped(*this.deadline, || inner.poll(cx)));
        let mut recorder = this.recorder.take();
        match result {
            Ok(response) => {
                if let Some(r) = recorder.as_mut() {
                    match grpc_status(response.headers()) {
                        // Trailers-only: the status is in the head, the
                        // body is empty.
                        Some(code) => r.record(code),
                        // No status and nothing to follow: not gRPC.
                        None if response.body().is_end_stream() => r.record(Code::Unknown),
                        None => {}
                    }
                }
                let deadline = *this.deadline;
                Poll::Ready(Ok(response.map(|inner| ResponseBody {
                    inner,
                    recorder,
                    deadline,
                })))
            }
            Err(err) => {
                let err: BoxError = err.into();
                // tonic turns an error that is a `Status` into that status
                // (its RecoverError layer, outside this one); anything
                // else resets the stream, which clients see as INTERNAL.
                let code = err
                    .downcast_ref::<Status>()
                    .map_or(Code::Internal, Status::code);
                if let Some(r) = recorder.as_mut() {
                    r.record(code);
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

pin_project! {
    /// The response body of [`super::GrpcServerMetrics`]: the handler's
    /// body, recording the call when its trailers pass (or when it is
    /// dropped before them: CANCELLED).
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Recorder>,
        deadline: Option<Instant>,
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("recording", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let inner = this.inner;
        // A streaming handler produces its messages here: it inherits the
        // deadline too.
        let frame = ready!(Recorder::scoped(*this.deadline, || inner.poll_frame(cx)));
        if let Some(recorder) = this.recorder.as_mut() {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(trailers) = f.trailers_ref() {
                        recorder.record(grpc_status(trailers).unwrap_or(Code::Unknown));
                    }
                }
                // hyper resets the stream; clients see INTERNAL.
                Some(Err(_)) => recorder.record(Code::Internal),
                // Ended without a status: clients see UNKNOWN.
                None => recorder.record(Code::Unknown),
            }
            if recorder.done {
                *this.recorder = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
