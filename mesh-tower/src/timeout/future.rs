//! [`ResponseFuture`] of the timeouts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::error::{BoxError, Elapsed, EndpointError, TimeoutKind};
use crate::ext::AttemptEndpoint;

pin_project! {
    /// The response future of [`Timeout`](super::Timeout): the inner future
    /// raced against a timer (no timer when no timeout applies).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        kind: TimeoutKind,
        after: Duration,
        at: Instant,
        endpoint: Option<AttemptEndpoint>,
    }
}

// === impl ResponseFuture ===

impl<F> ResponseFuture<F> {
    pub(super) fn passthrough(inner: F) -> Self {
        Self {
            inner,
            sleep: None,
            kind: TimeoutKind::Call,
            after: Duration::ZERO,
            at: Instant::now(),
            endpoint: None,
        }
    }

    pub(super) fn timed(inner: F, at: Instant, kind: TimeoutKind, after: Duration) -> Self {
        Self {
            inner,
            sleep: Some(sleep_until(at)),
            kind,
            after,
            at,
            endpoint: None,
        }
    }

    /// Names the endpoint in the timeout's error, once the balancer has
    /// filled `cell`.
    pub(super) fn with_endpoint(mut self, cell: AttemptEndpoint) -> Self {
        self.endpoint = Some(cell);
        self
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(sleep) = this.sleep.as_pin_mut() else {
            return this.inner.poll(cx);
        };
        let elapsed = || -> BoxError {
            Box::new(Elapsed {
                kind: *this.kind,
                after: *this.after,
            })
        };
        match this.inner.poll(cx) {
            // An inner failure after the call's deadline is the deadline's
            // doing (e.g. a per-try timer clamped to it): report the call's.
            Poll::Ready(Err(_))
                if *this.kind == TimeoutKind::Call && Instant::now() >= *this.at =>
            {
                return Poll::Ready(Err(elapsed()));
            }
            Poll::Ready(result) => return Poll::Ready(result),
            Poll::Pending => {}
        }
        match sleep.poll(cx) {
            Poll::Ready(()) => {
                let err = elapsed();
                Poll::Ready(Err(
                    match this.endpoint.as_ref().and_then(AttemptEndpoint::get) {
                        Some(endpoint) => Box::new(EndpointError {
                            endpoint,
                            source: err,
                        }),
                        None => err,
                    },
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
