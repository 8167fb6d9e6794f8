//! The HTTP/1.1 pool against real hyper servers on 127.0.0.1.
//!
//! These run on the current-thread runtime: there a connection's task and
//! the request using it never run at once, so "the connection was returned
//! before the next checkout" holds exactly and connection counts are exact.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONNECTION;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use super::*;

/// A hyper HTTP/1.1 server counting the connections it accepted and saw
/// closed. It answers `<request URI> <Host>`; `/big` streams 1 MiB; `/wait`
/// waits on the barrier first.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Drops the connections' JoinSet too.
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

const BIG_CHUNK: usize = 64 * 1024;
const BIG_CHUNKS: usize = 16;

async fn handle(
    mut req: Request<Incoming>,
    close: bool,
    barrier: Option<Arc<Barrier>>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/wait"
        && let Some(barrier) = barrier
    {
        barrier.wait().await;
    }
    if req.uri().path() == "/upgrade" {
        // Answers "ping" with "pong" on the upgraded connection.
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut ping = [0u8; 4];
            io.read_exact(&mut ping).await.unwrap();
            assert_eq!(&ping, b"ping");
            io.write_all(b"pong").await.unwrap();
        });
        let mut response = Response::new(http_body_util::Empty::new().boxed());
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("echo"));
        return Ok(response);
    }
    let mut response = if req.uri().path() == "/big" {
        let chunks = (0..BIG_CHUNKS)
            .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![7u8; BIG_CHUNK]))));
        Response::new(http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed())
    } else {
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("-");
        let text = format!("{} {host}", req.uri());
        Response::new(http_body_util::Full::new(Bytes::from(text)).boxed())
    };
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// `close`: every response says `Connection: close`.
async fn upstream(close: bool, barrier: Option<Arc<Barrier>>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed));
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (c, barrier) = (Arc::clone(&c), barrier.clone());
            conns.spawn(async move {
                let service = service_fn(move |req| handle(req, close, barrier.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                c.fetch_add(1, Ordering::SeqCst);
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Upstream {
        addr,
        accepted,
        closed,
        task,
    }
}

fn request(addr: SocketAddr, uri: &str) -> Request<MeshBody> {
    let mut req = Request::get(uri).body(MeshBody::empty()).unwrap();
    set_endpoint(&mut req, &authority(addr).unwrap());
    req
}

async fn get(connector: &Connector, addr: SocketAddr, uri: &str) -> String {
    let response = connector.clone().oneshot(request(addr, uri)).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn http1(config: ConnectConfig) -> Connector {
    Connector::new(Protocol::Http, &config)
}

/// Waits (at most 3s) until `count` reaches `want`.
async fn reaches(count: &AtomicUsize, want: usize) -> bool {
    for _ in 0..150 {
        if count.load(Ordering::SeqCst) >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let server = upstream(false, None).await;
    let connector = http1(ConnectConfig::default());
    for i in 0..50 {
        let got = get(&connector, server.addr, &format!("http://news/n?i={i}")).await;
        assert_eq!(got, format!("/n?i={i} news"));
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(server.closed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn concurrent_loops_use_at_most_one_connection_each() {
    let server = upstream(false, None).await;
    let connector = http1(ConnectConfig::default());
    let mut loops = JoinSet::new();
    for l in 0..8 {
        let (connector, addr) = (connector.clone(), server.addr);
        loops.spawn(async move {
            for i in 0..20 {
                let got = get(&connector, addr, &format!("/l{l}/{i}")).await;
                assert_eq!(got, format!("/l{l}/{i} {addr}"));
            }
        });
    }
    let mut done = 0;
    while let Some(result) = loops.join_next().await {
        result.unwrap();
        done += 1;
    }
    assert_eq!(done, 8);
    let accepted = server.accepted.load(Ordering::SeqCst);
    assert!((1..=8).contains(&accepted), "{accepted} connections");
}

#[tokio::test]
async fn a_server_closing_after_each_response_is_reconnected_to() {
    let server = upstream(true, None).await;
    let connector = http1(ConnectConfig::default());
    for i in 0..20 {
        let got = get(&connector, server.addr, &format!("/c/{i}")).await;
        assert_eq!(got, format!("/c/{i} {}", server.addr));
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 20);
}

/// Reads a request head (up to its blank line, or until the stream ends).
async fn read_head(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// A server that answers one request per connection and closes it without
/// `Connection: close`: the client learns of it only from the socket.
#[tokio::test]
async fn a_server_silently_closing_keep_alive_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            drop(stream);
        }
    });
    let connector = http1(ConnectConfig::default());
    for _ in 0..20 {
        assert_eq!(get(&connector, addr, "/s").await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
    server.abort();
}

/// A pooled connection that looks usable at checkout but whose server has
/// already closed it: hyper finds out only when the connection's task next
/// runs, before writing the request, and hands the request back unsent. It
/// goes out once more on a new connection and the caller sees only the
/// answer.
#[tokio::test]
async fn a_request_a_closed_pooled_connection_never_sent_goes_on_a_new_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut close = Some(close_rx);
        let mut answered = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let head = read_head(&mut stream).await;
            let path = String::from_utf8_lossy(&head)
                .split(' ')
                .nth(1)
                .unwrap_or("-")
                .to_owned();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                path.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            // The first connection closes when the test says so, without
            // `Connection: close`; later ones stay open.
            match close.take() {
                Some(rx) => {
                    let _ = rx.await;
                    drop(stream);
                }
                None => answered.push(stream),
            }
        }
    });
    let connector = http1(ConnectConfig::default());
    assert_eq!(get(&connector, addr, "/one").await, "/one");
    // Let the connection's task put the connection back on the stack.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    close_tx.send(()).unwrap();
    // Blocking (this runtime has one thread): the server closes and its FIN
    // arrives while the connection's task cannot look.
    std::thread::sleep(Duration::from_millis(100));
    // A yield polls the I/O driver, which wakes the connection's task for
    // the FIN; the test's own future runs first in the next tick, so the
    // checkout still finds the connection usable, and the task reads the
    // FIN before it would write the request.
    tokio::task::yield_now().await;
    assert_eq!(get(&connector, addr, "/two").await, "/two");
    server.abort();
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let server = upstream(false, None).await;
    let connector = http1(ConnectConfig {
        pool_idle_timeout: Duration::from_millis(200),
        ..ConnectConfig::default()
    });
    get(&connector, server.addr, "/i").await;
    assert_eq!(server.closed.load(Ordering::SeqCst), 0);
    assert!(
        reaches(&server.closed, 1).await,
        "the idle connection was not closed"
    );
    // The pool works on after reaping.
    get(&connector, server.addr, "/i").await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_beyond_max_idle_are_closed() {
    let server = upstream(false, Some(Arc::new(Barrier::new(6)))).await;
    let connector = http1(ConnectConfig {
        pool_max_idle_per_host: 2,
        ..ConnectConfig::default()
    });
    let mut requests = JoinSet::new();
    for _ in 0..6 {
        let (connector, addr) = (connector.clone(), server.addr);
        requests.spawn(async move { get(&connector, addr, "/wait").await });
    }
    while let Some(result) = requests.join_next().await {
        assert_eq!(result.unwrap(), format!("/wait {}", server.addr));
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 6);
    assert!(
        reaches(&server.closed, 4).await,
        "{} of 6 connections closed",
        server.closed.load(Ordering::SeqCst)
    );
    // Two stay idle and are reused.
    get(&connector, server.addr, "/x").await;
    get(&connector, server.addr, "/x").await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 6);
    assert_eq!(server.closed.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = http1(ConnectConfig::default())
        .oneshot(request(addr, "/"))
        .await
        .unwrap_err();
    assert_eq!(
        crate::error::kind(&*err),
        crate::error::ErrorKind::ConnectFailure
    );
    let connect = err.downcast_ref::<ConnectError>().unwrap();
    assert_eq!(connect.endpoint, addr.to_string());
}

#[tokio::test]
async fn a_streamed_body_is_read_fully_and_an_unread_one_does_not_break_the_pool() {
    let server = upstream(false, None).await;
    let connector = http1(ConnectConfig::default());
    let response = connector
        .clone()
        .oneshot(request(server.addr, "/big"))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), BIG_CHUNK * BIG_CHUNKS);
    assert!(body.iter().all(|b| *b == 7));
    // Its connection went back to the pool.
    assert_eq!(
        get(&connector, server.addr, "/after").await,
        format!("/after {}", server.addr)
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);

    // Dropped unread: that connection is lost, the next request gets another.
    let response = connector
        .clone()
        .oneshot(request(server.addr, "/big"))
        .await
        .unwrap();
    drop(response);
    assert_eq!(
        get(&connector, server.addr, "/next").await,
        format!("/next {}", server.addr)
    );
    assert!(reaches(&server.closed, 1).await);
}

#[tokio::test]
async fn requests_go_out_in_origin_form_with_the_service_as_host() {
    let server = upstream(false, None).await;
    let connector = http1(ConnectConfig::default());
    let got = get(&connector, server.addr, "http://news-service/a/b?c=1").await;
    assert_eq!(got, "/a/b?c=1 news-service");
    // No authority to move: the endpoint becomes the Host.
    let got = get(&connector, server.addr, "/only/path").await;
    assert_eq!(got, format!("/only/path {}", server.addr));
    // A Host the caller set is kept.
    let mut req = Request::get("http://news-service/h")
        .header(HOST, "explicit")
        .body(MeshBody::empty())
        .unwrap();
    set_endpoint(&mut req, &authority(server.addr).unwrap());
    let response = connector.clone().oneshot(req).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, "/h explicit");
}

#[tokio::test]
async fn upgrades_work_and_the_upgraded_connection_is_not_pooled() {
    let server = upstream(false, None).await;
    let connector = http1(ConnectConfig::default());
    let mut req = request(server.addr, "/upgrade");
    req.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    req.headers_mut()
        .insert(http::header::UPGRADE, HeaderValue::from_static("echo"));
    let response = connector.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    io.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"pong");
    // The next request needs a connection of its own.
    assert_eq!(
        get(&connector, server.addr, "/x").await,
        format!("/x {}", server.addr)
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}
