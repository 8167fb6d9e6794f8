//! CDS: one EDS cluster per service and per subset, with its LB policy
//! (A42, A48, A52), circuit breaker (A32), outlier detection (A50) and
//! active health checks (`health_check`: Envoy's `health_checks`, HTTP or
//! gRPC by the service's protocol; stock gRPC clients ignore them, which
//! [`super::warnings`] says).
//!
//! # LB policies both Envoy and gRPC accept
//!
//! The cluster carries `load_balancing_policy`: an ordered list of which
//! each client uses the *first* it supports. Envoy and gRPC need different
//! lists ([`Flavor`]): gRPC honours locality (= endpoint, see
//! [`super::load_assignment`]) weights only under `wrr_locality`, while Envoy
//! refuses a `wrr_locality` whose child is not `client_side_weighted_round_robin`.
//! So Envoy nodes get Envoy's policy alone, other nodes a gRPC list:
//!
//! | config | gRPC nodes get | Envoy nodes get |
//! | --- | --- | --- |
//! | `round_robin`, `weighted_round_robin` | wrr_locality(round_robin) | round_robin |
//! | `least_request` | wrr_locality(least_request, else round_robin) | least_request |
//! | `peak_ewma` | wrr_locality(least_request, else round_robin) | least_request (warned) |
//! | `random` | wrr_locality(round_robin) (warned) | random |
//! | `ring_hash` | ring_hash | ring_hash |
//! | `maglev` | ring_hash (warned) | maglev |

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::load_balancing_policies as lbp;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as up;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};
use mesh_core::config::{Algorithm, HealthCheckConfig, OutlierConfig, Protocol, ServiceConfig};

use super::{cluster_name, duration, pack};
use crate::state::Snapshot;

/// Which client a cluster is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Envoy (its user agent is `envoy`, or it serves a gateway).
    Envoy,
    /// Stock gRPC and other proxyless clients.
    Grpc,
}

/// Every cluster of the snapshot for `flavor`: `service` and
/// `service/subset` for each service, sorted by name.
pub fn clusters(snapshot: &Snapshot, flavor: Flavor) -> Vec<cl::Cluster> {
    let mut out = Vec::new();
    for (name, svc) in &snapshot.config.services {
        out.push(cluster(&cluster_name(name, None), svc, flavor));
        for subset in svc.subsets.keys() {
            out.push(cluster(&cluster_name(name, Some(subset)), svc, flavor));
        }
    }
    out
}

fn cluster(name: &str, svc: &ServiceConfig, flavor: Flavor) -> cl::Cluster {
    let mut protocol_options = HashMap::new();
    if matches!(svc.protocol, Protocol::Http2 | Protocol::Grpc) {
        let opts = up::HttpProtocolOptions {
            upstream_protocol_options: Some(
                up::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    up::http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(
                            up::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                                Default::default(),
                            ),
                        ),
                    },
                ),
            ),
            ..Default::default()
        };
        protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack(&opts),
        );
    }
    cl::Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cl::cluster::ClusterDiscoveryType::Type(
            cl::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cl::cluster::EdsClusterConfig {
            eds_config: Some(core::ConfigSource {
                config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                    core::AggregatedConfigSource {},
                )),
                resource_api_version: core::ApiVersion::V3 as i32,
                ..Default::default()
            }),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(duration(std::time::Duration::from_secs(1))),
        load_balancing_policy: Some(lb_policy(svc, flavor)),
        common_lb_config: Some(cl::cluster::CommonLbConfig {
            healthy_panic_threshold: Some(Percent {
                value: f64::from(svc.load_balancer.panic_threshold_percent),
            }),
            ..Default::default()
        }),
        circuit_breakers: Some(cl::CircuitBreakers {
            thresholds: vec![cl::circuit_breakers::Thresholds {
                priority: core::RoutingPriority::Default as i32,
                max_requests: Some(UInt32Value {
                    value: svc.circuit_breaker.max_requests,
                }),
                max_pending_requests: Some(UInt32Value {
                    value: svc.circuit_breaker.max_pending,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        outlier_detection: svc.outlier_detection.as_ref().map(outlier),
        health_checks: svc
            .health_check
            .iter()
            .map(|h| health_check(h, svc.protocol))
            .collect(),
        typed_extension_protocol_options: protocol_options,
        ..Default::default()
    }
}

fn policy<M: prost::Message + prost::Name>(name: &str, m: &M) -> cl::load_balancing_policy::Policy {
    cl::load_balancing_policy::Policy {
        typed_extension_config: Some(core::TypedExtensionConfig {
            name: name.to_string(),
            typed_config: Some(pack(m)),
        }),
    }
}

fn wrr_locality(
    children: Vec<cl::load_balancing_policy::Policy>,
) -> cl::load_balancing_policy::Policy {
    policy(
        "envoy.load_balancing_policies.wrr_locality",
        &lbp::wrr_locality::v3::WrrLocality {
            endpoint_picking_policy: Some(cl::LoadBalancingPolicy { policies: children }),
        },
    )
}

fn round_robin(svc: &ServiceConfig) -> cl::load_balancing_policy::Policy {
    policy(
        "envoy.load_balancing_policies.round_robin",
        &lbp::round_robin::v3::RoundRobin {
            slow_start_config: slow_start(svc),
            ..Default::default()
        },
    )
}

fn least_request(svc: &ServiceConfig, choice_count: u32) -> cl::load_balancing_policy::Policy {
    policy(
        "envoy.load_balancing_policies.least_request",
        &lbp::least_request::v3::LeastRequest {
            // gRPC accepts 2..=10 (and clamps); Envoy any >= 2.
            choice_count: Some(UInt32Value {
                value: choice_count.clamp(2, 10),
            }),
            slow_start_config: slow_start(svc),
            ..Default::default()
        },
    )
}

fn slow_start(svc: &ServiceConfig) -> Option<lbp::common::v3::SlowStartConfig> {
    let window = svc.outlier_detection.as_ref()?.slow_start?;
    Some(lbp::common::v3::SlowStartConfig {
        slow_start_window: Some(duration(window)),
        ..Default::default()
    })
}

fn ring_hash(min: u64, max: u64) -> cl::load_balancing_policy::Policy {
    policy(
        "envoy.load_balancing_policies.ring_hash",
        &lbp::ring_hash::v3::RingHash {
            hash_function: lbp::ring_hash::v3::ring_hash::HashFunction::XxHash as i32,
            minimum_ring_size: Some(UInt64Value { value: min }),
            maximum_ring_size: Some(UInt64Value {
                value: max.max(min),
            }),
            ..Default::default()
        },
    )
}

fn lb_policy(svc: &ServiceConfig, flavor: Flavor) -> cl::LoadBalancingPolicy {
    let envoy = flavor == Flavor::Envoy;
    let grpc_rr = || wrr_locality(vec![round_robin(svc)]);
    let policies = match &svc.load_balancer.algorithm {
        Algorithm::Random if envoy => vec![policy(
            "envoy.load_balancing_policies.random",
            &lbp::random::v3::Random::default(),
        )],
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin if envoy => vec![round_robin(svc)],
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin | Algorithm::Random => {
            vec![grpc_rr()]
        }
        Algorithm::LeastRequest { choice_count, .. } if envoy => {
            vec![least_request(svc, *choice_count)]
        }
        Algorithm::PeakEwma { .. } if envoy => vec![least_request(svc, 2)],
        Algorithm::LeastRequest { choice_count, .. } => {
            vec![wrr_locality(vec![
                least_request(svc, *choice_count),
                round_robin(svc),
            ])]
        }
        Algorithm::PeakEwma { .. } => {
            vec![wrr_locality(vec![least_request(svc, 2), round_robin(svc)])]
        }
        Algorithm::RingHash {
            min_ring_size,
            max_ring_size,
        } => vec![ring_hash(*min_ring_size, *max_ring_size)],
        Algorithm::Maglev { table_size } if envoy => vec![policy(
            "envoy.load_balancing_policies.maglev",
            &lbp::maglev::v3::Maglev {
                table_size: Some(UInt64Value { value: *table_size }),
                ..Default::default()
            },
        )],
        Algorithm::Maglev { .. } => vec![ring_hash(1024, 8_388_608)],
    };
    cl::LoadBalancingPolicy { policies }
}

fn health_check(h: &HealthCheckConfig, protocol: Protocol) -> core::HealthCheck {
    use core::health_check::{GrpcHealthCheck, HealthChecker, HttpHealthCheck};
    use envoy_types::pb::envoy::r#type::v3::{CodecClientType, Int64Range};
    let checker = match protocol {
        Protocol::Grpc => HealthChecker::GrpcHealthCheck(GrpcHealthCheck {
            service_name: h.grpc_service.clone(),
            ..Default::default()
        }),
        Protocol::Http | Protocol::Http2 => HealthChecker::HttpHealthCheck(HttpHealthCheck {
            path: h.path.clone(),
            // Any 2xx passes, as in the mesh (Envoy's default is 200 only).
            expected_statuses: vec![Int64Range {
                start: 200,
                end: 300,
            }],
            codec_client_type: if protocol == Protocol::Http2 {
                CodecClientType::Http2 as i32
            } else {
                CodecClientType::Http1 as i32
            },
            ..Default::default()
        }),
    };
    core::HealthCheck {
        timeout: Some(duration(h.timeout)),
        interval: Some(duration(h.interval)),
        interval_jitter_percent: 10,
        unhealthy_threshold: Some(UInt32Value {
            value: h.unhealthy_threshold,
        }),
        healthy_threshold: Some(UInt32Value {
            value: h.healthy_threshold,
        }),
        health_checker: Some(checker),
        ..Default::default()
    }
}

fn outlier(o: &OutlierConfig) -> cl::OutlierDetection {
    let pct = |on: bool| {
        Some(UInt32Value {
            value: if on { 100 } else { 0 },
        })
    };
    let mut d = cl::OutlierDetection {
        interval: Some(duration(o.interval)),
        base_ejection_time: Some(duration(o.base_ejection)),
        max_ejection_time: Some(duration(o.max_ejection)),
        max_ejection_percent: Some(UInt32Value {
            value: o.max_ejected_percent.min(100),
        }),
        consecutive_5xx: Some(UInt32Value {
            value: o.consecutive_failures.unwrap_or(5),
        }),
        enforcing_consecutive_5xx: pct(o.consecutive_failures.is_some()),
        // Envoy-only detectors the mesh does not configure: off.
        enforcing_consecutive_gateway_failure: pct(false),
        enforcing_consecutive_local_origin_failure: pct(false),
        enforcing_local_origin_success_rate: pct(false),
        enforcing_failure_percentage_local_origin: pct(false),
        enforcing_success_rate: pct(o.success_rate.is_some()),
        enforcing_failure_percentage: pct(o.failure_rate.is_some()),
        ..Default::default()
    };
    if let Some(sr) = &o.success_rate {
        // Envoy and gRPC: the factor is divided by 1000.
        let factor = (sr.stdev_factor * 1000.0)
            .round()
            .clamp(0.0, f64::from(u32::MAX));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let factor = factor as u32;
        d.success_rate_stdev_factor = Some(UInt32Value { value: factor });
        d.success_rate_minimum_hosts = Some(UInt32Value {
            value: sr.min_hosts,
        });
        d.success_rate_request_volume = Some(UInt32Value {
            value: sr.min_requests,
        });
    }
    if let Some(fr) = &o.failure_rate {
        let pct = (fr.threshold * 100.0).round().clamp(0.0, 100.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let pct = pct as u32;
        d.failure_percentage_threshold = Some(UInt32Value { value: pct });
        d.failure_percentage_request_volume = Some(UInt32Value {
            value: fr.min_requests,
        });
        d.failure_percentage_minimum_hosts = Some(UInt32Value { value: 1 });
    }
    d
}
