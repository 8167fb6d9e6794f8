//! [`Attempt`]: one request in flight to one picked endpoint, and
//! [`LateOutcome`]: the end of an attempt whose verdict comes after its
//! response head (a gRPC status in trailers).
//!
//! # Late outcomes
//!
//! An attempt normally records its outcome when the response head arrives.
//! A gRPC response whose head carries no `grpc-status` (HTTP 200,
//! `content-type: application/grpc...`) has its status in the trailers,
//! after the messages: judging it at the head would count every such call
//! as a success. So for such a response the attempt defers: it moves into a
//! [`LateOutcome`] left in the response's extensions, and whoever reads the
//! body (mesh-tonic's response body) completes it with the trailers' status
//! ([`LateOutcome::complete`]), the body's failure ([`LateOutcome::fail`]),
//! or says the caller gave up before the end ([`LateOutcome::cancel`]: no
//! observation). If nobody does, dropping the last handle records the head
//! outcome, as for any response. Plain HTTP responses never defer and
//! allocate nothing.
//!
//! # Observing attempts
//!
//! A request carrying an [`OnAttemptEnd`] extension has each of its
//! attempts reported to it when the attempt ends (late outcomes included):
//! where it went, how long it took from the pick, and how it ended
//! ([`AttemptReport`]). mesh-tonic records gRFC A66's
//! `grpc.client.attempt.duration` this way.

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use mesh_core::balance::{Balancer, Picked};
use mesh_core::retry::Outcome;
use parking_lot::Mutex;

use super::pool::{EndpointEntry, PoolShared, now};
use crate::classify::{error_outcome, observation, response_outcome};
use crate::error::{BoxError, EndpointError};
use crate::ext::ServedBy;

/// How one attempt ended, as told to an [`OnAttemptEnd`] observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptReport {
    /// The endpoint the attempt went to.
    pub endpoint: std::net::SocketAddr,
    /// From the pick to the end of the attempt (its trailers, for a late
    /// outcome).
    pub elapsed: Duration,
    /// How it ended; `None`: cancelled by the caller before the end.
    pub outcome: Option<Outcome>,
}

/// Something told about every attempt of a request (see the module docs).
pub trait AttemptObserver: Send + Sync + 'static {
    /// One attempt of the request ended.
    fn attempt_ended(&self, report: &AttemptReport);
}

/// A request extension: report each attempt of this request to the
/// observer. Cloned with the request's extensions for every retry.
#[derive(Clone)]
pub struct OnAttemptEnd(pub Arc<dyn AttemptObserver>);

impl std::fmt::Debug for OnAttemptEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnAttemptEnd").finish_non_exhaustive()
    }
}

/// Keeps the balancer's books for one attempt: `on_start` at the pick,
/// exactly one `on_end` (on completion or drop), and the outcome recorded
/// into the endpoint's counters (reported to outlier detection when they
/// say so).
pub(crate) struct Attempt {
    shared: Arc<PoolShared>,
    lb: Arc<Mutex<Balancer>>,
    picked: Picked,
    pub(crate) entry: Arc<EndpointEntry>,
    record: bool,
    start: tokio::time::Instant,
    /// When the layers above will give up on this attempt: dropped after
    /// this, the attempt counts as a timeout of the endpoint.
    timeout_at: Option<tokio::time::Instant>,
    observer: Option<OnAttemptEnd>,
    done: bool,
}

impl Attempt {
    pub(crate) fn new(
        shared: Arc<PoolShared>,
        lb: Arc<Mutex<Balancer>>,
        picked: Picked,
        entry: Arc<EndpointEntry>,
        record: bool,
        start: std::time::Instant,
    ) -> Self {
        Self {
            shared,
            lb,
            picked,
            entry,
            record,
            start: tokio::time::Instant::from_std(start),
            timeout_at: None,
            observer: None,
            done: false,
        }
    }

    /// The endpoint this attempt goes to.
    pub(crate) fn address(&self) -> std::net::SocketAddr {
        self.picked.address
    }

    pub(crate) fn set_timeout_at(&mut self, at: Option<tokio::time::Instant>) {
        self.timeout_at = at;
    }

    /// Reports this attempt's end to `given`, else to the request's
    /// [`OnAttemptEnd`], if any.
    pub(crate) fn observe(&mut self, given: Option<&OnAttemptEnd>, extensions: &http::Extensions) {
        self.observer = given
            .cloned()
            .or_else(|| extensions.get::<OnAttemptEnd>().cloned());
    }

    /// Records the attempt's result and tags it with the endpoint; defers
    /// the record of a gRPC response whose status is to come in trailers.
    pub(crate) fn finish<B>(
        mut self,
        result: Result<Response<B>, BoxError>,
    ) -> Result<Response<B>, BoxError> {
        match result {
            Ok(mut response) => {
                let outcome = response_outcome(&response);
                response
                    .extensions_mut()
                    .insert(ServedBy(self.picked.address));
                if status_in_trailers(&response, &outcome) {
                    let late = LateOutcome::new(self, outcome);
                    response.extensions_mut().insert(late);
                } else {
                    self.complete(Some(outcome));
                }
                Ok(response)
            }
            Err(source) => {
                self.complete(error_outcome(&*source));
                Err(Box::new(EndpointError {
                    endpoint: self.picked.address,
                    source,
                }))
            }
        }
    }

    /// Ends the attempt: `outcome` `None` says nothing about the endpoint.
    fn complete(&mut self, outcome: Option<Outcome>) {
        if self.done {
            return;
        }
        self.done = true;
        // One clock read per attempt end (the start was the pick's).
        let now = now();
        let rtt = now.saturating_duration_since(self.start.into_std());
        self.lb.lock().on_end(&self.picked, rtt, now);
        if let Some(obs) = outcome.as_ref().map(observation)
            && self.record
            && self.entry.stats.record(obs)
        {
            self.shared.report(self.picked.address, obs);
        }
        if let Some(OnAttemptEnd(observer)) = &self.observer {
            observer.attempt_ended(&AttemptReport {
                endpoint: self.picked.address,
                elapsed: rtt,
                outcome,
            });
        }
    }
}

/// A 200 gRPC response with no `grpc-status` in its head: the status comes
/// in the trailers.
fn status_in_trailers<B>(response: &Response<B>, outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Response {
            status: 200,
            grpc_status: None
        }
    ) && response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            // Finished: nothing to record, no clock to read.
            return;
        }
        // Cancelled: by a timeout above (the endpoint did not answer in
        // time: a failure) or by the caller (says nothing: not recorded).
        let timed_out = self
            .timeout_at
            .is_some_and(|at| tokio::time::Instant::now() >= at);
        self.complete(timed_out.then_some(Outcome::Timeout));
    }
}

/// The pending end of an attempt whose gRPC status comes in the response's
/// trailers: a response extension. Clones share one attempt; the first
/// completion counts, and dropping the last clone uncompleted records the
/// head's outcome (a success).
#[derive(Clone)]
pub struct LateOutcome(Arc<LateInner>);

struct LateInner {
    attempt: Mutex<Option<Attempt>>,
    head: Outcome,
}

impl LateOutcome {
    fn new(attempt: Attempt, head: Outcome) -> Self {
        Self(Arc::new(LateInner {
            attempt: Mutex::new(Some(attempt)),
            head,
        }))
    }

    /// The endpoint the attempt went to.
    pub fn endpoint(&self) -> Option<std::net::SocketAddr> {
        self.0.attempt.lock().as_ref().map(Attempt::address)
    }

    /// The trailers arrived with `grpc_status` (`None`: they carried none;
    /// the head's outcome stands).
    pub fn complete(&self, grpc_status: Option<u32>) {
        let outcome = match (self.0.head, grpc_status) {
            (Outcome::Response { status, .. }, Some(code)) => Outcome::Response {
                status,
                grpc_status: Some(code),
            },
            (head, _) => head,
        };
        self.end(Some(outcome));
    }

    /// The body failed before its end (a reset, a closed connection): a
    /// failure of the endpoint, classified like an attempt's error.
    pub fn fail(&self, err: &(dyn std::error::Error + 'static)) {
        self.end(Some(error_outcome(err).unwrap_or(Outcome::Reset)));
    }

    /// The caller dropped the body before its end: not recorded against
    /// the endpoint.
    pub fn cancel(&self) {
        self.end(None);
    }

    fn end(&self, outcome: Option<Outcome>) {
        let attempt = self.0.attempt.lock().take();
        if let Some(mut attempt) = attempt {
            attempt.complete(outcome);
        }
    }
}

impl Drop for LateInner {
    fn drop(&mut self) {
        if let Some(mut attempt) = self.attempt.get_mut().take() {
            attempt.complete(Some(self.head));
        }
    }
}

impl std::fmt::Debug for LateOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateOutcome")
            .field("head", &self.0.head)
            .finish_non_exhaustive()
    }
}
