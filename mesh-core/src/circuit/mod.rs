//! Circuit breaking: concurrency limits (`max_requests`, `max_pending`) that
//! fail fast instead of queueing.
//!
//! # Why limits, and why fail fast
//!
//! When an upstream slows down, callers keep sending. Every request that
//! cannot finish holds a connection, a buffer and a task; the queue in front
//! of the slow service grows without bound, latency climbs for *everyone*, and
//! the caller runs out of memory or sockets long before the upstream
//! recovers. A circuit breaker in the Envoy sense is not a timer-driven
//! "open/half-open/closed" switch but a pair of **concurrency limits** per
//! upstream service:
//!
//! - `max_requests`: requests in flight to the service at once;
//! - `max_pending`: requests waiting for an endpoint or a connection at once.
//!
//! When a limit is reached, the next request fails *at once* with a typed
//! [`CircuitOpen`] error (which limit, and its value), the caller can shed
//! load or retry elsewhere, and the upstream gets room to recover. As soon as
//! in-flight requests finish, the limit lets new ones through again: the
//! "circuit" closes by itself, with no timer to tune.
//!
//! # Using it
//!
//! [`ConcurrencyLimits`] is a cheap handle (an `Arc` around four atomics)
//! shared by every clone of a service's stack and every thread. A request
//! takes a [`RequestPermit`] (and, while it waits for a connection, a
//! [`PendingPermit`]); a permit gives its slot back when dropped, exactly
//! once, whatever path the request takes (success, error, cancellation,
//! panic unwinding). No lock is taken: acquiring is one compare-and-swap loop
//! on an atomic counter.
//!
//! ```
//! use mesh_core::circuit::{ConcurrencyLimits, Limit};
//! use mesh_core::config::model::CircuitBreakerConfig;
//!
//! let limits = ConcurrencyLimits::new(&CircuitBreakerConfig { max_requests: 2, max_pending: 8 });
//! let a = limits.try_acquire_request().unwrap();
//! let _b = limits.try_acquire_request().unwrap();
//! let err = limits.try_acquire_request().unwrap_err();
//! assert_eq!(err.limit(), Limit::Requests);
//! assert_eq!(err.to_string(), "circuit open: 2 requests in flight (max_requests)");
//! drop(a); // the slot comes back
//! assert!(limits.try_acquire_request().is_ok());
//! ```
//!
//! Limits change live with [`ConcurrencyLimits::update`]: permits already
//! held stay valid (an in-flight request is never failed by a config update);
//! if the new limit is below the current count, new requests are refused
//! until enough permits have been dropped.

mod error;
mod limits;

pub use error::{CircuitOpen, Limit};
pub use limits::{ConcurrencyLimits, PendingPermit, RequestPermit};

#[cfg(test)]
mod tests;
