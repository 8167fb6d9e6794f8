//! Request bodies made replayable for retries, and the response body that
//! reports how a call ended.
//!
//! # Responses
//!
//! [`ResponseBody`] wraps the upstream's body. When the response's status
//! comes in its trailers (after messages), it completes the attempt's
//! [`LateOutcome`] with the trailers' `grpc-status` (so outlier detection
//! counts server-failure codes sent after messages), fails it if the body
//! breaks, or cancels it (no observation) if the caller drops the body
//! before its end; and it records the call's duration (gRFC A66) with the
//! final status.
//!
//! # Requests
//!
//! tonic encodes a request as a stream of frames whose size it cannot tell
//! in advance, and mesh-tower's retry layer only replays bodies it can
//! buffer. A unary call's body, though, is complete as soon as it is
//! encoded: [`replayable`] reads the frames that are ready *now*, and if the
//! body ends within the limit it becomes a buffered [`MeshBody`] (retried
//! like any small HTTP body). A streaming call's body, which would have to
//! wait for the application, is never waited for: what was read is sent
//! first and the rest streams, once (no retry).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use mesh_tower::balance::LateOutcome;
use mesh_tower::body::MeshBody;
use mesh_tower::error::ErrorKind;
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;

use crate::metrics::MethodMetrics;

enum Peek {
    /// The body ended: everything is in the buffer.
    Done,
    /// It is still going (or too big): stream it.
    Stream,
}

/// `body` as a buffered [`MeshBody`] if it is complete within `limit` bytes
/// without waiting, else as a streaming one; the body's own error fails the
/// call. Never waits: the frames ready now are read with a no-op waker (a
/// body still pending registers the real waker when it is polled again, as
/// it streams).
pub(crate) fn replayable(mut body: Body, limit: usize) -> Result<MeshBody, Status> {
    if body.is_end_stream() {
        return Ok(MeshBody::empty());
    }
    // A unary body is usually one frame: kept as is (no copy); a second
    // frame starts a buffer.
    let mut data = Collected::default();
    let mut held: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    let peek = loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => break Peek::Done,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) => {
                    data.push(bytes);
                    if data.len() > limit {
                        break Peek::Stream;
                    }
                }
                Err(other) => {
                    held.push_back(other);
                    break Peek::Stream;
                }
            },
            Poll::Ready(Some(Err(status))) => return Err(status),
            Poll::Pending => break Peek::Stream,
        }
    };
    let data = data.into_bytes();
    match peek {
        Peek::Done if held.is_empty() => Ok(MeshBody::framed(data)),
        _ => {
            if !data.is_empty() {
                held.push_front(Frame::data(data));
            }
            Ok(MeshBody::streaming(Prefixed { held, rest: body }))
        }
    }
}

/// Data frames read so far: the first one as is, more in one buffer.
#[derive(Default)]
enum Collected {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn push(&mut self, bytes: Bytes) {
        *self = match std::mem::take(self) {
            Collected::Empty => Collected::One(bytes),
            Collected::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + bytes.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&bytes);
                Collected::Many(buf)
            }
            Collected::Many(mut buf) => {
                buf.extend_from_slice(&bytes);
                Collected::Many(buf)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Collected::Empty => 0,
            Collected::One(b) => b.len(),
            Collected::Many(b) => b.len(),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Collected::Empty => Bytes::new(),
            Collected::One(b) => b,
            Collected::Many(b) => b.freeze(),
        }
    }
}

pin_project! {
    /// Frames already read, then the rest of the body.
    struct Prefixed {
        held: VecDeque<Frame<Bytes>>,
        #[pin]
        rest: Body,
    }
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if let Some(frame) = this.held.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        this.rest.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown: a streamed body is sent once.
        SizeHint::default()
    }
}

pin_project! {
    /// The body of a [`MeshChannel`](crate::MeshChannel) response: the
    /// upstream's frames as they come, reporting the call's end (see the
    /// [module docs](self)).
    pub struct ResponseBody {
        #[pin]
        inner: Incoming,
        end: Option<End>,
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: Incoming, end: Option<End>) -> Self {
        Self { inner, end }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("pending_end", &self.end.is_some())
            .finish_non_exhaustive()
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(end) = this.end.take() {
            match &frame {
                Some(Ok(f)) => match f.trailers_ref() {
                    Some(trailers) => end.finish(Some(crate::channel::grpc_status(trailers))),
                    // A data frame: not the end yet.
                    None => *this.end = Some(end),
                },
                Some(Err(err)) => end.fail(err),
                None => end.finish(None),
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

/// What is left to report when a response body ends: the attempt's late
/// outcome and the call's metrics. Dropped unreported (the caller dropped
/// the body early), the attempt is cancelled and the call is CANCELLED.
pub(crate) struct End {
    pub(crate) late: Option<LateOutcome>,
    pub(crate) call: Option<(Arc<MethodMetrics>, Instant)>,
}

impl End {
    /// The trailers came with `code` (`None`: no status in them; or no
    /// trailers at all).
    fn finish(mut self, code: Option<Option<u32>>) {
        let code = code.flatten();
        if let Some(late) = self.late.take() {
            late.complete(code);
        }
        if let Some((method, start)) = self.call.take() {
            // A gRPC response must end with a status: none is UNKNOWN.
            method.record_call(start, code.unwrap_or(2));
        }
    }

    fn fail(mut self, err: &hyper::Error) {
        if let Some(late) = self.late.take() {
            late.fail(err);
        }
        if let Some((method, start)) = self.call.take() {
            // The stream broke before its status.
            let code = match mesh_tower::error::kind(err) {
                ErrorKind::Timeout => tonic::Code::DeadlineExceeded,
                ErrorKind::Reset | ErrorKind::ConnectFailure => tonic::Code::Unavailable,
                _ => tonic::Code::Unknown,
            };
            method.record_call(start, code as u32);
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if let Some(late) = self.late.take() {
            late.cancel();
        }
        if let Some((method, start)) = self.call.take() {
            method.record_call(start, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_complete_body_is_buffered() {
        let body = Body::new(http_body_util::Full::new(Bytes::from_static(b"hello")));
        let mesh = replayable(body, 64).unwrap();
        assert!(mesh.is_buffered());
        assert_eq!(mesh.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn frames_are_joined_and_a_single_frame_is_not_copied() {
        let frame = Bytes::from_static(b"one frame");
        let body = Body::new(http_body_util::Full::new(frame.clone()));
        let mesh = replayable(body, 64).unwrap();
        let out = mesh.collect().await.unwrap().to_bytes();
        assert_eq!(out, frame);
        // Same memory: the static slice was passed along, not copied.
        assert_eq!(out.as_ptr(), frame.as_ptr());

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(4);
        for part in [&b"ab"[..], b"cd", b"e"] {
            tx.send(Ok(Frame::data(Bytes::from_static(part))))
                .await
                .unwrap();
        }
        drop(tx);
        let stream =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mesh = replayable(Body::new(stream), 64).unwrap();
        assert!(mesh.is_buffered());
        assert_eq!(mesh.collect().await.unwrap().to_bytes(), "abcde");
    }

    #[tokio::test]
    async fn a_large_or_pending_body_streams_whole() {
        let big = Body::new(http_body_util::Full::new(Bytes::from(vec![7u8; 100])));
        let mesh = replayable(big, 64).unwrap();
        assert!(!mesh.is_buffered());
        assert_eq!(mesh.collect().await.unwrap().to_bytes().len(), 100);

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(4);
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        let stream =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mesh = replayable(Body::new(stream), 64).unwrap();
        assert!(!mesh.is_buffered());
        tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(mesh.collect().await.unwrap().to_bytes(), "ab");
    }
}
