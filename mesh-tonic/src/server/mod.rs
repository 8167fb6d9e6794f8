//! The gRPC server side: golden signals (gRFC A66), trace context and
//! inherited deadlines for tonic servers.
//!
//! [`GrpcServerLayer`] goes on `tonic::transport::Server::builder().layer(..)`
//! and, for every call:
//!
//! - records `grpc.server.call.duration` (seconds, from the request head to
//!   the status) with `grpc.method` (`package.Service/Method`; `other` for a
//!   method the server does not implement, so callers cannot grow the label
//!   set), `grpc.status` (the code's name: `OK`, `UNAVAILABLE`, ...),
//!   `mesh.service` (this service) and, when the caller is known,
//!   `mesh.source` (its SPIFFE ID). The status is read where gRPC puts it:
//!   in the response head of a trailers-only answer (a call failed before
//!   any message), else in the trailers at the end of the body, which the
//!   layer wraps. A call whose response is dropped before its status (the
//!   client went away, the connection broke) is `CANCELLED`, or
//!   `DEADLINE_EXCEEDED` if its deadline had passed by then;
//! - turns an incoming W3C `traceparent` into a
//!   [`TraceContext`](mesh_tower::trace::TraceContext) request extension,
//!   as mesh-tower's [`ServerLayer`](mesh_tower::server::ServerLayer) does:
//!   a handler that copies it to its outgoing requests continues the trace;
//! - reads an incoming `grpc-timeout` and runs the handler (and, for a
//!   streaming response, the production of its messages) inside
//!   [`mesh_tower::inherit::scope`]: mesh calls the handler makes through a
//!   [`MeshChannel`](crate::MeshChannel) or a `MeshClient` with no timeout
//!   of their own get the caller's deadline, and send what is left of it
//!   as their `grpc-timeout`. This is the mesh's version of gRPC's
//!   Context deadline propagation. (Enforcing the deadline on the handler
//!   itself is tonic's job: it answers DEADLINE_EXCEEDED when it passes.)
//!
//! # Where it sits
//!
//! ```text
//! TLS accept -> [PeerIdentity] -> authorization -> GrpcServerLayer -> tonic routes
//! ```
//!
//! The same seam as the HTTP stack: the mTLS acceptor puts
//! [`PeerIdentity`] in each request's extensions, an authorization layer
//! (stacked before this one) decides on it, and this layer labels the call
//! with it.
//!
//! The instruments are made on the meter of a [`Metrics`] handle, so they
//! go wherever the HTTP metrics go (Prometheus: the histogram is
//! `grpc_server_call_duration_seconds`). Attribute values are built once
//! per method and caller and reused, and the histogram is bound per
//! (method, status, caller) series: recording a call clones a few `Arc`s
//! and finds its series in a lock-free map
//! ([`SeriesCache`](mesh_tower::metrics::SeriesCache)).
//!
//! ```no_run
//! use mesh_tonic::server::GrpcServerLayer;
//! use mesh_tower::metrics::Metrics;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = GrpcServerLayer::new(&Metrics::global(), "greeter");
//! let (_health, health_service) = mesh_tonic::health::Health::new();
//! tonic::transport::Server::builder()
//!     .layer(layer)
//!     .add_service(health_service)
//!     // .add_service(GreeterServer::new(MyGreeter))
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

mod future;
mod labels;

use std::sync::Arc;
use std::task::{Context, Poll};

use mesh_core::identity::SpiffeId;
use mesh_tower::BoxError;
use mesh_tower::ext::PeerIdentity;
use mesh_tower::metrics::{LATENCY_BUCKETS, Metrics, SERVICE, SOURCE};
use mesh_tower::timeout::grpc::{GRPC_TIMEOUT, parse};
use mesh_tower::trace;
use opentelemetry::metrics::Histogram;
use opentelemetry::{KeyValue, Value};
use tokio::time::Instant;
use tower::{Layer, Service};

pub use future::{ResponseBody, ResponseFuture};
pub use labels::code_name;

use future::Recorder;
use labels::method_name;
use mesh_tower::metrics::{LabelCache, SeriesCache};

/// `grpc.server.call.duration` (gRFC A66).
pub const SERVER_CALL_DURATION: &str = "grpc.server.call.duration";
/// Attribute: the full method name, `package.Service/Method`.
pub const GRPC_METHOD: &str = "grpc.method";
/// Attribute: the status code's name, e.g. `OK`.
pub const GRPC_STATUS: &str = "grpc.status";

/// Server-side gRPC golden signals, trace extraction and deadline
/// inheritance; see the [module docs](self). Cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcServerLayer {
    shared: Arc<Shared>,
}

/// What every call of one server shares: the instrument and the attribute
/// values seen so far.
#[derive(Debug)]
struct Shared {
    /// The bound series of `grpc.server.call.duration`.
    series: SeriesCache<future::SeriesKey, Histogram<f64>>,
    service: KeyValue,
    methods: LabelCache<Box<str>>,
    sources: LabelCache<SpiffeId>,
}

// === impl GrpcServerLayer ===

impl GrpcServerLayer {
    /// The layer for this server's `service` (its mesh name, the
    /// `mesh.service` label), recording on `metrics`' meter.
    pub fn new(metrics: &Metrics, service: impl Into<Arc<str>>) -> GrpcServerLayer {
        let duration = metrics
            .meter()
            .f64_histogram(SERVER_CALL_DURATION)
            .with_unit("s")
            .with_description("Duration of gRPC calls served, from request head to status.")
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        GrpcServerLayer {
            shared: Arc::new(Shared {
                series: SeriesCache::new(duration),
                service: KeyValue::new(SERVICE, Value::from(service.into())),
                methods: LabelCache::new(),
                sources: LabelCache::new(),
            }),
        }
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServerMetrics<S>;

    fn layer(&self, inner: S) -> GrpcServerMetrics<S> {
        GrpcServerMetrics {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

// === impl Shared ===

impl Shared {
    /// The `grpc.method` value of `path`, cached once the method proved to
    /// exist (called only for implemented methods).
    fn method(&self, path: Box<str>) -> Value {
        let v = Value::from(Arc::<str>::from(method_name(&path)));
        self.methods.insert(path, v.clone());
        v
    }

    fn source(&self, id: &SpiffeId) -> Value {
        self.sources.get_or_insert_with(id, || {
            (id.clone(), Value::from(Arc::<str>::from(id.as_str())))
        })
    }
}

/// The service of [`GrpcServerLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServerMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> GrpcServerMetrics<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<http::Request<B>> for GrpcServerMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body,
{
    type Response = http::Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let start = Instant::now();
        match trace::extract(req.headers()) {
            Ok(Some(ctx)) => {
                req.extensions_mut().insert(ctx);
            }
            Ok(None) => {}
            // The W3C rule: a malformed parent restarts the trace here.
            Err(error) => tracing::debug!(%error, "ignoring malformed traceparent"),
        }
        let shared = &self.shared;
        let path = req.uri().path();
        // A method not seen yet is named at the end, once its status says
        // whether it exists.
        let method = shared.methods.get(path);
        let path = method.is_none().then(|| Box::<str>::from(path));
        let source = req
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.as_ref())
            .map(|id| shared.source(id));
        let deadline = (req.headers().get(GRPC_TIMEOUT))
            .and_then(parse)
            .and_then(|timeout| start.checked_add(timeout));
        let recorder = Recorder {
            shared: Arc::clone(shared),
            path,
            method,
            source,
            start,
            deadline,
            done: false,
        };
        let inner = &mut self.inner;
        let fut = match deadline {
            // tonic's handlers start in `call`: scope it too.
            Some(at) => mesh_tower::inherit::sync_scope(at, || inner.call(req)),
            None => inner.call(req),
        };
        ResponseFuture::new(fut, recorder)
    }
}
