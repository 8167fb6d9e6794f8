use std::time::Duration;

use mesh_core::config::ServiceConfig;

use super::*;
use crate::update::Update;
use futures_util::StreamExt;

fn ep(s: &str) -> Endpoint {
    Endpoint::new(s.parse().unwrap())
}

fn config_with(name: &str, svc: ServiceConfig) -> MeshConfig {
    let mut c = MeshConfig::default();
    c.services.insert(name.to_string(), svc);
    c
}

fn env(name: &str, eps: Vec<Endpoint>) -> BTreeMap<String, Vec<Endpoint>> {
    BTreeMap::from([(name.to_string(), eps)])
}

#[test]
fn config_endpoints_beat_env_and_dns() {
    let svc = ServiceConfig {
        endpoints: vec![ep("127.0.0.1:1")],
        dns: Some(DnsTarget::Host {
            host: "x".into(),
            port: 1,
        }),
        ..ServiceConfig::default()
    };
    let r = Resolver::new(DnsConfig::default())
        .with_config(config_with("news", svc))
        .with_env_endpoints(env("NEWS", vec![ep("127.0.0.1:2")]));
    let plan = r.plan(&Target::parse("news").unwrap()).unwrap();
    assert_eq!(
        plan,
        Plan::Static {
            origin: Origin::Config,
            endpoints: vec![ep("127.0.0.1:1")]
        }
    );
}

#[test]
fn config_dns_beats_env() {
    let target = DnsTarget::Srv {
        name: "_http._tcp.news.example".into(),
    };
    let svc = ServiceConfig {
        dns: Some(target.clone()),
        ..ServiceConfig::default()
    };
    let plan = plan_service(
        Some(&config_with("news", svc)),
        &env("NEWS", vec![ep("127.0.0.1:2")]),
        "news",
    );
    assert_eq!(
        plan,
        Plan::Dns {
            origin: Origin::Config,
            target
        }
    );
}

#[test]
fn env_is_keyed_by_upper_snake_case() {
    assert_eq!(env_key("news-service"), "NEWS_SERVICE");
    let r = Resolver::new(DnsConfig::default())
        .with_env_endpoints(env("news-service", vec![ep("127.0.0.1:2")]));
    let plan = r.plan(&Target::parse("news-service").unwrap()).unwrap();
    assert_eq!(plan.origin(), Origin::Env);
    // A config entry without endpoints or dns falls through to env.
    let plan = plan_service(
        Some(&config_with("news-service", ServiceConfig::default())),
        &env("NEWS_SERVICE", vec![ep("127.0.0.1:2")]),
        "news-service",
    );
    assert_eq!(plan.origin(), Origin::Env);
}

#[test]
fn dns_of_the_name_uses_the_protocol_default_port() {
    let plan = plan_service(None, &BTreeMap::new(), "news.example");
    assert_eq!(
        plan,
        Plan::Dns {
            origin: Origin::NameDns,
            target: DnsTarget::Host {
                host: "news.example".into(),
                port: DEFAULT_HTTP_PORT
            }
        }
    );
    let svc = ServiceConfig {
        protocol: Protocol::Grpc,
        ..ServiceConfig::default()
    };
    let plan = plan_service(Some(&config_with("g", svc)), &BTreeMap::new(), "g");
    assert!(matches!(
        plan,
        Plan::Dns {
            target: DnsTarget::Host {
                port: DEFAULT_GRPC_PORT,
                ..
            },
            ..
        }
    ));
}

#[test]
fn xds_and_k8s_are_typed_unsupported() {
    let r = Resolver::new(DnsConfig::default());
    for t in ["xds:///news", "k8s:///news.default:80"] {
        let err = r.plan(&Target::parse(t).unwrap()).unwrap_err();
        assert!(
            matches!(err, DiscoveryError::Unsupported { .. }),
            "{t}: {err:?}"
        );
        assert!(err.to_string().contains("not built yet"), "{err}");
    }
}

#[tokio::test]
async fn static_uri_resolves_without_any_source() {
    let r = Resolver::new(DnsConfig::default());
    let res = r
        .resolve_once("static:///127.0.0.1:2=5,127.0.0.1:1")
        .await
        .unwrap();
    assert_eq!(res.plan.origin(), Origin::Uri);
    assert_eq!(
        res.endpoints,
        vec![ep("127.0.0.1:1"), ep("127.0.0.1:2").with_weight(5)]
    );
    assert!(matches!(
        r.resolve_once("bad target!").await,
        Err(DiscoveryError::Target(_))
    ));
}

async fn next(s: &mut UpdateStream) -> Update {
    tokio::time::timeout(Duration::from_secs(2), s.next())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_watch_follows_config_changes() {
    let svc = |addr: &str| ServiceConfig {
        endpoints: vec![ep(addr)],
        ..ServiceConfig::default()
    };
    let (tx, rx) = watch::channel(Arc::new(config_with("news", svc("127.0.0.1:1"))));
    let r = Resolver::new(DnsConfig::default())
        .with_config_updates(rx)
        .with_env_endpoints(env("NEWS", vec![ep("127.0.0.1:9")]));
    let mut s = r.watch("news").unwrap();
    assert_eq!(next(&mut s).await, Update::Reset(vec![ep("127.0.0.1:1")]));

    tx.send(Arc::new(config_with("news", svc("127.0.0.1:2"))))
        .unwrap();
    assert_eq!(next(&mut s).await, Update::Reset(vec![ep("127.0.0.1:2")]));

    // An unrelated change does not re-announce the same set.
    let mut c = config_with("news", svc("127.0.0.1:2"));
    c.services.insert("other".into(), svc("127.0.0.1:3"));
    tx.send(Arc::new(c)).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
    assert!(quiet.is_err(), "same plan, no update: {quiet:?}");
    // Removed from the config: falls back to MESH_ENDPOINTS_NEWS.
    tx.send(Arc::new(MeshConfig::default())).unwrap();
    assert_eq!(next(&mut s).await, Update::Reset(vec![ep("127.0.0.1:9")]));

    // The config source going away keeps the last plan.
    drop(tx);
    let quiet = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
    assert!(quiet.is_err());
}

fn mesh_env(vars: &[(&str, String)]) -> MeshEnv {
    MeshEnv::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.clone()))).unwrap()
}

#[tokio::test]
async fn from_env_reads_the_config_file_and_endpoint_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    std::fs::write(
        &path,
        "services:\n  news-service:\n    endpoints: [{ address: 127.0.0.1:1, weight: 3 }]\n",
    )
    .unwrap();
    let env = mesh_env(&[
        ("MESH_CONFIG", path.display().to_string()),
        ("MESH_ENDPOINTS_NEWS_SERVICE", "127.0.0.1:8".into()),
        ("MESH_ENDPOINTS_APP_UI", "127.0.0.1:9=2".into()),
    ]);
    let res = resolve_once("news-service", &env).await.unwrap();
    assert_eq!(res.plan.origin(), Origin::Config, "the file beats the env");
    assert_eq!(res.endpoints, vec![ep("127.0.0.1:1").with_weight(3)]);
    let res = resolve_once("app-ui", &env).await.unwrap();
    assert_eq!(res.plan.origin(), Origin::Env);
    assert_eq!(res.endpoints, vec![ep("127.0.0.1:9").with_weight(2)]);

    // An env watch follows file edits, and falls back to the env when the
    // file drops the service.
    let mut s = watch("news-service", &env).unwrap();
    assert_eq!(
        next(&mut s).await,
        Update::Reset(vec![ep("127.0.0.1:1").with_weight(3)])
    );
    std::fs::write(&path, "services: {}\n").unwrap();
    let u = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u, Update::Reset(vec![ep("127.0.0.1:8")]));
}

#[tokio::test]
async fn from_env_with_a_bad_config_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, "services:\n  news:\n    bogus_field: 1\n").unwrap();
    let env = mesh_env(&[("MESH_CONFIG", path.display().to_string())]);
    let err = Resolver::from_env(&env, DnsConfig::default()).unwrap_err();
    let DiscoveryError::File {
        source: crate::file::FileError::Invalid { source, .. },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(source.has_path("services.news.bogus_field"), "{source}");
}
