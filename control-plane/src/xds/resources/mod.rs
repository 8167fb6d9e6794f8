//! Pure translation: [`Snapshot`] -> typed xDS resources, no network.
//!
//! # Who gets what
//!
//! | client | asks for | gets |
//! | --- | --- | --- |
//! | proxyless gRPC client of `xds:///news-service` | LDS `news-service` | [`client_listener`]: an `api_listener` HttpConnectionManager (router filter) with RDS `news-service` |
//! | (same) | RDS `news-service` | [`route_configuration`]: one virtual host, the service's routes |
//! | xDS-enabled gRPC server on `IP:PORT` | LDS `grpc/server?xds.resource.listening_address=IP:PORT` | [`server_listener`]: the address, one filter chain, HttpConnectionManager with the intentions as RBAC ([`crate::xds::rbac`]) + router |
//! | Envoy whose node id or cluster is a gateway name | LDS wildcard | [`gateway_listener`]: a socket Listener on `listen`, routes over RDS `gateway/<name>` ([`gateway_route_configuration`]) |
//! | everyone | CDS (names or wildcard) | [`clusters`]: one EDS cluster per service and per subset |
//! | everyone | EDS cluster names | [`load_assignment`] |
//!
//! # Cluster names
//!
//! A service's cluster is named after the service (`news-service`: all its
//! endpoints); a subset's cluster is `service/subset` (`news-service/v1`:
//! the endpoints whose labels match the subset's selector). The EDS
//! `service_name` equals the cluster name. See [`cluster_name`].
//!
//! # Things clients cannot take
//!
//! Stock gRPC and Envoy accept different subsets of the config. Everything is
//! either translated to something both accept (a list of LB policies where
//! each client takes the first it supports, endpoint weights carried as
//! locality weights so gRPC's `wrr_locality` honours them) or dropped with a
//! line in [`warnings`]: nothing emitted here is meant to be NACKed.

mod cluster;
mod endpoint;
mod listener;
pub(crate) mod route;
mod warnings;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use prost::{Message, Name};

use crate::state::Snapshot;

pub use cluster::{Flavor, clusters};
pub use endpoint::load_assignment;
pub use listener::{
    SERVER_LISTENER_PREFIX, client_listener, gateway_listener, gateway_listener_name,
    gateway_route_configuration, server_listener, service_at,
};
pub use route::route_configuration;
pub use warnings::warnings;

/// The cluster name for `service`, or for one of its subsets.
pub fn cluster_name(service: &str, subset: Option<&str>) -> String {
    match subset {
        Some(s) => format!("{service}/{s}"),
        None => service.to_string(),
    }
}

/// Splits a cluster name into service and subset (see [`cluster_name`]).
pub fn parse_cluster_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once('/') {
        Some((svc, subset)) => (svc, Some(subset)),
        None => (name, None),
    }
}

/// What kind of xDS client a node is, decided from its first request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// An Envoy serving the gateway of this name (its node id or cluster
    /// equals the name). Wildcard LDS gives it that gateway's listener.
    Gateway(String),
    /// Anything else: a proxyless client or server (stock gRPC, our
    /// library) or an Envoy without a gateway. It gets what it names.
    Proxyless,
}

impl NodeKind {
    /// Classifies a node by its id and cluster against the snapshot's gateways.
    pub fn classify(node_id: &str, node_cluster: &str, snapshot: &Snapshot) -> NodeKind {
        let gateways = &snapshot.config.gateways;
        if gateways.contains_key(node_id) {
            NodeKind::Gateway(node_id.to_string())
        } else if !node_cluster.is_empty() && gateways.contains_key(node_cluster) {
            NodeKind::Gateway(node_cluster.to_string())
        } else {
            NodeKind::Proxyless
        }
    }
}

/// One resource, encoded once, with its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The resource name.
    pub name: String,
    /// The resource as sent.
    pub any: Any,
}

/// Every resource of one snapshot, encoded once and shared by all streams.
#[derive(Debug, Default)]
pub struct Resources {
    /// The snapshot's version.
    pub version: u64,
    /// Api listeners by service name (LDS for proxyless clients).
    pub client_listeners: BTreeMap<String, Encoded>,
    /// Gateway listeners by gateway name (LDS wildcard for gateway nodes).
    pub gateway_listeners: BTreeMap<String, Encoded>,
    /// Route configurations by name (RDS).
    pub routes: BTreeMap<String, Encoded>,
    /// Clusters by name (CDS) for proxyless clients.
    pub clusters: BTreeMap<String, Encoded>,
    /// Clusters by name (CDS) for Envoy nodes.
    pub envoy_clusters: BTreeMap<String, Encoded>,
    /// Load assignments by cluster name (EDS).
    pub endpoints: BTreeMap<String, Encoded>,
    /// Servers' listeners are built on demand from this snapshot.
    pub snapshot: std::sync::Arc<Snapshot>,
}

impl Resources {
    /// Translates `snapshot` into every resource it defines.
    pub fn build(snapshot: std::sync::Arc<Snapshot>) -> Resources {
        let mut r = Resources {
            version: snapshot.version,
            ..Default::default()
        };
        for service in snapshot.config.services.keys() {
            if let Some(l) = client_listener(&snapshot, service) {
                r.client_listeners
                    .insert(service.clone(), encode(service.clone(), &l));
            }
            if let Some(rc) = route_configuration(&snapshot, service) {
                r.routes
                    .insert(service.clone(), encode(service.clone(), &rc));
            }
        }
        for gateway in snapshot.config.gateways.keys() {
            if let Some(l) = gateway_listener(&snapshot, gateway) {
                r.gateway_listeners
                    .insert(gateway.clone(), encode(l.name.clone(), &l));
            }
            if let Some(rc) = gateway_route_configuration(&snapshot, gateway) {
                r.routes
                    .insert(rc.name.clone(), encode(rc.name.clone(), &rc));
            }
        }
        for c in clusters(&snapshot, Flavor::Grpc) {
            if let Some(cla) = load_assignment(&snapshot, &c.name) {
                r.endpoints
                    .insert(c.name.clone(), encode(c.name.clone(), &cla));
            }
            r.clusters
                .insert(c.name.clone(), encode(c.name.clone(), &c));
        }
        for c in clusters(&snapshot, Flavor::Envoy) {
            r.envoy_clusters
                .insert(c.name.clone(), encode(c.name.clone(), &c));
        }
        r.snapshot = snapshot;
        r
    }

    /// The listener named `name`: a server listener (template name), a
    /// client's api listener (service name), or a gateway listener by its
    /// listener name (`gateway/<name>`).
    pub fn listener(&self, name: &str) -> Option<Encoded> {
        if name.starts_with(SERVER_LISTENER_PREFIX) {
            return server_listener(&self.snapshot, name).map(|l| encode(name.to_string(), &l));
        }
        if let Some(l) = self.client_listeners.get(name) {
            return Some(l.clone());
        }
        self.gateway_listeners
            .values()
            .find(|l| l.name == name)
            .cloned()
    }
}

/// Packs a message as a protobuf `Any`.
pub fn pack<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn encode<M: Message + Name>(name: String, m: &M) -> Encoded {
    Encoded { name, any: pack(m) }
}

/// A protobuf duration from a std one (saturating).
pub(crate) fn duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// The socket address message for `addr`.
pub(crate) fn socket_address(
    addr: SocketAddr,
) -> envoy_types::pb::envoy::config::core::v3::Address {
    use envoy_types::pb::envoy::config::core::v3::{
        Address, SocketAddress, address, socket_address,
    };
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    }
}
