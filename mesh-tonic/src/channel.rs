//! [`MeshChannel`]: a tonic channel through the mesh.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use hyper::body::Incoming;
use mesh_tower::balance::{LateOutcome, OnAttemptEnd};
use mesh_tower::retry::DEFAULT_MAX_BUFFER;
use mesh_tower::timeout::grpc::{GRPC_TIMEOUT, parse};
use mesh_tower::{BoxError, CallOptions, Mesh, MeshClient};
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use crate::body::{End, ResponseBody, replayable};
use crate::metrics::{ChannelMetrics, MethodMetrics, code_of_http};
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
///
/// Requests name the service as their `:authority`, as gRPC clients send
/// their target's (a client given its own origin, `with_origin`, keeps
/// it); the picked endpoint's address only chooses the connection.
#[derive(Debug, Clone)]
pub struct MeshChannel {
    client: MeshClient,
    service: Arc<str>,
    /// The service's name as the requests' `:authority`, as gRPC clients
    /// send their target's (tonic's generated clients send origin-form
    /// URIs); `None` for a name that is no valid authority.
    authority: Option<Authority>,
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
        let authority = Authority::try_from(&*service).ok();
        Self {
            client,
            service,
            authority,
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
        let start = Instant::now();
        let (mut parts, body) = req.into_parts();
        // tonic's generated clients name the method in an extension for
        // the layers above the channel; nothing below reads it. The mesh
        // copies a request's extensions for its retries, so a map left
        // empty without it is dropped rather than copied.
        if parts
            .extensions
            .remove::<tonic::GrpcMethod<'static>>()
            .is_some()
            && parts.extensions.is_empty()
        {
            parts.extensions = http::Extensions::new();
        }
        if parts.uri.authority().is_none()
            && let Some(authority) = &self.authority
        {
            parts.uri = with_authority(&parts.uri, authority);
        }
        let method = self.metrics.method(parts.uri.path());
        // The request's own timeout becomes the call's deadline, enforced
        // by the client's call timer (with the route's timeout, the
        // inherited deadline (mesh_tower::inherit) and a `Deadline` on the
        // request, the earliest winning); each attempt's `grpc-timeout`
        // says what is left.
        // Prebuilt: a `&str` key is parsed on every lookup.
        const TIMEOUT: http::HeaderName = http::HeaderName::from_static(GRPC_TIMEOUT);
        let deadline = (parts.headers.get(TIMEOUT))
            .and_then(parse)
            .and_then(|timeout| tokio::time::Instant::now().checked_add(timeout));
        // A unary body is complete by now: buffered (so retried); a
        // streaming one streams.
        let body = match replayable(body, DEFAULT_MAX_BUFFER) {
            Ok(body) => body,
            Err(status) => {
                method.record_call(start, status.code() as u32);
                return ResponseFuture::failed(status);
            }
        };
        let options = CallOptions::default()
            .deadline(deadline)
            .on_attempt_end(OnAttemptEnd(method.clone() as Arc<_>));
        // The client made ready by `poll_ready` takes the call now.
        let inner = self
            .client
            .call_with(Request::from_parts(parts, body), options);
        ResponseFuture {
            state: State::Calling {
                inner,
                end: Some(CallEnd {
                    method,
                    start,
                    service: self.service.clone(),
                }),
            },
        }
    }
}

/// `uri` (origin form) as `http://<authority><path>`.
fn with_authority(uri: &Uri, authority: &Authority) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// What the call's end needs: its metrics, start and service.
struct CallEnd {
    method: Arc<MethodMetrics>,
    start: Instant,
    service: Arc<str>,
}

impl CallEnd {
    /// The client's answer as the channel's: the response with its body
    /// reporting the call's end, or the error as a status (recorded).
    fn finish(
        self,
        result: Result<Response<Incoming>, BoxError>,
    ) -> Result<Response<ResponseBody>, Status> {
        let CallEnd {
            method,
            start,
            service,
        } = self;
        match result {
            Ok(response) => {
                let (mut head, body) = response.into_parts();
                let late = head.extensions.remove::<LateOutcome>();
                let end = match late {
                    // The status comes in trailers: the body reports it.
                    Some(late) => Some(End {
                        late: Some(late),
                        call: Some((method, start)),
                    }),
                    // Trailers-only (or a non-gRPC answer): the call's
                    // status is known now.
                    None => {
                        let code = grpc_status(&head.headers)
                            .unwrap_or_else(|| code_of_http(head.status.as_u16()));
                        method.record_call(start, code);
                        None
                    }
                };
                Ok(Response::from_parts(head, ResponseBody::new(body, end)))
            }
            Err(err) => {
                let status = from_error(&service, err);
                method.record_call(start, status.code() as u32);
                Err(status)
            }
        }
    }
}

pin_project! {
    /// The response future of [`MeshChannel`]: the mesh client's own
    /// future, its answer turned into the channel's (no box).
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Calling {
            #[pin]
            inner: mesh_tower::ResponseFuture,
            // `None` once answered.
            end: Option<CallEnd>,
        },
        Failed { status: Option<Status> },
    }
}

impl ResponseFuture {
    fn failed(status: Status) -> Self {
        Self {
            state: State::Failed {
                status: Some(status),
            },
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn gone() -> Status {
    Status::internal("MeshChannel response future polled after completion")
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Calling { inner, end } => {
                let result = ready!(inner.poll(cx));
                Poll::Ready(match end.take() {
                    Some(end) => end.finish(result),
                    None => Err(gone()),
                })
            }
            StateProj::Failed { status } => Poll::Ready(Err(status.take().unwrap_or_else(gone))),
        }
    }
}

/// The `grpc-status` in `headers` (head or trailers), if any; a value that
/// is not a number is UNKNOWN.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    headers.get(GRPC_STATUS).map(|v| match v.as_bytes() {
        // The usual: one or two digits, read as such.
        &[d] if d.is_ascii_digit() => u32::from(d - b'0'),
        &[a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            u32::from(a - b'0') * 10 + u32::from(b - b'0')
        }
        other => std::str::from_utf8(other)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_status_reads_codes_and_unknown() {
        let status = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", http::HeaderValue::from_static(v));
            grpc_status(&headers)
        };
        assert_eq!(status("0"), Some(0));
        assert_eq!(status("14"), Some(14));
        assert_eq!(status(" 4 "), Some(4));
        assert_eq!(status("123"), Some(123));
        assert_eq!(status("x"), Some(2));
        assert_eq!(status("1x"), Some(2));
        assert_eq!(grpc_status(&HeaderMap::new()), None);
    }
}
