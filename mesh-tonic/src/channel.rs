//! [`MeshChannel`]: a tonic channel through the mesh.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use mesh_tower::balance::{LateOutcome, OnAttemptEnd};
use mesh_tower::ext::Deadline;
use mesh_tower::inherit;
use mesh_tower::retry::DEFAULT_MAX_BUFFER;
use mesh_tower::timeout::grpc::{GRPC_TIMEOUT, encode, parse};
use mesh_tower::{Mesh, MeshClient};
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use crate::body::{End, ResponseBody, replayable};
use crate::metrics::{ChannelMetrics, code_of_http};
use crate::status::from_error;

/// A tonic channel to one upstream service through the mesh: a cloneable
/// tower `Service<http::Request<tonic::body::Body>>` (so a tonic
/// `GrpcService`) that generated clients take as is.
///
/// Get one with [`MeshChannel::new`] or [`MeshGrpcExt::grpc_channel`].
/// Clones share everything (the service's balancers, connections, limits,
/// retry budget). Errors are [`tonic::Status`]es (see
/// [`status`](crate::status)); responses carry mesh-tower's
/// [`ServedBy`](mesh_tower::ext::ServedBy) and
/// [`Attempts`](mesh_tower::ext::Attempts), which tonic keeps in its
/// `Response::extensions()`. Calls and attempts are measured per gRFC A66
/// ([`metrics`](crate::metrics)).
#[derive(Debug, Clone)]
pub struct MeshChannel {
    client: MeshClient,
    service: Arc<str>,
    metrics: Arc<ChannelMetrics>,
}

impl MeshChannel {
    /// A channel to `service` (a service name or a target URI, as for
    /// [`Mesh::client`]). Declare the service with `protocol: grpc` so it
    /// is reached over HTTP/2.
    pub fn new(mesh: &Mesh, service: &str) -> Self {
        Self::with_meter(mesh.client(service), mesh.metrics().meter())
    }

    /// A channel over an existing mesh client; its gRPC metrics go to the
    /// global meter provider (see [`Metrics::global`]).
    ///
    /// [`Metrics::global`]: mesh_tower::metrics::Metrics::global
    pub fn from_client(client: MeshClient) -> Self {
        let meter = opentelemetry::global::meter(mesh_tower::metrics::SCOPE);
        Self::with_meter(client, &meter)
    }

    fn with_meter(client: MeshClient, meter: &opentelemetry::metrics::Meter) -> Self {
        let service: Arc<str> = Arc::from(client.service());
        let metrics = Arc::new(ChannelMetrics::new(meter, &service));
        Self {
            client,
            service,
            metrics,
        }
    }

    /// The upstream service.
    pub fn service(&self) -> &str {
        &self.service
    }
}

/// `mesh.grpc_channel("greeter")`.
pub trait MeshGrpcExt {
    /// A [`MeshChannel`] to `service`.
    fn grpc_channel(&self, service: &str) -> MeshChannel;
}

impl MeshGrpcExt for Mesh {
    fn grpc_channel(&self, service: &str) -> MeshChannel {
        MeshChannel::new(self, service)
    }
}

impl Service<Request<Body>> for MeshChannel {
    type Response = Response<ResponseBody>;
    type Error = Status;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let service = &self.service;
        Service::<Request<mesh_tower::body::MeshBody>>::poll_ready(&mut self.client, cx)
            .map_err(|err| from_error(service, err))
    }

    fn call(&mut self, req: Request<Body>) -> ResponseFuture {
        // Keep the client that was made ready; the clone serves the next call.
        let clone = self.client.clone();
        let mut client = std::mem::replace(&mut self.client, clone);
        let service = self.service.clone();
        let start = std::time::Instant::now();
        let (mut parts, body) = req.into_parts();
        let method = self.metrics.method(parts.uri.path());
        parts
            .extensions
            .insert(OnAttemptEnd(method.clone() as Arc<_>));
        let now = tokio::time::Instant::now();
        // Prebuilt: a `&str` key is parsed on every lookup.
        const TIMEOUT: http::HeaderName = http::HeaderName::from_static(GRPC_TIMEOUT);
        let requested = (parts.headers.get(TIMEOUT))
            .and_then(parse)
            .and_then(|timeout| now.checked_add(timeout));
        // A deadline inherited from the call being served (mesh_tower::inherit)
        // applies too, the earlier one winning.
        let deadline = inherit::earliest(requested).map(|at| {
            // An earlier deadline already on the request wins.
            let at = match parts.extensions.get::<Deadline>() {
                Some(existing) => existing.0.min(at),
                None => at,
            };
            parts.extensions.insert(Deadline(at));
            // The next hop inherits what is left.
            (parts.headers).insert(TIMEOUT, encode(at.saturating_duration_since(now)));
            at
        });
        let call = async move {
            let result = async {
                let body = replayable(body, DEFAULT_MAX_BUFFER).await?;
                let response = client.call(Request::from_parts(parts, body));
                let result = match deadline {
                    Some(at) => match tokio::time::timeout_at(at, response).await {
                        Ok(result) => result,
                        Err(_) => {
                            return Err(Status::deadline_exceeded(format!(
                                "service `{service}`: deadline exceeded"
                            )));
                        }
                    },
                    None => response.await,
                };
                result.map_err(|err| from_error(&service, err))
            }
            .await;
            match result {
                Ok(response) => {
                    let (mut head, body) = response.into_parts();
                    let late = head.extensions.remove::<LateOutcome>();
                    let end = match (late, grpc_status(&head.headers)) {
                        // Trailers-only (or a non-gRPC answer): the call's
                        // status is known now.
                        (None, code) => {
                            method.record_call(
                                start,
                                code.unwrap_or_else(|| code_of_http(head.status.as_u16())),
                            );
                            None
                        }
                        (late, _) => Some(End {
                            late,
                            call: Some((method, start)),
                        }),
                    };
                    Ok(Response::from_parts(head, ResponseBody::new(body, end)))
                }
                Err(status) => {
                    method.record_call(start, status.code() as u32);
                    Err(status)
                }
            }
        };
        ResponseFuture {
            inner: Box::pin(call),
        }
    }
}

/// The response future of [`MeshChannel`].
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Status>> + Send>>,
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// The `grpc-status` in `headers` (head or trailers), if any; a value that
/// is not a number is UNKNOWN.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    headers.get(GRPC_STATUS).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2)
    })
}
