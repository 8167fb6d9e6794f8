//! Golden checks of the important fields of each generated resource.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::rbac::v3 as rb;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use mesh_core::config::{Format, parse_str};
use prost::Message;

use super::*;

const YAML: &str = r#"
trust_domain: mesh.local
services:
  news:
    protocol: grpc
    endpoints:
      - { address: 127.0.0.1:8081, weight: 3, zone: a, labels: { version: v1 } }
      - { address: 127.0.0.1:8082, labels: { version: v2 } }
    subsets: { v1: { version: v1 }, v2: { version: v2 } }
    load_balancer: round_robin
    timeout: 2s
    retry: { attempts: 3, per_try_timeout: 500ms, on: [unavailable, 5xx, 503], backoff: { base: 25ms, max: 250ms } }
    circuit_breaker: { max_requests: 100, max_pending: 10 }
    outlier_detection: { consecutive_failures: 5, failure_rate: { threshold: 0.5, min_requests: 20 }, interval: 10s, base_ejection: 30s, max_ejection: 300s, max_ejected_percent: 50 }
    routes:
      - match: { headers: { x-canary: "true" } }
        split: { v2: 100 }
      - match: { path_prefix: /, methods: [GET, POST] }
        split: { v1: 90, v2: 10 }
  ring:
    load_balancer: ring_hash
    hash_on: { header: x-user }
    endpoints: [ { address: 127.0.0.1:9000 } ]
  mag:
    load_balancer: maglev
    endpoints: [ { address: 127.0.0.1:9001 } ]
intentions:
  - { source: app-ui, destination: news, action: allow }
  - { source: "*", destination: news, action: deny }
  - source: prometheus
    destination: "*"
    permissions:
      - { action: deny, path_prefix: /admin }
      - { action: allow, path_exact: /metrics, methods: [GET] }
gateways:
  edge:
    listen: 127.0.0.1:10000
    routes:
      - { match: { path_prefix: / }, service: news }
"#;

fn snapshot(yaml: &str) -> Snapshot {
    Snapshot {
        version: 7,
        config_version: 1,
        config: Arc::new(parse_str(yaml, Format::Yaml, "t.yaml").unwrap()),
        discovered: Default::default(),
    }
}

fn hcm_of(any: &Any) -> hcm::HttpConnectionManager {
    hcm::HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

#[test]
fn client_listener_is_api_listener_with_rds_and_router() {
    let s = snapshot(YAML);
    let l = client_listener(&s, "news").unwrap();
    assert_eq!(l.name, "news");
    let m = hcm_of(l.api_listener.unwrap().api_listener.as_ref().unwrap());
    match m.route_specifier.unwrap() {
        hcm::http_connection_manager::RouteSpecifier::Rds(r) => {
            assert_eq!(r.route_config_name, "news");
            assert!(matches!(
                r.config_source.unwrap().config_source_specifier,
                Some(core::config_source::ConfigSourceSpecifier::Ads(_))
            ));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.http_filters.last().unwrap().name,
        "envoy.filters.http.router"
    );
    assert!(client_listener(&s, "nope").is_none());
}

#[test]
fn routes_carry_matchers_split_retry_timeout() {
    let s = snapshot(YAML);
    let rc = route_configuration(&s, "news").unwrap();
    let routes = &rc.virtual_hosts[0].routes;
    assert_eq!(routes.len(), 2);
    let m0 = routes[0].r#match.as_ref().unwrap();
    assert_eq!(m0.headers[0].name, "x-canary");
    let Some(rt::route::Action::Route(a0)) = &routes[0].action else {
        panic!()
    };
    assert_eq!(
        a0.cluster_specifier,
        Some(rt::route_action::ClusterSpecifier::Cluster(
            "news/v2".into()
        ))
    );
    let Some(rt::route::Action::Route(a1)) = &routes[1].action else {
        panic!()
    };
    let Some(rt::route_action::ClusterSpecifier::WeightedClusters(w)) = &a1.cluster_specifier
    else {
        panic!("{a1:?}")
    };
    let weights: Vec<(String, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.weight.unwrap().value))
        .collect();
    assert_eq!(weights, [("news/v1".into(), 90), ("news/v2".into(), 10)]);
    let m1 = routes[1].r#match.as_ref().unwrap();
    assert_eq!(m1.headers[0].name, ":method");
    // A31: timeout as max_stream_duration; A44: retry policy.
    assert_eq!(
        a1.max_stream_duration
            .unwrap()
            .max_stream_duration
            .unwrap()
            .seconds,
        2
    );
    let r = a1.retry_policy.as_ref().unwrap();
    assert_eq!(r.retry_on, "unavailable,5xx,retriable-status-codes");
    assert_eq!(r.retriable_status_codes, [503]);
    assert_eq!(r.num_retries.unwrap().value, 2);
    assert_eq!(
        r.retry_back_off.unwrap().base_interval.unwrap().nanos,
        25_000_000
    );
    // A42: hash policy on the header.
    let ring = route_configuration(&s, "ring").unwrap();
    let Some(rt::route::Action::Route(a)) = &ring.virtual_hosts[0].routes[0].action else {
        panic!()
    };
    assert!(matches!(
        &a.hash_policy[0].policy_specifier,
        Some(rt::route_action::hash_policy::PolicySpecifier::Header(h)) if h.header_name == "x-user"
    ));
}

fn lb_names(c: &cl::Cluster) -> Vec<String> {
    c.load_balancing_policy
        .as_ref()
        .unwrap()
        .policies
        .iter()
        .map(|p| p.typed_extension_config.as_ref().unwrap().name.clone())
        .collect()
}

#[test]
fn clusters_are_eds_over_ads_with_policies_per_flavor() {
    let s = snapshot(YAML);
    let grpc = clusters(&s, Flavor::Grpc);
    let names: Vec<&str> = grpc.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mag", "news", "news/v1", "news/v2", "ring"]);
    let news = &grpc[1];
    assert_eq!(
        news.cluster_discovery_type,
        Some(cl::cluster::ClusterDiscoveryType::Type(
            cl::cluster::DiscoveryType::Eds as i32
        ))
    );
    let eds = news.eds_cluster_config.as_ref().unwrap();
    assert_eq!(eds.service_name, "news");
    let t = &news.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_requests.unwrap().value, 100);
    let od = news.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx.unwrap().value, 5);
    assert_eq!(od.enforcing_consecutive_5xx.unwrap().value, 100);
    assert_eq!(od.failure_percentage_threshold.unwrap().value, 50);
    assert_eq!(od.enforcing_failure_percentage.unwrap().value, 100);
    assert_eq!(od.enforcing_success_rate.unwrap().value, 0);
    assert_eq!(od.max_ejection_percent.unwrap().value, 50);
    assert!(
        news.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    assert_eq!(
        lb_names(news),
        ["envoy.load_balancing_policies.wrr_locality"]
    );
    let envoy = clusters(&s, Flavor::Envoy);
    assert_eq!(
        lb_names(&envoy[1]),
        ["envoy.load_balancing_policies.round_robin"]
    );
    assert_eq!(
        lb_names(&grpc[4]),
        ["envoy.load_balancing_policies.ring_hash"]
    );
    assert_eq!(
        lb_names(&grpc[0]),
        ["envoy.load_balancing_policies.ring_hash"],
        "maglev -> ring_hash for gRPC"
    );
    assert_eq!(
        lb_names(&envoy[0]),
        ["envoy.load_balancing_policies.maglev"]
    );
}

#[test]
fn load_assignment_filters_subsets_and_weights_localities() {
    let s = snapshot(YAML);
    let all = load_assignment(&s, "news").unwrap();
    assert_eq!(all.endpoints.len(), 2);
    let v1 = load_assignment(&s, "news/v1").unwrap();
    assert_eq!(v1.endpoints.len(), 1);
    let loc = &v1.endpoints[0];
    assert_eq!(loc.load_balancing_weight.unwrap().value, 3);
    let l = loc.locality.as_ref().unwrap();
    assert_eq!(
        (l.zone.as_str(), l.sub_zone.as_str()),
        ("a", "127.0.0.1:8081")
    );
    assert_eq!(loc.lb_endpoints[0].load_balancing_weight.unwrap().value, 3);
    assert!(load_assignment(&s, "news/v9").is_none());
    assert!(load_assignment(&s, "nope").is_none());
}

#[test]
fn gateway_listener_binds_listen_and_routes_over_rds() {
    let s = snapshot(YAML);
    let l = gateway_listener(&s, "edge").unwrap();
    assert_eq!(l.name, "gateway/edge");
    assert_eq!(
        l.address.unwrap(),
        socket_address("127.0.0.1:10000".parse().unwrap())
    );
    let f = &l.filter_chains[0].filters[0];
    let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
        &f.config_type
    else {
        panic!()
    };
    let m = hcm_of(any);
    assert!(
        matches!(m.route_specifier, Some(hcm::http_connection_manager::RouteSpecifier::Rds(ref r)) if r.route_config_name == "gateway/edge")
    );
    let rc = gateway_route_configuration(&s, "edge").unwrap();
    // The service's two routes, under the gateway's `/`.
    assert_eq!(rc.virtual_hosts[0].routes.len(), 2);
    assert_eq!(
        NodeKind::classify("x", "edge", &s),
        NodeKind::Gateway("edge".into())
    );
    assert_eq!(NodeKind::classify("x", "y", &s), NodeKind::Proxyless);
}

fn rbac_of(l: &envoy_types::pb::envoy::config::listener::v3::Listener) -> rb::Rbac {
    let f = &l.filter_chains[0].filters[0];
    let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
        &f.config_type
    else {
        panic!()
    };
    let m = hcm_of(any);
    assert_eq!(m.http_filters.len(), 2);
    assert_eq!(m.http_filters[1].name, "envoy.filters.http.router");
    let Some(hcm::http_filter::ConfigType::TypedConfig(rbac)) = &m.http_filters[0].config_type
    else {
        panic!()
    };
    let Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(rc)) = &m.route_specifier
    else {
        panic!()
    };
    assert!(matches!(
        rc.virtual_hosts[0].routes[0].action,
        Some(rt::route::Action::NonForwardingAction(_))
    ));
    RbacFilter::decode(rbac.value.as_slice())
        .unwrap()
        .rules
        .unwrap()
}

#[test]
fn server_listener_carries_intentions_as_rbac() {
    let s = snapshot(YAML);
    let name = format!("{SERVER_LISTENER_PREFIX}127.0.0.1:8081");
    let l = server_listener(&s, &name).unwrap();
    assert_eq!(
        l.address.clone().unwrap(),
        socket_address("127.0.0.1:8081".parse().unwrap())
    );
    assert_eq!(
        service_at(&s, "0.0.0.0:8082".parse().unwrap()).as_deref(),
        Some("news")
    );
    let rules = rbac_of(&l);
    assert_eq!(rules.action, rb::rbac::Action::Allow as i32);
    let mut keys: Vec<&String> = rules.policies.keys().collect();
    keys.sort();
    // app-ui allowed; `*` denied: no policy. Consul ranks `* -> news` (7)
    // above `prometheus -> *` (3), so prometheus is denied like everyone else.
    assert_eq!(keys, ["source default/app-ui"]);
    let p = &rules.policies["source default/app-ui"];
    assert!(matches!(
        &p.principals[0].identifier,
        Some(rb::principal::Identifier::Authenticated(a)) if matches!(
            &a.principal_name.as_ref().unwrap().match_pattern,
            Some(envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(id))
                if id == "spiffe://mesh.local/ns/default/svc/app-ui")
    ));
    // An address no service claims: only `* -> *`-style intentions apply;
    // prometheus gets its L7 permissions, everyone else the default (allow).
    let l = server_listener(&s, &format!("{SERVER_LISTENER_PREFIX}127.0.0.1:1")).unwrap();
    let rules = rbac_of(&l);
    let mut keys: Vec<&String> = rules.policies.keys().collect();
    keys.sort();
    assert_eq!(keys, ["source *", "source default/prometheus"]);
    let perm = &rules.policies["source default/prometheus"].permissions[0];
    // allow /metrics GET unless /admin; default allow for the rest.
    let Some(rb::permission::Rule::OrRules(set)) = &perm.rule else {
        panic!("{perm:?}")
    };
    assert_eq!(set.rules.len(), 2);
    assert!(server_listener(&s, "grpc/server?xds.resource.listening_address=bad").is_none());
}

#[test]
fn resources_table_and_listener_lookup() {
    let r = Resources::build(Arc::new(snapshot(YAML)));
    assert_eq!(r.version, 7);
    assert!(r.routes.contains_key("news") && r.routes.contains_key("gateway/edge"));
    assert!(r.listener("news").is_some());
    assert!(r.listener("gateway/edge").is_some());
    assert!(
        r.listener(&format!("{SERVER_LISTENER_PREFIX}127.0.0.1:8081"))
            .is_some()
    );
    assert!(r.listener("nope").is_none());
    assert_eq!(r.clusters.len(), r.envoy_clusters.len());
    assert_eq!(r.endpoints.len(), r.clusters.len());
}

#[test]
fn re2_translation_and_warnings() {
    assert_eq!(route::re2("(?<id>[0-9]+)").unwrap(), "(?P<id>[0-9]+)");
    assert!(route::re2("[a-z&&[^aeiou]]").is_err());
    assert!(route::re2("a--b").is_ok(), "-- outside a class is literal");
    assert!(route::re2("[a--b]").is_err());
    let yaml = r#"
services:
  s:
    load_balancer: maglev
    endpoints: [ { address: 127.0.0.1:1 } ]
    routes:
      - match: { path_regex: "/[a-z&&[^x]]+" }
      - match: { path_prefix: / }
"#;
    let s = snapshot(yaml);
    let w = warnings(&s);
    assert!(
        w.iter()
            .any(|l| l.contains("services.s.load_balancer") && l.contains("maglev")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|l| l.starts_with("services.s.routes[0]") && l.contains("RE2")),
        "{w:?}"
    );
    // The bad route is left out; the other is served.
    let rc = route_configuration(&s, "s").unwrap();
    assert_eq!(rc.virtual_hosts[0].routes.len(), 1);
    assert!(warnings(&snapshot(
        "services:\n  ok:\n    load_balancer: round_robin\n    endpoints: [ { address: 127.0.0.1:1 } ]\n"
    ))
    .is_empty());
}

#[test]
fn health_checks_become_envoy_health_checks_and_a_warning() {
    use core::health_check::HealthChecker;
    let s = snapshot(
        "services:
  g:
    protocol: grpc
    health_check: { interval: 2s, timeout: 500ms, grpc_service: helloworld.Greeter }
  h:
    protocol: http2
    health_check: { path: /ready, healthy_threshold: 1, unhealthy_threshold: 4 }
  plain: {}
",
    );
    let cls = clusters(&s, Flavor::Envoy);
    let by = |n: &str| cls.iter().find(|c| c.name == n).unwrap();
    let g = &by("g").health_checks[0];
    assert_eq!(
        g.interval,
        Some(duration(std::time::Duration::from_secs(2)))
    );
    assert_eq!(
        g.timeout,
        Some(duration(std::time::Duration::from_millis(500)))
    );
    assert_eq!(g.healthy_threshold.unwrap().value, 2);
    assert_eq!(g.unhealthy_threshold.unwrap().value, 3);
    match &g.health_checker {
        Some(HealthChecker::GrpcHealthCheck(c)) => assert_eq!(c.service_name, "helloworld.Greeter"),
        other => panic!("{other:?}"),
    }
    let h = &by("h").health_checks[0];
    assert_eq!(
        (
            h.healthy_threshold.unwrap().value,
            h.unhealthy_threshold.unwrap().value
        ),
        (1, 4)
    );
    match &h.health_checker {
        Some(HealthChecker::HttpHealthCheck(c)) => {
            assert_eq!(c.path, "/ready");
            assert_eq!(c.codec_client_type, 1, "HTTP2");
            assert_eq!(
                (c.expected_statuses[0].start, c.expected_statuses[0].end),
                (200, 300)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(by("plain").health_checks.is_empty());
    let w = warnings(&s);
    assert_eq!(
        w.iter().filter(|l| l.contains(".health_check: ")).count(),
        2,
        "{w:?}"
    );
}
