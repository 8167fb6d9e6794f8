//! The connector: pooled connections to one endpoint at a time.
//!
//! At the bottom of the client stack, below the balancer, a request already
//! knows its endpoint: the balancer rewrote its URI to the endpoint's
//! address ([`set_endpoint`]), keeping the original authority (the mesh
//! service name, `news-service`) in the `Host` header. Over HTTP/2 the
//! authority travels as `:authority` and no `Host` may differ from it, so
//! the HTTP/2 pool puts it back into the URI and drops `Host`: servers see
//! the service's name either way. (The balancer tells the mesh's own
//! [`Connector`] the endpoint beside the request instead, and the request
//! goes straight to the form it takes on the wire; what is sent is the
//! same.) What is left is to send it over a pooled connection:
//!
//! - TCP from an [`HttpConnector`] with `TCP_NODELAY` and a connect
//!   timeout; connections are pooled per endpoint address (the pool key is
//!   the rewritten authority);
//! - HTTP/1.1 for `protocol: http`, over a stack of idle hyper
//!   `client::conn::http1` connections per endpoint, with no task spawned
//!   per request (see `h1pool.rs`); a request a pooled connection never
//!   sent because it was closing is sent once more on a new connection;
//! - HTTP/2 with prior knowledge (no upgrade) for `protocol: http2` and
//!   `grpc`, over a set of multiplexed connections per endpoint: one, and
//!   more when the server's `SETTINGS_MAX_CONCURRENT_STREAMS` (or
//!   [`ConnectConfig::http2_max_streams_per_connection`]) is reached (see
//!   `h2pool.rs`);
//! - plaintext ([`Connector::new`]), or mTLS ([`Connector::tls`]): TLS 1.3
//!   presenting the local certificate, the server verified by its SPIFFE
//!   ID, ALPN `h2` or `http/1.1`, session resumption (see [`crate::tls`]).
//!   A TLS connector verifies one expected identity: the [`Mesh`](crate::Mesh)
//!   keeps one per (protocol, identity), so pooled connections are never
//!   shared between identities. A handshake failure is a connect error
//!   ([`ErrorKind::ConnectFailure`](crate::error::ErrorKind)) whose cause is
//!   an [`IdentityMismatch`](crate::tls::IdentityMismatch) or a
//!   [`TlsHandshakeError`], wrapped in a [`ConnectError`].
//!
//! A connection to a removed endpoint is not closed by the removal: the
//! requests in flight on it complete (draining), and it is dropped from the
//! pool once idle for [`ConnectConfig::pool_idle_timeout`].
//!
//! ```
//! use mesh_core::config::Protocol;
//! use mesh_tower::connect::{ConnectConfig, Connector};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let connector = Connector::new(Protocol::Http2, &ConnectConfig::default());
//! # let _ = connector;
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use mesh_core::config::Protocol;

use crate::body::MeshBody;
use crate::error::BoxError;

#[cfg(test)]
mod h1_tests;
mod h1pool;
mod h2exec;
mod h2pool;
mod sniff;
#[cfg(test)]
mod tests;
mod tls;

pub use h2pool::NoAuthority;
pub use tls::TlsHandshakeError;

/// A connection to an endpoint could not be established (TCP, TLS or the
/// HTTP handshake): [`ErrorKind::ConnectFailure`](crate::error::ErrorKind).
/// HTTP/2 requests that waited for the same connection share its cause.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// The endpoint (`host:port`).
    pub endpoint: String,
    /// Why (an [`IdentityMismatch`](crate::tls::IdentityMismatch), a
    /// [`TlsHandshakeError`], an I/O error, ...).
    pub source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connecting to {}: {}", self.endpoint, self.source)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// How connections are made and pooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    /// TCP connect timeout (default 1s).
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept (default 90s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per endpoint (default 32; HTTP/1.1).
    pub pool_max_idle_per_host: usize,
    /// HTTP/2: the most requests in flight on one connection before another
    /// is opened to the same endpoint (default 100). The server's own
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, when lower, wins.
    pub http2_max_streams_per_connection: usize,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            http2_max_streams_per_connection: 100,
        }
    }
}

/// Sends a request, whose URI already names its endpoint, over a pooled
/// connection (see the [module docs](self)). Cheap to clone: clones share
/// the pool.
///
/// The pool sits behind one `Arc`: the retry layer clones the stack below
/// it for every retryable request, so a clone here is one reference count.
#[derive(Clone, Debug)]
pub struct Connector {
    client: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Plain(std::sync::Arc<h1pool::H1Pool<HttpConnector>>),
    Tls(std::sync::Arc<h1pool::H1Pool<tls::TlsConnect>>),
    H2Plain(std::sync::Arc<h2pool::H2Pool<HttpConnector>>),
    H2Tls(std::sync::Arc<h2pool::H2Pool<tls::TlsConnect>>),
    /// Whatever connector is in the slot now (see [`Connector::live`]).
    Live(std::sync::Arc<arc_swap::ArcSwap<Connector>>),
}

fn is_h2(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Http2 | Protocol::Grpc)
}

fn h1_config(config: &ConnectConfig) -> h1pool::PoolConfig {
    h1pool::PoolConfig {
        connect_timeout: config.connect_timeout,
        idle_timeout: config.pool_idle_timeout,
        max_idle: config.pool_max_idle_per_host,
    }
}

fn pool_config(config: &ConnectConfig) -> h2pool::PoolConfig {
    h2pool::PoolConfig {
        max_streams: config.http2_max_streams_per_connection,
        idle_timeout: config.pool_idle_timeout,
        handshake_timeout: config.connect_timeout,
    }
}

fn http_connector(config: &ConnectConfig) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.enforce_http(true);
    http
}

impl Connector {
    /// A connector speaking HTTP/1.1 (`http`) or HTTP/2 with prior knowledge
    /// (`http2`, `grpc`).
    pub fn new(protocol: Protocol, config: &ConnectConfig) -> Self {
        if is_h2(protocol) {
            let pool = h2pool::H2Pool::new(http_connector(config), pool_config(config));
            return Self {
                client: Inner::H2Plain(std::sync::Arc::new(pool)),
            };
        }
        let pool = h1pool::H1Pool::new(http_connector(config), h1_config(config));
        Self {
            client: Inner::Plain(std::sync::Arc::new(pool)),
        }
    }

    /// A connector speaking mTLS with `tls`'s live certificate, accepting
    /// only servers whose SPIFFE ID is `expected`: ALPN `h2` for `http2` and
    /// `grpc`, `http/1.1` for `http`.
    pub fn tls(
        protocol: Protocol,
        config: &ConnectConfig,
        tls: &crate::tls::Tls,
        expected: mesh_core::identity::SpiffeId,
    ) -> Result<Self, crate::tls::TlsError> {
        let alpn = match protocol {
            Protocol::Http => vec![b"http/1.1".to_vec()],
            Protocol::Http2 | Protocol::Grpc => vec![b"h2".to_vec()],
        };
        let client_config = tls.client_config(expected, alpn)?;
        let connect = tls::TlsConnect::new(http_connector(config), client_config);
        if is_h2(protocol) {
            let pool = h2pool::H2Pool::new(connect, pool_config(config));
            return Ok(Self {
                client: Inner::H2Tls(std::sync::Arc::new(pool)),
            });
        }
        let pool = h1pool::H1Pool::new(connect, h1_config(config));
        Ok(Self {
            client: Inner::Tls(std::sync::Arc::new(pool)),
        })
    }

    /// Whether connections are mTLS.
    pub fn is_tls(&self) -> bool {
        match &self.client {
            Inner::Tls(_) | Inner::H2Tls(_) => true,
            Inner::Live(slot) => slot.load().is_tls(),
            Inner::Plain(_) | Inner::H2Plain(_) => false,
        }
    }

    /// A connector sending each request through the connector in the
    /// returned slot at that moment: the mesh swaps a service's mTLS
    /// connector when its expected identity changes in config. Requests in
    /// flight finish on the connector they started with.
    pub(crate) fn live(
        initial: Connector,
    ) -> (Connector, std::sync::Arc<arc_swap::ArcSwap<Connector>>) {
        let slot = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(initial));
        let live = Connector {
            client: Inner::Live(std::sync::Arc::clone(&slot)),
        };
        (live, slot)
    }
}

impl tower::Service<Request<MeshBody>> for Connector {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<MeshBody>) -> ResponseFuture {
        self.send(req)
    }
}

impl Connector {
    /// Sends `req` to `endpoint`, as [`set_endpoint_known`] and then
    /// [`send`](Self::send) would, without rewriting what the pool would
    /// undo: over HTTP/2 a request naming its service with no `Host` keeps
    /// its URI as it is (its authority becomes `:authority`); over
    /// HTTP/1.1 the authority goes to `Host` and the URI straight to
    /// origin form.
    pub(crate) fn send_to(
        &self,
        req: Request<MeshBody>,
        endpoint: &Authority,
        host: &KnownHost,
    ) -> ResponseFuture {
        ResponseFuture {
            inner: match &self.client {
                Inner::Plain(pool) => pool.send_to(req, endpoint, host),
                Inner::Tls(pool) => pool.send_to(req, endpoint, host),
                Inner::H2Plain(pool) => pool.send_to(req, endpoint, host),
                Inner::H2Tls(pool) => pool.send_to(req, endpoint, host),
                Inner::Live(slot) => return slot.load().send_to(req, endpoint, host),
            },
        }
    }

    fn send(&self, req: Request<MeshBody>) -> ResponseFuture {
        // One allocation per request: hyper's send futures cannot be named.
        ResponseFuture {
            inner: match &self.client {
                Inner::Plain(pool) => pool.send(req),
                Inner::Tls(pool) => pool.send(req),
                Inner::H2Plain(pool) => pool.send(req),
                Inner::H2Tls(pool) => pool.send(req),
                Inner::Live(slot) => return slot.load().send(req),
            },
        }
    }
}

/// The [`Connector`]'s response future.
pub struct ResponseFuture {
    inner: BoxFuture,
}

pub(crate) type BoxFuture =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// What both pools need of the service making their connections (TCP, or
/// TLS over TCP).
pub(crate) trait Transport:
    tower::Service<Uri, Response = Self::Io, Error = Self::Err, Future = Self::Fut>
    + Clone
    + Send
    + Sync
    + 'static
{
    /// The connection.
    type Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static;
    /// Why connecting failed.
    type Err: Into<BoxError>;
    /// Connecting.
    type Fut: Future<Output = Result<Self::Io, Self::Err>> + Send;
}

impl<C> Transport for C
where
    C: tower::Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send,
{
    type Io = C::Response;
    type Err = C::Error;
    type Fut = C::Future;
}

/// Opens a connection to `authority` with `connect`.
pub(crate) async fn dial<C: Transport>(
    connect: &C,
    authority: &Authority,
) -> Result<C::Io, BoxError> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| Box::new(e) as BoxError)?;
    let mut connect = connect.clone();
    std::future::poll_fn(|cx| connect.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    connect.call(uri).await.map_err(Into::into)
}

/// Points `req` at `endpoint`: the URI becomes `http://<endpoint><path>`,
/// and the original authority, if any, moves to the `Host` header (unless
/// the request already has one). `endpoint` is precomputed per endpoint, so
/// this allocates nothing but the `Host` value of a request without one.
pub fn set_endpoint<B>(req: &mut Request<B>, endpoint: &Authority) {
    point_at(req, endpoint, None);
}

/// A service's own name as a ready `Host` value: a request naming the
/// service (`http://news-service/...`, the usual case) gets a clone of it
/// instead of a freshly validated copy.
#[derive(Debug, Clone)]
pub(crate) struct KnownHost {
    name: std::sync::Arc<str>,
    value: Option<HeaderValue>,
}

impl KnownHost {
    pub(crate) fn new(name: std::sync::Arc<str>) -> Self {
        let value = HeaderValue::from_str(&name).ok();
        KnownHost { name, value }
    }
}

/// [`set_endpoint`] for the balancer, which knows its service's name.
pub(crate) fn set_endpoint_known<B>(req: &mut Request<B>, endpoint: &Authority, host: &KnownHost) {
    point_at(req, endpoint, Some(host));
}

/// `authority` as a `Host` value: the balancer's ready copy when it names
/// the balancer's own service.
fn host_value(authority: &Authority, known: Option<&KnownHost>) -> Option<HeaderValue> {
    match known {
        Some(KnownHost {
            name,
            value: Some(v),
        }) if **name == *authority.as_str() => Some(v.clone()),
        _ => HeaderValue::from_str(authority.as_str()).ok(),
    }
}

/// Moves `authority` to the `Host` header, unless `req` has one.
fn authority_to_host<B>(req: &mut Request<B>, authority: &Authority, known: Option<&KnownHost>) {
    if let http::header::Entry::Vacant(slot) = req.headers_mut().entry(HOST)
        && let Some(value) = host_value(authority, known)
    {
        slot.insert(value);
    }
}

fn point_at<B>(req: &mut Request<B>, endpoint: &Authority, known: Option<&KnownHost>) {
    let original = std::mem::take(req.uri_mut());
    let mut parts = original.into_parts();
    if let Some(authority) = parts.authority.take() {
        authority_to_host(req, &authority, known);
    }
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(endpoint.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Calls `inner` with `req` for the balancer's pick, `endpoint`.
///
/// Any service gets the request pointed at the endpoint
/// ([`set_endpoint`]'s contract). The mesh's own [`Connector`] is told the
/// endpoint beside the request instead ([`Connector::send_to`]): pointing
/// the URI at the endpoint and moving the service's name to `Host`, for the
/// HTTP/2 pool to move it back, cost about 1k instructions per HTTP/2
/// request (BENCHMARKS.md, session 8). Which one `S` is, is a type
/// comparison the compiler resolves per instantiation, as axum does for its
/// bodies.
///
/// The error is never expected: it is what a request lost between the two
/// type checks would get instead of a panic.
pub(crate) fn dispatch<S, B>(
    inner: &mut S,
    req: Request<B>,
    endpoint: &Authority,
    host: &KnownHost,
) -> Result<S::Future, BoxError>
where
    S: tower::Service<Request<B>> + 'static,
    S::Future: 'static,
    B: 'static,
{
    let mut req = Some(req);
    if let Some(connector) = (inner as &mut dyn std::any::Any).downcast_mut::<Connector>()
        && let Some(own) = take_as::<_, Request<MeshBody>>(&mut req)
    {
        let mut future: Option<S::Future> = None;
        let sent = connector.send_to(own, endpoint, host);
        if let Some(slot) =
            (&mut future as &mut dyn std::any::Any).downcast_mut::<Option<ResponseFuture>>()
        {
            *slot = Some(sent);
        }
        return future.ok_or_else(|| Box::new(DispatchLost) as BoxError);
    }
    let Some(mut req) = req else {
        return Err(Box::new(DispatchLost));
    };
    point_at(&mut req, endpoint, Some(host));
    Ok(inner.call(req))
}

/// Takes the value out of `slot` when `T` is `U`; leaves it otherwise.
fn take_as<T: 'static, U: 'static>(slot: &mut Option<T>) -> Option<U> {
    (slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

/// A request the connector fast path lost (see [`dispatch`]): never
/// expected.
#[derive(Debug, thiserror::Error)]
#[error("internal error: the request was lost on its way to the connector")]
pub(crate) struct DispatchLost;

/// The URI authority of an endpoint address (`10.0.0.1:80`, `[::1]:80`).
pub fn authority(addr: std::net::SocketAddr) -> Option<Authority> {
    Authority::try_from(addr.to_string()).ok()
}
