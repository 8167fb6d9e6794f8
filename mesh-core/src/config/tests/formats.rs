//! The three formats agree; errors carry lines in each; round trips; no
//! input panics.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::endpoint::Endpoint;

const EXAMPLE_TOML: &str = include_str!("mesh.toml");
const EXAMPLE_JSON: &str = include_str!("mesh.json");

#[test]
fn example_parses_with_every_feature() {
    let cfg = yaml(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let s = cfg.summary();
    assert_eq!(
        s,
        ConfigSummary {
            services: 5,
            endpoints: 5,
            routes: 5,
            intentions: 4,
            gateways: 1
        }
    );
    assert_eq!(
        s.to_string(),
        "5 services, 5 endpoints, 5 routes, 4 intentions, 1 gateway"
    );
    let news = &cfg.services["news-service"];
    assert_eq!(news.endpoints[0].weight, 3);
    assert_eq!(
        news.routes[1].matches.methods,
        vec!["GET".to_string(), "HEAD".to_string()]
    );
    assert_eq!(
        news.routes[1].retry.as_ref().unwrap().on,
        vec![RetryOn::GatewayError, RetryOn::Status(503)]
    );
    assert_eq!(
        cfg.services["app-ui"].load_balancer.panic_threshold_percent,
        30
    );
}

#[test]
fn toml_and_json_of_the_example_mean_the_same() {
    let from_yaml = yaml(EXAMPLE).unwrap();
    let from_toml =
        parse_str(EXAMPLE_TOML, Format::Toml, "mesh.toml").unwrap_or_else(|e| panic!("{e}"));
    let from_json =
        parse_str(EXAMPLE_JSON, Format::Json, "mesh.json").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_toml, from_yaml);
    assert_eq!(from_json, from_yaml);
}

#[test]
fn toml_errors_have_paths_and_lines() {
    let text = "[services.a]\nprotocol = \"http\"\n\n[services.a.retry]\nattempts = 0\nretyr = 1\n";
    let e = parse_str(text, Format::Toml, "mesh.toml").unwrap_err();
    let a = e.at("services.a.retry.attempts").unwrap();
    assert_eq!(a.line, Some(5), "{e}");
    assert_eq!(e.at("services.a.retry.retyr").unwrap().line, Some(6), "{e}");
    assert!(
        e.to_string()
            .contains("mesh.toml:5: services.a.retry.attempts: must be between 1 and 10, got 0"),
        "{e}"
    );
    let e = parse_str("a = \n", Format::Toml, "mesh.toml").unwrap_err();
    assert_eq!(
        (e.errors[0].kind, e.errors[0].line),
        (ConfigErrorKind::Syntax, Some(1))
    );
    let e = parse_str("trust_domain = 1979-05-27\n", Format::Toml, "mesh.toml").unwrap_err();
    assert!(e.has_path("trust_domain"), "{e}");
}

#[test]
fn json_errors_have_paths_and_lines() {
    let text = "{\n  \"services\": {\n    \"a\": {\n      \"retry\": { \"attempts\": 0 },\n      \"timeout\": 5\n    }\n  }\n}\n";
    let e = parse_str(text, Format::Json, "mesh.json").unwrap_err();
    assert_eq!(
        e.at("services.a.retry.attempts").unwrap().line,
        Some(4),
        "{e}"
    );
    assert_eq!(e.at("services.a.timeout").unwrap().line, Some(5), "{e}");
    let e = parse_str("{\"a\": 1,\n \"a\": 2}", Format::Json, "mesh.json").unwrap_err();
    assert_eq!(e.errors[0].line, Some(2));
    assert!(
        e.to_string().starts_with("mesh.json:2: duplicate key `a`"),
        "{e}"
    );
    let e = parse_str("{\n\n  oops\n}", Format::Json, "mesh.json").unwrap_err();
    assert_eq!(e.errors[0].line, Some(3), "{e}");
}

#[test]
fn formats_by_path_and_name() {
    use std::path::Path;
    assert_eq!(Format::from_path(Path::new("a/mesh.toml")), Format::Toml);
    assert_eq!(Format::from_path(Path::new("mesh.JSON")), Format::Json);
    assert_eq!(Format::from_path(Path::new("mesh.yml")), Format::Yaml);
    assert_eq!(Format::from_path(Path::new("mesh")), Format::Yaml);
    assert_eq!("toml".parse::<Format>(), Ok(Format::Toml));
    assert_eq!("yaml".parse::<Format>(), Ok(Format::Yaml));
    assert_eq!("json".parse::<Format>(), Ok(Format::Json));
    assert!("xml".parse::<Format>().is_err());
}

#[test]
fn round_trips_through_json_and_yaml() {
    for (text, format) in [(EXAMPLE, Format::Yaml), (EXAMPLE_TOML, Format::Toml)] {
        let cfg = parse_str(text, format, "x").unwrap();
        let json = cfg.to_json();
        let back = parse_str(&json.to_string(), Format::Json, "x")
            .unwrap_or_else(|e| panic!("{e}\n{json:#}"));
        assert_eq!(back, cfg);
        // JSON is YAML flow syntax: the YAML reader takes it too.
        let back =
            parse_str(&json.to_string(), Format::Yaml, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, cfg);
    }
    assert_eq!(
        MeshConfig::default().to_json()["trust_domain"],
        "mesh.local"
    );
}

fn arb_service() -> impl Strategy<Value = ServiceConfig> {
    (
        prop::collection::btree_set(1u16..u16::MAX, 0..4),
        1u32..=1_000_000,
        prop::option::of(1u64..10_000_000_000),
        1u32..=10,
        0.0f64..=1000.0,
        0u32..=100,
        prop::option::of(0u32..20),
        0.0f64..=1.0,
        prop::sample::select(vec![
            Algorithm::RoundRobin,
            Algorithm::Random,
            Algorithm::WeightedRoundRobin,
            Algorithm::LeastRequest {
                choice_count: 7,
                active_request_bias: 0.3,
            },
            Algorithm::PeakEwma {
                decay: Duration::from_nanos(1_500_123),
                default_rtt: Duration::from_secs(3600),
            },
            Algorithm::RingHash {
                min_ring_size: 3,
                max_ring_size: 3,
            },
            Algorithm::Maglev { table_size: 7 },
        ]),
    )
        .prop_map(
            |(ports, weight, timeout_ms, attempts, ratio, pct, cf, threshold, algorithm)| {
                let mut retry = RetryConfig {
                    attempts,
                    ..RetryConfig::default()
                };
                retry.budget.ratio = ratio;
                retry.on.push(RetryOn::Status(429));
                ServiceConfig {
                    endpoints: ports
                        .into_iter()
                        .map(|p| {
                            Endpoint::new(([10, 0, 0, 1], p).into())
                                .with_weight(weight)
                                .with_label("v", "1")
                        })
                        .collect(),
                    timeout: timeout_ms.map(Duration::from_millis),
                    load_balancer: LoadBalancerConfig {
                        algorithm,
                        panic_threshold_percent: pct,
                    },
                    retry: Some(retry),
                    outlier_detection: Some(OutlierConfig {
                        consecutive_failures: cf.filter(|c| *c > 0),
                        failure_rate: Some(FailureRateConfig {
                            threshold,
                            min_requests: 3,
                        }),
                        success_rate: Some(SuccessRateConfig::default()),
                        ..OutlierConfig::default()
                    }),
                    ..ServiceConfig::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn generated_configs_round_trip(svc in arb_service(), deny in any::<bool>()) {
        let mut cfg = MeshConfig::default();
        if deny {
            cfg.default_policy = Action::Deny;
        }
        cfg.services.insert("svc-1".into(), svc);
        prop_assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
        let back = parse_str(&cfg.to_json().to_string(), Format::Json, "x");
        prop_assert_eq!(back, Ok(cfg));
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        for format in [Format::Yaml, Format::Toml, Format::Json] {
            let _ = parse_str(&s, format, "fuzz");
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let s = String::from_utf8_lossy(&bytes);
        for format in [Format::Yaml, Format::Toml, Format::Json] {
            let _ = parse_str(&s, format, "fuzz");
        }
    }

    #[test]
    fn mutated_examples_never_panic(at in 0usize..4000, len in 0usize..40, insert in "[ :\\[\\]{},\"'\\-#a-z0-9\n]{0,8}") {
        for (text, format) in [(EXAMPLE, Format::Yaml), (EXAMPLE_TOML, Format::Toml), (EXAMPLE_JSON, Format::Json)] {
            let at = at.min(text.len());
            let end = (at + len).min(text.len());
            if let (Some(head), Some(tail)) = (text.get(..at), text.get(end..)) {
                let mutated = format!("{head}{insert}{tail}");
                let _ = parse_str(&mutated, format, "fuzz");
            }
        }
    }
}
