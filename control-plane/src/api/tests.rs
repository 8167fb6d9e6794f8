use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use mesh_core::config::Format;

use super::config::body_format;
use super::constant_time_eq;
use super::metrics::render_xds;
use super::services::{is_endpoint_id, parse_registration};
use crate::state::XdsStats;

#[test]
fn body_format_by_content_type() {
    let with = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        body_format(&h)
    };
    assert_eq!(with("application/json; charset=utf-8"), Format::Json);
    assert_eq!(with("application/toml"), Format::Toml);
    assert_eq!(with("application/yaml"), Format::Yaml);
    assert_eq!(with("text/plain"), Format::Yaml);
    assert_eq!(body_format(&HeaderMap::new()), Format::Yaml);
}

#[test]
fn registration_parsing() {
    let reg = parse_registration(
        "news",
        "a-1",
        br#"{"address":"[::1]:8080","weight":5,"zone":"z","labels":{"v":"2"},"ttl":"1m30s"}"#,
    )
    .unwrap();
    assert_eq!(reg.endpoint.address.to_string(), "[::1]:8080");
    assert_eq!(reg.endpoint.weight, 5);
    assert_eq!(reg.endpoint.labels["v"], "2");
    assert_eq!(reg.ttl, Some(Duration::from_secs(90)));
    let minimal = parse_registration("news", "a", br#"{"address":"127.0.0.1:1"}"#).unwrap();
    assert_eq!((minimal.endpoint.weight, minimal.ttl), (1, None));
    let errs = parse_registration("news", "a/b", br#"[1]"#).unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["id", ""]);
    assert!(is_endpoint_id("host-1.zone_a:8080"));
    assert!(!is_endpoint_id(""));
    assert!(!is_endpoint_id(&"x".repeat(129)));
}

#[test]
fn token_comparison() {
    assert!(constant_time_eq(b"s3cret", b"s3cret"));
    assert!(!constant_time_eq(b"s3cret", b"s3creT"));
    assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    assert!(!constant_time_eq(b"", b"x"));
}

#[test]
fn xds_stats_render_as_prometheus_text() {
    let stats = XdsStats::default();
    stats.connected.store(3, Ordering::Relaxed);
    stats.record_push(Duration::from_millis(1500));
    stats.record_push(Duration::from_millis(500));
    stats.nacks.store(1, Ordering::Relaxed);
    let text = render_xds(&stats);
    for line in [
        "mesh_cp_xds_connected_streams 3",
        "mesh_cp_xds_pushes_total 2",
        "mesh_cp_xds_nacks_total 1",
        "mesh_cp_xds_push_latency_seconds_sum 2",
        "mesh_cp_xds_push_latency_seconds_count 2",
        "# TYPE mesh_cp_xds_push_latency_seconds summary",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    // Every sample line is `name value` with a numeric value.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = l.split_once(' ').unwrap();
        v.parse::<f64>().unwrap();
    }
}
