//! [`ResponseFuture`]: the retry state machine.
//!
//! ```text
//!   Buffering ──> Called ──(retry)──> Waiting ──> Ready ──> Called ...
//!                   │                  backoff,    inner
//!                   └──(done)──> the   drain the   ready
//!                       response       failed body
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::Body;
use http_body_util::Limited;
use http_body_util::combinators::Collect;
use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};
use tower::Service;

use super::attempt::Retrying;
use crate::body::MeshBody;
use crate::error::{BodyError, BoxError};
use crate::ext::Attempts;

/// The most bytes of a failed response's body read (to let its connection
/// be reused) before it is dropped instead.
const MAX_DRAIN: usize = 64 * 1024;

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, B>
    where
        S: Service<http::Request<MeshBody>>,
    {
        #[pin]
        state: State<S::Future, B>,
        // `None`: this request is not retried (one attempt, no clone).
        retry: Option<Retrying<S>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Collecting a small streaming body so it can be replayed.
        Buffering {
            #[pin]
            collect: Collect<Limited<MeshBody>>,
        },
        // An attempt is in flight.
        Called {
            #[pin]
            future: F,
        },
        // Backing off; meanwhile the failed response's body is drained.
        Waiting {
            #[pin]
            sleep: Sleep,
            #[pin]
            drain: Option<B>,
            drained: usize,
        },
        // Waiting for the inner service to be ready for the next attempt.
        Ready,
    }
}

// === impl ResponseFuture ===

impl<S, B> ResponseFuture<S, B>
where
    S: Service<http::Request<MeshBody>>,
{
    pub(super) fn passthrough(future: S::Future) -> Self {
        Self {
            state: State::Called { future },
            retry: None,
        }
    }

    pub(super) fn called(future: S::Future, retry: Retrying<S>) -> Self {
        Self {
            state: State::Called { future },
            retry: Some(retry),
        }
    }

    pub(super) fn buffering(collect: Collect<Limited<MeshBody>>, retry: Retrying<S>) -> Self {
        Self {
            state: State::Buffering { collect },
            retry: Some(retry),
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<http::Request<MeshBody>, Response = http::Response<B>, Error = BoxError>,
    B: Body,
{
    type Output = Result<http::Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Buffering { collect } => {
                    let collected = ready!(collect.poll(cx));
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(gone()));
                    };
                    let bytes: Bytes = match collected {
                        Ok(c) => c.to_bytes(),
                        Err(e) => return Poll::Ready(Err(Box::new(BodyError(e)))),
                    };
                    retry.body = MeshBody::full(bytes);
                    // The service was made ready by the layer's poll_ready.
                    retry.attempts = 1;
                    let future = retry.service.call(retry.request());
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(finish(result, 1));
                    };
                    let Some(delay) = retry.decide(&result) else {
                        return Poll::Ready(finish(result, retry.attempts));
                    };
                    // Read what is left of a failed response while backing
                    // off, so its connection goes back to the pool.
                    let drain = result.ok().map(http::Response::into_body);
                    this.state.set(State::Waiting {
                        sleep: sleep(delay),
                        drain,
                        drained: 0,
                    });
                }
                StateProj::Waiting {
                    mut sleep,
                    mut drain,
                    drained,
                } => {
                    poll_drain(drain.as_mut(), drained, cx);
                    if sleep.as_mut().poll(cx).is_pending() {
                        // The call timeout needs no timer while this one
                        // is armed (see `timeout::cover`).
                        crate::timeout::cover::report(sleep.deadline());
                        return Poll::Pending;
                    }
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(gone()));
                    };
                    ready!(retry.service.poll_ready(cx))?;
                    let req = retry.request();
                    if let Some(hook) = &retry.shared.on_retry {
                        hook(&req);
                    }
                    retry.attempts = retry.attempts.saturating_add(1);
                    let future = retry.service.call(req);
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

/// Reads and discards frames of a failed response's body until it ends,
/// fails, is not ready, or exceeds [`MAX_DRAIN`].
pub(crate) fn poll_drain<B: Body>(
    mut drain: Pin<&mut Option<B>>,
    drained: &mut usize,
    cx: &mut Context<'_>,
) {
    while let Some(body) = drain.as_mut().as_pin_mut() {
        match body.poll_frame(cx) {
            Poll::Pending => return,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *drained = drained.saturating_add(data.remaining());
                }
                if *drained > MAX_DRAIN {
                    drain.set(None);
                }
            }
            Poll::Ready(Some(Err(_)) | None) => drain.set(None),
        }
    }
}

pub(crate) fn finish<B>(
    result: Result<http::Response<B>, BoxError>,
    attempts: u32,
) -> Result<http::Response<B>, BoxError> {
    result.map(|mut resp| {
        resp.extensions_mut().insert(Attempts(attempts));
        resp
    })
}

fn gone() -> BoxError {
    "retry future polled after completion".into()
}
