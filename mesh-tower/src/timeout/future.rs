//! [`ResponseFuture`] of the timeouts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::attempt::Picked;
use super::cover;
use crate::error::{BoxError, Elapsed, EndpointError, TimeoutKind};

pin_project! {
    /// The response future of [`Timeout`](super::Timeout): the inner future
    /// raced against a timer (no timer when no timeout applies). A call
    /// timeout arms its timer only when no inner timer covers its deadline
    /// (see `cover`).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        // A deadline applies (the timer may not be armed yet).
        timed: bool,
        kind: TimeoutKind,
        after: Duration,
        at: Instant,
        endpoint: Picked,
    }
}

// === impl ResponseFuture ===

impl<F> ResponseFuture<F> {
    pub(super) fn passthrough(inner: F) -> Self {
        Self {
            inner,
            sleep: None,
            timed: false,
            kind: TimeoutKind::Call,
            after: Duration::ZERO,
            at: crate::clock::now(),
            endpoint: Picked::Unknown,
        }
    }

    pub(super) fn timed(inner: F, at: Instant, kind: TimeoutKind, after: Duration) -> Self {
        Self {
            inner,
            // The call timeout arms lazily; an attempt's timer at once.
            sleep: match kind {
                TimeoutKind::Call => None,
                TimeoutKind::PerTry => Some(sleep_until(at)),
            },
            timed: true,
            kind,
            after,
            at,
            endpoint: Picked::Unknown,
        }
    }

    /// Names the endpoint in the timeout's error, once the balancer has
    /// picked it.
    pub(super) fn with_endpoint(mut self, picked: Picked) -> Self {
        self.endpoint = picked;
        self
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.timed {
            return this.inner.poll(cx);
        }
        let elapsed = || -> BoxError {
            Box::new(Elapsed {
                kind: *this.kind,
                after: *this.after,
            })
        };
        let inner = if this.sleep.is_none() {
            // Not armed yet: see whether an inner timer covers the deadline.
            let (poll, armed) = cover::scoped(|| this.inner.as_mut().poll(cx));
            if poll.is_pending() && armed.is_some_and(|armed| armed <= *this.at) {
                cover::report(*this.at);
                return Poll::Pending;
            }
            poll
        } else {
            this.inner.as_mut().poll(cx)
        };
        match inner {
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
        if this.sleep.is_none() {
            this.sleep.set(Some(sleep_until(*this.at)));
        }
        let Some(sleep) = this.sleep.as_pin_mut() else {
            return Poll::Pending;
        };
        match sleep.poll(cx) {
            Poll::Ready(()) => {
                let err = elapsed();
                Poll::Ready(Err(match this.endpoint.get() {
                    Some(endpoint) => Box::new(EndpointError {
                        endpoint,
                        source: err,
                    }),
                    None => err,
                }))
            }
            Poll::Pending => {
                cover::report(*this.at);
                Poll::Pending
            }
        }
    }
}
