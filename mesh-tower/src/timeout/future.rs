//! [`ResponseFuture`] of the timeouts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::error::{BoxError, Elapsed, TimeoutKind};

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
        }
    }

    pub(super) fn timed(inner: F, at: Instant, kind: TimeoutKind, after: Duration) -> Self {
        Self {
            inner,
            sleep: Some(sleep_until(at)),
            kind,
            after,
            at,
        }
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
            Poll::Ready(()) => Poll::Ready(Err(elapsed())),
            Poll::Pending => Poll::Pending,
        }
    }
}
