use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use mesh_tests::upstream::{Faults, Options, Upstream};
use serde_json::json;

use super::*;

type Resp = http::Response<Full<Bytes>>;

fn plan(until: Until, concurrency: usize, rate: Option<f64>) -> Arc<Plan> {
    Arc::new(Plan {
        method: http::Method::GET,
        uri: "http://news-service/x".parse().unwrap(),
        headers: http::HeaderMap::new(),
        until,
        concurrency,
        rate,
    })
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A fake mesh client: request `i` is served by endpoint 8081 + i % 2, every
/// 10th took 3 attempts, every 5th answers 503.
fn fake()
-> impl Service<http::Request<Full<Bytes>>, Response = Resp, Error = BoxError, Future = impl Send>
+ Clone
+ Send
+ 'static {
    let n = Arc::new(AtomicUsize::new(0));
    tower::service_fn(move |req: http::Request<Full<Bytes>>| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        async move {
            assert_eq!(req.uri().path(), "/x");
            let mut resp = http::Response::new(Full::new(Bytes::from_static(b"hello")));
            if i % 5 == 4 {
                *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            resp.extensions_mut()
                .insert(ServedBy(addr(8081 + (i % 2) as u16)));
            resp.extensions_mut()
                .insert(Attempts(if i.is_multiple_of(10) { 3 } else { 1 }));
            Ok::<_, BoxError>(resp)
        }
    })
}

#[tokio::test]
async fn counts_requests_statuses_endpoints_and_retries() {
    let (stats, _) = drive(
        fake(),
        plan(Until::Requests(100), 4, None),
        Arc::new(Control::new()),
    )
    .await;
    let json = stats.report(Duration::from_secs(1)).to_json();
    assert_eq!(json["requests"], json!(100));
    assert_eq!(json["succeeded"], json!(80));
    assert_eq!(json["failed"], json!(20));
    assert_eq!(json["status"], json!({"200": 80, "503": 20}));
    assert_eq!(
        json["endpoints"],
        json!({"127.0.0.1:8081": 50, "127.0.0.1:8082": 50})
    );
    assert_eq!(json["retries"], json!(20));
}

#[tokio::test]
async fn errors_count_by_kind() {
    let svc = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        Err::<Resp, BoxError>(Box::new(mesh_tower::error::NoEndpoints {
            service: "news-service".into(),
            reason: "discovery found none".into(),
        }))
    });
    let control = Arc::new(Control::new());
    let (stats, _) = drive(svc, plan(Until::Requests(7), 2, None), control.clone()).await;
    let json = stats.report(Duration::from_secs(1)).to_json();
    assert_eq!(json["status"], json!({"no_endpoints": 7}));
    assert_eq!(json["failed"], json!(7));
    assert_eq!(json["endpoints"], json!({}));
    assert_eq!(control.progress(), (7, 7));
}

#[tokio::test]
async fn a_body_that_breaks_off_fails_the_request() {
    let svc = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        let frames = futures_util::stream::iter([
            Ok(http_body::Frame::data(Bytes::from_static(b"par"))),
            Err::<_, BoxError>(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
        ]);
        let mut resp = http::Response::new(http_body_util::StreamBody::new(frames));
        resp.extensions_mut().insert(ServedBy(addr(9000)));
        Ok::<_, BoxError>(resp)
    });
    let (stats, _) = drive(
        svc,
        plan(Until::Requests(3), 1, None),
        Arc::new(Control::new()),
    )
    .await;
    let json = stats.report(Duration::from_secs(1)).to_json();
    assert_eq!(json["status"], json!({"reset": 3}));
    assert_eq!(json["endpoints"], json!({"127.0.0.1:9000": 3}));
    assert_eq!(json["succeeded"], json!(0));
}

/// A service answering after `delay` (tokio time).
fn slow(
    delay: Duration,
) -> impl Service<http::Request<Full<Bytes>>, Response = Resp, Error = BoxError, Future = impl Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: http::Request<Full<Bytes>>| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, BoxError>(http::Response::new(Full::new(Bytes::new())))
    })
}

#[tokio::test(start_paused = true)]
async fn open_loop_sends_at_the_rate_for_the_duration() {
    let (stats, elapsed) = drive(
        slow(Duration::from_millis(30)),
        plan(Until::Duration(Duration::from_secs(2)), 8, Some(50.0)),
        Arc::new(Control::new()),
    )
    .await;
    // Due at 0, 20ms, ... 1980ms: exactly 100 requests.
    assert_eq!(stats.requests(), 100);
    let report = stats.report(elapsed);
    assert_eq!(report.p50, Duration::from_millis(30));
    assert_eq!(report.max, Duration::from_millis(30));
    assert_eq!(elapsed, Duration::from_millis(1980 + 30));
}

#[tokio::test(start_paused = true)]
async fn open_loop_latency_counts_from_when_a_request_was_due() {
    // 10/s wanted, but one worker needing 1s per request: request i is due
    // at i * 100ms and sent at i * 1s.
    let (stats, _) = drive(
        slow(Duration::from_secs(1)),
        plan(Until::Requests(5), 1, Some(10.0)),
        Arc::new(Control::new()),
    )
    .await;
    let report = stats.report(Duration::from_secs(5));
    assert_eq!(report.requests, 5);
    // The last one: due at 0.4s, done at 5s.
    assert_eq!(report.max, Duration::from_millis(4600));
    // Due at 0.2s, done at 3s; within the histogram's 0.4%.
    let p50 = report.p50.as_secs_f64();
    assert!((p50 - 2.8).abs() <= 2.8 / 256.0, "{p50}");
}

#[tokio::test(start_paused = true)]
async fn closed_loop_duration() {
    let (stats, elapsed) = drive(
        slow(Duration::from_millis(100)),
        plan(Until::Duration(Duration::from_secs(1)), 2, None),
        Arc::new(Control::new()),
    )
    .await;
    assert_eq!(stats.requests(), 20);
    assert_eq!(elapsed, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn stop_lets_in_flight_requests_finish_and_abort_drops_them() {
    let control = Arc::new(Control::new());
    let run = tokio::spawn(drive(
        slow(Duration::from_millis(200)),
        plan(Until::Requests(1000), 3, None),
        control.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    control.stop();
    let (stats, _) = run.await.unwrap();
    assert_eq!(stats.requests(), 3, "the three in flight finished");

    let control = Arc::new(Control::new());
    let hang = tower::service_fn(|_req: http::Request<Full<Bytes>>| {
        std::future::pending::<Result<Resp, BoxError>>()
    });
    let run = tokio::spawn(drive(
        hang,
        plan(Until::Requests(10), 2, None),
        control.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    control.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!run.is_finished(), "stop waits for requests in flight");
    control.abort();
    let (stats, _) = run.await.unwrap();
    assert_eq!(stats.requests(), 0);
}

/// A plain hyper-util client (no mesh) against a real upstream: statuses
/// counted as the upstream answered them.
#[tokio::test]
async fn real_upstream_over_http() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let up = Upstream::start(Options::new("a").faults(Faults::failing(0.3, 503)).seed(3)).await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let target: http::Uri = format!("http://{}/x", up.addr()).parse().unwrap();
    let svc = tower::service_fn(move |mut req: http::Request<Full<Bytes>>| {
        let client = client.clone();
        *req.uri_mut() = target.clone();
        async move { client.request(req).await.map_err(BoxError::from) }
    });
    let (stats, _) = drive(
        svc,
        plan(Until::Requests(200), 4, None),
        Arc::new(Control::new()),
    )
    .await;
    let json = stats.report(Duration::from_secs(1)).to_json();
    assert_eq!(json["requests"], json!(200));
    let failed = json["status"]["503"].as_u64().unwrap();
    assert!((30..90).contains(&failed), "{json}");
    assert_eq!(json["status"]["200"].as_u64().unwrap(), 200 - failed);
    assert_eq!(json["failed"].as_u64().unwrap(), failed);
}

#[tokio::test(start_paused = true)]
async fn a_duration_run_ends_on_time_even_when_behind() {
    // 100/s wanted for 1s, one worker needing 300ms per request: requests
    // due at 0, 10ms, 20ms... are sent at 0, 300, 600, 900ms; then the run
    // is over, the 96 others are never sent.
    let (stats, elapsed) = drive(
        slow(Duration::from_millis(300)),
        plan(Until::Duration(Duration::from_secs(1)), 1, Some(100.0)),
        Arc::new(Control::new()),
    )
    .await;
    assert_eq!(stats.requests(), 4);
    assert_eq!(elapsed, Duration::from_millis(1200));
}
