//! Tests of the timeouts: tower-test mocks, tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use mesh_core::config::RetryConfig;
use mesh_core::retry::RetryPolicy;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_test::mock;

use super::*;
use crate::error::Elapsed;
use crate::ext::RoutePolicy;

fn req() -> Request<MeshBody> {
    Request::new(MeshBody::empty())
}

fn routed(timeout: Option<Duration>, per_try: Option<Duration>) -> Request<MeshBody> {
    let mut req = req();
    let retry = RetryPolicy::new(&RetryConfig {
        per_try_timeout: per_try,
        ..RetryConfig::default()
    });
    req.extensions_mut().insert(RouteInfo(Arc::new(RoutePolicy {
        service: "news".into(),
        route: "default".into(),
        timeout,
        retry: Some(retry),
    })));
    req
}

/// Runs `req` through `layer` over a mock that never answers; returns the
/// error, how long it took, and the request the mock saw.
async fn hang(
    layer: TimeoutLayer,
    req: Request<MeshBody>,
) -> (Elapsed, Duration, Request<MeshBody>) {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<()>>();
    let start = Instant::now();
    let call = tokio::spawn(layer.layer(svc).oneshot(req));
    let (seen, _hung) = handle.next_request().await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    let elapsed = err.downcast::<Elapsed>().map(|e| *e).unwrap();
    (elapsed, start.elapsed(), seen)
}

#[tokio::test(start_paused = true)]
async fn call_timeout_fires_and_sets_the_deadline() {
    let start = Instant::now();
    let (elapsed, took, seen) = hang(TimeoutLayer::call(Some(Duration::from_secs(2))), req()).await;
    assert_eq!(elapsed.kind, TimeoutKind::Call);
    assert_eq!(elapsed.after, Duration::from_secs(2));
    assert_eq!(took, Duration::from_secs(2));
    assert_eq!(
        seen.extensions().get::<Deadline>(),
        Some(&Deadline(start + Duration::from_secs(2)))
    );
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_is_kept() {
    let start = Instant::now();
    let mut r = req();
    r.extensions_mut()
        .insert(Deadline(start + Duration::from_millis(300)));
    let (elapsed, took, seen) = hang(TimeoutLayer::call(Some(Duration::from_secs(2))), r).await;
    assert_eq!(took, Duration::from_millis(300));
    assert_eq!(elapsed.after, Duration::from_millis(300));
    assert_eq!(
        seen.extensions().get::<Deadline>(),
        Some(&Deadline(start + Duration::from_millis(300)))
    );
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_overrides_the_default() {
    let layer = TimeoutLayer::call(Some(Duration::from_secs(2)));
    let (_, took, _) = hang(layer, routed(Some(Duration::from_millis(200)), None)).await;
    assert_eq!(took, Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn no_timeout_means_no_timer() {
    for (layer, r) in [
        (TimeoutLayer::call(None), req()),
        // A route without a timeout: the layer's default does not apply.
        (
            TimeoutLayer::call(Some(Duration::from_millis(1))),
            routed(None, None),
        ),
        (TimeoutLayer::per_try(None), req()),
    ] {
        let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<()>>();
        let call = tokio::spawn(layer.layer(svc).oneshot(r));
        let (seen, send) = handle.next_request().await.unwrap();
        assert_eq!(seen.extensions().get::<Deadline>(), None);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        send.send_response(Response::new(()));
        assert!(call.await.unwrap().is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_fires() {
    let (elapsed, took, seen) = hang(
        TimeoutLayer::per_try(Some(Duration::from_millis(500))),
        req(),
    )
    .await;
    assert_eq!(elapsed.kind, TimeoutKind::PerTry);
    assert_eq!(elapsed.after, Duration::from_millis(500));
    assert_eq!(took, Duration::from_millis(500));
    assert_eq!(
        seen.extensions().get::<Deadline>(),
        None,
        "per-try sets no deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn per_try_comes_from_the_route_retry_policy() {
    let layer = TimeoutLayer::per_try(Some(Duration::from_secs(5)));
    let (_, took, _) = hang(layer, routed(None, Some(Duration::from_millis(150)))).await;
    assert_eq!(took, Duration::from_millis(150));
}

#[tokio::test(start_paused = true)]
async fn per_try_never_exceeds_the_remaining_deadline() {
    let mut r = req();
    r.extensions_mut()
        .insert(Deadline(Instant::now() + Duration::from_millis(300)));
    let (elapsed, took, _) = hang(TimeoutLayer::per_try(Some(Duration::from_secs(1))), r).await;
    assert_eq!(elapsed.kind, TimeoutKind::PerTry);
    assert_eq!(elapsed.after, Duration::from_millis(300));
    assert_eq!(took, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn an_inner_failure_after_the_deadline_is_reported_as_the_call_timeout() {
    // Call 1s over a per-try of 5s clamped to the deadline: both timers fire
    // at 1s, the caller sees the call's timeout.
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_secs(1))))
        .layer(TimeoutLayer::per_try(Some(Duration::from_secs(5))));
    let (inner, mut handle) = mock::pair::<Request<MeshBody>, Response<()>>();
    let call = tokio::spawn(svc.service(inner).oneshot(req()));
    let (_, _hung) = handle.next_request().await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.kind, TimeoutKind::Call);
    assert_eq!(elapsed.after, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn responses_and_errors_in_time_pass_through() {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<()>>();
    let svc = TimeoutLayer::call(Some(Duration::from_secs(1))).layer(svc);
    let call = tokio::spawn(svc.clone().oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    assert!(call.await.unwrap().is_ok());
    let call = tokio::spawn(svc.oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("boom"));
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "boom");
}

#[tokio::test(start_paused = true)]
async fn a_fired_per_try_timer_names_the_endpoint_the_balancer_picked() {
    // The balancer reports its pick to the attempt's scope during `call`
    // (fast path) or fills a cell it asked the scope for (slow path); the
    // attempt is then dropped by the timer, so only the scope can say where
    // it went.
    let endpoint: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    for slow in [false, true] {
        let svc = tower::service_fn(move |_req: Request<MeshBody>| {
            let later = if slow {
                attempt::cell()
            } else {
                attempt::picked(endpoint);
                None
            };
            async move {
                if let Some(cell) = later {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    cell.set(endpoint);
                }
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(Response::new(()))
            }
        });
        let layer = TimeoutLayer::per_try(Some(Duration::from_millis(100)));
        let err = layer.layer(svc).oneshot(req()).await.unwrap_err();
        let named = err.downcast_ref::<crate::error::EndpointError>().unwrap();
        assert_eq!(named.endpoint, endpoint, "slow path: {slow}");
        let elapsed = named.source.downcast_ref::<Elapsed>().unwrap();
        assert_eq!(elapsed.kind, TimeoutKind::PerTry);
        assert_eq!(crate::error::kind(&*err), crate::error::ErrorKind::Timeout);
    }

    // Nothing picked (e.g. still waiting for endpoints): a bare Elapsed.
    let (elapsed, _, _) = hang(
        TimeoutLayer::per_try(Some(Duration::from_millis(100))),
        req(),
    )
    .await;
    assert_eq!(elapsed.kind, TimeoutKind::PerTry);
}

#[test]
fn cover_scopes_nest_and_restore() {
    let t0 = Instant::now();
    let (a, b) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
    let ((), outer) = cover::scoped(|| {
        cover::report(b);
        let ((), inner) = cover::scoped(|| cover::report(a));
        assert_eq!(inner, Some(a));
        let ((), empty) = cover::scoped(|| ());
        assert_eq!(empty, None);
    });
    // The inner scopes' reports do not leak out; the outer one's stays.
    assert_eq!(outer, Some(b));
}

/// An upstream that waits on a covering timer (reported, as the per-try
/// timeout and the retry backoff do) for `covered`, then hangs with no
/// timer at all: the call timeout must arm its own for the gap.
#[tokio::test(start_paused = true)]
async fn the_call_timer_is_armed_once_no_inner_timer_covers_the_deadline() {
    let covered = Duration::from_millis(100);
    let svc = tower::service_fn(move |_req: Request<MeshBody>| async move {
        let sleep = tokio::time::sleep(covered);
        tokio::pin!(sleep);
        std::future::poll_fn(|cx| {
            let poll = std::future::Future::poll(sleep.as_mut(), cx);
            if poll.is_pending() {
                cover::report(sleep.deadline());
            }
            poll
        })
        .await;
        std::future::pending::<()>().await;
        Ok::<_, BoxError>(Response::new(()))
    });
    let start = Instant::now();
    let err = TimeoutLayer::call(Some(Duration::from_secs(1)))
        .layer(svc)
        .oneshot(req())
        .await
        .unwrap_err();
    let elapsed = err.downcast::<Elapsed>().map(|e| *e).unwrap();
    assert_eq!(elapsed.kind, TimeoutKind::Call);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

/// A per-try timer clamped to the deadline covers it: the call ends at
/// the deadline, reported as the call's timeout.
#[tokio::test(start_paused = true)]
async fn a_per_try_timer_at_the_deadline_ends_the_call_in_time() {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<()>>();
    let svc = TimeoutLayer::call(None).layer(TimeoutLayer::per_try(None).layer(svc));
    let start = Instant::now();
    let call = tokio::spawn(svc.oneshot(routed(
        Some(Duration::from_millis(300)),
        Some(Duration::from_secs(5)),
    )));
    let (_seen, _hung) = handle.next_request().await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    let elapsed = err.downcast::<Elapsed>().map(|e| *e).unwrap();
    assert_eq!(elapsed.kind, TimeoutKind::Call);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}
