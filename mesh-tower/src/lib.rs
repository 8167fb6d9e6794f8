//! # mesh-tower: the mesh's HTTP client and server stacks
//!
//! The proxyless mesh lives inside each service as tower middleware. This
//! crate is its HTTP half: the client stack a service calls its upstreams
//! through, and the server layer it answers with.
//!
//! ## The client
//!
//! [`Mesh`] is the entry point: built from the environment
//! ([`Mesh::from_env`]: `MESH_CONFIG`, `MESH_ENDPOINTS_<SVC>`,
//! `MESH_DNS_SERVER`, `MESH_METRICS_ADDR`) or a [`MeshBuilder`]. Its
//! [`client`](Mesh::client) returns a [`MeshClient`] per upstream service: a
//! cloneable `tower::Service<http::Request<B>>` for any hyper 1 body, that
//! drops into axum handlers, tower-http layers and hyper code. Each request
//! goes through, outermost first:
//!
//! | layer | module | does |
//! | --- | --- | --- |
//! | golden signals + trace | [`metrics`], [`trace`] | duration, in-flight, `traceparent` |
//! | router | [`router`] | route match, traffic split to a subset |
//! | overall timeout | [`timeout`] | the route's `timeout`, sets the deadline |
//! | retry | [`retry`] | policy, budget, backoff, body buffering, other endpoint |
//! | per-try timeout | [`timeout`] | never past the deadline |
//! | balancer | [`balance`] | discovery-driven; limits fail fast; outcomes feed outlier ejection |
//! | connector | [`connect`] | pooled HTTP/1.1 or HTTP/2 prior knowledge, connect timeout |
//!
//! The layers talk through request and response extensions ([`ext`]):
//! responses carry [`ServedBy`](ext::ServedBy) and
//! [`Attempts`](ext::Attempts). Errors are [`BoxError`]s with typed leaves
//! ([`error`]: `NoEndpoints`, `CircuitOpen`, `Elapsed`, `NoRoute`,
//! `EndpointError`), classified by [`error::kind`]. Every layer is usable
//! alone in your own `ServiceBuilder`. `MeshClient` itself runs the same
//! steps fused into one service and one future ([`fused`]): same policy code,
//! same behaviour, without the per-layer extensions, futures and timers.
//!
//! Discovery and config changes apply live: the endpoint set, routes and
//! policies of a service are swapped under the stack without failing a
//! request in flight.
//!
//! ```
//! use http_body_util::{BodyExt, Empty};
//! use mesh_tower::Mesh;
//! use mesh_tower::ext::ServedBy;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mesh_tower::BoxError> {
//! // An upstream "news-service" instance.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let app = axum::Router::new().route("/news", axum::routing::get(|| async { "hello" }));
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // MESH_ENDPOINTS_NEWS_SERVICE=<addr> would do the same with Mesh::from_env().
//! let mesh = Mesh::builder()
//!     .endpoints("news-service", vec![mesh_core::Endpoint::new(addr)])
//!     .build()?;
//! let client = mesh.client("news-service");
//!
//! let request = http::Request::get("http://news-service/news").body(Empty::<bytes::Bytes>::new())?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.extensions().get::<ServedBy>(), Some(&ServedBy(addr)));
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
//! # Ok(())
//! # }
//! ```
//!
//! ## The server
//!
//! [`server::ServerLayer`] records server-side golden signals and extracts
//! W3C trace context, with a seam for the mTLS and authorization layers.
//! [`authz::AuthzLayer`] ([`Mesh::authz_layer`]) enforces the config's
//! intentions in front of it, for axum/hyper and tonic servers.
//! [`inherit`] carries the deadline of the call being served to the mesh
//! calls its handler makes (gRPC's Context deadline propagation).
//!
//! ## mTLS
//!
//! [`tls`] gives both sides SPIFFE-identity mTLS (`MESH_TLS_*`): the
//! connector verifies each server's SPIFFE ID, and [`tls::serve`] (axum,
//! hyper) or [`tls::incoming`] (tonic) accept in strict, permissive or
//! disabled mode, putting the caller's identity in
//! [`ext::PeerIdentity`].

pub mod authz;
pub mod balance;
pub mod body;
pub mod circuit;
pub mod classify;
mod client;
mod clock;
pub mod connect;
pub mod error;
pub mod ext;
pub mod fused;
pub mod health;
pub mod inherit;
mod mesh;
pub mod metrics;
pub mod retry;
pub mod router;
pub mod server;
mod service;
pub mod timeout;
pub mod tls;
pub mod trace;

pub use client::{CallOptions, MeshClient, ResponseFuture};
pub use error::BoxError;
pub use mesh::{Mesh, MeshBuilder, MeshError};
pub use service::ServiceError;
