//! One test per schema rule: exact path, line and message fragment.

use super::*;

#[test]
fn display_names_file_line_path_and_what_is_allowed() {
    let text = "services:\n  news-service:\n    retry:\n      attempts: 0\n";
    let e = expect_err(
        text,
        "services.news-service.retry.attempts",
        4,
        "must be between 1 and 10, got 0",
    );
    assert_eq!(
        e.to_string(),
        "mesh.yaml:4: services.news-service.retry.attempts: must be between 1 and 10, got 0"
    );
    assert_eq!(e.errors[0].kind, ConfigErrorKind::Invalid);
}

#[test]
fn every_error_in_a_file_is_reported_in_line_order() {
    let text = "\
trust_domian: x
services:
  a:
    protocol: smtp
    timeout: 5
    retry: { attempts: 11 }
    routes:
      - split: { nope: 1 }
intentions:
  - { source: a, destination: b }
";
    let e = yaml(text).unwrap_err();
    let got: Vec<(&str, Option<u32>)> =
        e.errors.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        got,
        vec![
            ("trust_domian", Some(1)),
            ("services.a.protocol", Some(4)),
            ("services.a.timeout", Some(5)),
            ("services.a.retry.attempts", Some(6)),
            ("services.a.routes[0].split.nope", Some(8)),
            ("intentions[0]", Some(10)),
        ],
        "{e}"
    );
    assert_eq!(e.to_string().lines().count(), 6);
}

#[test]
fn model_errors_point_at_the_file_item_after_dropped_ones() {
    // endpoints[0] fails to decode, so the model holds items 1 and 2 only;
    // the duplicate must still be reported at the file's index and line.
    let text =
        svc("endpoints:\n  - address: nope\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:1");
    expect_err(
        &text,
        "services.a.endpoints[0].address",
        4,
        "not an address",
    );
    expect_err(
        &text,
        "services.a.endpoints[2].address",
        6,
        "duplicate address",
    );
    let text = "intentions:\n  - { destination: b, action: allow }\n  - { source: a, destination: b, action: allow }\n  - { source: a, destination: b, action: deny }\n";
    expect_err(text, "intentions[2]", 4, "a second intention");
    let text = "services:\n  Bad:\n    protocol: smtp\n";
    expect_err(text, "services.Bad", 2, "not a service name");
    expect_err(text, "services.Bad.protocol", 3, "one of http");
}

#[test]
fn unknown_fields_name_the_allowed_ones_and_suggest() {
    let e = expect_err(
        &svc("retyr: {}"),
        "services.a.retyr",
        3,
        "unknown field `retyr`; did you mean `retry`?",
    );
    assert!(
        e.errors[0]
            .message
            .contains("allowed fields: protocol, endpoints, dns"),
        "{e}"
    );
    assert_eq!(e.errors[0].kind, ConfigErrorKind::UnknownField);
    expect_err(
        "trust_domian: a\n",
        "trust_domian",
        1,
        "did you mean `trust_domain`?",
    );
    expect_err(
        &svc("retry: { attempt: 2 }"),
        "services.a.retry.attempt",
        3,
        "did you mean `attempts`?",
    );
    let e = expect_err(&svc("zzzzzz: 1"), "services.a.zzzzzz", 3, "unknown field");
    assert!(!e.errors[0].message.contains("did you mean"), "{e}");
    expect_err(
        &svc("circuit_breaker: { max_request: 1 }"),
        "services.a.circuit_breaker.max_request",
        3,
        "did you mean `max_requests`?",
    );
}

#[test]
fn top_level_rules() {
    expect_err(
        "trust_domain: Not_A_Domain\n",
        "trust_domain",
        1,
        "lower-case DNS name",
    );
    expect_err(
        "default_policy: maybe\n",
        "default_policy",
        1,
        "must be `allow` or `deny`, got `maybe`",
    );
    expect_err(
        "services: [a]\n",
        "services",
        1,
        "expected a mapping, got a list",
    );
    expect_err(
        "services:\n  News_Svc: {}\n",
        "services.News_Svc",
        2,
        "not a service name",
    );
    let cfg = yaml("").unwrap();
    assert_eq!(
        cfg,
        MeshConfig::default(),
        "an empty file is an empty config"
    );
}

#[test]
fn protocol_and_endpoints() {
    expect_err(
        &svc("protocol: smtp"),
        "services.a.protocol",
        3,
        "must be one of http, http2, grpc; got `smtp`",
    );
    expect_err(
        &svc("endpoints:\n  - { address: news.local:80 }"),
        "services.a.endpoints[0].address",
        4,
        "is a host name; endpoints take IP addresses (ip:port); discover host names with `dns: news.local:80`",
    );
    expect_err(
        &svc("endpoints:\n  - { address: 127.0.0.1 }"),
        "services.a.endpoints[0].address",
        4,
        "has no port",
    );
    expect_err(
        &svc("endpoints:\n  - { weight: 2 }"),
        "services.a.endpoints[0]",
        4,
        "missing `address`",
    );
    expect_err(
        &svc("endpoints:\n  - { address: 127.0.0.1:1, weight: 0 }"),
        "services.a.endpoints[0].weight",
        4,
        "must be between 1 and 1000000, got 0",
    );
    expect_err(
        &svc("endpoints:\n  - { address: 127.0.0.1:1, weight: 1000001 }"),
        "services.a.endpoints[0].weight",
        4,
        "must be between 1 and 1000000, got 1000001",
    );
    expect_err(
        &svc("endpoints:\n  - { address: 127.0.0.1:1, weight: -1 }"),
        "services.a.endpoints[0].weight",
        4,
        "between 0 and 4294967295, got -1",
    );
    expect_err(
        &svc("endpoints:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:1"),
        "services.a.endpoints[1].address",
        5,
        "duplicate address 127.0.0.1:1",
    );
    expect_err(
        &svc("endpoints:\n  - { address: 127.0.0.1:1, labels: { v: 1 } }"),
        "services.a.endpoints[0].labels.v",
        4,
        "expected a string, got an integer; quote it",
    );
    let cfg = yaml(&svc(
        "endpoints:\n  - { address: 127.0.0.1:1, zone: b, labels: { v: x } }",
    ))
    .unwrap();
    let ep = &cfg.services["a"].endpoints[0];
    assert_eq!(
        (ep.weight, ep.zone.as_deref(), ep.labels["v"].as_str()),
        (1, Some("b"), "x")
    );
}

#[test]
fn dns_targets() {
    expect_err(
        &svc("endpoints: [{ address: 127.0.0.1:1 }]\ndns: a.example.com:80"),
        "services.a.dns",
        4,
        "either `endpoints` or `dns`, not both",
    );
    expect_err(
        &svc("dns: a.example.com"),
        "services.a.dns",
        3,
        "has no port",
    );
    expect_err(&svc("dns: _http.a"), "services.a.dns", 3, "not an SRV name");
    let cfg = yaml(&svc("dns: _http._tcp.a.example.com")).unwrap();
    assert_eq!(
        cfg.services["a"].dns,
        Some(DnsTarget::Srv {
            name: "_http._tcp.a.example.com".into()
        })
    );
}

#[test]
fn subsets_need_a_selector() {
    expect_err(
        &svc("subsets: { v1: {} }"),
        "services.a.subsets.v1",
        3,
        "at least one label",
    );
    expect_err(
        &svc("subsets: { v1: [x] }"),
        "services.a.subsets.v1",
        3,
        "expected a mapping",
    );
}

#[test]
fn load_balancer_names_and_parameters() {
    expect_err(
        &svc("load_balancer: round_robbin"),
        "services.a.load_balancer",
        3,
        "unknown algorithm `round_robbin`; did you mean `round_robin`?",
    );
    expect_err(
        &svc("load_balancer: { choice_count: 3 }"),
        "services.a.load_balancer",
        3,
        "missing `algorithm`",
    );
    // Parameters belong to their algorithm.
    let e = expect_err(
        &svc("load_balancer: { algorithm: round_robin, choice_count: 3 }"),
        "services.a.load_balancer.choice_count",
        3,
        "unknown field `choice_count`",
    );
    assert!(
        e.errors[0]
            .message
            .contains("allowed fields: algorithm, panic_threshold"),
        "{e}"
    );
    expect_err(
        &svc("load_balancer: { algorithm: least_request, choice_count: 1 }"),
        "services.a.load_balancer.choice_count",
        3,
        "between 2 and 100, got 1",
    );
    expect_err(
        &svc("load_balancer: { algorithm: least_request, active_request_bias: -1 }"),
        "services.a.load_balancer.active_request_bias",
        3,
        ">= 0",
    );
    expect_err(
        &svc(
            "load_balancer:\n  algorithm: ring_hash\n  min_ring_size: 4096\n  max_ring_size: 1024",
        ),
        "services.a.load_balancer.min_ring_size",
        5,
        "must be <= max_ring_size (1024), got 4096",
    );
    expect_err(
        &svc("load_balancer: { algorithm: ring_hash, max_ring_size: 8388609 }"),
        "services.a.load_balancer.max_ring_size",
        3,
        "between 1 and 8388608",
    );
    expect_err(
        &svc("load_balancer: { algorithm: maglev, table_size: 65536 }"),
        "services.a.load_balancer.table_size",
        3,
        "must be a prime",
    );
    expect_err(
        &svc("load_balancer: { algorithm: random, panic_threshold: 101 }"),
        "services.a.load_balancer.panic_threshold",
        3,
        "between 0 and 100, got 101",
    );
    expect_err(
        &svc("load_balancer: { algorithm: peak_ewma, decay: 0s }"),
        "services.a.load_balancer.decay",
        3,
        "longer than 0s",
    );
    let cfg = yaml(&svc(
        "load_balancer: { algorithm: maglev, table_size: 251, panic_threshold: 0 }",
    ))
    .unwrap();
    let lb = &cfg.services["a"].load_balancer;
    assert_eq!(
        (lb.algorithm.clone(), lb.panic_threshold_percent),
        (Algorithm::Maglev { table_size: 251 }, 0)
    );
}

#[test]
fn hash_on_needs_a_hashing_balancer() {
    expect_err(
        &svc("load_balancer: round_robin\nhash_on: { header: x-user }"),
        "services.a.hash_on",
        4,
        "only used by `ring_hash` and `maglev`, but load_balancer is `round_robin`",
    );
    expect_err(
        &svc("hash_on: {}"),
        "services.a.hash_on",
        3,
        "missing `header`",
    );
    let cfg = yaml(&svc(
        "load_balancer: ring_hash\nhash_on: { header: X-User }",
    ))
    .unwrap();
    assert_eq!(
        cfg.services["a"].hash_on,
        Some(HashOn::Header("x-user".into()))
    );
}

#[test]
fn durations_need_units() {
    expect_err(
        &svc("timeout: 5"),
        "services.a.timeout",
        3,
        "durations need a unit: write e.g. \"5ms\" or \"5s\"",
    );
    expect_err(
        &svc("timeout: \"250\""),
        "services.a.timeout",
        3,
        "has no unit",
    );
    expect_err(&svc("timeout: -1s"), "services.a.timeout", 3, "negative");
    expect_err(
        &svc("timeout: 0s"),
        "services.a.timeout",
        3,
        "longer than 0s",
    );
    expect_err(
        &svc("timeout: 2d"),
        "services.a.timeout",
        3,
        "unknown unit `d`",
    );
    let cfg = yaml(&svc("timeout: 1m30s")).unwrap();
    assert_eq!(
        cfg.services["a"].timeout,
        Some(std::time::Duration::from_secs(90))
    );
}

#[test]
fn retry_rules() {
    expect_err(
        &svc("timeout: 1s\nretry: { per_try_timeout: 2s }"),
        "services.a.retry.per_try_timeout",
        4,
        "must not exceed the timeout (1s), got 2s",
    );
    expect_err(
        &svc("retry:\n  on: [reset, 5xxx]"),
        "services.a.retry.on[1]",
        4,
        "unknown retry condition `5xxx`; allowed: connect-failure",
    );
    expect_err(
        &svc("retry:\n  on: [700]"),
        "services.a.retry.on[0]",
        4,
        "between 100 and 599, got 700",
    );
    expect_err(
        &svc("retry:\n  on: [\"99\"]"),
        "services.a.retry.on[0]",
        4,
        "between 100 and 599, got 99",
    );
    expect_err(
        &svc("retry:\n  on: [reset, reset]"),
        "services.a.retry.on[1]",
        4,
        "listed twice",
    );
    expect_err(
        &svc("retry:\n  backoff: { base: 1s, max: 100ms }"),
        "services.a.retry.backoff.base",
        4,
        "must be <= max (100ms), got 1s",
    );
    expect_err(
        &svc("retry:\n  budget: { ratio: 1001 }"),
        "services.a.retry.budget.ratio",
        4,
        "between 0 and 1000, got 1001",
    );
    expect_err(
        &svc("retry:\n  budget: { window: 61s }"),
        "services.a.retry.budget.window",
        4,
        "between 1s and 60s, got 1m1s",
    );
    expect_err(
        &svc("retry:\n  budget: { window: 500ms }"),
        "services.a.retry.budget.window",
        4,
        "between 1s and 60s",
    );
    expect_err(
        &svc("retry:\n  non_idempotent: yes"),
        "services.a.retry.non_idempotent",
        4,
        "expected `true` or `false`, got a string",
    );
    let cfg = yaml(&svc(
        "retry:\n  on: [503, \"429\", gateway-error]\n  backoff: { base: 50ms }",
    ))
    .unwrap();
    let r = cfg.services["a"].retry.as_ref().unwrap();
    assert_eq!(
        r.on,
        vec![
            RetryOn::Status(503),
            RetryOn::Status(429),
            RetryOn::GatewayError
        ]
    );
    assert_eq!(
        r.backoff.max,
        std::time::Duration::from_millis(500),
        "max defaults to 10 x base"
    );
}

#[test]
fn circuit_breaker_and_outlier_rules() {
    expect_err(
        &svc("circuit_breaker: { max_requests: 0 }"),
        "services.a.circuit_breaker.max_requests",
        3,
        "between 1 and 4294967295, got 0",
    );
    expect_err(
        &svc("outlier_detection:\n  failure_rate: { threshold: 1.5 }"),
        "services.a.outlier_detection.failure_rate.threshold",
        4,
        "between 0 and 1, got 1.5",
    );
    expect_err(
        &svc("outlier_detection:\n  failure_rate: { min_requests: 5 }"),
        "services.a.outlier_detection.failure_rate",
        4,
        "missing `threshold`",
    );
    expect_err(
        &svc("outlier_detection:\n  success_rate: { stdev_factor: 0 }"),
        "services.a.outlier_detection.success_rate.stdev_factor",
        4,
        "must be a number > 0",
    );
    expect_err(
        &svc("outlier_detection:\n  base_ejection: 1m\n  max_ejection: 30s"),
        "services.a.outlier_detection.max_ejection",
        5,
        "must be >= base_ejection (1m), got 30s",
    );
    expect_err(
        &svc("outlier_detection:\n  max_ejected_percent: 101"),
        "services.a.outlier_detection.max_ejected_percent",
        4,
        "between 0 and 100, got 101",
    );
    let cfg = yaml(&svc(
        "outlier_detection:\n  consecutive_failures: 0\n  slow_start: 5s",
    ))
    .unwrap();
    let o = cfg.services["a"].outlier_detection.as_ref().unwrap();
    assert_eq!(o.consecutive_failures, None, "0 turns it off");
    assert_eq!(o.slow_start, Some(std::time::Duration::from_secs(5)));
}

#[test]
fn duplicate_keys_are_errors() {
    let e = yaml("services:\n  a: {}\n  a: {}\n").unwrap_err();
    assert_eq!(
        (e.errors[0].line, e.errors[0].kind),
        (Some(3), ConfigErrorKind::Syntax)
    );
    assert!(e.errors[0].message.contains("duplicate key `a`"), "{e}");
}

#[test]
fn validate_checks_configs_built_in_code() {
    let mut cfg = MeshConfig::default();
    let svc = ServiceConfig {
        retry: Some(RetryConfig {
            attempts: 0,
            ..RetryConfig::default()
        }),
        hash_on: Some(HashOn::Header("x".into())),
        ..ServiceConfig::default()
    };
    cfg.services.insert("news-service".into(), svc);
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.origin, "config");
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "services.news-service.hash_on",
            "services.news-service.retry.attempts"
        ]
    );
    assert!(e.errors.iter().all(|e| e.line.is_none()));
    assert!(yaml(EXAMPLE).unwrap().validate().is_ok());
}

#[test]
fn service_identity_is_a_spiffe_id() {
    let cfg =
        yaml("services:\n  news-service:\n    identity: spiffe://mesh.local/ns/prod/svc/news\n")
            .unwrap();
    let id = cfg.services["news-service"].identity.as_ref().unwrap();
    assert_eq!(id.as_str(), "spiffe://mesh.local/ns/prod/svc/news");
    // Rendered and parsed back.
    let json = cfg.to_json().to_string();
    let back = parse_str(&json, Format::Json, "mesh.json").unwrap();
    assert_eq!(back.services["news-service"].identity.as_ref(), Some(id));

    expect_err(
        "services:\n  news-service:\n    identity: https://news\n",
        "services.news-service.identity",
        3,
        "must be a SPIFFE ID",
    );
}
