//! The HTTP/2 connector's connection sets, against real hyper HTTP/2
//! servers on 127.0.0.1 that count the connections they accept and see
//! closed: more connections when the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
//! is reached, one when it is not, replacement of a connection the server
//! drops, and idle connections closed after the pool idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::config::Protocol;
use mesh_tower::body::MeshBody;
use mesh_tower::connect::{ConnectConfig, Connector, authority, set_endpoint};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A hyper HTTP/2 server whose handler sleeps `delay`; counts accepted and
/// closed connections; `drop_connections` kills every open one.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(max_streams: u32, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, max_streams, delay)
    }

    fn serve(listener: tokio::net::TcpListener, max_streams: u32, delay: Duration) -> Self {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let task = {
            let (accepted, closed, conns) = (accepted.clone(), closed.clone(), conns.clone());
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let closed = closed.clone();
                    let service =
                        hyper::service::service_fn(move |req: Request<Incoming>| async move {
                            tokio::time::sleep(delay).await;
                            let path = req.uri().path().to_string();
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(path))))
                        });
                    let conn = tokio::spawn(async move {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .max_concurrent_streams(max_streams)
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                        closed.fetch_add(1, Ordering::SeqCst);
                    });
                    conns.lock().await.push(conn);
                }
            })
        };
        Self {
            addr,
            accepted,
            closed,
            conns,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn drop_connections(&self) {
        for conn in self.conns.lock().await.drain(..) {
            conn.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut conns) = self.conns.try_lock() {
            for conn in conns.drain(..) {
                conn.abort();
            }
        }
    }
}

async fn call(connector: &Connector, addr: SocketAddr, path: &str) -> String {
    let mut req = Request::get(format!("http://news-service{path}"))
        .body(MeshBody::empty())
        .unwrap();
    set_endpoint(&mut req, &authority(addr).unwrap());
    let response = connector.clone().oneshot(req).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// `n` concurrent calls; asserts each got its own answer.
async fn concurrent(connector: &Connector, addr: SocketAddr, n: usize) {
    let calls = (0..n).map(|i| {
        let connector = connector.clone();
        tokio::spawn(async move {
            let path = format!("/call/{i}");
            assert_eq!(call(&connector, addr, &path).await, path);
        })
    });
    for call in futures_join(calls).await {
        call.unwrap();
    }
}

async fn futures_join<T>(
    handles: impl Iterator<Item = JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_limit_of_2_opens_more_connections() {
    let server = Server::start(2, Duration::from_millis(300)).await;
    // Our own cap is the default (100): the server's SETTINGS limit is learned.
    let connector = Connector::new(Protocol::Grpc, &ConnectConfig::default());
    concurrent(&connector, server.addr, 10).await;
    assert!(
        server.accepted() >= 5,
        "10 calls with 2 streams per connection used {} connections",
        server.accepted()
    );
    // The connections are reused by the next wave, not reopened.
    let before = server.accepted();
    concurrent(&connector, server.addr, 10).await;
    assert!(
        server.accepted() <= before + 1,
        "{before} then {}",
        server.accepted()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_limit_multiplexes_on_one_connection() {
    let server = Server::start(1000, Duration::from_millis(200)).await;
    let connector = Connector::new(Protocol::Http2, &ConnectConfig::default());
    concurrent(&connector, server.addr, 10).await;
    assert_eq!(server.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_stream_cap_applies_when_the_server_sets_none_lower() {
    let server = Server::start(1000, Duration::from_millis(300)).await;
    let config = ConnectConfig {
        http2_max_streams_per_connection: 3,
        ..ConnectConfig::default()
    };
    let connector = Connector::new(Protocol::Http2, &config);
    concurrent(&connector, server.addr, 9).await;
    assert!(server.accepted() >= 3, "used {}", server.accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_drops_is_replaced() {
    let server = Server::start(100, Duration::ZERO).await;
    let connector = Connector::new(Protocol::Http2, &ConnectConfig::default());
    assert_eq!(call(&connector, server.addr, "/one").await, "/one");
    assert_eq!(server.accepted(), 1);
    server.drop_connections().await;
    // Let the client see the EOF.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..3 {
        let path = format!("/again/{i}");
        assert_eq!(call(&connector, server.addr, &path).await, path);
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_the_idle_timeout() {
    let server = Server::start(2, Duration::from_millis(200)).await;
    let config = ConnectConfig {
        pool_idle_timeout: Duration::from_millis(300),
        ..ConnectConfig::default()
    };
    let connector = Connector::new(Protocol::Http2, &config);
    concurrent(&connector, server.addr, 6).await;
    let opened = server.accepted();
    assert!(opened >= 3, "used {opened}");
    assert_eq!(server.closed.load(Ordering::SeqCst), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.closed.load(Ordering::SeqCst) < opened && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.closed.load(Ordering::SeqCst), opened);
    // And a later call opens a fresh connection.
    assert_eq!(call(&connector, server.addr, "/later").await, "/later");
    assert_eq!(server.accepted(), opened + 1);
}

#[tokio::test]
async fn connection_refused_is_a_connect_failure_for_every_waiter() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let connector = Connector::new(Protocol::Grpc, &ConnectConfig::default());
    let calls = (0..4).map(|_| {
        let connector = connector.clone();
        tokio::spawn(async move {
            let mut req = Request::get("http://news/")
                .body(MeshBody::empty())
                .unwrap();
            set_endpoint(&mut req, &authority(addr).unwrap());
            connector.oneshot(req).await.unwrap_err()
        })
    });
    for err in futures_join(calls).await {
        let err = err.unwrap();
        assert_eq!(
            mesh_tower::error::kind(&*err),
            mesh_tower::error::ErrorKind::ConnectFailure,
            "{err}"
        );
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}

/// A raw h2 server answering after 200ms, except that the second stream of
/// each connection is refused with `REFUSED_STREAM`.
async fn refusing_server() -> (
    SocketAddr,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepted.clone(), refused.clone());
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                let mut streams = 0;
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    streams += 1;
                    if streams == 2 {
                        r.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let mut body = respond.send_response(Response::new(()), false).unwrap();
                        body.send_data(Bytes::from_static(b"ok"), true).unwrap();
                    });
                }
            });
        }
    });
    (addr, accepted, refused, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_sent_again_on_another_connection() {
    let (addr, accepted, refused, server) = refusing_server().await;
    let connector = Connector::new(Protocol::Http2, &ConnectConfig::default());
    let send = |delay: u64| {
        let connector = connector.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut req = Request::post("http://news/")
                .body(MeshBody::full("x"))
                .unwrap();
            set_endpoint(&mut req, &authority(addr).unwrap());
            let response = connector.oneshot(req).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    let (first, second) = (send(0), send(50));
    assert_eq!(first.await.unwrap(), "ok");
    assert_eq!(second.await.unwrap(), "ok");
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_while_its_connection_opens_does_not_block_the_next() {
    // Bound but not accepting yet: TCP connects, the server's SETTINGS never come.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ConnectConfig {
        connect_timeout: Duration::from_secs(2),
        ..ConnectConfig::default()
    };
    let connector = Connector::new(Protocol::Http2, &config);
    let first =
        tokio::time::timeout(Duration::from_millis(100), call(&connector, addr, "/a")).await;
    assert!(first.is_err(), "the first call cannot have been answered");
    let server = Server::serve(listener, 100, Duration::ZERO);
    let second = tokio::time::timeout(Duration::from_secs(3), call(&connector, addr, "/b")).await;
    assert_eq!(
        second.expect("the second call waited on the abandoned opening"),
        "/b"
    );
    drop(server);
}

/// A raw h2 server that reads each request's whole body, then answers with
/// it in four DATA frames 100 ms apart; counts connections that ended.
async fn slow_echo_server() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let c = c.clone();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let mut got = Vec::new();
                        while let Some(chunk) = body.data().await {
                            let chunk = chunk.unwrap();
                            let _ = body.flow_control().release_capacity(chunk.len());
                            got.extend_from_slice(&chunk);
                        }
                        let mut send = respond.send_response(Response::new(()), false).unwrap();
                        let quarter = got.len().div_ceil(4).max(1);
                        let parts: Vec<Bytes> =
                            got.chunks(quarter).map(Bytes::copy_from_slice).collect();
                        let last = parts.len().saturating_sub(1);
                        for (i, part) in parts.into_iter().enumerate() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            send.send_data(part, i == last).unwrap();
                        }
                    });
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, closed, task)
}

/// What hyper spawns per connection and per request (the connection's I/O,
/// the body sent after the headers, the wait for the response) runs in the
/// connection's own task: a request body reaches the server, and a response
/// body still streaming when the idle connection leaves the pool arrives
/// whole; the connection closes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_streaming_past_the_idle_timeout_arrives_whole_then_the_connection_closes() {
    let (addr, closed, server) = slow_echo_server().await;
    let config = ConnectConfig {
        pool_idle_timeout: Duration::from_millis(50),
        ..ConnectConfig::default()
    };
    let connector = Connector::new(Protocol::Http2, &config);
    let sent = Bytes::from(vec![b'm'; 64 * 1024]);
    let mut req = Request::post("http://news/echo")
        .body(MeshBody::full(sent.clone()))
        .unwrap();
    set_endpoint(&mut req, &authority(addr).unwrap());
    let response = connector.oneshot(req).await.unwrap();
    // The head is in: the connection is idle from here, and is dropped from
    // the pool after 50 ms while the body still takes ~400 ms.
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, sent);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while closed.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        closed.load(Ordering::SeqCst),
        1,
        "the idle connection closed"
    );
    server.abort();
}
