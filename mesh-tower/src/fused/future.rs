//! [`FusedFuture`]: the fused client's one state machine.
//!
//! ```text
//!   Buffering ──> Attempt ──(retry)──> Backoff ──> Ready ──> Attempt ...
//!                   │                   drain the   inner
//!                   └──(done)──> the    failed body ready
//!                       response
//! ```
//!
//! One timer races every state: the earlier of the attempt's per-try
//! deadline and the call's deadline while an attempt is in flight, the
//! backoff's end (never past the call's deadline) while backing off, the
//! call's deadline otherwise.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower::Service;

use crate::balance::{AttemptPlan, ResponseFuture as AttemptFuture};
use crate::body::MeshBody;
use crate::error::{BodyError, BoxError, Elapsed, EndpointError, TimeoutKind};
use crate::ext::{AttemptEndpoint, RoutePolicy};
use crate::metrics::Recorder;
use crate::timeout::attempt::Picked;
use crate::timeout::{cover, grpc, per_try_after};

use super::Upstream;

/// Everything a call carries between its steps (the layers' extensions).
pub(super) struct Call {
    /// The client's pool and retry settings (one `Arc` per call).
    pub(super) shared: Arc<super::Shared>,
    pub(super) route: Option<Arc<RoutePolicy>>,
    pub(super) subset: Option<usize>,
    /// The route's per-try timeout.
    pub(super) per_try: Option<Duration>,
    /// The call timer's instant, if the call has one.
    pub(super) call_at: Option<Instant>,
    /// The call timeout's length (for its `Elapsed`).
    pub(super) call_after: Duration,
    /// The deadline the attempts plan with: the call timer's, else a
    /// caller's `Deadline`.
    pub(super) deadline: Option<Instant>,
    /// Endpoints of failed attempts.
    pub(super) tried: Vec<SocketAddr>,
    /// Attempts sent so far.
    pub(super) attempts: u32,
    pub(super) attempt: AttemptState,
    /// The trace headers each attempt carries (none when the caller set
    /// its own `traceparent` or tracing is off).
    pub(super) trace: Option<crate::trace::Outgoing>,
    /// The caller's attempt observer given with the call (else one in the
    /// request's extensions is used).
    pub(super) observer: Option<crate::balance::OnAttemptEnd>,
}

/// The attempt in flight.
#[derive(Debug, Default)]
pub(super) struct AttemptState {
    per_try_at: Option<Instant>,
    per_try_after: Duration,
    picked: Picked,
}

/// A request that may be retried: a service of its own, the first
/// attempt's head (until it is sent), what later ones are rebuilt from,
/// and the buffered body.
pub(super) struct Retrying<S> {
    pub(super) service: S,
    pub(super) first: Option<http::request::Parts>,
    pub(super) kept: Kept,
    pub(super) body: MeshBody,
}

/// What a retry's request is rebuilt from: the request's head as the
/// caller gave it, its header fields as a list. The first attempt is sent
/// with the caller's own head; this copy costs one allocation and no
/// hashing (a `HeaderMap` copy costs two, and rebuilding one hashes every
/// name), and the map is rebuilt only when a retry happens.
pub(super) struct Kept {
    pub(super) method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    extensions: http::Extensions,
}

impl Kept {
    pub(super) fn of(parts: &http::request::Parts) -> Kept {
        Kept {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: (parts.headers.iter())
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            extensions: parts.extensions.clone(),
        }
    }

    /// A fresh request of the kept head with `body`.
    fn rebuild(&self, body: MeshBody) -> Request<MeshBody> {
        let head = crate::retry::Head {
            method: &self.method,
            uri: &self.uri,
            version: self.version,
            extensions: &self.extensions,
        };
        let fields = self.headers.iter().map(|(name, value)| (name, value));
        crate::retry::rebuild(head, self.headers.len(), fields, body)
    }
}

impl<S> Retrying<S> {
    /// The next attempt's request: the caller's own head the first time,
    /// a rebuilt copy after that.
    pub(super) fn request(&mut self) -> Request<MeshBody> {
        let body = self.body.try_clone().unwrap_or_default();
        match self.first.take() {
            Some(parts) => Request::from_parts(parts, body),
            None => self.kept.rebuild(body),
        }
    }
}

impl Call {
    /// Starts an attempt of `req` through `inner` at `now`: the per-try
    /// deadline (never past the call's), `grpc-timeout`, the pick.
    pub(super) fn start<S, RB>(
        &mut self,
        inner: &mut S,
        mut req: Request<MeshBody>,
        now: Instant,
    ) -> AttemptFuture<S::Future, RB>
    where
        S: Upstream<RB>,
        RB: Send + 'static,
    {
        if let Some(trace) = &self.trace {
            trace.set(req.headers_mut());
        }
        let (per_try_at, per_try_after) = match self.per_try {
            Some(length) => {
                let after = per_try_after(length, self.deadline, now);
                let at = now.checked_add(after);
                if at.is_some() {
                    grpc::refresh(&mut req, Some(after));
                }
                (at, after)
            }
            None => {
                let left = self.deadline.map(|d| d.saturating_duration_since(now));
                grpc::refresh(&mut req, left);
                (None, Duration::ZERO)
            }
        };
        let plan = AttemptPlan {
            subset: self.subset,
            tried: &self.tried,
            timeout_at: crate::balance::attempt_timeout(self.per_try, self.deadline, now),
            now,
            observer: self.observer.as_ref(),
        };
        let mut cell = None;
        let (future, endpoint) =
            crate::balance::start(&self.shared.pool, inner, req, &plan, || {
                let later = AttemptEndpoint::new();
                cell = Some(later.clone());
                Some(later)
            });
        let picked = match (endpoint, cell) {
            (Some(endpoint), _) => Picked::Endpoint(endpoint),
            (None, Some(cell)) => Picked::Later(cell),
            (None, None) => Picked::Unknown,
        };
        self.attempt = AttemptState {
            per_try_at,
            per_try_after,
            picked,
        };
        future
    }

    /// The retry policy: the route's, else the client's default.
    pub(super) fn policy(&self) -> Option<&mesh_core::retry::RetryPolicy> {
        match &self.route {
            Some(route) => route.retry.as_ref(),
            None => self.shared.retry.default_policy.as_ref(),
        }
    }

    fn call_elapsed(&self) -> BoxError {
        Box::new(Elapsed {
            kind: TimeoutKind::Call,
            after: self.call_after,
        })
    }

    /// The attempt's timer fired: `Elapsed { PerTry }`, naming the endpoint
    /// when known.
    fn per_try_elapsed(&self) -> BoxError {
        let err: BoxError = Box::new(Elapsed {
            kind: TimeoutKind::PerTry,
            after: self.attempt.per_try_after,
        });
        match self.attempt.picked.get() {
            Some(endpoint) => Box::new(EndpointError {
                endpoint,
                source: err,
            }),
            None => err,
        }
    }
}

pin_project! {
    /// The response future of [`FusedClient`](super::FusedClient).
    pub struct FusedFuture<S, RB>
    where
        S: Service<Request<MeshBody>>,
    {
        #[pin]
        state: State<S::Future, RB>,
        #[pin]
        timer: Option<Sleep>,
        recorder: Recorder,
        // `None`: failed before routing (no route).
        call: Option<Call>,
        // `None`: one attempt, nothing kept for a retry.
        again: Option<Retrying<S>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        // Failed before any attempt.
        Failed { error: Option<BoxError> },
        // Collecting a small streaming body so it can be replayed.
        Buffering {
            #[pin]
            collect: Collect<Limited<MeshBody>>,
        },
        // An attempt is in flight.
        Attempt {
            #[pin]
            future: AttemptFuture<F, RB>,
        },
        // Backing off until `until`; meanwhile the failed body is drained.
        Backoff {
            #[pin]
            drain: Option<RB>,
            drained: usize,
            until: Instant,
        },
        // Waiting for the service to be ready for the next attempt.
        Ready,
        // Completed.
        Done,
    }
}

impl<S, RB> FusedFuture<S, RB>
where
    S: Service<Request<MeshBody>>,
{
    pub(super) fn failed(recorder: Recorder, error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            timer: None,
            recorder,
            call: None,
            again: None,
        }
    }

    pub(super) fn attempt(
        recorder: Recorder,
        call: Call,
        again: Option<Retrying<S>>,
        future: AttemptFuture<S::Future, RB>,
    ) -> Self {
        Self {
            state: State::Attempt { future },
            timer: None,
            recorder,
            call: Some(call),
            again,
        }
    }

    pub(super) fn buffering(
        recorder: Recorder,
        call: Call,
        again: Retrying<S>,
        body: MeshBody,
    ) -> Self {
        let max = call.shared.retry.max_buffer;
        Self {
            state: State::Buffering {
                collect: Limited::new(body, max).collect(),
            },
            timer: None,
            recorder,
            call: Some(call),
            again: Some(again),
        }
    }
}

impl<S, RB> std::fmt::Debug for FusedFuture<S, RB>
where
    S: Service<Request<MeshBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedFuture").finish_non_exhaustive()
    }
}

/// Arms the one timer at `at` (moving it if armed elsewhere) and polls it:
/// whether it has fired.
fn fired(mut timer: Pin<&mut Option<Sleep>>, at: Option<Instant>, cx: &mut Context<'_>) -> bool {
    let Some(at) = at else {
        return false;
    };
    match timer.as_mut().as_pin_mut() {
        Some(sleep) if sleep.deadline() == at => {}
        Some(sleep) => sleep.reset(at),
        None => timer.set(Some(sleep_until(at))),
    }
    let Some(sleep) = timer.as_pin_mut() else {
        return false;
    };
    if sleep.poll(cx).is_ready() {
        return true;
    }
    // An outer call timeout needs no timer while this one is armed.
    cover::report(at);
    false
}

pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn gone() -> BoxError {
    "fused client future polled after completion".into()
}

impl<S, RB> Future for FusedFuture<S, RB>
where
    S: Upstream<RB>,
    RB: http_body::Body + Send + 'static,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = loop {
            let Some(call) = this.call.as_mut() else {
                break match this.state.as_mut().project() {
                    StateProj::Failed { error } => Err(error.take().unwrap_or_else(gone)),
                    _ => Err(gone()),
                };
            };
            match this.state.as_mut().project() {
                StateProj::Failed { error } => break Err(error.take().unwrap_or_else(gone)),
                StateProj::Done => return Poll::Ready(Err(gone())),
                StateProj::Buffering { collect } => {
                    let collected = match collect.poll(cx) {
                        Poll::Ready(collected) => collected,
                        Poll::Pending if fired(this.timer.as_mut(), call.call_at, cx) => {
                            break Err(call.call_elapsed());
                        }
                        Poll::Pending => return Poll::Pending,
                    };
                    let bytes: Bytes = match collected {
                        Ok(c) => c.to_bytes(),
                        Err(e) => break Err(Box::new(BodyError(e))),
                    };
                    let Some(again) = this.again.as_mut() else {
                        break Err(gone());
                    };
                    again.body = MeshBody::full(bytes);
                    // The service was made ready by the client's poll_ready.
                    let req = again.request();
                    let future = call.start(&mut again.service, req, Instant::now());
                    this.state.set(State::Attempt { future });
                }
                StateProj::Attempt { future } => {
                    let result = match future.poll(cx) {
                        Poll::Ready(result) => result,
                        Poll::Pending => {
                            let at = earliest(call.attempt.per_try_at, call.call_at);
                            if !fired(this.timer.as_mut(), at, cx) {
                                return Poll::Pending;
                            }
                            let now = Instant::now();
                            if call.attempt.per_try_at.is_none_or(|at| now < at) {
                                break Err(call.call_elapsed());
                            }
                            // The attempt is dropped (and counted as a
                            // timeout of its endpoint).
                            this.state.set(State::Done);
                            Err(call.per_try_elapsed())
                        }
                    };
                    let retry = match this.again.as_ref() {
                        Some(again) => crate::retry::decide(
                            &call.shared.retry,
                            call.policy(),
                            &again.kept.method,
                            call.attempts,
                            call.deadline,
                            &result,
                        ),
                        None => None,
                    };
                    let Some((delay, endpoint)) = retry else {
                        break crate::retry::finish(result, call.attempts);
                    };
                    if let Some(endpoint) = endpoint {
                        call.tried.push(endpoint);
                    }
                    // Read what is left of a failed response while backing
                    // off, so its connection goes back to the pool.
                    let drain = result.ok().map(Response::into_body);
                    let until = Instant::now() + delay;
                    this.state.set(State::Backoff {
                        drain,
                        drained: 0,
                        until,
                    });
                }
                StateProj::Backoff {
                    drain,
                    drained,
                    until,
                } => {
                    crate::retry::poll_drain(drain, drained, cx);
                    let until = *until;
                    if !fired(this.timer.as_mut(), earliest(Some(until), call.call_at), cx) {
                        return Poll::Pending;
                    }
                    if Instant::now() < until {
                        break Err(call.call_elapsed());
                    }
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let Some(again) = this.again.as_mut() else {
                        break Err(gone());
                    };
                    match again.service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => break Err(e),
                        Poll::Pending if fired(this.timer.as_mut(), call.call_at, cx) => {
                            break Err(call.call_elapsed());
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                    let req = again.request();
                    if let Some(hook) = &call.shared.retry.on_retry {
                        hook(&req);
                    }
                    call.attempts = call.attempts.saturating_add(1);
                    let future = call.start(&mut again.service, req, Instant::now());
                    this.state.set(State::Attempt { future });
                }
            }
        };
        this.state.set(State::Done);
        // An inner failure after the call's deadline is the deadline's
        // doing (e.g. a per-try timer clamped to it): report the call's.
        let result = match (result, this.call.as_ref()) {
            (Err(_), Some(call)) if call.call_at.is_some_and(|at| Instant::now() >= at) => {
                Err(call.call_elapsed())
            }
            (result, _) => result,
        };
        this.recorder.record(&result);
        Poll::Ready(result)
    }
}
