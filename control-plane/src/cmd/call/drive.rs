//! The load loop of `meshctl call`: `concurrency` workers share one request
//! counter and send through clones of one tower service.
//!
//! - Closed loop (no `--rate`): each worker sends its next request as soon
//!   as the previous one finished.
//! - Open loop (`--rate R`): request `i` is due at `start + i / R`, whatever
//!   happened to the others; a free worker takes the next index and waits
//!   until it is due. When every worker is busy, due requests wait for one,
//!   and their latency counts from when they were due, not from when they
//!   were sent: a slow upstream shows up in the percentiles instead of
//!   quietly lowering the rate (the "coordinated omission" of closed-loop
//!   load generators).
//!
//! Stopping: after `--requests N` requests, or at the end of `--duration D`
//! (requests in flight then are awaited; requests due but not yet sent are
//! dropped and not counted), or on
//! [`Control::stop`] (first Ctrl-C: in-flight requests finish) or
//! [`Control::abort`] (second Ctrl-C: in-flight requests are dropped and
//! not counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh_tower::BoxError;
use mesh_tower::classify::{is_success, response_outcome};
use mesh_tower::ext::{Attempts, ServedBy};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::stats::{Outcome, Stats, StatusKey};

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Until {
    /// After this many requests.
    Requests(u64),
    /// When the next request would be due after this long.
    Duration(Duration),
}

/// What to send, how much and how fast.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Method, URI and headers of every request (the body is empty).
    pub method: http::Method,
    /// The request URI (`http://service/path`).
    pub uri: http::Uri,
    /// Extra request headers.
    pub headers: http::HeaderMap,
    /// When to stop.
    pub until: Until,
    /// Workers (requests in flight at most), at least 1.
    pub concurrency: usize,
    /// Requests per second (open loop), or `None` (closed loop).
    pub rate: Option<f64>,
}

/// Shared between the workers and whoever watches or stops the run.
#[derive(Debug, Default)]
pub struct Control {
    stopped: AtomicBool,
    aborted: AtomicBool,
    wake: Notify,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Control {
    /// A fresh control.
    pub fn new() -> Control {
        Control::default()
    }

    /// Sends no more requests; those in flight finish.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    /// Drops the requests in flight too.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
        self.stop();
    }

    /// Requests finished so far, and how many of them failed.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// Runs `plan` through `service`; returns the merged counts and the run's
/// wall time.
pub async fn drive<S, B>(service: S, plan: Arc<Plan>, control: Arc<Control>) -> (Stats, Duration)
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    let mut tallies = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency.max(1) {
        let tally = Arc::new(Mutex::new(Stats::default()));
        tallies.push(tally.clone());
        workers.spawn(worker(
            service.clone(),
            plan.clone(),
            control.clone(),
            next.clone(),
            start,
            tally,
        ));
    }
    loop {
        // Registered before the check: an abort in between still wakes us.
        let wake = control.wake.notified();
        if control.aborted.load(Ordering::Relaxed) {
            workers.abort_all();
            while workers.join_next().await.is_some() {}
            break;
        }
        tokio::select! {
            joined = workers.join_next() => if joined.is_none() { break },
            _ = wake => {}
        }
    }
    let elapsed = start.elapsed();
    let mut total = Stats::default();
    for tally in &tallies {
        total.merge(&tally.lock());
    }
    (total, elapsed)
}

async fn worker<S, B>(
    mut service: S,
    plan: Arc<Plan>,
    control: Arc<Control>,
    next: Arc<AtomicU64>,
    start: Instant,
    tally: Arc<Mutex<Stats>>,
) where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let end = match plan.until {
        Until::Duration(d) => Some(start + d),
        Until::Requests(_) => None,
    };
    while !control.is_stopped() {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if let Until::Requests(n) = plan.until
            && i >= n
        {
            break;
        }
        let due = match plan.rate {
            Some(rate) => start + Duration::from_secs_f64(i as f64 / rate),
            None => Instant::now(),
        };
        if end.is_some_and(|end| due >= end) {
            break;
        }
        if plan.rate.is_some() {
            let wake = control.wake.notified();
            if control.is_stopped() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = wake => {}
            }
            if control.is_stopped() {
                break;
            }
        }
        // A request due in time but not started by the end (every worker
        // was busy) is not sent: the run lasts the duration.
        if end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        let outcome = one(&mut service, &plan).await;
        tally.lock().record(outcome, due.elapsed());
        control.done.fetch_add(1, Ordering::Relaxed);
        if !outcome.success {
            control.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one request and reads its body to the end.
async fn one<S, B>(service: &mut S, plan: &Plan) -> Outcome
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut request = http::Request::new(Full::new(Bytes::new()));
    *request.method_mut() = plan.method.clone();
    *request.uri_mut() = plan.uri.clone();
    *request.headers_mut() = plan.headers.clone();
    let result = match service.ready().await {
        Ok(svc) => svc.call(request).await,
        Err(e) => Err(e),
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => return failure(&e, None, None),
    };
    let served_by = response.extensions().get::<ServedBy>().map(|s| s.0);
    let attempts = response.extensions().get::<Attempts>().map(|a| a.0);
    let status = StatusKey::Http(response.status().as_u16());
    let success = is_success(&response_outcome(&response));
    let mut body = std::pin::pin!(response.into_body());
    while let Some(frame) = body.frame().await {
        if let Err(e) = frame {
            return failure(&e.into(), served_by, attempts);
        }
    }
    Outcome {
        status,
        success,
        served_by,
        attempts,
    }
}

fn failure(
    err: &BoxError,
    served_by: Option<std::net::SocketAddr>,
    attempts: Option<u32>,
) -> Outcome {
    let err: &(dyn std::error::Error + 'static) = err.as_ref();
    Outcome {
        status: StatusKey::Error(mesh_tower::error::kind(err).as_str()),
        success: false,
        served_by,
        attempts,
    }
}

#[cfg(test)]
mod tests;
