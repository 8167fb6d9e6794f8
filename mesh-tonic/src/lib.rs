//! # mesh-tonic: gRPC through the mesh
//!
//! tonic's generated clients are generic over a `GrpcService`: anything that
//! is a tower `Service<http::Request<tonic::body::Body>>`. [`MeshChannel`] is
//! one, built on [`mesh_tower::MeshClient`], so a generated client talks to
//! a service through the mesh with no change but its channel:
//!
//! ```ignore
//! use mesh_tonic::MeshGrpcExt;
//! let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
//! ```
//!
//! Each call goes through mesh-tower's whole client stack (routing on the
//! gRPC path `/package.Service/Method`, balancing, retries, timeouts,
//! limits, outlier detection, golden signals). A service with
//! `protocol: grpc` is reached over HTTP/2 with prior knowledge, one
//! multiplexed connection per endpoint.
//!
//! ## Outcomes
//!
//! A gRPC failure usually arrives as HTTP 200: the status is in
//! `grpc-status`. mesh-tower's [`classify`](mesh_tower::classify) reads it
//! from the response headers, which covers trailers-only responses (a
//! server failing a call before sending any message, the common case for
//! unary errors): they are retried by the gRPC `on` conditions
//! (`unavailable`, `cancelled`, `deadline-exceeded`, `resource-exhausted`,
//! `internal`), with `grpc-retry-pushback-ms` honoured, and count against
//! the endpoint in outlier detection. Every gRPC call is an HTTP POST; as in
//! gRPC's own retry policy (gRFC A6), an answer carrying a gRPC status is
//! retried by its code whatever the method (`non_idempotent` is not needed).
//! A status that only comes in the trailers, after messages (a streaming
//! call, or a server that sends its reply and then fails the call), is
//! judged when the trailers arrive: the response's [`ResponseBody`]
//! completes the attempt's
//! [`LateOutcome`](mesh_tower::balance::LateOutcome), so outlier detection
//! and the A66 metrics count it; it can no longer be retried (messages were
//! delivered). A caller dropping the body before its end records nothing
//! against the endpoint.
//!
//! ## Metrics
//!
//! gRFC A66's `grpc.client.attempt.duration` and
//! `grpc.client.call.duration`, on the mesh's meter: see [`metrics`].
//!
//! ## Deadlines
//!
//! A tonic request timeout (`Request::set_timeout`, sent as `grpc-timeout`)
//! becomes the call's deadline ([`CallOptions::deadline`], enforced by the
//! mesh client's one call timer, with the route's timeout, the inherited
//! deadline and a [`Deadline`](mesh_tower::ext::Deadline) on the request:
//! the earliest wins): the call fails with DEADLINE_EXCEEDED when it
//! passes, retries never start after it, and every attempt carries
//! `grpc-timeout` equal to the time left (or its per-try timeout, if
//! shorter; see [`mesh_tower::timeout::grpc`]).
//!
//! [`CallOptions::deadline`]: mesh_tower::CallOptions::deadline
//!
//! ## Errors
//!
//! Mesh errors become a [`tonic::Status`] ([`status::from_error`]), the
//! cause chain kept as its source: `CircuitOpen` and `NoEndpoints` are
//! UNAVAILABLE naming the service, timeouts DEADLINE_EXCEEDED.
//!
//! ## Serving
//!
//! [`server::GrpcServerLayer`] is the server side's counterpart, for
//! `tonic::transport::Server::builder().layer(..)`: gRFC A66's
//! `grpc.server.call.duration` by method and status, W3C trace context,
//! the caller's identity from the mTLS seam, and the incoming
//! `grpc-timeout` made the deadline inherited by the calls the handler
//! makes ([`mesh_tower::inherit`]; a `MeshChannel` with no timeout of its
//! own takes it). [`health`] is a ready-made `grpc.health.v1.Health`
//! service that turns `NOT_SERVING` when graceful shutdown begins.

mod body;
mod channel;
pub mod health;
pub mod metrics;
pub mod server;
pub mod status;

pub use body::ResponseBody;
pub use channel::{MeshChannel, MeshGrpcExt, ResponseFuture};
