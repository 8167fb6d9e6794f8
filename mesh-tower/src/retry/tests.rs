//! Tests of the retry layer: tower-test mocks, tokio's paused clock.

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
    assert_eq!(req.extensions().get::<TriedEndpoints>(), None, "none before a retry");
    assert!(req.body().is_buffered());
    assert_eq!(bytes(req).await, "hello");
    send.send_response(served(503, ep(1)));

    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.extensions().get::<TriedEndpoints>(), Some(&TriedEndpoints(vec![ep(1)])));
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
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(MeshBody::empty()));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.extensions().get::<TriedEndpoints>(), None);
    send.send_response(served(200, ep(1)));
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));
}

#[tokio::test(start_paused = true)]
async fn attempts_are_exhausted_and_the_last_response_returned() {
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(MeshBody::empty()));
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
    assert_eq!(req.extensions().get::<TriedEndpoints>(), Some(&TriedEndpoints(vec![ep(7)])));
    send.send_response(status(200));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(2))
    );
}

#[tokio::test(start_paused = true)]
async fn errors_that_say_nothing_about_an_endpoint_are_not_retried() {
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(NoEndpoints {
        service: "news".into(),
        reason: "none".into(),
    });
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<NoEndpoints>());
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_is_retried_under_reset_5xx_and_gateway_error_only() {
    for (on, retried) in [
        (RetryOn::Reset, true),
        (RetryOn::Server5xx, true),
        (RetryOn::GatewayError, true),
        (RetryOn::ConnectFailure, false),
        (RetryOn::Unavailable, false),
    ] {
        let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<String>>();
        let svc = tower::ServiceBuilder::new()
            .layer(RetryLayer::new(Some(policy(|c| c.on = vec![on.clone()]))))
            .layer(TimeoutLayer::per_try(Some(Duration::from_millis(100))))
            .service(svc);
        let start = Instant::now();
        let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
        let (_, hung) = handle.next_request().await.unwrap();
        if retried {
            let (_, send) = handle.next_request().await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(100), "{on:?}");
            send.send_response(status(200));
            let resp = call.await.unwrap().unwrap();
            assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(2)), "{on:?}");
        } else {
            let err = call.await.unwrap().unwrap_err();
            let elapsed = err.downcast_ref::<crate::error::Elapsed>().unwrap();
            assert_eq!(elapsed.kind, crate::error::TimeoutKind::PerTry, "{on:?}");
            assert_eq!(start.elapsed(), Duration::from_millis(100), "{on:?}");
        }
        drop(hung);
    }
}

#[tokio::test(start_paused = true)]
async fn per_try_never_outlasts_the_deadline_and_the_call_timeout_holds() {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<String>>();
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_millis(1000))))
        .layer(RetryLayer::new(Some(policy(|c| {
            c.on = vec![RetryOn::Reset];
            c.attempts = 5;
        }))))
        .layer(TimeoutLayer::per_try(Some(Duration::from_millis(800))))
        .service(svc);
    let start = Instant::now();
    let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
    let mut sent = Vec::new();
    let mut hung = Vec::new();
    let collector = tokio::spawn(async move {
        while let Some((_, send)) = handle.next_request().await {
            sent.push(start.elapsed());
            hung.push(send);
        }
        sent
    });
    let err = call.await.unwrap().unwrap_err();
    // The second attempt's timer was clamped to the ~175ms left: the call
    // ends at its deadline, not at 800ms + backoff + 800ms.
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
    let elapsed = err.downcast_ref::<crate::error::Elapsed>().unwrap();
    assert_eq!(elapsed.kind, crate::error::TimeoutKind::Call);
    let sent = collector.await.unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|t| *t < Duration::from_millis(1000)));
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_sent_after_the_deadline_even_with_many_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let start = Instant::now();
    let last = Arc::new(parking_lot::Mutex::new(Duration::ZERO));
    let last_seen = last.clone();
    let upstream = tower::service_fn(move |_req: Request<MeshBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        *last_seen.lock() = start.elapsed();
        async { Ok::<_, BoxError>(status(503)) }
    });
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_millis(500))))
        .layer(
            RetryLayer::new(Some(policy(|c| {
                c.attempts = 10;
                c.backoff = BackoffConfig {
                    base: Duration::from_millis(100),
                    max: Duration::from_secs(1),
                };
            })))
            .seed(3)
            .budget(budget(10.0, 100)),
        )
        .service(upstream);
    let result = svc.oneshot(get(MeshBody::empty())).await;
    assert!(start.elapsed() <= Duration::from_millis(500));
    assert!(*last.lock() < Duration::from_millis(500));
    let n = calls.load(Ordering::SeqCst);
    assert!((2..10).contains(&n), "{n} attempts");
    // Either the last 503 (the next backoff would not fit) or the call timeout.
    if let Ok(resp) = result {
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(n)));
    }
}

/// The gaps between the attempts of one call that always fails.
async fn gaps(seed: u64, attempts: u32, backoff: BackoffConfig) -> Vec<Duration> {
    let times = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = times.clone();
    let upstream = tower::service_fn(move |_req: Request<MeshBody>| {
        seen.lock().push(Instant::now());
        async { Ok::<_, BoxError>(status(503)) }
    });
    let svc = RetryLayer::new(Some(policy(|c| {
        c.attempts = attempts;
        c.backoff = backoff;
    })))
    .seed(seed)
    .budget(budget(1000.0, 1000))
    .layer(upstream);
    svc.oneshot(get(MeshBody::empty())).await.unwrap();
    let times = times.lock();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_and_is_jittered_within_bounds() {
    let config = BackoffConfig {
        base: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };
    let ceiling = Backoff::new(&config);
    let mut sums = vec![Duration::ZERO; 5];
    let runs = 40;
    for seed in 0..runs {
        let gaps = gaps(seed, 6, config).await;
        assert_eq!(gaps.len(), 5);
        for (n, gap) in gaps.iter().enumerate() {
            assert!(*gap <= ceiling.ceiling(n as u32 + 1), "retry {}: {gap:?}", n + 1);
            sums[n] += *gap;
        }
    }
    // Full jitter: each retry's mean delay is about half its ceiling
    // (50, 100, 200, 400, 500 ms), so the delays grow, and they differ.
    for (n, sum) in sums.iter().enumerate() {
        let mean = *sum / runs as u32;
        let half = ceiling.ceiling(n as u32 + 1) / 2;
        assert!(
            mean > half.mul_f64(0.7) && mean < half.mul_f64(1.3),
            "retry {}: mean {mean:?}, half ceiling {half:?}",
            n + 1
        );
    }
    assert!(sums[3] > sums[1] && sums[1] > sums[0]);
    // Seeded: the same seed gives the same delays, another seed others.
    assert_eq!(gaps(7, 6, config).await, gaps(7, 6, config).await);
    assert_ne!(gaps(7, 6, config).await, gaps(8, 6, config).await);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_a_too_long_one_stops() {
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let start = Instant::now();
    let mut resp = status(503);
    resp.headers_mut().insert("retry-after", "2".parse().unwrap());
    send.send_response(resp);
    let (_, send) = handle.next_request().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2), "instead of the <=25ms backoff");
    send.send_response(status(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // Longer than max_pushback: the 503 goes back to the caller at once.
    let layer = RetryLayer::new(Some(policy(|_| {}))).max_pushback(Duration::from_secs(5));
    let (call, mut handle) = spawn(layer, get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = status(503);
    resp.headers_mut().insert("retry-after", "60".parse().unwrap());
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));

    // Longer than what is left of the deadline: same.
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<String>>();
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_secs(1))))
        .layer(RetryLayer::new(Some(policy(|_| {}))))
        .service(svc);
    let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = status(503);
    resp.headers_mut().insert("retry-after", "2".parse().unwrap());
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_sets_the_delay_or_stops() {
    let layer = RetryLayer::new(Some(policy(|c| c.on = vec![RetryOn::Unavailable])));
    let (call, mut handle) = spawn(layer.clone(), get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let start = Instant::now();
    let mut resp = status(200);
    resp.headers_mut().insert("grpc-status", "14".parse().unwrap());
    resp.headers_mut().insert("grpc-retry-pushback-ms", "300".parse().unwrap());
    send.send_response(resp);
    let (_, send) = handle.next_request().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    send.send_response(status(200));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(2))
    );

    let (call, mut handle) = spawn(layer, get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = status(200);
    resp.headers_mut().insert("grpc-status", "14".parse().unwrap());
    resp.headers_mut().insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));
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
    assert!(retries >= 100, "the budget allows most of its allowance: {retries}");
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
    let post = || Request::post("http://news-service/").body(MeshBody::full("x")).unwrap();
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
async fn a_streaming_body_larger_than_max_buffer_is_sent_once() {
    let big = vec![b'a'; 100];
    let body = MeshBody::streaming(http_body_util::Full::new(Bytes::from(big.clone())));
    let layer = RetryLayer::new(Some(policy(|_| {}))).max_buffer(64);
    let (call, mut handle) = spawn(layer, get(body));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(!req.body().is_buffered());
    assert_eq!(bytes(req).await, big);
    send.send_response(status(503));
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));

    // Unknown size: sent once too.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let stream = http_body_util::StreamBody::new(tokio_stream_shim(rx));
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(MeshBody::streaming(stream)));
    drop(tx);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(503));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(1))
    );
}

/// A `Stream` over an mpsc receiver (no tokio-stream dependency).
fn tokio_stream_shim<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(start_paused = true)]
async fn a_small_streaming_body_is_buffered_and_replayed_identically() {
    let data = Bytes::from_static(b"0123456789");
    let body = MeshBody::streaming(http_body_util::Full::new(data.clone()));
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(body));
    for code in [503, 500, 200] {
        let (req, send) = handle.next_request().await.unwrap();
        assert!(req.body().is_buffered());
        assert_eq!(req.body().size_hint().exact(), Some(10));
        assert_eq!(bytes(req).await, data);
        send.send_response(status(code));
    }
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(3))
    );
}

#[tokio::test(start_paused = true)]
async fn the_route_policy_overrides_the_default() {
    let route = |retry: Option<RetryPolicy>| {
        let mut req = get(MeshBody::empty());
        req.extensions_mut().insert(crate::ext::RouteInfo(Arc::new(RoutePolicy {
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
    let (call, mut handle) = spawn(RetryLayer::new(None), route(Some(policy(|c| c.attempts = 2))));
    for _ in 0..2 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(status(503));
    }
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(2))
    );
}

/// A response body that records whether it was read to its end or dropped.
struct Tracked {
    data: Option<Bytes>,
    finished: Arc<AtomicBool>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.data.take() {
            Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
            None => {
                self.finished.store(true, Ordering::SeqCst);
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_retried_response_body_is_drained() {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<Tracked>>();
    let svc = RetryLayer::new(Some(policy(|_| {}))).layer(svc);
    let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
    let finished = Arc::new(AtomicBool::new(false));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = Response::new(Tracked {
        data: Some(Bytes::from_static(b"overloaded")),
        finished: finished.clone(),
    });
    *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    send.send_response(resp);
    let (_, send) = handle.next_request().await.unwrap();
    assert!(finished.load(Ordering::SeqCst), "read to its end before the retry");
    send.send_response(Response::new(Tracked {
        data: None,
        finished: Arc::new(AtomicBool::new(false)),
    }));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}
