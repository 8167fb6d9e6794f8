//! The server side: accepting plaintext or mTLS connections by mode, and
//! handing the peer's identity to the request handlers.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh_core::config::TlsMode;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::Tls;
use super::material::spiffe_of;
use crate::error::BoxError;
use crate::ext::PeerIdentity;

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Accepts connections by [`TlsMode`]: completes the TLS handshake (strict,
/// permissive with a TLS client) or passes plaintext through (disabled,
/// permissive with a plaintext client), and tells who the peer is. Cheap to
/// clone.
#[derive(Clone)]
pub struct MeshAcceptor {
    mode: TlsMode,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for MeshAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshAcceptor")
            .field("mode", &self.mode)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl MeshAcceptor {
    /// An acceptor in `tls`'s mode ([`TlsConfig::mode`](super::TlsConfig)).
    pub fn new(tls: &Tls) -> MeshAcceptor {
        Self::with_mode(tls, tls.mode())
    }

    /// An acceptor in `mode`, with `tls`'s live material.
    ///
    /// The server config cannot fail to build with the ring provider; if it
    /// ever did, the error is logged and the acceptor refuses TLS clients.
    pub fn with_mode(tls: &Tls, mode: TlsMode) -> MeshAcceptor {
        let tls_acceptor = match mode {
            TlsMode::Disabled => None,
            _ => match tls.server_config(mode) {
                Ok(config) => Some(TlsAcceptor::from(config)),
                Err(e) => {
                    tracing::error!(error = %e, "TLS server config");
                    None
                }
            },
        };
        MeshAcceptor {
            mode,
            tls: tls_acceptor,
            handshake_timeout: tls.config().handshake_timeout,
        }
    }

    /// An acceptor from a rustls server config of your own (no SPIFFE
    /// reload), in `mode`.
    pub fn from_config(config: Arc<ServerConfig>, mode: TlsMode) -> MeshAcceptor {
        MeshAcceptor {
            mode,
            tls: (mode != TlsMode::Disabled).then(|| TlsAcceptor::from(config)),
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// A plaintext acceptor (mode disabled): every peer is anonymous.
    pub fn plaintext() -> MeshAcceptor {
        MeshAcceptor {
            mode: TlsMode::Disabled,
            tls: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// The mode.
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// Completes the handshake on `tcp` as the mode says, within the
    /// handshake timeout.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<MeshStream> {
        let remote = tcp.peer_addr()?;
        match tokio::time::timeout(self.handshake_timeout, self.handshake(tcp, remote)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake with {remote} took longer than {:?}",
                    self.handshake_timeout
                ),
            )),
        }
    }

    async fn handshake(&self, tcp: TcpStream, remote: SocketAddr) -> io::Result<MeshStream> {
        let plain = |tcp| MeshStream {
            inner: Inner::Plain(tcp),
            info: MeshConnectInfo {
                remote_addr: remote,
                identity: PeerIdentity(None),
                tls: false,
            },
        };
        let Some(acceptor) = &self.tls else {
            return match self.mode {
                TlsMode::Disabled => Ok(plain(tcp)),
                _ => Err(io::Error::other("TLS is not configured")),
            };
        };
        if self.mode == TlsMode::Permissive {
            let mut first = [0u8; 1];
            let n = tcp.peek(&mut first).await?;
            if n == 0 || first[0] != TLS_HANDSHAKE {
                return Ok(plain(tcp));
            }
        }
        let stream = acceptor.accept(tcp).await?;
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|c| spiffe_of(c.as_ref()));
        Ok(MeshStream {
            inner: Inner::Tls(Box::new(stream)),
            info: MeshConnectInfo {
                remote_addr: remote,
                identity: PeerIdentity(identity),
                tls: true,
            },
        })
    }
}

/// Who is on the other end of an accepted connection. tonic puts it in each
/// request's extensions ([`incoming`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConnectInfo {
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The peer's SPIFFE ID (`None`: plaintext, or a TLS client without a
    /// certificate in permissive mode).
    pub identity: PeerIdentity,
    /// Whether the connection is TLS.
    pub tls: bool,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection, plaintext or TLS, with its peer's identity.
pub struct MeshStream {
    inner: Inner,
    info: MeshConnectInfo,
}

impl std::fmt::Debug for MeshStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshStream")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl MeshStream {
    /// Who the peer is.
    pub fn info(&self) -> &MeshConnectInfo {
        &self.info
    }

    /// The TLS session, if the connection is TLS (ALPN, resumption, ...).
    pub fn tls_connection(&self) -> Option<&rustls::ServerConnection> {
        match &self.inner {
            Inner::Tls(s) => Some(s.get_ref().1),
            Inner::Plain(_) => None,
        }
    }
}

impl AsyncRead for MeshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MeshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for MeshStream {
    type ConnectInfo = MeshConnectInfo;

    fn connect_info(&self) -> MeshConnectInfo {
        self.info.clone()
    }
}

/// Accepts on `listener`, handshakes each connection on its own task (a
/// slow or failed handshake never holds up the others; failures are logged
/// at debug level) and yields the ready ones: for tonic's
/// `serve_with_incoming`. It never yields an error (accept errors are
/// logged and the loop goes on); dropping it stops the accept loop.
pub fn incoming(
    listener: TcpListener,
    acceptor: MeshAcceptor,
) -> impl Stream<Item = Result<MeshStream, Infallible>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<MeshStream>(64);
    let accept_loop = tokio::spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = tx.send(stream).await;
                    }
                    Err(e) => tracing::debug!(%remote, error = %e, "handshake failed"),
                }
            });
        }
    });
    let guard = AbortOnDrop(accept_loop);
    futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|s| (Ok(s), (rx, guard)))
    })
}

/// Stops the accept loop when the stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `service` (an axum `Router`, or any tower service of
/// `Request<Incoming>`) on `listener` through `acceptor`: HTTP/1.1 and h2
/// (by ALPN or preface), each request carrying the connection's
/// [`PeerIdentity`]. Returns once `shutdown` completes and every open
/// connection has finished its requests (graceful shutdown).
pub async fn serve<S, B, F>(
    listener: TcpListener,
    acceptor: MeshAcceptor,
    service: S,
    shutdown: F,
) -> io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: std::future::Future<Output = ()>,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Each connection holds a sender; `recv` returns `None` once all are gone.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        let mut stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "handshake failed");
                    return;
                }
            };
            let identity = stream.info().identity.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(identity.clone());
                tower::ServiceExt::oneshot(service.clone(), req)
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            if *stop.borrow() {
                conn.as_mut().graceful_shutdown();
            }
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, error = %e, "connection error");
                    }
                    return;
                }
                _ = stop.changed() => conn.as_mut().graceful_shutdown(),
            }
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// Copies the [`MeshConnectInfo`] identity tonic put in a request's
/// extensions into [`PeerIdentity`]: `Server::builder().layer(PeerIdentityLayer)`
/// with [`incoming`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerIdentityLayer;

impl<S> tower::Layer<S> for PeerIdentityLayer {
    type Service = PeerIdentityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PeerIdentityService { inner }
    }
}

/// The service of [`PeerIdentityLayer`].
#[derive(Debug, Clone)]
pub struct PeerIdentityService<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for PeerIdentityService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let identity = req
            .extensions()
            .get::<MeshConnectInfo>()
            .map_or(PeerIdentity(None), |i| i.identity.clone());
        req.extensions_mut().insert(identity);
        self.inner.call(req)
    }
}
