//! What the retry future keeps between attempts, and the decision after each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::retry::{
    Attempt, Decision, Outcome, Pushback, RetryPolicy, StopReason, parse_grpc_pushback,
    parse_retry_after,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::layer::Shared;
use crate::body::MeshBody;
use crate::classify::{error_outcome, response_outcome};
use crate::error::{BoxError, EndpointError};
use crate::ext::{Deadline, RoutePolicy, ServedBy, TriedEndpoints};

/// The state of a request that may be retried: a ready-or-not clone of the
/// inner service, the request's head and its buffered body.
pub(super) struct Retrying<S> {
    pub(super) service: S,
    pub(super) shared: Arc<Shared>,
    /// The route's policy (`None`: the layer's default).
    pub(super) route: Option<Arc<RoutePolicy>>,
    pub(super) parts: http::request::Parts,
    /// Buffered (`MeshBody::full`), so every attempt replays it.
    pub(super) body: MeshBody,
    /// Attempts sent so far.
    pub(super) attempts: u32,
}

impl<S> Retrying<S> {
    fn policy(&self) -> Option<&RetryPolicy> {
        match &self.route {
            Some(route) => route.retry.as_ref(),
            None => self.shared.default_policy.as_ref(),
        }
    }

    /// The next attempt's request: the original head (with
    /// [`TriedEndpoints`] once there were failed attempts) and a replay of
    /// the body.
    pub(super) fn request(&self) -> http::Request<MeshBody> {
        replay(&self.parts, &self.body)
    }

    /// Decides after an attempt: `Some(delay)` to retry (the policy agreed,
    /// the deadline allows it and the budget paid for it; the attempt's
    /// endpoint is now in [`TriedEndpoints`]), `None` to return `result`.
    pub(super) fn decide<B>(
        &mut self,
        result: &Result<http::Response<B>, BoxError>,
    ) -> Option<Duration> {
        let deadline = self.parts.extensions.get::<Deadline>().map(|d| d.0);
        let (delay, endpoint) = decide(
            &self.shared,
            self.policy(),
            &self.parts.method,
            self.attempts,
            deadline,
            result,
        )?;
        if let Some(endpoint) = endpoint {
            match self.parts.extensions.get_mut::<TriedEndpoints>() {
                Some(tried) => tried.0.push(endpoint),
                None => {
                    self.parts.extensions.insert(TriedEndpoints(vec![endpoint]));
                }
            }
        }
        Some(delay)
    }
}

/// A request with `parts`' head (copied) and a replay of `body`.
fn replay(parts: &http::request::Parts, body: &MeshBody) -> http::Request<MeshBody> {
    let head = Head {
        method: &parts.method,
        uri: &parts.uri,
        version: parts.version,
        extensions: &parts.extensions,
    };
    let body = body.try_clone().unwrap_or_default();
    rebuild(head, parts.headers.len(), parts.headers.iter(), body)
}

/// A request head's parts other than its fields, borrowed.
pub(crate) struct Head<'a> {
    pub(crate) method: &'a http::Method,
    pub(crate) uri: &'a http::Uri,
    pub(crate) version: http::Version,
    pub(crate) extensions: &'a http::Extensions,
}

/// A fresh copy of a request for another attempt: `head`, the `len` header
/// `fields` and `body`. Shared by [`Retry`](super::Retry) and the fused
/// client ([`crate::fused`]).
pub(crate) fn rebuild<'a>(
    head: Head<'_>,
    len: usize,
    fields: impl Iterator<Item = (&'a http::HeaderName, &'a http::HeaderValue)>,
    body: MeshBody,
) -> http::Request<MeshBody> {
    let mut req = http::Request::new(body);
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = head.uri.clone();
    *req.version_mut() = head.version;
    // Room for the headers set per attempt (the connector's `Host`,
    // `traceparent`, `grpc-timeout`): a plain clone has none, and those
    // inserts would reallocate the copy at once.
    let headers = req.headers_mut();
    headers.reserve(len.saturating_add(3));
    for (name, value) in fields {
        headers.append(name.clone(), value.clone());
    }
    *req.extensions_mut() = head.extensions.clone();
    req
}

/// Decides after attempt number `attempts` of a `method` request under
/// `policy`, with the call's `deadline`: `Some((delay, endpoint))` to retry
/// after `delay` (the policy agreed, the deadline allows it and the budget
/// paid for it), `endpoint` being the failed attempt's to avoid next time;
/// `None` to return `result`. Shared by [`Retry`](super::Retry) and the
/// fused client ([`crate::fused`]).
pub(crate) fn decide<B>(
    shared: &Shared,
    policy: Option<&RetryPolicy>,
    method: &http::Method,
    attempts: u32,
    deadline: Option<tokio::time::Instant>,
    result: &Result<http::Response<B>, BoxError>,
) -> Option<(Duration, Option<SocketAddr>)> {
    let policy = policy?;
    let method = method.as_str();
    let (outcome, endpoint) = match result {
        Ok(resp) => {
            // Without gRPC conditions, a status that no condition lists is
            // not retried whatever its `grpc-status`: stop before reading
            // any header (the common case: a success).
            let plain = Outcome::Response {
                status: resp.status().as_u16(),
                grpc_status: None,
            };
            if !policy.reads_grpc_status()
                && matches!(
                    policy.should_retry(plain, attempts, method),
                    Decision::Stop(StopReason::NotRetryable)
                )
            {
                return None;
            }
            (
                response_outcome(resp),
                resp.extensions().get::<ServedBy>().map(|s| s.0),
            )
        }
        // A failure that says nothing about an endpoint (no endpoints,
        // circuit open, no route) is not retried.
        Err(err) => (error_outcome(&**err)?, endpoint_of(&**err)),
    };
    // The cheap check first: successes and non-retryable outcomes stop
    // here, before any header is parsed or any seed drawn.
    if let Decision::Stop(_) = policy.should_retry(outcome, attempts, method) {
        return None;
    }
    let pushback = match result {
        Ok(resp) => pushback(resp.headers()),
        Err(_) => Pushback::None,
    };
    if matches!(pushback, Pushback::RetryAfter(d) if d > shared.max_pushback) {
        return None;
    }
    let attempt = Attempt {
        outcome,
        number: attempts,
        method,
        pushback,
        remaining: deadline.map(|at| at.saturating_duration_since(tokio::time::Instant::now())),
    };
    let mut rng = SmallRng::seed_from_u64(shared.next_seed());
    let Decision::RetryAfter(delay) = policy.decide(&attempt, &mut rng) else {
        return None;
    };
    let budget = shared.budget.as_ref()?;
    if !budget.try_withdraw(tokio::time::Instant::now().into_std()) {
        return None;
    }
    Some((delay, endpoint))
}

/// What the server said about retrying: `grpc-retry-pushback-ms` (gRPC),
/// else `Retry-After` (HTTP), else nothing.
pub(super) fn pushback(headers: &http::HeaderMap) -> Pushback {
    const GRPC_PUSHBACK: http::HeaderName = http::HeaderName::from_static("grpc-retry-pushback-ms");
    if let Some(v) = headers.get(GRPC_PUSHBACK) {
        return v.to_str().map_or(Pushback::DoNotRetry, parse_grpc_pushback);
    }
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .map_or(Pushback::None, Pushback::RetryAfter)
}

/// The endpoint an error names, anywhere in its cause chain.
fn endpoint_of(err: &(dyn std::error::Error + 'static)) -> Option<SocketAddr> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(e) = e.downcast_ref::<EndpointError>() {
            return Some(e.endpoint);
        }
        cur = e.source();
    }
    None
}
