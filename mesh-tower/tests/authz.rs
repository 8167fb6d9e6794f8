//! The authorization layer on a real axum server, with the seed example's
//! intentions (examples/mesh.yaml): `app-ui` may call news-service,
//! `prometheus` may only `GET /metrics`, everything else to news-service is
//! denied. Identities come from a test layer standing in for mTLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authz_common;

use std::sync::Arc;
use std::time::Duration;

use authz_common::{call, counter, id, seed_config, seed_path, serve};
use http::StatusCode;
use mesh_core::config::{Action, Intention, IntentionRule};
use mesh_tower::Mesh;
use mesh_tower::authz::{AuthzError, AuthzLayer, AuthzMetrics};
use mesh_tower::metrics::SCOPE;
use mesh_tower::metrics::prometheus::{Exposition, pipeline};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;

const ALLOWED: &str = "mesh_authz_allowed_total";
const DENIED: &str = "mesh_authz_denied_total";

fn telemetry() -> (SdkMeterProvider, Exposition) {
    pipeline(Some("news-service")).unwrap()
}

fn scrape(e: &Exposition) -> String {
    e.render().unwrap()
}

#[tokio::test]
async fn seed_example_on_news_service() {
    let (provider, exposition) = telemetry();
    let mesh = Mesh::builder()
        .config_file(seed_path())
        .local_service("news-service")
        .meter(&provider.meter(SCOPE))
        .build()
        .unwrap();
    let server = serve(mesh.authz_layer().unwrap()).await;
    let (ui, prom, web) = (id("app-ui"), id("prometheus"), id("web"));

    // app-ui may call news-service, any path and method.
    assert_eq!(
        call(&server, Some(&ui), "GET", "/news").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&server, Some(&ui), "POST", "/news").await.0,
        StatusCode::OK
    );
    // prometheus may GET /metrics ...
    let (status, _, body) = call(&server, Some(&prom), "GET", "/metrics").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(server.handled(), 3);
    // ... and nothing else: another path, another method.
    let (status, headers, body) = call(&server, Some(&prom), "GET", "/news").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "forbidden\n", "a generic body, no policy detail");
    assert!(headers.get("grpc-status").is_none());
    assert_eq!(
        call(&server, Some(&prom), "POST", "/metrics").await.0,
        StatusCode::FORBIDDEN
    );
    // Everything else to news-service: denied (by `* -> news-service`),
    // including an anonymous caller and app-ui of a foreign trust domain.
    assert_eq!(
        call(&server, Some(&web), "GET", "/news").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&server, None, "GET", "/news").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&server, Some("none"), "GET", "/news").await.0,
        StatusCode::FORBIDDEN
    );
    let foreign = "spiffe://other.example/ns/default/svc/app-ui";
    assert_eq!(
        call(&server, Some(foreign), "GET", "/news").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.handled(),
        3,
        "denied requests never reach the handler"
    );

    let text = scrape(&exposition);
    let n = |name, source: &str, rule| {
        counter(
            &text,
            name,
            &[
                ("mesh_service", "news-service"),
                ("mesh_source", source),
                ("mesh_authz_rule", rule),
            ],
        )
    };
    assert_eq!(n(ALLOWED, &ui, "app-ui -> news-service"), 2.0, "{text}");
    assert_eq!(
        n(ALLOWED, &prom, "prometheus -> news-service permission 0"),
        1.0,
        "{text}"
    );
    assert_eq!(
        n(DENIED, &prom, "prometheus -> news-service permission 1"),
        2.0,
        "{text}"
    );
    assert_eq!(n(DENIED, &web, "* -> news-service"), 1.0, "{text}");
    assert_eq!(
        n(DENIED, "", "* -> news-service"),
        2.0,
        "anonymous callers: {text}"
    );
    assert_eq!(n(DENIED, foreign, "* -> news-service"), 1.0, "{text}");
    assert_eq!(counter(&text, ALLOWED, &[]), 3.0, "{text}");
    assert_eq!(counter(&text, DENIED, &[]), 6.0, "{text}");
}

#[tokio::test]
async fn no_intention_gets_the_default_policy() {
    let (provider, exposition) = telemetry();
    let metrics = AuthzMetrics::new(&provider.meter(SCOPE));
    // profile-service: only `prometheus -> *` names it.
    let allow = seed_config();
    let server =
        serve(AuthzLayer::from_config("profile-service", &allow, metrics.clone()).unwrap()).await;
    let web = id("web");
    assert_eq!(
        call(&server, Some(&web), "GET", "/p").await.0,
        StatusCode::OK
    );
    assert_eq!(call(&server, None, "DELETE", "/p").await.0, StatusCode::OK);
    // prometheus -> *: /admin denied by its permission 1, anything else
    // matches no permission: the default policy.
    assert_eq!(
        call(&server, Some(&id("prometheus")), "GET", "/admin/x")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&server, Some(&id("prometheus")), "GET", "/other")
            .await
            .0,
        StatusCode::OK
    );

    let mut deny = seed_config();
    deny.default_policy = Action::Deny;
    let strict = serve(AuthzLayer::from_config("profile-service", &deny, metrics).unwrap()).await;
    assert_eq!(
        call(&strict, Some(&web), "GET", "/p").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&strict, None, "GET", "/p").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&strict, Some(&id("prometheus")), "GET", "/other")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&strict, Some(&id("prometheus")), "GET", "/metrics")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(strict.handled(), 1);

    let text = scrape(&exposition);
    let svc = ("mesh_service", "profile-service");
    assert_eq!(
        counter(
            &text,
            ALLOWED,
            &[svc, ("mesh_source", &web), ("mesh_authz_rule", "default")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        counter(
            &text,
            DENIED,
            &[svc, ("mesh_source", &web), ("mesh_authz_rule", "default")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        counter(
            &text,
            ALLOWED,
            &[svc, ("mesh_source", ""), ("mesh_authz_rule", "default")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        counter(
            &text,
            DENIED,
            &[svc, ("mesh_authz_rule", "prometheus -> * no permission")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        counter(
            &text,
            DENIED,
            &[svc, ("mesh_authz_rule", "prometheus -> * permission 1")]
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn grpc_callers_get_permission_denied_trailers_only() {
    let layer =
        AuthzLayer::from_config("news-service", &seed_config(), AuthzMetrics::global()).unwrap();
    let server = serve(layer).await;
    let req = http::Request::post(format!(
        "http://{}/helloworld.Greeter/SayHello",
        server.addr
    ))
    .header("content-type", "application/grpc+proto")
    .header(authz_common::PEER_HEADER, id("web"))
    .body(http_body_util::Empty::new())
    .unwrap();
    let res = authz_common::client().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "7");
    assert_eq!(res.headers()["grpc-message"], "permission%20denied");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    assert!(body.to_bytes().is_empty());
    assert_eq!(server.handled(), 0);
}

#[tokio::test]
async fn intentions_follow_config_changes_live() {
    let seed = seed_config();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(seed.clone()));
    let mesh = Mesh::builder()
        .config_updates(rx)
        .local_service("news-service")
        .build()
        .unwrap();
    let server = serve(mesh.authz_layer().unwrap()).await;
    let web = id("web");
    assert_eq!(
        call(&server, Some(&web), "GET", "/news").await.0,
        StatusCode::FORBIDDEN
    );

    // web -> news-service: allow, more specific than `* -> news-service`.
    let mut next = seed.clone();
    next.intentions.push(Intention {
        source: "web".into(),
        destination: "news-service".into(),
        rule: IntentionRule::Action(Action::Allow),
    });
    tx.send(Arc::new(next.clone())).unwrap();
    assert!(
        eventually(&server, &web, StatusCode::OK).await,
        "the new intention never applied"
    );

    // A config whose intentions do not compile keeps the previous policy.
    let mut bad = next.clone();
    bad.intentions.push(Intention {
        source: "a/b/c".into(),
        destination: "news-service".into(),
        rule: IntentionRule::Action(Action::Deny),
    });
    bad.intentions.retain(|i| i.source != "web");
    tx.send(Arc::new(bad)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        call(&server, Some(&web), "GET", "/news").await.0,
        StatusCode::OK
    );

    // And a good one after it applies again.
    tx.send(Arc::new(seed)).unwrap();
    assert!(
        eventually(&server, &web, StatusCode::FORBIDDEN).await,
        "the reverted config never applied"
    );
}

/// Polls until `peer` gets `want` (bounded: 100 tries, 20 ms apart).
async fn eventually(server: &authz_common::Server, peer: &str, want: StatusCode) -> bool {
    for _ in 0..100 {
        if call(server, Some(peer), "GET", "/news").await.0 == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn authz_needs_the_local_service() {
    let mesh = Mesh::builder().build().unwrap();
    let err = mesh.authz_layer().unwrap_err();
    assert!(matches!(err, AuthzError::NoLocalService));
    assert!(err.to_string().contains("MESH_SERVICE"));

    let mut bad = seed_config();
    bad.intentions[0].source = "a/b/c".into();
    let err = AuthzLayer::from_config("news-service", &bad, AuthzMetrics::global()).unwrap_err();
    assert!(err.to_string().contains("intentions[0].source"), "{err}");
}

#[tokio::test]
async fn namespaced_intentions_from_a_config_file_decide_by_namespace() {
    let (provider, _exposition) = telemetry();
    let metrics = AuthzMetrics::new(&provider.meter(SCOPE));
    let yaml = "default_policy: deny\nintentions:\n  - { source: \"prod/*\", destination: news-service, action: allow }\n  - { source: prod/batch, destination: news-service, action: deny }\n  - { source: staging/web, destination: \"default/*\", action: allow }\n";
    let config =
        mesh_core::config::parse_str(yaml, mesh_core::config::Format::Yaml, "ns.yaml").unwrap();
    let server = serve(AuthzLayer::from_config("news-service", &config, metrics).unwrap()).await;
    let in_ns = |ns: &str, name: &str| {
        mesh_core::identity::SpiffeId::for_service("mesh.local", ns, name)
            .unwrap()
            .to_string()
    };
    let status = |peer: String| {
        let server = &server;
        async move { call(server, Some(&peer), "GET", "/n").await.0 }
    };
    // prod/* -> news-service (precedence 8).
    assert_eq!(status(in_ns("prod", "web")).await, StatusCode::OK);
    // prod/batch -> news-service (9) beats prod/* (8).
    assert_eq!(status(in_ns("prod", "batch")).await, StatusCode::FORBIDDEN);
    // staging/web -> default/* (6).
    assert_eq!(status(in_ns("staging", "web")).await, StatusCode::OK);
    // Same name, other namespace: no intention, default deny.
    assert_eq!(
        status(in_ns("staging", "batch")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status(id("web")).await, StatusCode::FORBIDDEN);
}
