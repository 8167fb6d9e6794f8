//! HTTP/2 connection sets: one multiplexed connection per endpoint, more
//! when the server's stream limit is reached.
//!
//! hyper-util's legacy pool keeps ONE HTTP/2 connection per host; requests
//! beyond the server's `SETTINGS_MAX_CONCURRENT_STREAMS` then queue inside
//! h2. Like Envoy, [`H2Pool`] instead keeps a *set* of hyper
//! `client::conn::http2` connections per authority (endpoint address; a TLS
//! connector verifies one identity, so the identity is part of the pool):
//!
//! - each connection counts its in-flight requests (from dispatch until the
//!   response head: a streaming response body is not counted) and has a
//!   limit: the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, read off the
//!   wire ([`sniff`](super::sniff)), capped by
//!   [`ConnectConfig::http2_max_streams_per_connection`](super::ConnectConfig);
//! - a request takes the least-loaded connection under its limit; when all
//!   are full it opens a new one. One connection is opened at a time per
//!   authority: concurrent requests wait for it instead of stampeding, and
//!   share its connect error if it fails;
//! - a request the server refuses with `REFUSED_STREAM` (its limit went
//!   down), or that a closing connection never sent, is sent once more on
//!   another connection. A refused one needs a replayable body, and a copy
//!   is only kept while more streams are open than the server has been seen
//!   to take at once on that connection: below that mark a refusal is an
//!   error (the retry policy may still send it again), and the copy a
//!   request head costs is not paid on every request;
//! - closed connections (GOAWAY, errors, EOF) leave the set; a connection
//!   idle for the pool idle timeout is dropped from it and closes once its
//!   last response body is done. A set left with no connection (and an
//!   endpoint that could not be reached) leaves the pool's map, so endpoints
//!   removed by discovery cost nothing once their connections are gone.
//!
//! The hot path takes one short `parking_lot` lock per request on the
//! authority's set (never across an await) and a read lock on the map of
//! sets. What hyper spawns for a connection (its I/O, and per request the
//! wait for the response and the body's sending) runs in the connection's
//! own task, not in tasks of its own ([`h2exec`](super::h2exec)).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::TokioTimer;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::h2exec::{ConnExecutor, Driver};
use super::sniff::{Learned, Sniff};
use super::{BoxFuture as SendFuture, ConnectError, KnownHost};
use crate::body::MeshBody;
use crate::error::BoxError;

/// What the pool needs from a [`ConnectConfig`](super::ConnectConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolConfig {
    pub(crate) max_streams: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
}

/// Per-authority sets of HTTP/2 connections made by `C` (TCP or TLS).
pub(crate) struct H2Pool<C> {
    connect: C,
    config: PoolConfig,
    sets: Arc<Sets>,
    /// The last `Host` value turned into an `:authority`, and that
    /// authority (a client sends to one service: parsed once, not per
    /// request).
    last_host: Mutex<Option<(HeaderValue, Authority)>>,
}

/// The connection sets by authority. A set whose last connection closed or
/// idled out leaves the map (endpoints come and go with discovery).
/// Keyed by the authority's text (see the HTTP/1.1 pool's map).
type Sets = RwLock<HashMap<Box<str>, Arc<ConnSet>, foldhash::fast::RandomState>>;

impl<C> std::fmt::Debug for H2Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("config", &self.config)
            .field("authorities", &self.sets.read().len())
            .finish_non_exhaustive()
    }
}

/// The connections to one authority.
#[derive(Default)]
struct ConnSet {
    state: Mutex<SetState>,
    /// Notified when an opening attempt ends.
    opened: Notify,
}

#[derive(Default)]
struct SetState {
    conns: Vec<Arc<Conn>>,
    opening: bool,
    /// Counts failed opening attempts; the last one's error.
    failures: u64,
    last_error: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// One HTTP/2 connection.
struct Conn {
    send: SendRequest<MeshBody>,
    in_flight: AtomicUsize,
    /// Our cap, lowered when the server refuses a stream.
    limit: AtomicUsize,
    /// The most streams that were open together when one of them got its
    /// response: the server has taken that many at once.
    proven: AtomicUsize,
    learned: Arc<Learned>,
    idle_since: Mutex<Instant>,
    /// HPACK priming (see [`prime`]): which names the connection's tables
    /// have been given, and how many requests were looked at.
    primed: AtomicU32,
}

impl Conn {
    fn limit(&self) -> usize {
        let ours = self.limit.load(Ordering::Relaxed);
        self.learned
            .max_streams()
            .map_or(ours, |theirs| ours.min(theirs))
    }
}

/// The mesh's per-request headers: `traceparent` and the `grpc-timeout`
/// left of a deadline, with their [`PRIMED`] bits.
const PER_REQUEST: [(http::HeaderName, u32); 2] = [
    (crate::trace::TRACEPARENT, 1),
    (crate::timeout::grpc::GRPC_TIMEOUT_NAME, 2),
];
/// Every name of [`PER_REQUEST`] is in the connection's tables.
const PRIMED: u32 = 3;
/// Requests are counted above the primed bits.
const PRIME_COUNT_SHIFT: u32 = 8;
/// Requests looked at before giving up (a client that sends no trace or
/// deadline headers stops paying the lookups).
const PRIME_TRIES: u32 = 32;

/// Lets the first request on a connection that carries one of the mesh's
/// per-request headers send it indexed.
///
/// Their values are unique per request, so they are marked sensitive:
/// HPACK sends them as never-indexed literals instead of adding each to
/// both ends' dynamic tables (evicting what does repeat). But a never-
/// indexed literal whose *name* is not in a table spells the name out too,
/// Huffman-coded by the sender and decoded, then parsed and validated, by
/// the receiver, on every request: `traceparent` is in no static table.
/// Sent indexed once, the name enters both tables, and every later value
/// refers to it by index (the value is still never indexed). The entry is
/// evicted only once 4 KB of newer entries have been added, which the
/// mesh's own headers no longer do.
fn prime(req: &mut Request<MeshBody>, state: &AtomicU32, primed: u32) {
    let mut found = 0;
    for (name, bit) in &PER_REQUEST {
        if primed & bit != 0 {
            continue;
        }
        if let Some(value) = req.headers_mut().get_mut(name) {
            value.set_sensitive(false);
            found |= bit;
        }
    }
    if found != 0 {
        state.fetch_or(found, Ordering::Relaxed);
    }
    state.fetch_add(1 << PRIME_COUNT_SHIFT, Ordering::Relaxed);
}

/// A request's claim on a connection's stream; released on drop.
struct Claim {
    conn: Arc<Conn>,
    /// In-flight requests on the connection before this one.
    before: usize,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.conn.idle_since.lock() = Instant::now();
        }
    }
}

impl SetState {
    /// No connection, and none being opened.
    fn is_unused(&self) -> bool {
        self.conns.is_empty() && !self.opening
    }

    /// Claims a stream on the least-loaded open connection under its limit.
    fn pick(&mut self) -> Option<Claim> {
        self.conns.retain(|c| !c.send.is_closed());
        let best = self
            .conns
            .iter()
            .map(|c| (c, c.in_flight.load(Ordering::Acquire)))
            .filter(|(c, n)| *n < c.limit())
            .min_by_key(|(_, n)| *n)?;
        let (conn, before) = (Arc::clone(best.0), best.1);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Claim { conn, before })
    }
}

impl<C> H2Pool<C>
where
    C: super::Transport,
{
    pub(crate) fn new(connect: C, config: PoolConfig) -> Self {
        Self {
            connect,
            config,
            sets: Arc::new(RwLock::new(HashMap::default())),
            last_host: Mutex::new(None),
        }
    }

    /// Gives `req` back its own authority: the balancer pointed its URI at
    /// the endpoint and moved the original authority (the service's name)
    /// to `Host`. Over HTTP/2 the authority travels as `:authority`, taken
    /// from the URI, and a `Host` must not differ from it (RFC 9113 section
    /// 8.3.1): the `Host` value becomes the URI's authority again and the
    /// header goes. A `Host` that is no valid authority is dropped, leaving
    /// the endpoint's. Returns the endpoint's authority (the set's key).
    fn restore_authority(&self, req: &mut Request<MeshBody>) -> Option<Authority> {
        let endpoint = req.uri().authority()?.clone();
        let Some(host) = req.headers_mut().remove(HOST) else {
            return Some(endpoint);
        };
        let authority = {
            let mut last = self.last_host.lock();
            match &*last {
                Some((value, authority)) if *value == host => Some(authority.clone()),
                _ => {
                    let parsed = Authority::try_from(host.as_bytes()).ok();
                    if let Some(authority) = &parsed {
                        *last = Some((host, authority.clone()));
                    }
                    parsed
                }
            }
        };
        if let Some(authority) = authority {
            let mut parts = std::mem::take(req.uri_mut()).into_parts();
            parts.authority = Some(authority);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
        Some(endpoint)
    }

    /// How many authorities have a connection set (tests).
    #[cfg(test)]
    pub(crate) fn authorities(&self) -> usize {
        self.sets.read().len()
    }

    fn set(&self, authority: &Authority) -> Arc<ConnSet> {
        if let Some(set) = self.sets.read().get(authority.as_str()) {
            return Arc::clone(set);
        }
        let key = Box::from(authority.as_str());
        Arc::clone(self.sets.write().entry(key).or_default())
    }

    /// Sends `req` (whose URI names the endpoint) on the authority's set.
    ///
    /// With a stream free on an open connection, the request is handed to
    /// it here, synchronously, and the future only waits for the response:
    /// it stays small (opening a connection, whose future is large, is
    /// boxed apart and only when needed).
    pub(crate) fn send(self: &Arc<Self>, mut req: Request<MeshBody>) -> SendFuture {
        let Some(authority) = self.restore_authority(&mut req) else {
            let err: BoxError = Box::new(NoAuthority(req.uri().clone()));
            return Box::pin(std::future::ready(Err(err)));
        };
        self.send_at(req, authority)
    }

    /// Sends `req` to `endpoint` as [`send`](Self::send) would once the
    /// balancer had pointed it there: a request with its own `http`
    /// authority and path and no `Host` (a mesh client's request naming its
    /// service) goes as it is; any other takes the long way.
    pub(crate) fn send_to(
        self: &Arc<Self>,
        mut req: Request<MeshBody>,
        endpoint: &Authority,
        host: &KnownHost,
    ) -> SendFuture {
        let uri = req.uri();
        if uri.scheme() == Some(&Scheme::HTTP)
            && uri.authority().is_some()
            && uri.path_and_query().is_some()
            && !req.headers().contains_key(HOST)
        {
            return self.send_at(req, endpoint.clone());
        }
        super::set_endpoint_known(&mut req, endpoint, host);
        self.send(req)
    }

    /// Sends `req`, whose URI is as it goes on the wire, on `authority`'s
    /// set.
    fn send_at(self: &Arc<Self>, req: Request<MeshBody>, authority: Authority) -> SendFuture {
        let set = self.set(&authority);
        let pool = Arc::clone(self);
        let claimed = set.state.lock().pick();
        let Some(claim) = claimed else {
            return Box::pin(async move {
                let claim = pool.claim(&set, &authority).await?;
                pool.send_on(claim, req, set, authority).await
            });
        };
        Box::pin(pool.send_on(claim, req, set, authority))
    }

    /// Sends `req` on the stream `claim`ed for it; once more on another
    /// stream if it was not processed.
    fn send_on(
        self: Arc<Self>,
        claim: Claim,
        req: Request<MeshBody>,
        set: Arc<ConnSet>,
        authority: Authority,
    ) -> impl Future<Output = Result<Response<Incoming>, BoxError>> + Send + 'static {
        // A stream can only be refused for the server's limit when more are
        // open than the server has been seen to take at once: keep a copy
        // for a retry then, if the body replays. (Below that, a refusal
        // fails the request; the retry policy may send it again.)
        let proven = claim.conn.proven.load(Ordering::Relaxed);
        let (mut req, copy) = if claim.before >= proven.max(1) && req.body().is_buffered() {
            let (parts, body) = req.into_parts();
            let copy = body
                .try_clone()
                .map(|b| Request::from_parts(parts.clone(), b));
            (Request::from_parts(parts, body), copy)
        } else {
            (req, None)
        };
        let primed = claim.conn.primed.load(Ordering::Relaxed);
        if primed & PRIMED != PRIMED && primed >> PRIME_COUNT_SHIFT < PRIME_TRIES {
            prime(&mut req, &claim.conn.primed, primed);
        }
        // Handed to the connection now; the future waits for the answer.
        let sent = claim.conn.send.clone().try_send_request(req);
        async move {
            let retry = match sent.await {
                Ok(response) => {
                    claim
                        .conn
                        .proven
                        .fetch_max(claim.before.saturating_add(1), Ordering::Relaxed);
                    return Ok(response);
                }
                Err(mut err) => match (err.take_message(), copy) {
                    // Never sent (the connection was closing): send it elsewhere.
                    (Some(unsent), _) => unsent,
                    // Refused, so not processed: the server's limit went down.
                    (None, Some(copy)) if is_refused(err.error()) => {
                        let lower = claim
                            .conn
                            .in_flight
                            .load(Ordering::Acquire)
                            .saturating_sub(1);
                        claim.conn.limit.store(lower.max(1), Ordering::Relaxed);
                        copy
                    }
                    _ => return Err(Box::new(err.into_error()) as BoxError),
                },
            };
            drop(claim);
            // Opening a connection is a large future: boxed, off the
            // common path.
            let resend: SendFuture = Box::pin(async move {
                let claim = self.claim(&set, &authority).await?;
                let mut send = claim.conn.send.clone();
                send.send_request(retry)
                    .await
                    .map_err(|e| Box::new(e) as BoxError)
            });
            resend.await
        }
    }

    /// Claims a stream on `set`, opening a connection if all are full.
    async fn claim(&self, set: &Arc<ConnSet>, authority: &Authority) -> Result<Claim, BoxError> {
        let mut seen_failures = None;
        loop {
            let wait = {
                let mut state = set.state.lock();
                if let Some(claim) = state.pick() {
                    return Ok(claim);
                }
                if let Some(seen) = seen_failures
                    && state.failures != seen
                    && let Some(error) = &state.last_error
                {
                    // The connection we waited for failed: so do we.
                    return Err(Box::new(ConnectError {
                        endpoint: authority.to_string(),
                        source: Arc::clone(error),
                    }));
                }
                if state.opening {
                    seen_failures = Some(state.failures);
                    Some(set.opened.notified())
                } else {
                    state.opening = true;
                    None
                }
            };
            if let Some(wait) = wait {
                wait.await;
                continue;
            }
            // Reset `opening` even if this request is dropped mid-connect.
            let mut opening = Opening { set, done: false };
            let opened = self.open(set, authority).await;
            opening.done = true;
            let mut state = set.state.lock();
            state.opening = false;
            // The opener takes a stream on its new connection directly: if
            // the connection is already closed, the request fails on it
            // rather than opening connections in a loop.
            let result = match opened {
                Ok(conn) => {
                    conn.in_flight.fetch_add(1, Ordering::AcqRel);
                    state.conns.push(Arc::clone(&conn));
                    Ok(Claim { conn, before: 0 })
                }
                Err(error) => {
                    let error: Arc<dyn std::error::Error + Send + Sync> = Arc::from(error);
                    state.failures = state.failures.wrapping_add(1);
                    state.last_error = Some(Arc::clone(&error));
                    Err(ConnectError {
                        endpoint: authority.to_string(),
                        source: error,
                    })
                }
            };
            let unused = state.is_unused();
            drop(state);
            set.opened.notify_waiters();
            if unused {
                // Failed with nothing open: an unreachable endpoint keeps no
                // entry (waiters hold the set and see its error).
                Owner {
                    sets: Arc::downgrade(&self.sets),
                    authority: authority.clone(),
                    set: Arc::downgrade(set),
                }
                .forget(set);
            }
            return result.map_err(|e| Box::new(e) as BoxError);
        }
    }

    /// Connects, handshakes, waits for the server's first SETTINGS (bounded)
    /// and spawns the connection's task.
    async fn open(&self, set: &Arc<ConnSet>, authority: &Authority) -> Result<Arc<Conn>, BoxError> {
        let io = super::dial(&self.connect, authority).await?;
        let learned = Arc::new(Learned::default());
        let io = Sniff::new(io, Arc::clone(&learned));
        // Its own executor: what hyper spawns for this connection runs in
        // the connection's task (see `h2exec`).
        let exec = ConnExecutor::default();
        let mut builder = Builder::new(exec.clone());
        builder.timer(TokioTimer::new());
        let handshake = builder.handshake::<_, MeshBody>(io);
        let (send, connection) = tokio::time::timeout(self.config.handshake_timeout, handshake)
            .await
            .map_err(|e| Box::new(e) as BoxError)??;
        let conn = Arc::new(Conn {
            send,
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(self.config.max_streams.max(1)),
            proven: AtomicUsize::new(0),
            learned: Arc::clone(&learned),
            idle_since: Mutex::new(Instant::now()),
            primed: AtomicU32::new(0),
        });
        tokio::spawn(drive(
            connection,
            Driver::new(&exec),
            Owner {
                sets: Arc::downgrade(&self.sets),
                authority: authority.clone(),
                set: Arc::downgrade(set),
            },
            Arc::downgrade(&conn),
            self.config.idle_timeout,
        ));
        // The server's preface arrives right away; a server that is slow
        // to send it gets the configured limit until then.
        let _ = tokio::time::timeout(self.config.handshake_timeout, learned.wait()).await;
        Ok(conn)
    }
}

/// Marks the end of an opening attempt that was dropped before it ended,
/// so that waiting requests do not wait forever.
struct Opening<'a> {
    set: &'a ConnSet,
    done: bool,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.set.state.lock().opening = false;
            self.set.opened.notify_waiters();
        }
    }
}

/// Where a connection belongs: its set, and the pool's map holding the set.
struct Owner {
    sets: Weak<Sets>,
    authority: Authority,
    set: Weak<ConnSet>,
}

impl Owner {
    /// Removes `conn` from its set, and the set from the map once empty.
    fn remove(&self, conn: &Arc<Conn>) {
        let Some(set) = self.set.upgrade() else {
            return;
        };
        let empty = {
            let mut state = set.state.lock();
            state.conns.retain(|c| !Arc::ptr_eq(c, conn));
            state.is_unused()
        };
        if empty {
            self.forget(&set);
        }
    }

    /// Removes `set` from the map if it still has no connection and none is
    /// being opened.
    fn forget(&self, set: &Arc<ConnSet>) {
        let Some(sets) = self.sets.upgrade() else {
            return;
        };
        // Lock order: map, then set (requests never hold a set's lock while
        // taking the map's). Re-checked: a request may have opened one since.
        let mut map = sets.write();
        if set.state.lock().is_unused()
            && map
                .get(self.authority.as_str())
                .is_some_and(|current| Arc::ptr_eq(current, set))
        {
            map.remove(self.authority.as_str());
        }
    }
}

/// Runs a connection: its dispatcher and the futures hyper spawned for it
/// (its I/O, and per request the response and the body); drops it from
/// its set when the dispatcher ends or has been idle for `idle`. Ends once
/// the futures have too (responses still streaming their bodies). Holding
/// only weak references, it lets the connection close once the set and
/// the last request let go of it.
async fn drive<F>(connection: F, mut driver: Driver, owner: Owner, conn: Weak<Conn>, idle: Duration)
where
    F: std::future::Future,
{
    // Dropped as soon as it ends: the connection's I/O future shuts the
    // connection down once nothing that could send on it is left.
    let mut connection = std::pin::pin!(Some(connection));
    let mut check = std::pin::pin!(tokio::time::sleep(idle));
    let mut reaped = false;
    std::future::poll_fn(|cx| {
        driver.begin(cx);
        let dispatching = connection.is_some();
        while dispatching && !reaped && check.as_mut().poll(cx).is_ready() {
            match reap_if_idle(&owner, &conn, idle) {
                Ok(()) => reaped = true,
                Err(next) => check.as_mut().reset(next),
            }
        }
        let ended = (connection.as_mut().as_pin_mut()).is_some_and(|c| c.poll(cx).is_ready());
        if ended {
            connection.set(None);
            if let Some(conn) = conn.upgrade() {
                // Ended before its first frame: stop waiting for it.
                conn.learned.finish(None);
                owner.remove(&conn);
            }
        }
        match driver.run(cx) {
            Poll::Ready(()) if connection.is_none() => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
}

/// Removes `conn` from its set if idle for `idle`; else the next check time.
fn reap_if_idle(owner: &Owner, conn: &Weak<Conn>, idle: Duration) -> Result<(), Instant> {
    let (Some(set), Some(conn)) = (owner.set.upgrade(), conn.upgrade()) else {
        return Ok(());
    };
    let empty = {
        // Checked and removed under the set's lock: no request claims it
        // meanwhile.
        let mut state = set.state.lock();
        let since = *conn.idle_since.lock();
        if conn.in_flight.load(Ordering::Acquire) > 0 {
            return Err(Instant::now() + idle);
        }
        if since.elapsed() < idle {
            return Err(since + idle);
        }
        state.conns.retain(|c| !Arc::ptr_eq(c, &conn));
        state.is_unused()
    };
    if empty {
        owner.forget(&set);
    }
    Ok(())
}

/// Whether the server refused the stream (`REFUSED_STREAM`): it did not
/// process the request.
fn is_refused(err: &hyper::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        cur = e.source();
    }
    false
}

/// A request URI without an authority reached the connector.
#[derive(Debug, thiserror::Error)]
#[error("request URI `{0}` names no endpoint (no authority)")]
pub struct NoAuthority(pub Uri);
