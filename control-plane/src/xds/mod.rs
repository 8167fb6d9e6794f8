//! The xDS v3 Aggregated Discovery Service (state of the world) and the
//! translation of the mesh config into Listeners, RouteConfigurations,
//! Clusters and ClusterLoadAssignments.
//!
//! # How it fits
//!
//! The store publishes a [`Snapshot`](crate::state::Snapshot) on every change.
//! [`serve`] runs one *broadcaster* task that watches those snapshots, waits a
//! short coalescing window ([`COALESCE`]) so a burst of API writes becomes one
//! push, and then translates the snapshot once into a [`resources::Resources`]
//! table (every resource already encoded as a protobuf `Any`). Each ADS stream
//! ([`ads`]) holds only its subscriptions and what it last sent, so a push to
//! a thousand streams costs a thousand hash comparisons, not a thousand
//! translations.
//!
//! # Protocol (state of the world, one ADS stream per client)
//!
//! * The first request carries the node; its id and cluster decide whether it
//!   is an Envoy gateway node (see [`resources::NodeKind`]).
//! * Each resource type has its own subscription: named resources, or the
//!   wildcard (an empty first request for LDS/CDS, as Envoy sends, or `*`).
//! * Every response carries a version (the snapshot version in which that
//!   type's content last changed for this stream) and a fresh nonce. A request
//!   that echoes the nonce is an ACK of that version, or a NACK when it
//!   carries `error_detail`: the NACK is logged and recorded in
//!   [`XdsStatus`](crate::state::XdsStatus) and nothing is re-sent, so the
//!   node keeps its last good version. A request with a stale or unknown
//!   nonce is ignored (the protocol's rule), which also covers garbage.
//! * On a snapshot change only the types whose content changed are re-sent.
//! * A stream that reconnects starts from scratch: its first requests
//!   resubscribe and get the current state.
//! * Unknown type URLs are answered with nothing (and logged); delta xDS
//!   answers `UNIMPLEMENTED`.

pub mod ads;
pub mod rbac;
pub mod resources;
mod server;

pub use server::{COALESCE, serve};

/// Type URL of `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Why the xDS server stopped.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    /// The gRPC server failed (accepting connections, HTTP/2).
    #[error("xDS gRPC server failed")]
    Transport(#[source] tonic::transport::Error),
}
