use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request as AxumRequest;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

/// An axum server answering `<version> <host> <path?query> <body>`: the
/// `Host` header over HTTP/1.1; over HTTP/2 `:authority` (the URI's), and
/// `CONFLICT` if a `host` header came too.
async fn server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new().fallback(|req: AxumRequest| async move {
        let version = format!("{:?}", req.version());
        let header = req.headers().get("host").and_then(|h| h.to_str().ok());
        let host = match (req.version(), header) {
            (http::Version::HTTP_2, Some(_)) => "CONFLICT".to_string(),
            (http::Version::HTTP_2, None) => {
                req.uri().authority().map_or("-".into(), |a| a.to_string())
            }
            (_, header) => header.unwrap_or("-").to_string(),
        };
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        format!("{version} {host} {pq} {}", String::from_utf8_lossy(&body))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

async fn send(protocol: Protocol, addr: SocketAddr, uri: &str, body: MeshBody) -> String {
    let connector = Connector::new(protocol, &ConnectConfig::default());
    let mut req = Request::post(uri).body(body).unwrap();
    set_endpoint(&mut req, &authority(addr).unwrap());
    assert_eq!(req.uri().authority().unwrap().as_str(), addr.to_string());
    let response = connector.oneshot(req).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn http1_keeps_the_service_name_as_host() {
    let (addr, server) = server().await;
    let got = send(
        Protocol::Http,
        addr,
        "http://news-service/a/b?c=1",
        MeshBody::full("hi"),
    )
    .await;
    assert_eq!(got, "HTTP/1.1 news-service /a/b?c=1 hi");
    server.abort();
}

#[tokio::test]
async fn http2_prior_knowledge_for_http2_and_grpc() {
    let (addr, server) = server().await;
    for protocol in [Protocol::Http2, Protocol::Grpc] {
        let got = send(
            protocol,
            addr,
            "http://news-service/x",
            MeshBody::streaming(http_body_util::Full::new(bytes::Bytes::from_static(b"s"))),
        )
        .await;
        // The service's name as `:authority` (RFC 9113 section 8.3.1: no
        // `host` that differs from it); the endpoint only picks the
        // connection.
        assert_eq!(got, "HTTP/2.0 news-service /x s");
    }
    server.abort();
}

#[tokio::test]
async fn an_origin_form_uri_gets_the_endpoint_and_no_host() {
    let mut req = Request::get("/only/path").body(()).unwrap();
    set_endpoint(&mut req, &Authority::from_static("10.0.0.1:80"));
    assert_eq!(req.uri(), "http://10.0.0.1:80/only/path");
    assert!(req.headers().get(HOST).is_none());
    // A Host the caller set wins.
    let mut req = Request::get("http://news/")
        .header(HOST, "explicit")
        .body(())
        .unwrap();
    set_endpoint(&mut req, &Authority::from_static("10.0.0.1:80"));
    assert_eq!(req.headers()[HOST], "explicit");
}

#[tokio::test]
async fn connection_refused_is_a_connect_failure() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let connector = Connector::new(Protocol::Http, &ConnectConfig::default());
    let mut req = Request::get("http://news/")
        .body(MeshBody::empty())
        .unwrap();
    set_endpoint(&mut req, &authority(addr).unwrap());
    let err = connector.oneshot(req).await.unwrap_err();
    assert_eq!(
        crate::error::kind(&*err),
        crate::error::ErrorKind::ConnectFailure
    );
}

#[test]
fn the_balancers_known_host_is_used_only_for_its_own_service() {
    let known = super::KnownHost::new(std::sync::Arc::from("news-service"));
    let endpoint = Authority::from_static("10.0.0.1:80");
    let mut req = Request::get("http://news-service/a?b=1").body(()).unwrap();
    super::set_endpoint_known(&mut req, &endpoint, &known);
    assert_eq!(req.uri(), "http://10.0.0.1:80/a?b=1");
    assert_eq!(req.headers()[HOST], "news-service");
    // Another authority (a target URI naming something else) is its own Host.
    let mut req = Request::get("http://other:8080/").body(()).unwrap();
    super::set_endpoint_known(&mut req, &endpoint, &known);
    assert_eq!(req.headers()[HOST], "other:8080");
    // A Host the caller set still wins.
    let mut req = Request::get("http://news-service/")
        .header(HOST, "explicit")
        .body(())
        .unwrap();
    super::set_endpoint_known(&mut req, &endpoint, &known);
    assert_eq!(req.headers()[HOST], "explicit");
    assert_eq!(req.headers().get_all(HOST).iter().count(), 1);
}

fn h2_authorities(connector: &Connector) -> usize {
    match &connector.client {
        Inner::H2Plain(pool) => pool.authorities(),
        _ => panic!("not a plaintext HTTP/2 connector"),
    }
}

#[tokio::test]
async fn http2_endpoints_leave_the_pool_when_their_connections_go() {
    let (addr, server) = server().await;
    let config = ConnectConfig {
        pool_idle_timeout: Duration::from_millis(150),
        ..ConnectConfig::default()
    };
    let connector = Connector::new(Protocol::Http2, &config);
    let call = |addr: SocketAddr| {
        let connector = connector.clone();
        async move {
            let mut req = Request::get("http://news/x")
                .body(MeshBody::empty())
                .unwrap();
            set_endpoint(&mut req, &authority(addr).unwrap());
            connector.oneshot(req).await
        }
    };
    let resp = call(addr).await.unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(h2_authorities(&connector), 1);
    // Idle past the timeout: the connection and its endpoint's entry go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while h2_authorities(&connector) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(h2_authorities(&connector), 0);
    // The endpoint comes back: a fresh entry and connection.
    let resp = call(addr).await.unwrap();
    assert!(resp.status().is_success());
    assert_eq!(h2_authorities(&connector), 1);
    // An unreachable endpoint keeps no entry.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    assert!(call(refused).await.is_err());
    assert_eq!(h2_authorities(&connector), 1);
    server.abort();
}

/// What the server sees of `uri` (with `host` as a `Host` header) sent to
/// it through `dispatch`, and through the balancer's documented contract
/// (`set_endpoint_known`, then the connector as a plain service).
async fn both_ways(
    connector: &Connector,
    addr: SocketAddr,
    uri: &str,
    host: Option<&str>,
) -> (String, String) {
    let known = KnownHost::new(std::sync::Arc::from("news-service"));
    let endpoint = authority(addr).unwrap();
    let request = || {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(MeshBody::empty()).unwrap()
    };
    let text = |response: Response<Incoming>| async move {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let mut direct = connector.clone();
    let fast = dispatch(&mut direct, request(), &endpoint, &known)
        .unwrap()
        .await
        .unwrap();
    let mut req = request();
    set_endpoint_known(&mut req, &endpoint, &known);
    let slow = connector.clone().oneshot(req).await.unwrap();
    (text(fast).await, text(slow).await)
}

#[tokio::test]
async fn the_connector_told_the_endpoint_sends_what_a_pointed_request_would() {
    let (addr, server) = server().await;
    let cases = [
        ("http://news-service/a/b?c=1", None, "news-service /a/b?c=1"),
        ("http://news-service", None, "news-service /"),
        ("http://other:8080/x", None, "other:8080 /x"),
        ("https://news-service/s", None, "news-service /s"),
        ("http://news-service/h", Some("explicit"), "explicit /h"),
        ("/only/path", None, "{endpoint} /only/path"),
        ("/only/path", Some("explicit"), "explicit /only/path"),
    ];
    for protocol in [Protocol::Http, Protocol::Http2] {
        let connector = Connector::new(protocol, &ConnectConfig::default());
        let version = if protocol == Protocol::Http {
            "HTTP/1.1"
        } else {
            "HTTP/2.0"
        };
        for (uri, host, seen) in cases {
            let (fast, slow) = both_ways(&connector, addr, uri, host).await;
            let seen = seen.replace("{endpoint}", &addr.to_string());
            assert_eq!(
                fast,
                format!("{version} {seen} "),
                "{protocol:?} {uri} {host:?}"
            );
            assert_eq!(fast, slow, "{protocol:?} {uri} {host:?}");
        }
    }
    server.abort();
}

#[tokio::test]
async fn any_other_service_is_called_with_the_request_pointed_at_the_endpoint() {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    let mut service = tower::service_fn(move |req: Request<MeshBody>| {
        let host = req.headers().get(HOST).cloned();
        record.lock().push((req.uri().clone(), host));
        std::future::ready(Ok::<_, BoxError>(Response::new(())))
    });
    let known = KnownHost::new(std::sync::Arc::from("news-service"));
    let endpoint = Authority::from_static("10.0.0.1:80");
    let req = Request::get("http://news-service/a")
        .body(MeshBody::empty())
        .unwrap();
    dispatch(&mut service, req, &endpoint, &known)
        .unwrap()
        .await
        .unwrap();
    let seen = seen.lock();
    assert_eq!(seen[0].0, "http://10.0.0.1:80/a");
    assert_eq!(seen[0].1.as_ref().unwrap(), "news-service");
}
