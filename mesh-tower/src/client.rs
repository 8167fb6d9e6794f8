//! [`MeshClient`]: the assembled client stack for one upstream service.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use tower::Service;

use crate::body::MeshBody;
use crate::error::BoxError;
use crate::fused::{FusedClient, FusedFuture};
use crate::mesh::{MeshError, Resources};
use crate::metrics::MetricsLayer;
use crate::retry::{OnRetry, RetryLayer};
use crate::router::RouterLayer;
use crate::service::ServiceState;

/// The client's path: fused over the connector, or failing every request.
#[derive(Clone)]
enum Stack {
    Fused(FusedClient<crate::connect::Connector>),
    Failing(Arc<MeshError>),
}

/// A client for one upstream service through the mesh: a cloneable tower
/// `Service<http::Request<B>>` for any hyper 1 body, returning
/// `http::Response<hyper::body::Incoming>`.
///
/// Get one from [`Mesh::client`](crate::Mesh::client). Requests name the
/// service in their URI's authority or not at all (`http://news-service/path`
/// or just `/path`): the mesh picks the endpoint; the original authority
/// becomes the `Host` header. Responses carry [`ServedBy`](crate::ext::ServedBy)
/// and [`Attempts`](crate::ext::Attempts); errors are [`BoxError`]s to
/// classify with [`error::kind`](crate::error::kind) or downcast.
///
/// Clones share everything (balancers, connection pool, limits, budget):
/// clone it freely, e.g. into axum state.
#[derive(Clone)]
pub struct MeshClient {
    service: Arc<str>,
    stack: Stack,
    /// Keeps the service's state and the mesh's config watcher alive.
    _keep: Option<(Arc<ServiceState>, Arc<Resources>)>,
}

impl std::fmt::Debug for MeshClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl MeshClient {
    pub(crate) fn new(
        state: Arc<ServiceState>,
        resources: Arc<Resources>,
        connector: crate::connect::Connector,
    ) -> Self {
        let on_retry: OnRetry = {
            let metrics = state.metrics.clone();
            let labels = state.labels.clone();
            Arc::new(move |_: &Request<MeshBody>| metrics.record_retry(&labels))
        };
        // DESIGN.md's order (see the crate docs), fused into one service
        // and one future (see `crate::fused`).
        let stack = FusedClient::new(
            connector,
            MetricsLayer::client(state.metrics.clone(), state.labels.clone())
                .trace_mode(resources.trace),
            RouterLayer::shared(state.routes.clone()),
            RetryLayer::new(None)
                .budget(state.budget.clone())
                .on_retry(on_retry),
            state.pool.clone(),
        );
        Self {
            service: state.name.clone(),
            stack: Stack::Fused(stack),
            _keep: Some((state, resources)),
        }
    }

    /// A client failing every request with `err` (its config could not be
    /// compiled).
    pub(crate) fn failing(service: &str, err: MeshError) -> Self {
        Self {
            service: Arc::from(service),
            stack: Stack::Failing(Arc::new(err)),
            _keep: None,
        }
    }

    /// The upstream service.
    pub fn service(&self) -> &str {
        &self.service
    }
}

/// A setup error shared by every request of a failing client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SharedError(Arc<MeshError>);

/// A caller's body as a [`MeshBody`]: a `MeshBody` passes as is, anything
/// else streams (the retry layer buffers small ones).
fn into_mesh_body<B>(body: B) -> MeshBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    if let Some(mesh) = (&mut slot as &mut dyn Any).downcast_mut::<Option<MeshBody>>() {
        return mesh.take().unwrap_or_default();
    }
    match slot {
        // An empty body (a GET's `Empty`, say) needs no box and is
        // replayable as is.
        Some(body) if body.is_end_stream() => MeshBody::empty(),
        Some(body) => MeshBody::streaming(body),
        None => MeshBody::empty(),
    }
}

impl<B> Service<Request<B>> for MeshClient
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.stack {
            Stack::Fused(fused) => fused.poll_ready(cx),
            Stack::Failing(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        self.call_with(req, CallOptions::default())
    }
}

/// Per-call options for [`MeshClient::call_with`]: what a caller would
/// otherwise put in the request's extensions, or wrap the call's future in.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// When the caller gives up: enforced as the call's own deadline (the
    /// call fails with a timeout, [`ErrorKind::Timeout`], when it passes;
    /// the route's timeout, the inherited deadline and a
    /// [`Deadline`](crate::ext::Deadline) on the request still apply, the
    /// earliest winning). Attempts are bounded by it and a gRPC request's
    /// `grpc-timeout` says what is left. The call's one timer serves it: no
    /// timer of the caller's own is needed.
    ///
    /// [`ErrorKind::Timeout`]: crate::error::ErrorKind::Timeout
    pub deadline: Option<tokio::time::Instant>,
    /// Told of the end of each attempt (as an [`OnAttemptEnd`] in the
    /// request's extensions would be, which it replaces): no extensions
    /// map is allocated for it.
    ///
    /// [`OnAttemptEnd`]: crate::balance::OnAttemptEnd
    pub on_attempt_end: Option<crate::balance::OnAttemptEnd>,
}

impl CallOptions {
    /// Options with `deadline` (see [`CallOptions::deadline`]).
    pub fn deadline(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Options with an attempt observer (see [`CallOptions::on_attempt_end`]).
    pub fn on_attempt_end(mut self, observer: crate::balance::OnAttemptEnd) -> Self {
        self.on_attempt_end = Some(observer);
        self
    }
}

impl MeshClient {
    /// [`Service::call`] with per-call `options`. As for `call`, the client
    /// must have been made ready first (`poll_ready`).
    pub fn call_with<B>(&mut self, req: Request<B>, options: CallOptions) -> ResponseFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let inner = match &mut self.stack {
            Stack::Fused(fused) => Inner::Fused {
                fused: fused.call_with(req.map(into_mesh_body), options),
            },
            Stack::Failing(err) => Inner::Failed {
                error: Some(Box::new(SharedError(err.clone()))),
            },
        };
        ResponseFuture { inner }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`MeshClient`].
    pub struct ResponseFuture {
        #[pin]
        inner: Inner,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner {
        Fused { #[pin] fused: FusedFuture<crate::connect::Connector, Incoming> },
        Failed { error: Option<BoxError> },
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Fused { fused } => fused.poll(cx),
            InnerProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "mesh client future polled after completion".into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Empty, Full};

    #[test]
    fn an_empty_body_becomes_a_replayable_empty_mesh_body() {
        // No box, and the retry layer can replay it without buffering.
        assert!(into_mesh_body(Empty::<Bytes>::new()).is_buffered());
        // A body with data still streams (the retry layer decides).
        let body = into_mesh_body(Full::new(Bytes::from_static(b"x")));
        assert!(!body.is_buffered());
        // A MeshBody passes as is.
        assert!(into_mesh_body(MeshBody::full(Bytes::from_static(b"y"))).is_buffered());
    }
}
