//! EDS: a cluster's endpoints as a ClusterLoadAssignment (gRFC A27, A48).
//!
//! Each endpoint is put in its own locality (`zone` = the endpoint's zone,
//! `sub_zone` = its address) whose weight is the endpoint's weight. Envoy
//! balances by the endpoint weights (locality weights are ignored unless a
//! cluster asks for them); stock gRPC's `wrr_locality` (A48) balances by the
//! locality weights and round-robins inside a locality, which ignores
//! endpoint weights: one endpoint per locality makes it honour them too.
//! Ring hash (A42) weighs an endpoint by locality weight x endpoint weight
//! normalised within its locality, which is again the endpoint's weight.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::{parse_cluster_name, socket_address};
use crate::state::Snapshot;

/// The load assignment of cluster `cluster` (see [`super::cluster_name`]),
/// or `None` when it names no service or subset. A known cluster with no
/// endpoints gets an empty assignment.
pub fn load_assignment(snapshot: &Snapshot, cluster: &str) -> Option<ep::ClusterLoadAssignment> {
    let (service, subset) = parse_cluster_name(cluster);
    let svc = snapshot.config.services.get(service)?;
    let selector = match subset {
        Some(s) => Some(svc.subsets.get(s)?),
        None => None,
    };
    let endpoints = snapshot
        .endpoints(service)
        .into_iter()
        .filter(|e| selector.is_none_or(|sel| e.matches(sel)))
        .filter(|e| e.weight > 0)
        .map(|e| ep::LocalityLbEndpoints {
            locality: Some(core::Locality {
                region: String::new(),
                zone: e.zone.clone().unwrap_or_default(),
                sub_zone: e.address.to_string(),
            }),
            lb_endpoints: vec![ep::LbEndpoint {
                host_identifier: Some(ep::lb_endpoint::HostIdentifier::Endpoint(ep::Endpoint {
                    address: Some(socket_address(e.address)),
                    ..Default::default()
                })),
                health_status: core::HealthStatus::Healthy as i32,
                load_balancing_weight: Some(UInt32Value { value: e.weight }),
                ..Default::default()
            }],
            load_balancing_weight: Some(UInt32Value { value: e.weight }),
            priority: 0,
            ..Default::default()
        })
        .collect();
    Some(ep::ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints,
        ..Default::default()
    })
}
