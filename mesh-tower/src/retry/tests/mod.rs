//! Tests of the retry layer: tower-test mocks, tokio's paused clock.
//!
//! Here: retries, attempts, tried endpoints, errors, routes, the budget and
//! methods; `timing`: timeouts, deadline, backoff and pushback; `bodies`:
//! buffering, replay and draining.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use mesh_core::config::{BackoffConfig, BudgetConfig, RetryConfig, RetryOn};
use mesh_core::retry::{Backoff, RetryBudget, RetryPolicy};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_test::mock;

use super::*;
use crate::error::{EndpointError, NoEndpoints};
use crate::ext::{Attempts, RoutePolicy, ServedBy, TriedEndpoints};
use crate::timeout::TimeoutLayer;

mod bodies;
mod timing;

type Handle = mock::Handle<Request<MeshBody>, Response<String>>;

fn policy(f: impl FnOnce(&mut RetryConfig)) -> RetryPolicy {
    let mut config = RetryConfig {
        on: vec![RetryOn::Server5xx],
        ..RetryConfig::default()
    };
    f(&mut config);
    RetryPolicy::new(&config)
}

fn status(code: u16) -> Response<String> {
    let mut resp = Response::new(String::from("nope"));
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap();
    resp
}

fn served(code: u16, ep: SocketAddr) -> Response<String> {
    let mut resp = status(code);
    resp.extensions_mut().insert(ServedBy(ep));
    resp
}

fn ep(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn get(body: MeshBody) -> Request<MeshBody> {
    Request::get("http://news-service/").body(body).unwrap()
}

fn budget(ratio: f64, min_per_second: u32) -> Arc<RetryBudget> {
    let config = BudgetConfig {
        ratio,
        min_per_second,
        window: Duration::from_secs(10),
    };
    Arc::new(RetryBudget::with_epoch(&config, Instant::now().into_std()).unwrap())
}

fn spawn(
    layer: RetryLayer,
    req: Request<MeshBody>,
) -> (
    tokio::task::JoinHandle<Result<Response<String>, BoxError>>,
    Handle,
) {
    let (svc, handle) = mock::pair::<Request<MeshBody>, Response<String>>();
    let svc = layer.layer(svc);
    (tokio::spawn(svc.oneshot(req)), handle)
}

async fn bytes(req: Request<MeshBody>) -> Bytes {
    req.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_replaying_the_body_and_recording_tried_endpoints() {
    let hooks = Arc::new(AtomicU32::new(0));
    let seen = hooks.clone();
    let layer = RetryLayer::new(Some(policy(|_| {})))
        .seed(1)
        .on_retry(Arc::new(move |req: &Request<MeshBody>| {
            assert!(req.extensions().get::<TriedEndpoints>().is_some());
            seen.fetch_add(1, Ordering::SeqCst);
        }));
    let (call, mut handle) = spawn(layer, get(MeshBody::full("hello")));

    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        req.extensions().get::<TriedEndpoints>(),
        None,
        "none before a retry"
    );
    assert!(req.body().is_buffered());
    assert_eq!(bytes(req).await, "hello");
    send.send_response(served(503, ep(1)));

    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        req.extensions().get::<TriedEndpoints>(),
        Some(&TriedEndpoints(vec![ep(1)]))
    );
    assert_eq!(bytes(req).await, "hello");
    send.send_response(served(502, ep(2)));

    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        req.extensions().get::<TriedEndpoints>(),
        Some(&TriedEndpoints(vec![ep(1), ep(2)]))
    );
    assert_eq!(bytes(req).await, "hello");
    send.send_response(served(200, ep(3)));

    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(3)));
    assert_eq!(resp.extensions().get::<ServedBy>(), Some(&ServedBy(ep(3))));
    assert_eq!(hooks.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn first_attempt_success_gets_attempts_1_and_no_tried_endpoints() {
    let (call, mut handle) = spawn(
        RetryLayer::new(Some(policy(|_| {}))),
        get(MeshBody::empty()),
    );
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.extensions().get::<TriedEndpoints>(), None);
    send.send_response(served(200, ep(1)));
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));
}

#[tokio::test(start_paused = true)]
async fn attempts_are_exhausted_and_the_last_response_returned() {
    let (call, mut handle) = spawn(
        RetryLayer::new(Some(policy(|_| {}))),
        get(MeshBody::empty()),
    );
    for _ in 0..3 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(status(503));
    }
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(3)));
}

#[tokio::test(start_paused = true)]
async fn endpoint_errors_are_retried_and_name_the_tried_endpoint() {
    let layer = RetryLayer::new(Some(policy(|c| c.on = vec![RetryOn::ConnectFailure])));
    let (call, mut handle) = spawn(layer, get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(EndpointError {
        endpoint: ep(7),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    });
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        req.extensions().get::<TriedEndpoints>(),
        Some(&TriedEndpoints(vec![ep(7)]))
    );
    send.send_response(status(200));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(2))
    );
}

#[tokio::test(start_paused = true)]
async fn errors_that_say_nothing_about_an_endpoint_are_not_retried() {
    let (call, mut handle) = spawn(
        RetryLayer::new(Some(policy(|_| {}))),
        get(MeshBody::empty()),
    );
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(NoEndpoints {
        service: "news".into(),
        reason: "none".into(),
    });
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<NoEndpoints>());
}

/// Sends `n` requests one after another to an upstream that always fails;
/// returns the retries made and how many requests were retried at all.
async fn all_failing(n: u32, budget: Option<Arc<RetryBudget>>) -> (u32, u32) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let upstream = tower::service_fn(move |_req: Request<MeshBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(status(503)) }
    });
    let mut layer = RetryLayer::new(Some(policy(|c| {
        c.backoff = BackoffConfig {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
    })));
    if let Some(budget) = budget {
        layer = layer.budget(budget);
    }
    let svc = layer.layer(upstream);
    let mut retried = 0;
    for _ in 0..n {
        let resp = svc.clone().oneshot(get(MeshBody::empty())).await.unwrap();
        if resp.extensions().get::<Attempts>() != Some(&Attempts(1)) {
            retried += 1;
        }
    }
    (calls.load(Ordering::SeqCst) - n, retried)
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_retries() {
    // 100 requests, all failing, 3 attempts each: 200 retries wanted.
    // Budget: 20% of 100 requests + 10/s over the 10s window = 120.
    let (retries, retried) = all_failing(100, Some(budget(0.2, 10))).await;
    assert!(retries <= 120, "{retries} retries");
    assert!(
        retries >= 100,
        "the budget allows most of its allowance: {retries}"
    );
    assert!(retried < 100, "some requests were not retried at all");
    // The layer's own default budget (same config) caps just the same.
    let (retries, _) = all_failing(100, None).await;
    assert!((100..=120).contains(&retries), "{retries} retries");
    // A generous budget lets every request use all its attempts.
    let (retries, retried) = all_failing(100, Some(budget(10.0, 0))).await;
    assert_eq!((retries, retried), (200, 100));
    // An empty budget allows none.
    let (retries, _) = all_failing(10, Some(budget(0.0, 0))).await;
    assert_eq!(retries, 0);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_methods_are_not_retried_unless_configured() {
    let post = || {
        Request::post("http://news-service/")
            .body(MeshBody::full("x"))
            .unwrap()
    };
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), post());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(503));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(1))
    );

    // A connect failure is safe to retry: nothing was sent.
    let layer = RetryLayer::new(Some(policy(|c| c.on.push(RetryOn::ConnectFailure))));
    let (call, mut handle) = spawn(layer, post());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    let layer = RetryLayer::new(Some(policy(|c| c.non_idempotent = true)));
    let (call, mut handle) = spawn(layer, post());
    for _ in 0..2 {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(bytes(req).await, "x");
        send.send_response(status(503));
    }
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(201));
    assert_eq!(call.await.unwrap().unwrap().status(), 201);
}

#[tokio::test(start_paused = true)]
async fn the_route_policy_overrides_the_default() {
    let route = |retry: Option<RetryPolicy>| {
        let mut req = get(MeshBody::empty());
        req.extensions_mut()
            .insert(crate::ext::RouteInfo(Arc::new(RoutePolicy {
                service: "news".into(),
                route: "default".into(),
                timeout: None,
                retry,
            })));
        req
    };
    // The route has no retry policy: one attempt, whatever the default.
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), route(None));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(503));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(1))
    );
    // The route retries although the layer has no default.
    let (call, mut handle) = spawn(
        RetryLayer::new(None),
        route(Some(policy(|c| c.attempts = 2))),
    );
    for _ in 0..2 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(status(503));
    }
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(2))
    );
}

#[test]
fn futures_are_send_for_send_inner_services() {
    fn send<T: Send>() {}
    type Inner = mock::Mock<Request<MeshBody>, Response<String>>;
    send::<ResponseFuture<Inner, String>>();
    send::<Retry<Inner>>();
    send::<crate::timeout::ResponseFuture<<Inner as tower::Service<Request<MeshBody>>>::Future>>();
    send::<crate::circuit::ResponseFuture<<Inner as tower::Service<Request<MeshBody>>>::Future>>();
}
