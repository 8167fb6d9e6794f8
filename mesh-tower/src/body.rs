//! [`MeshBody`]: the request body inside the client stack.
//!
//! Whatever body type the caller uses is turned into a `MeshBody` at the
//! edge. A body the retry layer buffered (small, within the limit) is
//! `Full` and can be replayed for another attempt with [`MeshBody::try_clone`];
//! anything else streams through once.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::error::BoxError;

/// A request body: buffered (replayable) or streaming (once).
#[derive(Debug)]
pub struct MeshBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Buffered; `exact`: its size hint says its length (not so for
    /// [`MeshBody::framed`]).
    Full {
        data: Option<Bytes>,
        exact: bool,
    },
    Streaming(UnsyncBoxBody<Bytes, BoxError>),
}

impl MeshBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full {
                data: None,
                exact: true,
            },
        }
    }

    /// A buffered body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self::buffered(data.into(), true)
    }

    /// A buffered body whose length is not announced: its size hint is not
    /// exact, so no `content-length` is derived from it. For messages that
    /// carry their own framing, as gRPC's (tonic sends none either; over
    /// HTTP/2 the header would only be more to encode on every call).
    /// Replayed like [`full`](Self::full).
    pub fn framed(data: impl Into<Bytes>) -> Self {
        Self::buffered(data.into(), false)
    }

    fn buffered(data: Bytes, exact: bool) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
                exact,
            },
        }
    }

    /// A streaming body (sent once, never replayed).
    pub fn streaming<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            kind: Kind::Streaming(body.map_err(Into::into).boxed_unsync()),
        }
    }

    /// A copy for another attempt, if this body is buffered.
    pub fn try_clone(&self) -> Option<MeshBody> {
        match &self.kind {
            Kind::Full { data, exact } => Some(Self {
                kind: Kind::Full {
                    data: data.clone(),
                    exact: *exact,
                },
            }),
            Kind::Streaming(_) => None,
        }
    }

    /// Whether this body is buffered (replayable).
    pub fn is_buffered(&self) -> bool {
        matches!(self.kind, Kind::Full { .. })
    }
}

impl Default for MeshBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl Body for MeshBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full { data, .. } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Streaming(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data, .. } => data.is_none(),
            Kind::Streaming(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data, exact } => {
                let len = data.as_ref().map_or(0, |d| d.len() as u64);
                if *exact {
                    SizeHint::with_exact(len)
                } else {
                    let mut hint = SizeHint::new();
                    hint.set_lower(len);
                    hint
                }
            }
            Kind::Streaming(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn framed_bodies_replay_without_announcing_their_length() {
        let body = MeshBody::framed("hello");
        assert!(body.is_buffered());
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(body.size_hint().lower(), 5);
        let copy = body.try_clone().unwrap();
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(copy.collect().await.unwrap().to_bytes(), "hello");
        assert!(MeshBody::framed("").is_end_stream());
    }

    #[tokio::test]
    async fn full_bodies_replay_streaming_ones_do_not() {
        let body = MeshBody::full("hello");
        let copy = body.try_clone().unwrap();
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(copy.size_hint().exact(), Some(5));
        assert_eq!(copy.collect().await.unwrap().to_bytes(), "hello");

        let streaming = MeshBody::streaming(Full::new(Bytes::from_static(b"x")));
        assert!(streaming.try_clone().is_none());
        assert!(!streaming.is_buffered());
        assert_eq!(streaming.collect().await.unwrap().to_bytes(), "x");
        assert!(MeshBody::empty().is_end_stream());
    }
}
