//! HTTP/1.1 connection pool: a stack of idle connections per endpoint.
//!
//! The balancer has already picked the endpoint, so the pool does little
//! per request (hyper-util's legacy `Client` does much more: a SipHash'd
//! `(scheme, authority)` key, a lazy connect future it usually drops, and a
//! task spawned per request to return the connection once ready again).
//! [`H1Pool`] keeps, per authority (endpoint address), a LIFO stack of idle
//! hyper `client::conn::http1` connections:
//!
//! - **checkout** pops until a connection is usable (open and ready);
//!   with none, it connects inline (TCP with the connect timeout and
//!   `TCP_NODELAY`, TLS for a TLS connector), handshakes, and spawns the
//!   connection's task ([`drive`]), with upgrades enabled;
//! - **return** costs no task: once the response head is in, the request
//!   *parks* its sender in a slot shared with the connection's task. The
//!   connection becomes ready for the next request (hyper's dispatcher
//!   "wants" one) while that task polls it, after the response body was
//!   read to its end, so the task looks at the slot each time the
//!   connection returns `Pending` and pushes a ready sender onto the stack
//!   (or drops it, closing the connection, when
//!   [`max_idle`](PoolConfig::max_idle) are already idle). A sender parked
//!   after its connection became ready is pushed by the request itself: the
//!   slot's lock orders the two. A response whose body is never read keeps
//!   its connection busy;
//! - a request that a pooled connection **never sent** because it was
//!   closing (the server closed an idle keep-alive connection) is sent once
//!   more on a fresh connection; one that was sent and then failed is an
//!   error (a hyper error: reset, closed, ...);
//! - **idle timeout**: one reaper task per pool (started with the first
//!   connection, holding only a weak reference) drops, every half idle
//!   timeout, the connections idle for longer, from the bottom of each
//!   stack (dropping the last sender closes a connection), and forgets
//!   endpoints with nothing idle or in flight. Requests in flight on a
//!   removed endpoint complete (draining).
//!
//! A connect or handshake failure is a [`ConnectError`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::{Builder, SendRequest};
use parking_lot::{Mutex, RwLock};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{BoxFuture as SendFuture, ConnectError, KnownHost, NoAuthority};
use crate::body::MeshBody;
use crate::error::BoxError;

/// What the pool needs from a [`ConnectConfig`](super::ConnectConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolConfig {
    /// Connect (TCP, and TLS if any) timeout.
    pub(crate) connect_timeout: Duration,
    /// How long a connection stays idle before it is closed.
    pub(crate) idle_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub(crate) max_idle: usize,
}

/// Keyed by the authority's text: hashed in one go (`Authority`'s own
/// `Hash` lowercases and feeds the hasher byte by byte). Keys are the
/// balancer's endpoint addresses, already in one canonical form.
type Map = HashMap<Box<str>, Arc<Endpoint>, foldhash::fast::RandomState>;

/// Per-endpoint stacks of idle HTTP/1.1 connections made by `C` (TCP or
/// TLS).
pub(crate) struct H1Pool<C> {
    connect: C,
    builder: Builder,
    config: PoolConfig,
    endpoints: Arc<RwLock<Map>>,
    reaper_started: AtomicBool,
}

impl<C> std::fmt::Debug for H1Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("config", &self.config)
            .field("endpoints", &self.endpoints.read().len())
            .finish_non_exhaustive()
    }
}

/// The idle connections to one endpoint, most recently used on top.
struct Endpoint {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
}

struct Idle {
    send: SendRequest<MeshBody>,
    conn: Arc<Conn>,
    since: Instant,
}

/// What a connection's request and its task share: the slot where a
/// request parks the sender until the connection is ready again.
#[derive(Default)]
struct Conn {
    parked: Mutex<Option<(SendRequest<MeshBody>, Arc<Endpoint>)>>,
}

impl Endpoint {
    /// Puts a ready connection on the stack, or drops it (closing it) when
    /// the stack is full.
    fn push(&self, send: SendRequest<MeshBody>, conn: Arc<Conn>) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            // `now` under the lock keeps the stack ordered by idle time.
            let since = Instant::now();
            idle.push(Idle { send, conn, since });
        }
    }

    /// Pops the most recently used connection that is still usable.
    fn pop(&self) -> Option<(SendRequest<MeshBody>, Arc<Conn>)> {
        let mut idle = self.idle.lock();
        while let Some(entry) = idle.pop() {
            if !entry.send.is_closed() && entry.send.is_ready() {
                return Some((entry.send, entry.conn));
            }
        }
        None
    }
}

impl Conn {
    /// Hands `send` back after a response head: onto the stack at once if
    /// the connection is ready already, else into the slot for the
    /// connection's task.
    fn hand_back(self: Arc<Self>, send: SendRequest<MeshBody>, endpoint: Arc<Endpoint>) {
        let mut parked = self.parked.lock();
        if send.is_ready() {
            drop(parked);
            endpoint.push(send, self);
        } else if !send.is_closed() {
            *parked = Some((send, endpoint));
        }
    }

    /// Called by the connection's task while the connection is pending:
    /// moves a parked sender onto the stack once it is ready.
    fn push_if_ready(self: &Arc<Self>) {
        let mut parked = self.parked.lock();
        if parked.as_ref().is_some_and(|(send, _)| send.is_ready())
            && let Some((send, endpoint)) = parked.take()
        {
            drop(parked);
            endpoint.push(send, Arc::clone(self));
        }
    }
}

pin_project! {
    /// The wait for the response to a request handed to an idle
    /// connection, boxed per request. Written out rather than as an
    /// `async` block, which keeps the captured `sent` twice (the moved-from
    /// upvar's slot and the awaited one): 376 bytes against 920, or 1,184
    /// with the resend inline. Above 1 KiB every box took malloc's slow
    /// path, which also consolidated its free lists each time.
    struct IdleSend<F, C> {
        #[pin]
        sent: F,
        // Taken when `sent` ends.
        back: Option<Back<C>>,
        // The request `sent` gave back, on its way over a new connection.
        resend: Option<SendFuture>,
    }
}

/// What the request returns the connection to, or resends from.
struct Back<C> {
    send: SendRequest<MeshBody>,
    conn: Arc<Conn>,
    endpoint: Arc<Endpoint>,
    pool: Arc<H1Pool<C>>,
    authority: Authority,
}

impl<F, C> Future for IdleSend<F, C>
where
    F: Future<Output = Result<Response<Incoming>, TrySendError<Request<MeshBody>>>>,
    C: super::Transport,
{
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(resend) = this.resend {
            return resend.as_mut().poll(cx);
        }
        let result = std::task::ready!(this.sent.poll(cx));
        let Some(back) = this.back.take() else {
            return Poll::Ready(Err("h1 send polled after completion".into()));
        };
        match result {
            Ok(response) => {
                back.conn.hand_back(back.send, back.endpoint);
                Poll::Ready(Ok(response))
            }
            Err(err) => {
                let resend =
                    this.resend
                        .insert(back.pool.resend(err, back.authority, back.endpoint));
                resend.as_mut().poll(cx)
            }
        }
    }
}

impl<C> H1Pool<C>
where
    C: super::Transport,
{
    pub(crate) fn new(connect: C, config: PoolConfig) -> Self {
        Self {
            connect,
            builder: Builder::new(),
            config,
            endpoints: Arc::new(RwLock::new(Map::default())),
            reaper_started: AtomicBool::new(false),
        }
    }

    fn endpoint(&self, authority: &Authority) -> Arc<Endpoint> {
        if let Some(endpoint) = self.endpoints.read().get(authority.as_str()) {
            return Arc::clone(endpoint);
        }
        let mut endpoints = self.endpoints.write();
        let key = Box::from(authority.as_str());
        let endpoint = endpoints.entry(key).or_insert_with(|| {
            Arc::new(Endpoint {
                idle: Mutex::new(Vec::new()),
                max_idle: self.config.max_idle,
            })
        });
        Arc::clone(endpoint)
    }

    /// Sends `req` (whose URI names the endpoint) over an idle connection
    /// to it, or a new one.
    ///
    /// On an idle connection the request is handed to the connection's
    /// task here, synchronously, and the future only waits for the
    /// response: it stays small (the connect path, whose future is large,
    /// is boxed apart and only when taken).
    pub(crate) fn send(self: &Arc<Self>, mut req: Request<MeshBody>) -> SendFuture {
        let Some(authority) = origin_form(&mut req) else {
            let err: BoxError = Box::new(NoAuthority(req.uri().clone()));
            return Box::pin(std::future::ready(Err(err)));
        };
        self.send_at(req, authority)
    }

    /// Sends `req` to `endpoint` as [`send`](Self::send) would once the
    /// balancer had pointed it there: the URI's authority goes to `Host`
    /// (unless there is one) and the URI to origin form, without passing
    /// through the endpoint's URI on the way.
    pub(crate) fn send_to(
        self: &Arc<Self>,
        mut req: Request<MeshBody>,
        endpoint: &Authority,
        host: &KnownHost,
    ) -> SendFuture {
        if req.method() != Method::CONNECT
            && let Some(authority) = req.uri().authority().cloned()
        {
            super::authority_to_host(&mut req, &authority, Some(host));
            *req.uri_mut() = origin_uri(req.uri());
            return self.send_at(req, endpoint.clone());
        }
        super::set_endpoint_known(&mut req, endpoint, host);
        self.send(req)
    }

    /// Sends `req`, in origin form, to `authority`.
    fn send_at(self: &Arc<Self>, req: Request<MeshBody>, authority: Authority) -> SendFuture {
        let endpoint = self.endpoint(&authority);
        let pool = Arc::clone(self);
        let Some((mut send, conn)) = endpoint.pop() else {
            return Box::pin(pool.send_new(req, authority, endpoint));
        };
        let sent = send.try_send_request(req);
        Box::pin(IdleSend {
            sent,
            back: Some(Back {
                send,
                conn,
                endpoint,
                pool,
                authority,
            }),
            resend: None,
        })
    }

    /// After `try_send_request` failed: a request it gave back (never
    /// sent: the connection was closing under it) goes over a new
    /// connection; one it did not was sent, and the error stands.
    fn resend(
        self: Arc<Self>,
        mut err: TrySendError<Request<MeshBody>>,
        authority: Authority,
        endpoint: Arc<Endpoint>,
    ) -> SendFuture {
        match err.take_message() {
            Some(req) => Box::pin(self.send_new(req, authority, endpoint)),
            None => Box::pin(std::future::ready(Err(
                Box::new(err.into_error()) as BoxError
            ))),
        }
    }

    /// Sends `req` over a new connection to `authority`.
    async fn send_new(
        self: Arc<Self>,
        req: Request<MeshBody>,
        authority: Authority,
        endpoint: Arc<Endpoint>,
    ) -> Result<Response<Incoming>, BoxError> {
        let (mut send, conn) = self.open(&authority).await?;
        match send.try_send_request(req).await {
            Ok(response) => {
                conn.hand_back(send, endpoint);
                Ok(response)
            }
            Err(err) => Err(Box::new(err.into_error())),
        }
    }

    /// Connects (bounded by the connect timeout), handshakes and spawns the
    /// connection's task.
    async fn open(
        &self,
        authority: &Authority,
    ) -> Result<(SendRequest<MeshBody>, Arc<Conn>), BoxError> {
        self.start_reaper();
        let connect_error = |source: BoxError| {
            Box::new(ConnectError {
                endpoint: authority.to_string(),
                source: Arc::from(source),
            }) as BoxError
        };
        let io = tokio::time::timeout(
            self.config.connect_timeout,
            super::dial(&self.connect, authority),
        )
        .await
        .map_err(|e| connect_error(Box::new(e)))?
        .map_err(connect_error)?;
        let (send, connection) = self
            .builder
            .handshake::<_, MeshBody>(io)
            .await
            .map_err(|e| connect_error(Box::new(e)))?;
        let conn = Arc::new(Conn::default());
        tokio::spawn(drive(connection.with_upgrades(), Arc::clone(&conn)));
        Ok((send, conn))
    }

    /// Starts the idle reaper once (from a runtime: the first connect).
    fn start_reaper(&self) {
        if self.reaper_started.load(Ordering::Relaxed)
            || self.reaper_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let endpoints = Arc::downgrade(&self.endpoints);
        let idle = self.config.idle_timeout;
        tokio::spawn(reap(endpoints, idle));
    }
}

/// Runs a connection; each time it is pending, moves a parked sender that
/// became ready onto its endpoint's stack.
async fn drive<F>(connection: F, conn: Arc<Conn>)
where
    F: Future<Output = hyper::Result<()>>,
{
    let mut connection = std::pin::pin!(connection);
    let result = std::future::poll_fn(|cx| {
        let polled = connection.as_mut().poll(cx);
        if polled.is_pending() {
            conn.push_if_ready();
        }
        polled
    })
    .await;
    conn.parked.lock().take();
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP/1.1 connection ended");
    }
}

/// Every half idle timeout, drops connections idle for longer and forgets
/// unused endpoints, until the pool is gone.
async fn reap(endpoints: Weak<RwLock<Map>>, idle: Duration) {
    let period = (idle / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(endpoints) = endpoints.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut unused = false;
        for endpoint in endpoints.read().values() {
            let mut stack = endpoint.idle.lock();
            stack.retain(|e| !e.send.is_closed());
            let old = stack
                .iter()
                .take_while(|e| now.duration_since(e.since) >= idle)
                .count();
            // Closed outside the lock.
            expired.extend(stack.drain(..old));
            unused |= stack.is_empty();
        }
        drop(expired);
        if unused {
            // An endpoint only the map holds has nothing in flight: a
            // request holds it from checkout to the response head, a parked
            // sender until it is idle.
            endpoints
                .write()
                .retain(|_, e| Arc::strong_count(e) > 1 || !e.idle.lock().is_empty());
        }
    }
}

/// Turns `req`'s absolute URI into origin-form (`/path?query`), as HTTP/1.1
/// sends it, adding `Host` from the URI's authority if the request has none.
/// Returns the authority (the endpoint); `None` leaves `req` unchanged.
fn origin_form(req: &mut Request<MeshBody>) -> Option<Authority> {
    let authority = req.uri().authority()?.clone();
    super::authority_to_host(req, &authority, None);
    *req.uri_mut() = if req.method() == Method::CONNECT {
        Uri::from(authority.clone())
    } else {
        origin_uri(req.uri())
    };
    Some(authority)
}

/// `uri` in origin form: its path and query, `/` without a path.
fn origin_uri(uri: &Uri) -> Uri {
    let pq = uri.path_and_query().cloned();
    Uri::from(pq.unwrap_or_else(|| PathAndQuery::from_static("/")))
}
