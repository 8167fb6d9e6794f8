//! Request bodies made replayable for retries.
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
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use mesh_tower::body::MeshBody;
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;

enum Peek {
    /// The body ended: everything is in the buffer.
    Done,
    /// It is still going (or too big): stream it.
    Stream,
}

/// `body` as a buffered [`MeshBody`] if it is complete within `limit` bytes
/// without waiting, else as a streaming one; the body's own error fails the
/// call.
pub(crate) async fn replayable(mut body: Body, limit: usize) -> Result<MeshBody, Status> {
    if body.is_end_stream() {
        return Ok(MeshBody::empty());
    }
    let mut data = BytesMut::new();
    let mut held: VecDeque<Frame<Bytes>> = VecDeque::new();
    let peek = poll_fn(|cx| {
        loop {
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(None) => return Poll::Ready(Ok(Peek::Done)),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(bytes) => {
                        data.extend_from_slice(&bytes);
                        if data.len() > limit {
                            return Poll::Ready(Ok(Peek::Stream));
                        }
                    }
                    Err(other) => {
                        held.push_back(other);
                        return Poll::Ready(Ok(Peek::Stream));
                    }
                },
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(status)),
                Poll::Pending => return Poll::Ready(Ok(Peek::Stream)),
            }
        }
    })
    .await?;
    match peek {
        Peek::Done if held.is_empty() => Ok(MeshBody::full(data.freeze())),
        _ => {
            if !data.is_empty() {
                held.push_front(Frame::data(data.freeze()));
            }
            Ok(MeshBody::streaming(Prefixed { held, rest: body }))
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_complete_body_is_buffered() {
        let body = Body::new(http_body_util::Full::new(Bytes::from_static(b"hello")));
        let mesh = replayable(body, 64).await.unwrap();
        assert!(mesh.is_buffered());
        assert_eq!(mesh.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_large_or_pending_body_streams_whole() {
        let big = Body::new(http_body_util::Full::new(Bytes::from(vec![7u8; 100])));
        let mesh = replayable(big, 64).await.unwrap();
        assert!(!mesh.is_buffered());
        assert_eq!(mesh.collect().await.unwrap().to_bytes().len(), 100);

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(4);
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        let stream =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mesh = replayable(Body::new(stream), 64).await.unwrap();
        assert!(!mesh.is_buffered());
        tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(mesh.collect().await.unwrap().to_bytes(), "ab");
    }
}
