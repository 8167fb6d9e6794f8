//! [`Attempt`]: one request in flight to one picked endpoint.

use std::sync::Arc;

use http::Response;
use mesh_core::balance::{Balancer, Picked};
use mesh_core::outlier::Observation;
use parking_lot::Mutex;

use super::pool::{EndpointEntry, PoolShared, now};
use crate::classify::{error_outcome, observation, response_outcome};
use crate::error::{BoxError, EndpointError};
use crate::ext::ServedBy;

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

    /// Records the attempt's result and tags it with the endpoint.
    pub(crate) fn finish<B>(
        mut self,
        result: Result<Response<B>, BoxError>,
    ) -> Result<Response<B>, BoxError> {
        match result {
            Ok(mut response) => {
                self.complete(Some(observation(&response_outcome(&response))));
                response
                    .extensions_mut()
                    .insert(ServedBy(self.picked.address));
                Ok(response)
            }
            Err(source) => {
                self.complete(error_outcome(&*source).map(|o| observation(&o)));
                Err(Box::new(EndpointError {
                    endpoint: self.picked.address,
                    source,
                }))
            }
        }
    }

    fn complete(&mut self, observation: Option<Observation>) {
        if self.done {
            return;
        }
        self.done = true;
        // One clock read per attempt end (the start was the pick's).
        let now = now();
        let rtt = now.saturating_duration_since(self.start.into_std());
        self.lb.lock().on_end(&self.picked, rtt, now);
        if let Some(obs) = observation
            && self.record
            && self.entry.stats.record(obs)
        {
            self.shared.report(self.picked.address, obs);
        }
    }
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
        self.complete(timed_out.then_some(Observation::Failure));
    }
}
