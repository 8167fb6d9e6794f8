use std::collections::HashMap;
use std::time::Duration;

use http::{Request, Response};
use mesh_core::config::{
    HeaderMatch, HeaderValueMatch, PathMatch, RetryConfig, RouteConfig, RouteMatch, ServiceConfig,
};
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::error::{ErrorKind, kind};

type Seen = (Option<RouteInfo>, Option<Subset>);

/// Echoes what the router put in the extensions.
async fn echo_fn(req: Request<()>) -> Result<Response<Seen>, BoxError> {
    let route = req.extensions().get::<RouteInfo>().cloned();
    let subset = req.extensions().get::<Subset>().copied();
    Ok(Response::new((route, subset)))
}

fn echo() -> tower::util::ServiceFn<fn(Request<()>) -> EchoFuture> {
    service_fn(|req| Box::pin(echo_fn(req)) as EchoFuture)
}

type EchoFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Seen>, BoxError>> + Send>>;

fn split_config() -> ServiceConfig {
    let mut c = ServiceConfig {
        timeout: Some(Duration::from_secs(2)),
        ..ServiceConfig::default()
    };
    c.subsets
        .insert("v1".into(), [("version".into(), "v1".into())].into());
    c.subsets
        .insert("v2".into(), [("version".into(), "v2".into())].into());
    c.routes.push(RouteConfig {
        name: Some("canary".into()),
        matches: RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-canary".into(),
                value: HeaderValueMatch::Exact("true".into()),
            }],
            ..Default::default()
        },
        split: [("v2".to_string(), 100)].into(),
        timeout: Some(Duration::from_millis(300)),
        retry: Some(RetryConfig {
            attempts: 5,
            ..RetryConfig::default()
        }),
    });
    c.routes.push(RouteConfig {
        name: Some("api".into()),
        matches: RouteMatch {
            path: Some(PathMatch::Prefix("/api/".into())),
            ..Default::default()
        },
        split: [("v1".to_string(), 90), ("v2".to_string(), 10)].into(),
        ..Default::default()
    });
    c
}

#[tokio::test]
async fn default_route_carries_the_service_policy() {
    let config = ServiceConfig {
        timeout: Some(Duration::from_secs(3)),
        retry: Some(RetryConfig::default()),
        ..ServiceConfig::default()
    };
    let svc = RouterLayer::new(RouteTable::new("news", &config).unwrap()).layer(echo());
    let (route, subset) = svc.oneshot(Request::new(())).await.unwrap().into_body();
    let route = route.expect("RouteInfo set");
    assert_eq!(&*route.0.service, "news");
    assert_eq!(&*route.0.route, "default");
    assert_eq!(route.0.timeout, Some(Duration::from_secs(3)));
    assert!(route.0.retry.is_some());
    // No split: no extension (absent means all endpoints).
    assert_eq!(subset, None);
}

#[tokio::test]
async fn routes_match_in_order_and_split_by_weight() {
    let config = split_config();
    let table = RouteTable::new("news", &config).unwrap();
    let v1 = Some(0);
    let v2 = Some(1);
    let mut svc = RouterLayer::new(table).layer(echo());

    // Header route: all to v2, with the route's own timeout and retry.
    let req = Request::builder()
        .uri("/api/x")
        .header("x-canary", "true")
        .body(())
        .unwrap();
    let (route, subset) = svc
        .ready()
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap()
        .into_body();
    let route = route.unwrap();
    assert_eq!(&*route.0.route, "canary");
    assert_eq!(route.0.timeout, Some(Duration::from_millis(300)));
    assert_eq!(route.0.retry.as_ref().map(|p| p.attempts()), Some(5));
    assert_eq!(subset, Some(Subset(v2)));

    // Path route: 90/10, and the service's timeout.
    let mut counts: HashMap<Option<usize>, u32> = HashMap::new();
    for _ in 0..10_000 {
        let req = Request::builder().uri("/api/news").body(()).unwrap();
        let (route, subset) = svc
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap()
            .into_body();
        let route = route.unwrap();
        assert_eq!(&*route.0.route, "api");
        assert_eq!(route.0.timeout, Some(Duration::from_secs(2)));
        *counts.entry(subset.unwrap().0).or_default() += 1;
    }
    let share = f64::from(counts[&v1]) / 10_000.0;
    assert!((share - 0.9).abs() < 0.02, "v1 share {share}");
    assert_eq!(counts[&v1] + counts[&v2], 10_000);
}

#[tokio::test]
async fn no_matching_route_is_a_typed_error() {
    let svc = RouterLayer::new(RouteTable::new("news", &split_config()).unwrap()).layer(echo());
    let req = Request::builder()
        .method("POST")
        .uri("/other")
        .body(())
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert_eq!(kind(&*err), ErrorKind::NoRoute);
    let no = err.downcast_ref::<NoRoute>().unwrap();
    assert_eq!(
        (&*no.service, no.method.as_str(), no.path.as_str()),
        ("news", "POST", "/other")
    );
}

#[tokio::test]
async fn a_swapped_table_applies_to_the_next_request() {
    let shared = Arc::new(ArcSwap::from_pointee(
        RouteTable::new("news", &ServiceConfig::default()).unwrap(),
    ));
    let mut svc = RouterLayer::shared(shared.clone()).layer(echo());
    let req = || Request::builder().uri("/other").body(()).unwrap();
    assert!(svc.ready().await.unwrap().call(req()).await.is_ok());
    shared.store(Arc::new(RouteTable::new("news", &split_config()).unwrap()));
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(kind(&*err), ErrorKind::NoRoute);
}
