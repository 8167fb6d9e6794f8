//! [`ResponseFuture`] of the circuit breaker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mesh_core::circuit::RequestPermit;
use pin_project_lite::pin_project;

use crate::error::{BoxError, CircuitOpen};

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker):
    /// the inner future holding its slot, or the fail-fast error.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Called {
            #[pin]
            future: F,
            // Dropped when the future completes or is dropped.
            permit: Option<RequestPermit>,
        },
        Open {
            error: Option<CircuitOpen>,
        },
    }
}

// === impl ResponseFuture ===

impl<F> ResponseFuture<F> {
    pub(super) fn called(future: F, permit: RequestPermit) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(super) fn open(error: CircuitOpen) -> Self {
        Self {
            kind: Kind::Open { error: Some(error) },
        }
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { future, permit } => {
                let out = std::task::ready!(future.poll(cx));
                permit.take();
                Poll::Ready(out)
            }
            KindProj::Open { error } => Poll::Ready(Err(match error.take() {
                Some(e) => Box::new(e),
                None => "circuit breaker future polled after completion".into(),
            })),
        }
    }
}
