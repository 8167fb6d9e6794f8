//! The `health_check` block: defaults, decoding, rules and rendering.

use std::time::Duration;

use super::*;

#[test]
fn absent_block_means_no_checks_and_empty_block_takes_defaults() {
    let cfg = yaml(&svc("protocol: http")).unwrap();
    assert_eq!(cfg.services["a"].health_check, None);
    let cfg = yaml(&svc("health_check: {}")).unwrap();
    let h = cfg.services["a"].health_check.as_ref().unwrap();
    assert_eq!(*h, HealthCheckConfig::default());
    assert_eq!(h.interval, Duration::from_secs(5));
    assert_eq!(h.timeout, Duration::from_secs(1));
    assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 3));
    assert_eq!(h.path, "/healthz");
    assert_eq!(h.grpc_service, "");
    // A null value is "not given", as for every field.
    let cfg = yaml(&svc("health_check:")).unwrap();
    assert_eq!(cfg.services["a"].health_check, None);
}

#[test]
fn every_field_decodes_and_renders_back() {
    let text = svc(
        "health_check:\n  interval: 250ms\n  timeout: 100ms\n  healthy_threshold: 1\n  unhealthy_threshold: 4\n  path: /ready?full=1\n  grpc_service: helloworld.Greeter",
    );
    let cfg = yaml(&text).unwrap();
    let h = cfg.services["a"].health_check.clone().unwrap();
    assert_eq!(
        h,
        HealthCheckConfig {
            interval: Duration::from_millis(250),
            timeout: Duration::from_millis(100),
            healthy_threshold: 1,
            unhealthy_threshold: 4,
            path: "/ready?full=1".into(),
            grpc_service: "helloworld.Greeter".into(),
        }
    );
    let json = cfg.to_json();
    assert_eq!(json["services"]["a"]["health_check"]["interval"], "250ms");
    let back = parse_str(&json.to_string(), Format::Json, "x.json").unwrap();
    assert_eq!(back.services["a"].health_check, Some(h));
}

#[test]
fn health_check_rules_name_the_field() {
    expect_err(
        &svc("health_check:\n  interval: 1s\n  timeout: 2s"),
        "services.a.health_check.timeout",
        5,
        "must not exceed the interval (1s), got 2s",
    );
    expect_err(
        &svc("health_check:\n  timeout: 0s"),
        "services.a.health_check.timeout",
        4,
        "longer than 0s",
    );
    expect_err(
        &svc("health_check:\n  interval: 0s\n  timeout: 0s"),
        "services.a.health_check.interval",
        4,
        "longer than 0s",
    );
    expect_err(
        &svc("health_check:\n  healthy_threshold: 0"),
        "services.a.health_check.healthy_threshold",
        4,
        "between 1 and 1000, got 0",
    );
    expect_err(
        &svc("health_check:\n  unhealthy_threshold: 0"),
        "services.a.health_check.unhealthy_threshold",
        4,
        "between 1 and 1000, got 0",
    );
    expect_err(
        &svc("health_check:\n  path: healthz"),
        "services.a.health_check.path",
        4,
        "must be an absolute request path such as `/healthz`, got `healthz`",
    );
    expect_err(
        &svc("health_check:\n  path: /a b"),
        "services.a.health_check.path",
        4,
        "absolute request path",
    );
    expect_err(
        &svc("health_check:\n  interval: 5"),
        "services.a.health_check.interval",
        4,
        "durations need a unit",
    );
    expect_err(
        &svc("health_check:\n  interval: soon"),
        "services.a.health_check.interval",
        4,
        "",
    );
    expect_err(
        &svc("health_check:\n  intervall: 5s"),
        "services.a.health_check.intervall",
        4,
        "did you mean `interval`?",
    );
}

#[test]
fn validate_checks_health_check_built_in_code() {
    let mut cfg = MeshConfig::default();
    cfg.services.insert(
        "a".into(),
        ServiceConfig {
            health_check: Some(HealthCheckConfig {
                timeout: Duration::from_secs(10),
                ..HealthCheckConfig::default()
            }),
            ..ServiceConfig::default()
        },
    );
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.errors[0].path, "services.a.health_check.timeout");
}
