//! Tests of the fused path on tokio's paused clock, over an in-memory
//! upstream that answers by endpoint (the real-server tests of
//! `MeshClient` cover the rest).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use mesh_core::config::{Format, parse_str};
use tokio::time::Instant;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use super::*;
use crate::error::{Elapsed, EndpointError, NoRoute};
use crate::ext::{Attempts, ServedBy};
use crate::metrics::Metrics;

/// How the in-memory endpoint on port `n` answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Hang,
    Status(u16),
}

/// A fused client for `service` (a YAML service body) whose endpoints
/// behave by port (`behave(port)`); counts the calls it gets.
type Upstream = BoxCloneSyncService<Request<MeshBody>, Response<MeshBody>, BoxError>;

/// The parts of one service both paths are built from.
struct Parts {
    pool: EndpointPool,
    routes: RouterLayer,
    metrics: MetricsLayer,
    upstream: Upstream,
    calls: Arc<AtomicU32>,
}

fn client(service: &str, behave: fn(u16) -> Behaviour) -> (FusedClient<Upstream>, Arc<AtomicU32>) {
    let p = parts(service, behave);
    let (upstream, calls) = (p.upstream.clone(), p.calls.clone());
    (p.over(upstream), calls)
}

impl Parts {
    /// The fused client of these parts over `upstream`.
    fn over(self, upstream: Upstream) -> FusedClient<Upstream> {
        FusedClient::new(
            upstream,
            self.metrics,
            self.routes,
            RetryLayer::new(None).seed(7),
            self.pool,
        )
    }
}

fn parts(service: &str, behave: fn(u16) -> Behaviour) -> Parts {
    let yaml = format!("services:\n  news:\n{service}");
    let config = parse_str(&yaml, Format::Yaml, "test").unwrap();
    let config = config.services.get("news").unwrap().clone();
    let pool = EndpointPool::builder("news", &config).build().unwrap();
    pool.apply(mesh_discovery::Update::Reset(config.endpoints.to_vec()));
    let routes = RouterLayer::new(RouteTable::new("news", &config).unwrap());
    let metrics = Metrics::global();
    let labels = metrics.service("news");
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let upstream = tower::service_fn(move |req: Request<MeshBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let behaviour = behave(req.uri().port_u16().unwrap_or(0));
        let req = req;
        async move {
            match behaviour {
                Behaviour::Hang => std::future::pending().await,
                Behaviour::Status(code) => {
                    // Echoes what it got, so a replay shows.
                    let body = http_body_util::BodyExt::collect(req.into_body()).await?;
                    let mut resp = Response::new(MeshBody::full(body.to_bytes()));
                    *resp.status_mut() = StatusCode::from_u16(code)?;
                    Ok::<_, BoxError>(resp)
                }
            }
        }
    });
    Parts {
        pool,
        routes,
        metrics: MetricsLayer::client(metrics, labels),
        upstream: BoxCloneSyncService::new(upstream),
        calls,
    }
}

fn get(path: &str) -> Request<MeshBody> {
    Request::get(format!("http://news{path}"))
        .body(MeshBody::empty())
        .unwrap()
}

/// A request continuing an incoming trace (what the server layer hands the
/// application), so the default `propagate` mode sends a child of it.
fn traced(mut req: Request<MeshBody>) -> Request<MeshBody> {
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let ctx = crate::trace::TraceContext {
        parent,
        state: None,
    };
    req.extensions_mut().insert(ctx);
    req
}

const ONE_HUNG: &str = "    endpoints: [{ address: \"127.0.0.1:1\" }]\n";

#[tokio::test(start_paused = true)]
async fn a_hung_endpoint_is_retried_per_try_until_the_call_deadline() {
    let service = format!(
        "{ONE_HUNG}    timeout: 2500ms\n    retry: {{ attempts: 10, per_try_timeout: 1s, on: [5xx] }}\n"
    );
    let (client, calls) = client(&service, |_| Behaviour::Hang);
    let start = Instant::now();
    let err = client.oneshot(get("/")).await.unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.kind, TimeoutKind::Call);
    assert_eq!(elapsed.after, Duration::from_millis(2500));
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    // Two whole per-try timeouts, backoffs, then a third attempt clamped
    // to the call's deadline.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_per_try_timeout_names_its_endpoint() {
    let service = format!(
        "{ONE_HUNG}    timeout: 10s\n    retry: {{ attempts: 1, per_try_timeout: 1s, on: [5xx] }}\n"
    );
    let (client, calls) = client(&service, |_| Behaviour::Hang);
    let err = client.oneshot(get("/")).await.unwrap_err();
    let ep = err.downcast_ref::<EndpointError>().unwrap();
    assert_eq!(ep.endpoint, "127.0.0.1:1".parse().unwrap());
    let elapsed = ep.source.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.kind, TimeoutKind::PerTry);
    assert_eq!(elapsed.after, Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_callers_deadline_bounds_the_attempts_without_a_call_timer() {
    let service =
        format!("{ONE_HUNG}    retry: {{ attempts: 1, per_try_timeout: 10s, on: [5xx] }}\n");
    let (client, _calls) = client(&service, |_| Behaviour::Hang);
    let mut req = get("/");
    req.extensions_mut()
        .insert(Deadline(Instant::now() + Duration::from_secs(1)));
    let start = Instant::now();
    let err = client.oneshot(req).await.unwrap_err();
    // As below a call timeout with nothing to time: the attempt's timer
    // is clamped to the caller's deadline and reports itself.
    let ep = err.downcast_ref::<EndpointError>().unwrap();
    let elapsed = ep.source.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.kind, TimeoutKind::PerTry);
    assert_eq!(elapsed.after, Duration::from_secs(1));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_503_is_retried_on_another_endpoint_and_attempts_are_counted() {
    let service = "    endpoints: [{ address: \"127.0.0.1:1\" }, { address: \"127.0.0.1:2\" }]\n    \
                   retry: { attempts: 2, on: [5xx] }\n";
    let (client, calls) = client(service, |port| match port {
        1 => Behaviour::Status(503),
        _ => Behaviour::Status(200),
    });
    let mut attempts = 0;
    for _ in 0..10 {
        let resp = client.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.extensions().get::<ServedBy>(),
            Some(&ServedBy("127.0.0.1:2".parse().unwrap()))
        );
        let Attempts(n) = *resp.extensions().get::<Attempts>().unwrap();
        assert!(n == 1 || n == 2, "{n} attempts");
        attempts += n;
    }
    // Every attempt reached the upstream, and only the ones the 503s cost
    // were extra.
    assert_eq!(calls.load(Ordering::SeqCst), attempts);
}

#[tokio::test(start_paused = true)]
async fn a_request_no_route_takes_fails_before_any_attempt() {
    let service =
        format!("{ONE_HUNG}    routes: [{{ name: api, match: {{ path_prefix: /api }} }}]\n");
    let (client, calls) = client(&service, |_| Behaviour::Status(200));
    let err = client.oneshot(get("/other")).await.unwrap_err();
    let no_route = err.downcast_ref::<NoRoute>().unwrap();
    assert_eq!(no_route.path, "/other");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// What a call came to, in terms both paths must agree on.
async fn summary(result: Result<Response<MeshBody>, BoxError>, took: Duration) -> String {
    match result {
        Ok(resp) => {
            let head = format!(
                "{} attempts={:?} served_by={:?} after {took:?}",
                resp.status(),
                resp.extensions().get::<Attempts>(),
                resp.extensions().get::<ServedBy>(),
            );
            let body = http_body_util::BodyExt::collect(resp.into_body()).await;
            format!("{head} body={:?}", body.map(|b| b.to_bytes()).ok())
        }
        Err(err) => {
            let kind = crate::error::kind(&*err);
            let endpoint = err.downcast_ref::<EndpointError>().map(|e| e.endpoint);
            let elapsed = match err.downcast_ref::<EndpointError>() {
                Some(e) => e
                    .source
                    .downcast_ref::<Elapsed>()
                    .map(|e| (e.kind, e.after)),
                None => err.downcast_ref::<Elapsed>().map(|e| (e.kind, e.after)),
            };
            format!("{kind:?} endpoint={endpoint:?} elapsed={elapsed:?} after {took:?}")
        }
    }
}

/// A service's config, how its endpoints behave, the request.
type Case = (String, fn(u16) -> Behaviour, fn() -> Request<MeshBody>);

#[tokio::test(start_paused = true)]
async fn the_layers_and_the_fused_path_agree() {
    use crate::balance::BalanceLayer;
    use crate::timeout::TimeoutLayer;
    use tower::ServiceBuilder;

    let cases: [Case; 7] = [
        // Retried to the last attempt, which is returned.
        (
            "    endpoints: [{ address: \"127.0.0.1:1\" }]\n    retry: { attempts: 3, on: [5xx] }\n"
                .into(),
            |_| Behaviour::Status(503),
            || get("/"),
        ),
        // Per-try timeouts until the call's deadline.
        (
            format!("{ONE_HUNG}    timeout: 2500ms\n    retry: {{ attempts: 10, per_try_timeout: 1s, on: [5xx] }}\n"),
            |_| Behaviour::Hang,
            || get("/"),
        ),
        // One attempt, its timer naming the endpoint.
        (
            format!("{ONE_HUNG}    retry: {{ attempts: 1, per_try_timeout: 1s, on: [5xx] }}\n"),
            |_| Behaviour::Hang,
            || get("/"),
        ),
        // No retry policy: the call timeout alone.
        (
            format!("{ONE_HUNG}    timeout: 300ms\n"),
            |_| Behaviour::Hang,
            || get("/"),
        ),
        // No route.
        (
            format!("{ONE_HUNG}    routes: [{{ name: api, match: {{ path_prefix: /api }} }}]\n"),
            |_| Behaviour::Status(200),
            || get("/other"),
        ),
        // A small streaming body, buffered and replayed on every attempt.
        (
            "    endpoints: [{ address: \"127.0.0.1:1\" }]\n    retry: { attempts: 3, on: [5xx] }\n"
                .into(),
            |_| Behaviour::Status(503),
            || {
                let body = http_body_util::Full::new(bytes::Bytes::from_static(b"hello"));
                Request::put("http://news/")
                    .body(MeshBody::streaming(body))
                    .unwrap()
            },
        ),
        // A caller's deadline, no call timeout: the attempt's timer is
        // clamped to it.
        (
            format!("{ONE_HUNG}    retry: {{ attempts: 3, per_try_timeout: 10s, on: [5xx] }}\n"),
            |_| Behaviour::Hang,
            || {
                let mut req = get("/");
                req.extensions_mut()
                    .insert(Deadline(Instant::now() + Duration::from_millis(700)));
                req
            },
        ),
    ];
    for (service, behave, request) in cases {
        let layered = {
            let p = parts(&service, behave);
            let svc = ServiceBuilder::new()
                .layer(p.metrics)
                .layer(p.routes)
                .layer(TimeoutLayer::call(None))
                .layer(RetryLayer::new(None).seed(7))
                .layer(TimeoutLayer::per_try(None))
                .layer(BalanceLayer::new(p.pool))
                .service(p.upstream);
            let start = Instant::now();
            let result = svc.oneshot(request()).await;
            let took = start.elapsed();
            (summary(result, took).await, p.calls.load(Ordering::SeqCst))
        };
        let fused = {
            let (client, calls) = client(&service, behave);
            let start = Instant::now();
            let result = client.oneshot(request()).await;
            let took = start.elapsed();
            (summary(result, took).await, calls.load(Ordering::SeqCst))
        };
        assert_eq!(fused, layered, "{service}");
    }
}

#[tokio::test(start_paused = true)]
async fn client_durations_are_labelled_with_the_route_taken() {
    let (_provider, expo, metrics) = crate::metrics::tests::setup();
    let mut p = parts(
        "    endpoints: [{ address: \"127.0.0.1:1\" }]\n    routes:\n      - { name: api, match: { path_prefix: /api } }\n      - { name: rest, match: { path_prefix: / } }\n",
        |_| Behaviour::Status(200),
    );
    p.metrics = MetricsLayer::client(metrics.clone(), metrics.service("news"));
    let client = FusedClient::new(
        p.upstream,
        p.metrics,
        p.routes,
        RetryLayer::new(None),
        p.pool,
    );
    for path in ["/api/a", "/api/b", "/other"] {
        let req = Request::get(format!("http://news{path}"))
            .body(MeshBody::empty())
            .unwrap();
        let resp = client.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let s = crate::metrics::tests::Scrape::of(&expo);
    let count = "http_client_request_duration_seconds_count";
    assert_eq!(
        s.get(count, &[("mesh_service", "news"), ("http_route", "api")]),
        2.0
    );
    assert_eq!(
        s.get(count, &[("mesh_service", "news"), ("http_route", "rest")]),
        1.0
    );
}

/// Every attempt of a call goes out with the same `traceparent` (a child of
/// the caller's context, set per attempt, not kept in the head copied for
/// retries), and a caller's own `traceparent` is sent untouched.
#[tokio::test(start_paused = true)]
async fn every_attempt_carries_the_calls_traceparent() {
    let service = "    endpoints: [{ address: \"127.0.0.1:1\" }, { address: \"127.0.0.1:2\" }]\n    \
                   retry: { attempts: 2, on: [5xx] }\n";
    let p = parts(service, |_| Behaviour::Status(200));
    let seen: Arc<std::sync::Mutex<Vec<(u16, String)>>> = Arc::default();
    let log = seen.clone();
    // Port 1 fails, so a call that starts there is retried on port 2.
    let upstream = tower::service_fn(move |req: Request<MeshBody>| {
        let port = req.uri().port_u16().unwrap_or(0);
        let tp = req
            .headers()
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        log.lock().unwrap().push((port, tp));
        let mut resp = Response::new(MeshBody::empty());
        *resp.status_mut() = if port == 1 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        std::future::ready(Ok::<_, BoxError>(resp))
    });
    let client = p.over(BoxCloneSyncService::new(upstream));
    let mut retried = 0;
    for _ in 0..20 {
        seen.lock().unwrap().clear();
        let resp = client.clone().oneshot(traced(get("/"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let seen = seen.lock().unwrap().clone();
        let first = &seen.first().unwrap().1;
        let sent =
            crate::trace::TraceParent::from_header(&http::HeaderValue::from_str(first).unwrap())
                .unwrap();
        assert_eq!(
            sent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(seen.iter().all(|(_, tp)| tp == first), "{seen:?}");
        if seen.len() == 2 {
            retried += 1;
        }
    }
    assert!(retried > 0, "no call started on the failing endpoint");

    // The caller's own traceparent wins on every attempt.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for _ in 0..10 {
        seen.lock().unwrap().clear();
        let mut req = get("/");
        req.headers_mut()
            .insert("traceparent", own.parse().unwrap());
        client.clone().oneshot(req).await.unwrap();
        assert!(seen.lock().unwrap().iter().all(|(_, tp)| tp == own));
    }
}

/// A marker the caller puts in the request's extensions.
#[derive(Clone, Debug, PartialEq)]
struct Marker(u32);

/// The first attempt is sent with the caller's own head; a retry with a
/// copy of it as the caller gave it: method, URI path, every header field
/// (repeated names in order), extensions and body, with none of the first
/// attempt's per-attempt headers carried over twice.
#[tokio::test(start_paused = true)]
async fn a_retry_carries_the_callers_head_and_body() {
    let service = "    endpoints: [{ address: \"127.0.0.1:1\" }, { address: \"127.0.0.1:2\" }]\n    \
                   retry: { attempts: 2, on: [5xx], non_idempotent: true }\n";
    let p = parts(service, |_| Behaviour::Status(200));
    type Seen = (u16, String, String, Vec<String>, Option<Marker>, Vec<u8>);
    let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let upstream = tower::service_fn(move |req: Request<MeshBody>| {
        let log = log.clone();
        async move {
            // Each attempt sets its own, once.
            assert_eq!(req.headers().get_all("traceparent").iter().count(), 1);
            let port = req.uri().port_u16().unwrap_or(0);
            let method = req.method().to_string();
            let path = req.uri().path().to_owned();
            let fields = (req.headers().iter())
                .filter(|(name, _)| name.as_str().starts_with("x-"))
                .map(|(name, value)| format!("{name}={}", value.to_str().unwrap()))
                .collect();
            let marker = req.extensions().get::<Marker>().cloned();
            let body = http_body_util::BodyExt::collect(req.into_body()).await?;
            let body = body.to_bytes().to_vec();
            log.lock()
                .unwrap()
                .push((port, method, path, fields, marker, body));
            let mut resp = Response::new(MeshBody::empty());
            *resp.status_mut() = if port == 1 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            Ok::<_, BoxError>(resp)
        }
    });
    let client = p.over(BoxCloneSyncService::new(upstream));
    let mut retried = 0;
    for _ in 0..20 {
        seen.lock().unwrap().clear();
        let mut req = Request::post("http://news/things?x=1")
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .body(MeshBody::full("payload"))
            .unwrap();
        req.extensions_mut().insert(Marker(7));
        let resp = client.clone().oneshot(traced(req)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let seen = seen.lock().unwrap().clone();
        for (_, method, path, fields, marker, body) in &seen {
            assert_eq!(method, "POST");
            assert_eq!(path, "/things");
            assert_eq!(fields, &["x-one=1", "x-many=a", "x-many=b"], "{seen:?}");
            assert_eq!(marker, &Some(Marker(7)));
            assert_eq!(body, b"payload");
        }
        if seen.len() == 2 {
            assert_eq!((seen[0].0, seen[1].0), (1, 2));
            retried += 1;
        }
    }
    assert!(retried > 0, "no call started on the failing endpoint");
}
