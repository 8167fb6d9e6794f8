//! [`RetryLayer`] and the state its services share.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_core::config::BudgetConfig;
use mesh_core::retry::{RetryBudget, RetryPolicy};
use tower::Layer;

use super::Retry;
use crate::body::MeshBody;

/// A hook called with each retry just before it is sent (the client wires
/// it to the `mesh.client.retries` metric).
pub type OnRetry = Arc<dyn Fn(&http::Request<MeshBody>) + Send + Sync>;

/// The largest request body buffered for replay by default: 64 KiB.
pub const DEFAULT_MAX_BUFFER: usize = 64 * 1024;

/// The longest server pushback (`Retry-After`, `grpc-retry-pushback-ms`)
/// waited for by default: 10s. A longer one stops retrying.
pub const DEFAULT_MAX_PUSHBACK: Duration = Duration::from_secs(10);

/// Wraps services in [`Retry`] (see the [module docs](super)).
#[derive(Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

/// What every service (and clone) made by one layer shares.
pub(crate) struct Shared {
    pub(crate) default_policy: Option<RetryPolicy>,
    /// `None` only if the default budget could not be built (it can: its
    /// config is valid), in which case nothing is retried.
    pub(crate) budget: Option<Arc<RetryBudget>>,
    pub(crate) max_buffer: usize,
    pub(crate) max_pushback: Duration,
    pub(crate) on_retry: Option<OnRetry>,
    jitter: AtomicU64,
}

// === impl RetryLayer ===

impl RetryLayer {
    /// Retries by the request's route policy
    /// ([`RouteInfo`](crate::ext::RouteInfo)`.retry`; a route without one
    /// is never retried), or by `default_policy` for requests without
    /// `RouteInfo` (`None`: not retried).
    ///
    /// The layer has its own retry budget with the default config (20% of
    /// recent requests plus 10 per second, over 10s) until
    /// [`budget`](Self::budget) gives it a shared one. Bodies up to
    /// [`DEFAULT_MAX_BUFFER`] are buffered for replay.
    pub fn new(default_policy: Option<RetryPolicy>) -> Self {
        // tokio's clock (the layer reads it too), so paused-time tests agree.
        let epoch = tokio::time::Instant::now().into_std();
        let budget = RetryBudget::with_epoch(&BudgetConfig::default(), epoch)
            .ok()
            .map(Arc::new);
        Self {
            shared: Arc::new(Shared {
                default_policy,
                budget,
                max_buffer: DEFAULT_MAX_BUFFER,
                max_pushback: DEFAULT_MAX_PUSHBACK,
                on_retry: None,
                jitter: AtomicU64::new(std::hash::RandomState::new().hash_one(0x6d65_7368_u64)),
            }),
        }
    }

    /// Uses `budget` (typically one per upstream service, shared by all its
    /// routes and clones) instead of the layer's own.
    pub fn budget(self, budget: Arc<RetryBudget>) -> Self {
        self.map(|s| s.budget = Some(budget))
    }

    /// Buffers request bodies up to `bytes` for replay. A body that is not
    /// buffered already and whose size hint allows more is sent once and
    /// never retried.
    pub fn max_buffer(self, bytes: usize) -> Self {
        self.map(|s| s.max_buffer = bytes)
    }

    /// Calls `hook` with each retry just before it is sent.
    pub fn on_retry(self, hook: OnRetry) -> Self {
        self.map(|s| s.on_retry = Some(hook))
    }

    /// The longest server pushback honoured; a longer `Retry-After` or
    /// `grpc-retry-pushback-ms` stops retrying (the failed response goes
    /// back to the caller). Default [`DEFAULT_MAX_PUSHBACK`].
    pub fn max_pushback(self, max: Duration) -> Self {
        self.map(|s| s.max_pushback = max)
    }

    /// Seeds the backoff jitter (for deterministic tests); by default it is
    /// seeded randomly.
    pub fn seed(self, seed: u64) -> Self {
        self.map(|s| s.jitter = AtomicU64::new(seed))
    }

    /// What this layer's services share (the fused client uses it too).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = match Arc::try_unwrap(self.shared) {
            Ok(shared) => shared,
            Err(arc) => arc.duplicate(),
        };
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }
}

impl std::fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("default_policy", &self.shared.default_policy)
            .field("max_buffer", &self.shared.max_buffer)
            .field("max_pushback", &self.shared.max_pushback)
            .field("on_retry", &self.shared.on_retry.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

// === impl Shared ===

impl Shared {
    fn duplicate(&self) -> Self {
        Self {
            default_policy: self.default_policy.clone(),
            budget: self.budget.clone(),
            max_buffer: self.max_buffer,
            max_pushback: self.max_pushback,
            on_retry: self.on_retry.clone(),
            jitter: AtomicU64::new(self.jitter.load(Ordering::Relaxed)),
        }
    }

    /// A fresh seed for one backoff draw (splitmix64 over a shared counter:
    /// one atomic add, only when a retry is being decided).
    pub(crate) fn next_seed(&self) -> u64 {
        let mut z = self
            .jitter
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
