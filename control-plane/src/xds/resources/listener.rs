//! LDS: api listeners for proxyless clients (A27), socket listeners for
//! Envoy gateways, and listeners for xDS-enabled gRPC servers (A36, A41).

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as lis;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;

use super::route::{route_action, route_match, service_routes};
use super::{pack, socket_address};
use crate::state::Snapshot;
use crate::xds::rbac;

/// What precedes `IP:PORT` in a server's listener name (gRPC's
/// `server_listener_resource_name_template` with `%s` at the end).
pub const SERVER_LISTENER_PREFIX: &str = "grpc/server?xds.resource.listening_address=";

const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";

/// The router filter, last in every filter list.
fn router_filter() -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack(
            &Router::default(),
        ))),
        ..Default::default()
    }
}

/// The Listener `service` for clients of `xds:///service`: an api listener
/// whose HttpConnectionManager fetches RDS `service` over ADS.
pub fn client_listener(snapshot: &Snapshot, service: &str) -> Option<lis::Listener> {
    snapshot.config.services.get(service)?;
    let manager = hcm::HttpConnectionManager {
        stat_prefix: service.to_string(),
        route_specifier: Some(rds(service)),
        http_filters: vec![router_filter()],
        ..Default::default()
    };
    Some(lis::Listener {
        name: service.to_string(),
        api_listener: Some(lis::ApiListener {
            api_listener: Some(pack(&manager)),
        }),
        ..Default::default()
    })
}

/// The listener name of gateway `gateway`.
pub fn gateway_listener_name(gateway: &str) -> String {
    format!("gateway/{gateway}")
}

/// The route configuration of gateway `gateway` (RDS name
/// [`gateway_listener_name`]): each gateway route, in order, sends to the
/// routes of its service (the service's matchers restricted to the gateway
/// route's), or to the whole service when they do not combine.
pub fn gateway_route_configuration(
    snapshot: &Snapshot,
    gateway: &str,
) -> Option<rt::RouteConfiguration> {
    let gw = snapshot.config.gateways.get(gateway)?;
    let mut routes = Vec::new();
    for (i, r) in gw.routes.iter().enumerate() {
        let Some(svc) = snapshot.config.services.get(&r.service) else {
            continue;
        };
        let (mut rs, _) = service_routes(&r.service, svc, Some(&r.matches));
        if rs.is_empty()
            && let (Ok(m), Some(a)) = (
                route_match(&r.matches),
                route_action(&r.service, svc, &Default::default(), svc.timeout, None),
            )
        {
            rs.push(rt::Route {
                name: format!("{gateway}/{i}"),
                r#match: Some(m),
                action: Some(rt::route::Action::Route(a)),
                ..Default::default()
            });
        }
        routes.extend(rs);
    }
    Some(rt::RouteConfiguration {
        name: gateway_listener_name(gateway),
        virtual_hosts: vec![rt::VirtualHost {
            name: gateway.to_string(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        // A route may name a cluster Envoy has not warmed yet during an
        // update: it answers 503 for it meanwhile instead of refusing.
        validate_clusters: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        ..Default::default()
    })
}

/// The socket Listener of gateway `gateway` on its `listen` address. Its
/// HttpConnectionManager takes routes over RDS (name
/// [`gateway_listener_name`]), so a route change updates open connections
/// in place instead of replacing (and draining) the listener.
pub fn gateway_listener(snapshot: &Snapshot, gateway: &str) -> Option<lis::Listener> {
    let gw = snapshot.config.gateways.get(gateway)?;
    let name = gateway_listener_name(gateway);
    let manager = hcm::HttpConnectionManager {
        stat_prefix: gateway.to_string(),
        codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(rds(&name)),
        http_filters: vec![router_filter()],
        ..Default::default()
    };
    Some(lis::Listener {
        name,
        address: Some(socket_address(gw.listen)),
        filter_chains: vec![lis::FilterChain {
            filters: vec![lis::Filter {
                name: HCM_NAME.into(),
                config_type: Some(lis::filter::ConfigType::TypedConfig(pack(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn rds(name: &str) -> hcm::http_connection_manager::RouteSpecifier {
    hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
        config_source: Some(core::ConfigSource {
            config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                core::AggregatedConfigSource {},
            )),
            resource_api_version: core::ApiVersion::V3 as i32,
            ..Default::default()
        }),
        route_config_name: name.to_string(),
    })
}

/// The service whose endpoint listens on `addr` (an unspecified IP matches
/// by port alone).
pub fn service_at(snapshot: &Snapshot, addr: SocketAddr) -> Option<String> {
    snapshot
        .config
        .services
        .keys()
        .find(|svc| {
            snapshot.endpoints(svc).iter().any(|e| {
                e.address == addr || (addr.ip().is_unspecified() && e.address.port() == addr.port())
            })
        })
        .cloned()
}

/// The Listener named `name` (`grpc/server?xds.resource.listening_address=IP:PORT`)
/// for an xDS-enabled gRPC server: its address, one filter chain with an
/// HttpConnectionManager holding the intentions for the service at that
/// address as an RBAC filter, and a route with a non-forwarding action. `None`
/// when the name is not of that form.
pub fn server_listener(snapshot: &Snapshot, name: &str) -> Option<lis::Listener> {
    let addr: SocketAddr = name.strip_prefix(SERVER_LISTENER_PREFIX)?.parse().ok()?;
    let service = service_at(snapshot, addr);
    let rbac = rbac::rbac_filter(&snapshot.config, service.as_deref());
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "grpc_server".into(),
        codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            rt::RouteConfiguration {
                name: name.to_string(),
                virtual_hosts: vec![rt::VirtualHost {
                    name: "server".into(),
                    domains: vec!["*".into()],
                    routes: vec![rt::Route {
                        r#match: Some(rt::RouteMatch {
                            path_specifier: Some(rt::route_match::PathSpecifier::Prefix(
                                String::new(),
                            )),
                            ..Default::default()
                        }),
                        action: Some(rt::route::Action::NonForwardingAction(
                            rt::NonForwardingAction {},
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )),
        http_filters: vec![
            hcm::HttpFilter {
                name: "envoy.filters.http.rbac".into(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack(&rbac))),
                ..Default::default()
            },
            router_filter(),
        ],
        ..Default::default()
    };
    Some(lis::Listener {
        name: name.to_string(),
        address: Some(socket_address(addr)),
        filter_chains: vec![lis::FilterChain {
            name: "default".into(),
            filters: vec![lis::Filter {
                name: HCM_NAME.into(),
                config_type: Some(lis::filter::ConfigType::TypedConfig(pack(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}
