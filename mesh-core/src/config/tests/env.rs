//! The environment contract and its overlay onto a config.

use super::*;
use crate::endpoint::Endpoint;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn reads_every_variable() {
    let env = MeshEnv::from_vars(vars(&[
        ("MESH_SERVICE", "app-ui"),
        ("OTEL_SERVICE_NAME", "ignored"),
        ("MESH_CONFIG", "/etc/mesh.yaml"),
        (
            "MESH_ENDPOINTS_NEWS_SERVICE",
            "127.0.0.1:8081=3,127.0.0.1:8082",
        ),
        ("MESH_DNS_SERVER", "127.0.0.1"),
        ("MESH_CONTROL_PLANE", "http://127.0.0.1:15010"),
        ("MESH_TLS_CERT", "c.pem"),
        ("MESH_TLS_KEY", "k.pem"),
        ("MESH_TLS_CA", "ca.pem"),
        ("MESH_TLS_MODE", "permissive"),
        ("MESH_TRACE", "propagate"),
        ("MESH_LISTEN", "127.0.0.1:8080"),
        ("MESH_METRICS_ADDR", "[::1]:9090"),
        ("GRPC_XDS_BOOTSTRAP", "/b.json"),
        ("PATH", "/usr/bin"),
    ]))
    .unwrap();
    assert_eq!(env.service.as_deref(), Some("app-ui"));
    assert_eq!(
        env.config_path.as_deref(),
        Some(std::path::Path::new("/etc/mesh.yaml"))
    );
    let eps = &env.endpoints["news-service"];
    assert_eq!(eps.len(), 2);
    assert_eq!((eps[0].weight, eps[1].weight), (3, 1));
    assert_eq!(
        env.dns_server,
        Some("127.0.0.1:53".parse().unwrap()),
        "port defaults to 53"
    );
    assert_eq!(env.control_plane.as_deref(), Some("http://127.0.0.1:15010"));
    assert_eq!(env.tls_mode, Some(TlsMode::Permissive));
    assert_eq!(env.trace, Some(TraceMode::Propagate));
    assert_eq!(env.tls_ca.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(env.listen, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(env.metrics_addr, Some("[::1]:9090".parse().unwrap()));
    assert_eq!(
        env.xds_bootstrap.as_deref(),
        Some(std::path::Path::new("/b.json"))
    );
}

#[test]
fn service_falls_back_to_otel_and_empty_means_unset() {
    let env = MeshEnv::from_vars(vars(&[
        ("MESH_SERVICE", ""),
        ("OTEL_SERVICE_NAME", "news-service"),
    ]))
    .unwrap();
    assert_eq!(env.service.as_deref(), Some("news-service"));
    let env = MeshEnv::from_vars(vars(&[("MESH_DNS_SERVER", "10.0.0.2:5353")])).unwrap();
    assert_eq!(env.dns_server, Some("10.0.0.2:5353".parse().unwrap()));
    assert_eq!(MeshEnv::from_vars(Vec::new()).unwrap(), MeshEnv::default());
}

#[test]
fn every_bad_variable_is_named() {
    let e = MeshEnv::from_vars(vars(&[
        ("MESH_ENDPOINTS_NEWS", "news:80"),
        ("MESH_ENDPOINTS_", "127.0.0.1:1"),
        ("MESH_TLS_MODE", "loose"),
        ("MESH_LISTEN", "8080"),
        ("MESH_DNS_SERVER", "dns.google"),
        ("MESH_SERVICE", "Bad Name"),
        ("MESH_CONTROL_PLANE", "127.0.0.1:15010"),
        ("MESH_TRACE", "always"),
    ]))
    .unwrap_err();
    assert_eq!(e.origin, "environment");
    for (var, fragment) in [
        ("MESH_ENDPOINTS_NEWS", "dns: news:80"),
        ("MESH_ENDPOINTS_", "does not name a service"),
        (
            "MESH_TLS_MODE",
            "unknown TLS mode `loose`; one of strict, permissive, disabled",
        ),
        ("MESH_LISTEN", "not an ip:port"),
        ("MESH_DNS_SERVER", "not `ip` or `ip:port`"),
        ("MESH_SERVICE", "not a service name"),
        ("MESH_CONTROL_PLANE", "not a URL"),
        (
            "MESH_TRACE",
            "unknown trace mode `always`; one of originate, propagate, off",
        ),
    ] {
        let err = e
            .at(var)
            .unwrap_or_else(|| panic!("no error for {var}: {e}"));
        assert!(err.message.contains(fragment), "{var}: {err}");
        assert_eq!(err.kind, ConfigErrorKind::Environment);
    }
    assert_eq!(e.errors.len(), 8);
    assert!(
        e.to_string()
            .contains("environment: MESH_LISTEN: `8080` is not an ip:port"),
        "{e}"
    );
}

#[test]
fn overlay_fills_services_without_endpoints_and_adds_missing_ones() {
    let mut cfg = yaml(
        "services:\n  news-service:\n    timeout: 2s\n  app-ui:\n    dns: app.example.com:80\n  fixed:\n    endpoints: [{ address: 10.0.0.1:1 }]\n",
    )
    .unwrap();
    let env = MeshEnv::from_vars(vars(&[
        ("MESH_ENDPOINTS_NEWS_SERVICE", "127.0.0.1:8081=3"),
        ("MESH_ENDPOINTS_APP_UI", "127.0.0.1:9000"),
        ("MESH_ENDPOINTS_FIXED", "127.0.0.1:9001"),
        ("MESH_ENDPOINTS_NEW_ONE", "127.0.0.1:9002"),
    ]))
    .unwrap();
    cfg.apply_env(&env);
    let news = &cfg.services["news-service"];
    assert_eq!(
        news.endpoints,
        vec![Endpoint::new("127.0.0.1:8081".parse().unwrap()).with_weight(3)]
    );
    assert_eq!(
        news.timeout,
        Some(std::time::Duration::from_secs(2)),
        "policy kept"
    );
    assert!(
        cfg.services["app-ui"].endpoints.is_empty(),
        "dns in the file wins"
    );
    assert_eq!(
        cfg.services["fixed"].endpoints[0].address,
        "10.0.0.1:1".parse().unwrap(),
        "file wins"
    );
    let new = &cfg.services["new-one"];
    assert_eq!(new.endpoints.len(), 1);
    assert_eq!(new.retry, None, "default policy");
    assert!(cfg.validate().is_ok());
}

#[test]
fn raw_os_variables_never_panic_and_ours_must_be_utf8() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let bad = || OsString::from_vec(vec![0xff, 0xfe]);
    let ok = MeshEnv::from_vars_os(vec![
        (OsString::from("MESH_SERVICE"), OsString::from("app-ui")),
        (OsString::from("LANG"), bad()),
        (OsString::from_vec(vec![0xff]), OsString::from("x")),
    ])
    .unwrap();
    assert_eq!(ok.service.as_deref(), Some("app-ui"));

    let err = MeshEnv::from_vars_os(vec![
        (OsString::from("MESH_CONFIG"), bad()),
        (OsString::from("MESH_LISTEN"), OsString::from("nope")),
    ])
    .unwrap_err();
    assert_eq!(err.origin, "environment");
    assert!(err.has_path("MESH_CONFIG"), "{err}");
    assert!(err.has_path("MESH_LISTEN"), "both reported: {err}");
    assert!(
        err.to_string().contains("MESH_CONFIG: is not valid UTF-8"),
        "{err}"
    );
}
