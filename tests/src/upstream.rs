//! A test upstream: a real axum server on `127.0.0.1:0` (HTTP/1.1 and
//! HTTP/2 with prior knowledge, via hyper-util's `auto` builder) with failure
//! injection, for tests that drive the mesh client against real sockets.
//!
//! - Every response carries the upstream's label (`name`, or
//!   `name/version`) in the `x-upstream` header and a small JSON body
//!   `{"upstream":"a","version":"v1","method":"GET","path":"/x"}`.
//! - [`Faults`] decide per request, from a seeded RNG: hang (never answer),
//!   fail with a status (e.g. 503, optionally with `Retry-After`), after a
//!   fixed delay. They can be changed while the server runs
//!   ([`Upstream::set_faults`], [`Upstream::recover`]).
//! - Live [`Counters`]: requests seen, answers per status, hung requests,
//!   requests in flight.
//! - [`Upstream::start`] serves on the caller's tokio runtime;
//!   [`Upstream::start_in_thread`] on its own thread and runtime (for
//!   synchronous tests that run a binary against it). Either way the server
//!   stops on drop: the listener closes and open connections are aborted.
//!
//! This is test-harness code: failing loudly (panicking) is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What goes wrong, decided per request in this order: hang, then fail, then
/// (for answered requests) the delay.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Fraction of requests (0.0..=1.0) that never get an answer (the
    /// connection stays open until the client gives up or the server stops).
    pub hang_rate: f64,
    /// Fraction of the other requests answered with `fail_status`.
    pub fail_rate: f64,
    /// The failure status (default 503).
    pub fail_status: u16,
    /// A `Retry-After` value sent with failures (e.g. `"1"`).
    pub retry_after: Option<String>,
    /// Delay before every answer (failures included).
    pub delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            hang_rate: 0.0,
            fail_rate: 0.0,
            fail_status: 503,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

impl Faults {
    /// No faults: every request answered 200 at once.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Fails `rate` of the requests with `status`.
    pub fn failing(rate: f64, status: u16) -> Faults {
        Faults {
            fail_rate: rate,
            fail_status: status,
            ..Faults::default()
        }
    }

    /// Never answers `rate` of the requests.
    pub fn hanging(rate: f64) -> Faults {
        Faults {
            hang_rate: rate,
            ..Faults::default()
        }
    }

    /// Answers every request after `delay`.
    pub fn delayed(delay: Duration) -> Faults {
        Faults {
            delay,
            ..Faults::default()
        }
    }

    /// Adds a `Retry-After` header to failures.
    pub fn with_retry_after(mut self, value: &str) -> Faults {
        self.retry_after = Some(value.to_string());
        self
    }
}

/// How to start an [`Upstream`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Its name, echoed in `x-upstream` and the body.
    pub name: String,
    /// Its version label (echoed as `name/version`).
    pub version: Option<String>,
    /// Initial faults.
    pub faults: Faults,
    /// Seed of the fault RNG (same seed, same request order: same faults).
    pub seed: u64,
    /// Where to listen (default `127.0.0.1:0`; any `127.x.y.z` works on
    /// Linux, e.g. for DNS records with distinct addresses).
    pub bind: SocketAddr,
}

impl Options {
    /// A healthy upstream called `name`, seed 1.
    pub fn new(name: &str) -> Options {
        Options {
            name: name.to_string(),
            version: None,
            faults: Faults::none(),
            seed: 1,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Sets the listen address.
    pub fn bind(mut self, addr: SocketAddr) -> Options {
        self.bind = addr;
        self
    }

    /// Sets the version label.
    pub fn version(mut self, version: &str) -> Options {
        self.version = Some(version.to_string());
        self
    }

    /// Sets the initial faults.
    pub fn faults(mut self, faults: Faults) -> Options {
        self.faults = faults;
        self
    }

    /// Sets the RNG seed.
    pub fn seed(mut self, seed: u64) -> Options {
        self.seed = seed;
        self
    }
}

/// A snapshot of an upstream's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests that reached the handler.
    pub requests: u64,
    /// Answers sent, per status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests chosen to hang.
    pub hung: u64,
    /// Requests in the handler now (hung ones included until dropped).
    pub in_flight: u64,
}

impl Counters {
    /// Answers with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

struct Shared {
    label: String,
    name: String,
    version: Option<String>,
    addr: SocketAddr,
    policy: Mutex<(Faults, SmallRng)>,
    requests: AtomicU64,
    hung: AtomicU64,
    in_flight: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
}

/// A running test upstream; stops on drop.
pub struct Upstream {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts serving on the current tokio runtime.
    pub async fn start(options: Options) -> Upstream {
        Upstream::try_start(options).await.unwrap()
    }

    /// Starts serving on the current tokio runtime, or says why it cannot
    /// listen (e.g. the address is taken).
    pub async fn try_start(options: Options) -> std::io::Result<Upstream> {
        let listener = TcpListener::bind(options.bind).await?;
        let shared = shared(&options, listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(serve(listener, shared.clone(), stopped));
        Ok(Upstream {
            shared,
            stop: Some(stop),
            thread: None,
        })
    }

    /// Starts serving on a thread of its own with its own runtime: usable
    /// from synchronous tests (e.g. while running a binary against it).
    pub fn start_in_thread(options: Options) -> Upstream {
        let (stop, stopped) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("upstream-{}", options.name))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::bind(options.bind).await.unwrap();
                    let shared = shared(&options, listener.local_addr().unwrap());
                    ready_tx.send(shared.clone()).unwrap();
                    serve(listener, shared, stopped).await;
                });
            })
            .unwrap();
        let shared = ready_rx.recv().unwrap();
        Upstream {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Its label: `name` or `name/version` (the `x-upstream` value).
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Replaces the faults (the RNG keeps its state).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.policy.lock().0 = faults;
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.shared.policy.lock().0.clone()
    }

    /// Clears every fault: the upstream is healthy from the next request on.
    pub fn recover(&self) {
        self.set_faults(Faults::none());
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        Counters {
            requests: self.shared.requests.load(Ordering::Relaxed),
            by_status: self.shared.by_status.lock().clone(),
            hung: self.shared.hung.load(Ordering::Relaxed),
            in_flight: self.shared.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("label", &self.shared.label)
            .field("addr", &self.shared.addr)
            .finish()
    }
}

fn shared(options: &Options, addr: SocketAddr) -> Arc<Shared> {
    let label = match &options.version {
        Some(v) => format!("{}/{v}", options.name),
        None => options.name.clone(),
    };
    Arc::new(Shared {
        label,
        name: options.name.clone(),
        version: options.version.clone(),
        addr,
        policy: Mutex::new((
            options.faults.clone(),
            SmallRng::seed_from_u64(options.seed),
        )),
        requests: AtomicU64::new(0),
        hung: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        by_status: Mutex::new(BTreeMap::new()),
    })
}

/// Accepts until `stop` fires (or its sender is dropped); then the
/// connection tasks are aborted with the `JoinSet`.
async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let app = Router::new().fallback(handle).with_state(shared);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                conns.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    conns.shutdown().await;
}

enum Action {
    Hang,
    Answer(StatusCode, Option<String>, Duration),
}

/// Decrements the in-flight gauge when the handler's future ends or is
/// dropped (a client that gave up on a hung request).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    shared.in_flight.fetch_add(1, Ordering::Relaxed);
    let _guard = InFlight(&shared.in_flight);
    let action = {
        let mut policy = shared.policy.lock();
        let (faults, rng) = &mut *policy;
        if faults.hang_rate > 0.0 && rng.random::<f64>() < faults.hang_rate {
            Action::Hang
        } else if faults.fail_rate > 0.0 && rng.random::<f64>() < faults.fail_rate {
            let status =
                StatusCode::from_u16(faults.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Action::Answer(status, faults.retry_after.clone(), faults.delay)
        } else {
            Action::Answer(StatusCode::OK, None, faults.delay)
        }
    };
    let (status, retry_after, delay) = match action {
        Action::Hang => {
            shared.hung.fetch_add(1, Ordering::Relaxed);
            return std::future::pending().await;
        }
        Action::Answer(status, retry_after, delay) => (status, retry_after, delay),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = serde_json::json!({
        "upstream": shared.name,
        "version": shared.version,
        "method": req.method().as_str(),
        "path": req.uri().path(),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&shared.label) {
        headers.insert("x-upstream", v);
    }
    if let Some(ra) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert("retry-after", ra);
    }
    *shared.by_status.lock().entry(status.as_u16()).or_insert(0) += 1;
    response
}

#[cfg(test)]
mod tests;
