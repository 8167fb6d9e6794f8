//! [`ResponseFuture`] of [`Balance`](super::Balance).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use mesh_core::circuit::RequestPermit;
use pin_project_lite::pin_project;

use super::attempt::Attempt;
use crate::error::BoxError;

type Waiting<RB> = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

pin_project! {
    /// The response of one attempt: the inner call on the picked endpoint
    /// (the common case, not boxed), a boxed wait for endpoints, or an
    /// immediate failure.
    pub struct ResponseFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Attempt {
            #[pin]
            fut: F,
            attempt: Option<Attempt>,
            permit: Option<RequestPermit>,
        },
        Waiting {
            fut: Waiting<RB>,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<F, RB> ResponseFuture<F, RB> {
    pub(crate) fn attempt(fut: F, attempt: Attempt, permit: RequestPermit) -> Self {
        Self {
            state: State::Attempt {
                fut,
                attempt: Some(attempt),
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn waiting(fut: Waiting<RB>) -> Self {
        Self {
            state: State::Waiting { fut },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F, RB> std::fmt::Debug for ResponseFuture<F, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, RB> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, BoxError>>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Attempt {
                fut,
                attempt,
                permit,
            } => {
                let result = ready!(fut.poll(cx));
                permit.take();
                Poll::Ready(match attempt.take() {
                    Some(a) => a.finish(result),
                    None => result,
                })
            }
            StateProj::Waiting { fut } => fut.as_mut().poll(cx),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "balance: future polled after completion".into()))),
        }
    }
}
