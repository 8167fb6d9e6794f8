//! What the mesh's HTTP/2 requests look like on the wire: their HPACK
//! header blocks, recorded by a TCP relay between the mesh client and a
//! real hyper HTTP/2 server on 127.0.0.1.
//!
//! The mesh's per-request headers (`traceparent`, and the `grpc-timeout`
//! left of a deadline) are unique per request: they are sent as
//! never-indexed literals, so they do not churn the dynamic tables; and
//! their names enter the tables with the first request on a connection, so
//! no later request spells a name out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::config::{Format, parse_str};
use mesh_tower::body::MeshBody;
use mesh_tower::trace::TraceContext;
use mesh_tower::{CallOptions, Mesh};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tower::ServiceExt;

/// A hyper HTTP/2 server answering a trailers-only gRPC OK.
async fn server() -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let timeout = req.headers().get("grpc-timeout").cloned();
                let response = Response::builder()
                    .header(
                        "x-timeout",
                        timeout.unwrap_or(HeaderValue::from_static("-")),
                    )
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// A relay to `upstream` that records what clients send.
async fn relay(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent: Arc<Mutex<Vec<u8>>> = Arc::default();
    let record = sent.clone();
    let task = tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    (addr, sent, task)
}

/// The HEADERS frames' header blocks in a client's byte stream (after the
/// connection preface; no padding, priority or CONTINUATION from hyper).
fn header_blocks(stream: &[u8]) -> Vec<Vec<u8>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert!(stream.starts_with(PREFACE), "no HTTP/2 preface");
    let mut rest = &stream[PREFACE.len()..];
    let mut blocks = Vec::new();
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let payload = &rest[9..9 + len];
        if kind == 0x1 {
            assert_eq!(flags & 0x28, 0, "padded or prioritised HEADERS");
            assert_ne!(flags & 0x4, 0, "HEADERS without END_HEADERS");
            blocks.push(payload.to_vec());
        }
        rest = &rest[9 + len..];
    }
    blocks
}

/// How an HPACK field is represented (RFC 7541 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Both name and value from a table.
    Indexed,
    /// A literal value added to the dynamic table; `literal_name`: the
    /// name spelled out too.
    Incremental { literal_name: bool },
    /// A literal value not added (section 6.2.2).
    WithoutIndexing { literal_name: bool },
    /// A literal value never to be indexed (section 6.2.3).
    NeverIndexed { literal_name: bool },
}

/// An HPACK integer with an `n`-bit prefix (section 5.1).
fn integer(block: &[u8], at: &mut usize, n: u32) -> usize {
    let max = (1usize << n) - 1;
    let mut value = usize::from(block[*at]) & max;
    *at += 1;
    if value < max {
        return value;
    }
    let mut shift = 0;
    loop {
        let byte = block[*at];
        *at += 1;
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return value;
        }
    }
}

/// Skips a string literal (its Huffman coding is not undone).
fn skip_string(block: &[u8], at: &mut usize) {
    let len = integer(block, at, 7);
    *at += len;
}

/// The fields of a header block, in order.
fn fields(block: &[u8]) -> Vec<Field> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < block.len() {
        let first = block[at];
        let (field, prefix) = if first & 0x80 != 0 {
            integer(block, &mut at, 7);
            out.push(Field::Indexed);
            continue;
        } else if first & 0xc0 == 0x40 {
            (0, 6)
        } else if first & 0xe0 == 0x20 {
            // A dynamic table size update.
            integer(block, &mut at, 5);
            continue;
        } else if first & 0xf0 == 0x10 {
            (2, 4)
        } else {
            (1, 4)
        };
        let literal_name = integer(block, &mut at, prefix) == 0;
        if literal_name {
            skip_string(block, &mut at);
        }
        skip_string(block, &mut at);
        out.push(match field {
            0 => Field::Incremental { literal_name },
            1 => Field::WithoutIndexing { literal_name },
            _ => Field::NeverIndexed { literal_name },
        });
    }
    out
}

/// The trace context a server layer would hand the application.
fn incoming_trace() -> TraceContext {
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    TraceContext {
        parent,
        state: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_headers_are_never_indexed_and_their_names_are_indexed_once() {
    let (server, server_task) = server().await;
    let (relay_addr, sent, relay_task) = relay(server).await;
    // The caller's deadline (a tonic request timeout, say) and no per-try
    // timeout: every attempt's `grpc-timeout` is what is left of it, a
    // one-off value.
    let yaml = format!(
        "services:\n  greeter:\n    protocol: grpc\n    endpoints: [ {{ address: \"{relay_addr}\" }} ]\n"
    );
    let mesh = Mesh::builder()
        .config(parse_str(&yaml, Format::Yaml, "test.yaml").unwrap())
        .build()
        .unwrap();
    let mut client = mesh.client("greeter");
    let calls = 4;
    for n in 0..calls {
        let mut req = Request::post("http://greeter/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(MeshBody::full(Bytes::from_static(b"\0\0\0\0\0")))
            .unwrap();
        // A caller in a trace: each call goes out with a new child of it.
        req.extensions_mut().insert(incoming_trace());
        // The first call's value, which the tables keep, is like no later
        // one (a later value equal to a kept one is sent by index).
        let after = Duration::from_secs(if n == 0 { 7 } else { 5 });
        let deadline = Instant::now() + after;
        let options = CallOptions::default().deadline(Some(deadline));
        let ready = ServiceExt::<Request<MeshBody>>::ready(&mut client)
            .await
            .unwrap();
        let response = ready.call_with(req, options).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "0");
        // The server got what was left of the deadline.
        let timeout = response.headers()["x-timeout"].to_str().unwrap();
        let micros: u64 = timeout.strip_suffix('u').unwrap().parse().unwrap();
        assert!(after.as_micros() as u64 - micros < 500_000, "{timeout}");
        response.into_body().collect().await.unwrap();
    }

    let stream = sent.lock().unwrap().clone();
    let blocks = header_blocks(&stream);
    assert_eq!(blocks.len(), calls, "one HEADERS frame per call");
    let first = fields(&blocks[0]);
    // The first request adds both names (and values) to the tables.
    assert!(
        !first
            .iter()
            .any(|f| matches!(f, Field::NeverIndexed { .. })),
        "first request: {first:?}"
    );
    for (n, block) in blocks.iter().enumerate().skip(1) {
        let later = fields(block);
        // Nothing new for the tables, no name spelled out (h2 never
        // indexes `:path` and `content-length` values)...
        for field in &later {
            assert!(
                matches!(
                    field,
                    Field::Indexed
                        | Field::WithoutIndexing {
                            literal_name: false
                        }
                        | Field::NeverIndexed {
                            literal_name: false
                        }
                ),
                "request {n}: {field:?} in {later:?}"
            );
        }
        // ...and the two one-off values as never-indexed literals.
        let never = later
            .iter()
            .filter(|f| matches!(f, Field::NeverIndexed { .. }))
            .count();
        assert_eq!(never, 2, "request {n}: {later:?}");
        // Far smaller than the first.
        assert!(
            block.len() + 20 < blocks[0].len(),
            "{} vs {}",
            block.len(),
            blocks[0].len()
        );
    }
    server_task.abort();
    relay_task.abort();
}
