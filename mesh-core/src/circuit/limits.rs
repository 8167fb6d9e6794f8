//! [`ConcurrencyLimits`] and its RAII permits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::{CircuitOpen, Limit};
use crate::config::model::CircuitBreakerConfig;

/// Lock-free concurrency limits for one upstream service.
///
/// Cloning is cheap (an `Arc`); all clones share the same counters and limits.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: Counter,
    pending: Counter,
}

/// One limit: the configured maximum and the current count.
#[derive(Debug)]
struct Counter {
    max: AtomicU32,
    current: AtomicU32,
}

/// A slot under `max_requests`; released when dropped.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct RequestPermit {
    inner: Arc<Inner>,
}

/// A slot under `max_pending`; released when dropped.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct PendingPermit {
    inner: Arc<Inner>,
}

// === impl ConcurrencyLimits ===

impl ConcurrencyLimits {
    /// Limits as configured, with nothing in flight.
    ///
    /// A limit of `0` refuses every request.
    pub fn new(config: &CircuitBreakerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                requests: Counter::new(config.max_requests),
                pending: Counter::new(config.max_pending),
            }),
        }
    }

    /// Takes a slot under `max_requests`, or fails at once if none is free.
    pub fn try_acquire_request(&self) -> Result<RequestPermit, CircuitOpen> {
        self.inner
            .requests
            .try_increment()
            .map_err(|max| CircuitOpen::new(Limit::Requests, max))?;
        Ok(RequestPermit {
            inner: Arc::clone(&self.inner),
        })
    }

    /// Takes a slot under `max_pending`, or fails at once if none is free.
    pub fn try_acquire_pending(&self) -> Result<PendingPermit, CircuitOpen> {
        self.inner
            .pending
            .try_increment()
            .map_err(|max| CircuitOpen::new(Limit::Pending, max))?;
        Ok(PendingPermit {
            inner: Arc::clone(&self.inner),
        })
    }

    /// Requests in flight now (permits from [`try_acquire_request`](Self::try_acquire_request) not yet dropped).
    pub fn in_flight(&self) -> u32 {
        self.inner.requests.current.load(Ordering::Acquire)
    }

    /// Requests pending now (permits from [`try_acquire_pending`](Self::try_acquire_pending) not yet dropped).
    pub fn pending(&self) -> u32 {
        self.inner.pending.current.load(Ordering::Acquire)
    }

    /// The limits in force now.
    pub fn config(&self) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            max_requests: self.inner.requests.max.load(Ordering::Acquire),
            max_pending: self.inner.pending.max.load(Ordering::Acquire),
        }
    }

    /// Changes the limits live. Permits already held stay valid; if a new
    /// limit is below the current count, new permits are refused until
    /// enough have been dropped.
    pub fn update(&self, config: &CircuitBreakerConfig) {
        self.inner
            .requests
            .max
            .store(config.max_requests, Ordering::Release);
        self.inner
            .pending
            .max
            .store(config.max_pending, Ordering::Release);
    }
}

// === impl Counter ===

impl Counter {
    fn new(max: u32) -> Self {
        Self {
            max: AtomicU32::new(max),
            current: AtomicU32::new(0),
        }
    }

    /// Increments `current` if it is below `max`; returns `Err(max)` otherwise.
    fn try_increment(&self) -> Result<(), u32> {
        let mut current = self.current.load(Ordering::Relaxed);
        loop {
            let max = self.max.load(Ordering::Acquire);
            if current >= max {
                return Err(max);
            }
            match self.current.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back one slot taken by a successful [`Counter::try_increment`].
    fn release(&self) {
        // Each permit releases exactly once (in `Drop`) a slot it took, so
        // this never underflows.
        self.current.fetch_sub(1, Ordering::AcqRel);
    }
}

// === impl RequestPermit / PendingPermit ===

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.inner.requests.release();
    }
}

impl Drop for PendingPermit {
    fn drop(&mut self) {
        self.inner.pending.release();
    }
}
