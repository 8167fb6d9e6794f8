//! The response side: the body type of [`super::Authz`] (the inner service's
//! body, or the short body of a refusal), the refusals themselves, and the
//! future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};

/// The body of a refused HTTP request.
const FORBIDDEN_BODY: &str = "forbidden\n";
/// `grpc-message` of a refused gRPC request (percent-encoded, as gRPC's
/// wire format wants: "permission denied").
const GRPC_MESSAGE: &str = "permission%20denied";
/// `grpc-status` PERMISSION_DENIED.
const GRPC_PERMISSION_DENIED: &str = "7";

pin_project_lite::pin_project! {
    /// A response body: the inner service's, or the authorization layer's
    /// refusal (a short text for HTTP, nothing for a gRPC trailers-only
    /// response).
    #[project = BodyProj]
    #[allow(missing_docs)] // pin-project-lite takes no docs on variant fields
    pub enum AuthzBody<B> {
        /// The inner service's body.
        Inner {
            #[pin]
            body: B,
        },
        /// A refusal's body.
        Denied {
            data: Option<Bytes>,
        },
    }
}

impl<B> AuthzBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        AuthzBody::Inner { body }
    }

    fn denied(data: Option<Bytes>) -> Self {
        AuthzBody::Denied { data }
    }
}

impl<B> Body for AuthzBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            BodyProj::Inner { body } => body.poll_frame(cx),
            BodyProj::Denied { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AuthzBody::Inner { body } => body.is_end_stream(),
            AuthzBody::Denied { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AuthzBody::Inner { body } => body.size_hint(),
            AuthzBody::Denied { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// Whether a request is gRPC (`content-type: application/grpc*`).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The refusal: HTTP 403 with a short generic body, or for gRPC an HTTP 200
/// trailers-only response with `grpc-status: 7`. Neither says which rule
/// decided.
pub(crate) fn denied<B>(grpc: bool) -> Response<AuthzBody<B>> {
    if grpc {
        let mut res = Response::new(AuthzBody::denied(None));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(
            "grpc-status",
            HeaderValue::from_static(GRPC_PERMISSION_DENIED),
        );
        h.insert("grpc-message", HeaderValue::from_static(GRPC_MESSAGE));
        res
    } else {
        let mut res = Response::new(AuthzBody::denied(Some(Bytes::from_static(
            FORBIDDEN_BODY.as_bytes(),
        ))));
        *res.status_mut() = StatusCode::FORBIDDEN;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

pin_project_lite::pin_project! {
    /// The future of [`super::Authz`]: the inner call, or a ready refusal.
    #[project = FutProj]
    #[allow(missing_docs)] // pin-project-lite takes no docs on variant fields
    pub enum ResponseFuture<F, B> {
        /// Allowed: the inner service's future.
        Called {
            #[pin]
            future: F,
        },
        /// Denied: the refusal, taken on the first poll.
        Denied {
            response: Option<Response<AuthzBody<B>>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn called(future: F) -> Self {
        ResponseFuture::Called { future }
    }

    pub(crate) fn denied(response: Response<AuthzBody<B>>) -> Self {
        ResponseFuture::Denied {
            response: Some(response),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthzBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FutProj::Called { future } => {
                let res = ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(AuthzBody::inner)))
            }
            FutProj::Denied { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                // Polled after completion: a refusal again (never panic).
                None => Poll::Ready(Ok(denied(false))),
            },
        }
    }
}
