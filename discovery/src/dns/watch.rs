//! The DNS watch loop: resolve, emit changes, sleep for the clamped TTL,
//! keep the last good set on errors (see the module docs of [`super`]).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use mesh_core::Endpoint;
use mesh_core::config::DnsTarget;
use tokio::time::Instant;

use super::{DnsError, DnsSource};
use crate::error::error_chain;
use crate::update::{Update, UpdateStream, diff};

struct State {
    source: DnsSource,
    target: DnsTarget,
    /// The last good set, once there was one.
    last: Option<Vec<Endpoint>>,
    /// Whether `DoesNotExist` was reported (and nothing good since).
    reported_missing: bool,
    pending: VecDeque<Update>,
    next_at: Option<Instant>,
    /// Current error backoff (reset by a good answer).
    backoff: Duration,
}

pub(super) fn watch(source: DnsSource, target: DnsTarget) -> UpdateStream {
    let backoff = source.config().min_ttl;
    let state = State {
        source,
        target,
        last: None,
        reported_missing: false,
        pending: VecDeque::new(),
        next_at: None,
        backoff,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(u) = st.pending.pop_front() {
                return Some((u, st));
            }
            if let Some(at) = st.next_at {
                tokio::time::sleep_until(at).await;
            }
            let delay = st.step().await;
            st.next_at = Some(Instant::now() + delay);
        }
    })
    .boxed()
}

impl State {
    /// One resolution; queues updates and returns when to resolve again.
    async fn step(&mut self) -> Duration {
        let config = self.source.config().clone();
        match self.source.resolve(&self.target).await {
            Ok(resolved) => {
                self.backoff = config.min_ttl;
                match &self.last {
                    None => self
                        .pending
                        .push_back(Update::Reset(resolved.endpoints.clone())),
                    Some(old) => self.pending.extend(diff(old, &resolved.endpoints)),
                }
                self.last = Some(resolved.endpoints);
                self.reported_missing = false;
                config.refresh_after(resolved.ttl)
            }
            Err(DnsError::NotFound(name)) if self.last.is_none() => {
                if !self.reported_missing {
                    self.pending.push_back(Update::DoesNotExist);
                    self.reported_missing = true;
                }
                tracing::debug!(name, "DNS name does not exist");
                self.next_backoff(&config)
            }
            Err(e) => {
                match &self.last {
                    Some(set) => tracing::warn!(
                        target = ?self.target,
                        error = %error_chain(&e),
                        kept = set.len(),
                        "DNS resolution failed; keeping the last good endpoint set"
                    ),
                    None => tracing::warn!(
                        target = ?self.target,
                        error = %error_chain(&e),
                        "DNS resolution failed; no endpoint set yet, retrying"
                    ),
                }
                self.next_backoff(&config)
            }
        }
    }

    fn next_backoff(&mut self, config: &super::DnsConfig) -> Duration {
        let now = self.backoff;
        self.backoff = (self.backoff * 2).min(config.max_ttl).max(config.min_ttl);
        now
    }
}
