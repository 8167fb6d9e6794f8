//! The upstream: one hyper server (HTTP/1.1 and HTTP/2 prior knowledge on
//! the same sockets, hyper-util's `auto` builder) answering `200 hello
//! world` on several listeners, on its own tokio runtime and threads.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The response body.
pub const BODY: &[u8] = b"hello world";

/// Connections the server (all its listeners) has accepted so far.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// Connections accepted so far, by every server of this process.
pub fn accepted() -> u64 {
    ACCEPTED.load(Ordering::Relaxed)
}

/// A running server: its listeners' addresses; its runtime lives on its own
/// threads (named `bench-server`) until the process ends.
pub struct Server {
    /// One address per listener, same handler.
    pub addrs: Vec<SocketAddr>,
}

async fn handle(_req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    Ok(http::Response::new(Full::new(Bytes::from_static(BODY))))
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let service = hyper::service::service_fn(handle);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Starts `listeners` listeners on `ip` (port 0 each) on a runtime with
/// `workers` worker threads.
pub fn start(ip: &str, listeners: usize, workers: usize) -> std::io::Result<Server> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let mut addrs = Vec::new();
    for _ in 0..listeners {
        let std = std::net::TcpListener::bind((ip, 0))?;
        std.set_nonblocking(true)?;
        addrs.push(std.local_addr()?);
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std)?
        };
        runtime.spawn(accept_loop(listener));
    }
    // The runtime's worker threads drive the listeners; park its owner.
    std::thread::Builder::new()
        .name("bench-server-rt".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(Server { addrs })
}
