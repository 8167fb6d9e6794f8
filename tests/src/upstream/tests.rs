use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::*;

type TestClient = Client<HttpConnector, Empty<Bytes>>;

fn http1() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn http2() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

async fn get(client: &TestClient, up: &Upstream, path: &str) -> (u16, http::HeaderMap, String) {
    let uri = format!("http://{}{path}", up.addr());
    let resp = client.get(uri.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn echoes_label_over_http1_and_http2() {
    let up = Upstream::start(Options::new("news").version("v2")).await;
    for client in [http1(), http2()] {
        let (status, headers, body) = get(&client, &up, "/a/b").await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-upstream"], "news/v2");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"upstream":"news","version":"v2","method":"GET","path":"/a/b"})
        );
    }
    let c = up.counters();
    assert_eq!(c.requests, 2);
    assert_eq!(c.status(200), 2);
    assert_eq!(c.in_flight, 0);
    assert_eq!(up.label(), "news/v2");
}

#[tokio::test]
async fn fail_rate_is_seeded_and_recoverable() {
    let faults = Faults::failing(0.3, 503).with_retry_after("1");
    let run = |seed| {
        let faults = faults.clone();
        async move {
            let up = Upstream::start(Options::new("a").faults(faults).seed(seed)).await;
            let client = http1();
            let mut seen = Vec::new();
            for _ in 0..200 {
                let (status, headers, _) = get(&client, &up, "/").await;
                if status == 503 {
                    assert_eq!(headers["retry-after"], "1");
                } else {
                    assert!(headers.get("retry-after").is_none());
                }
                seen.push(status);
            }
            (up, seen)
        }
    };
    let (up, first) = run(7).await;
    let (_, second) = run(7).await;
    assert_eq!(first, second, "same seed, same faults");
    let failures = first.iter().filter(|s| **s == 503).count();
    // 30% of 200 = 60; a binomial stays well within 30..90.
    assert!((30..90).contains(&failures), "{failures} failures");
    assert_eq!(up.counters().status(503), failures as u64);
    assert_eq!(up.counters().status(200), 200 - failures as u64);

    up.recover();
    let client = http1();
    for _ in 0..50 {
        assert_eq!(get(&client, &up, "/").await.0, 200);
    }
    assert_eq!(up.faults(), Faults::none());
}

#[tokio::test]
async fn custom_status_and_delay() {
    let up = Upstream::start(Options::new("a").faults(Faults::failing(1.0, 429))).await;
    assert_eq!(get(&http1(), &up, "/").await.0, 429);
    up.set_faults(Faults::delayed(Duration::from_millis(100)));
    let t = tokio::time::Instant::now();
    assert_eq!(get(&http1(), &up, "/").await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn hung_requests_count_in_flight_until_the_client_gives_up() {
    let up = Upstream::start(Options::new("a").faults(Faults::hanging(1.0))).await;
    let client = http1();
    let uri: http::Uri = format!("http://{}/", up.addr()).parse().unwrap();
    let res = tokio::time::timeout(Duration::from_millis(200), client.get(uri)).await;
    assert!(res.is_err(), "a hung request never answers");
    let c = up.counters();
    assert_eq!((c.requests, c.hung), (1, 1));
    assert!(c.by_status.is_empty());
    // The client dropped its request; the server notices the closed
    // connection and drops the handler (bounded wait).
    drop(client);
    for _ in 0..100 {
        if up.counters().in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.counters().in_flight, 0);

    up.recover();
    assert_eq!(get(&http1(), &up, "/").await.0, 200);
}

#[tokio::test]
async fn stops_on_drop() {
    let up = Upstream::start(Options::new("a")).await;
    let addr = up.addr();
    assert_eq!(get(&http1(), &up, "/").await.0, 200);
    drop(up);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "listener closed after drop");
}

#[test]
fn own_thread_serves_synchronous_callers() {
    let up = Upstream::start_in_thread(Options::new("t"));
    let addr = up.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(get(&http2(), &up, "/").await.0, 200);
    });
    assert_eq!(up.requests(), 1);
    drop(up); // joins the thread
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn binds_other_loopback_addresses() {
    let a = Upstream::start(Options::new("a").bind(([127, 0, 0, 2], 0).into())).await;
    let port = a.addr().port();
    let b = Upstream::try_start(Options::new("b").bind(([127, 0, 0, 3], port).into()))
        .await
        .unwrap();
    assert_eq!(b.addr(), SocketAddr::from(([127, 0, 0, 3], port)));
    let (_, headers, _) = get(&http1(), &b, "/").await;
    assert_eq!(headers["x-upstream"], "b");
    assert!(
        Upstream::try_start(Options::new("c").bind(a.addr()))
            .await
            .is_err(),
        "a taken address is an error"
    );
}
