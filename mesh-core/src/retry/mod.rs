//! Retry policy: which outcomes are retried, exponential backoff with
//! jitter, the retry budget, `Retry-After` and `grpc-retry-pushback-ms`.
//!
//! # Retries, and why they need a budget
//!
//! A retry turns a transient failure (a connection reset by a restarting
//! pod, one overloaded endpoint answering 503) into a success, invisibly to
//! the caller. But every retry is extra load, and it comes exactly when a
//! service is least able to take it. If a service fails because it is
//! overloaded, clients that retry every failed call up to three times send it
//! up to three times the load: the failure feeds itself. Worse, retries
//! multiply through a call graph: with three attempts at each of three
//! layers, one user request can become 27 calls to the bottom service. This
//! is a *retry storm*, and it turns a brief overload into an outage.
//!
//! Per-request limits (`attempts`) cannot prevent it: each request is within
//! its limit, the sum is not. What prevents it is a limit on the retries of
//! *all* requests together, relative to the traffic: a **retry budget**
//! (Finagle's `RetryBudget`, Linkerd's `retryBudget`, tower's `TpsBudget`).
//! Each original request deposits into the budget; each retry withdraws
//! from it; retries are allowed up to `ratio` of the recent requests (0.2:
//! at most 20% extra load, however bad things get) plus a small floor of
//! `min_per_second`, so a service with little traffic can still retry at
//! all. When the budget is spent, failures go straight back to the caller,
//! who sees the real error instead of a timeout. See [`budget`] for the
//! algorithm and its exact guarantee.
//!
//! # The pieces
//!
//! - [`RetryPolicy`] (from a [`RetryConfig`](crate::config::RetryConfig)):
//!   given an attempt's [`Outcome`], its number, the method and the server's
//!   [`Pushback`], decides [`Decision::RetryAfter`] a delay or
//!   [`Decision::Stop`] with a [`StopReason`]. Conditions follow Envoy's
//!   `retry_on` and gRPC's retryable status codes; non-idempotent methods
//!   (RFC 9110) are only retried after a connect failure unless configured.
//! - [`Backoff`]: exponential backoff with full jitter, so clients that
//!   failed together do not retry together.
//! - [`parse_retry_after`] and [`parse_grpc_pushback`]: the server's word on
//!   when to come back replaces the backoff; a delay that would outlast the
//!   call's deadline is not worth waiting for.
//! - [`RetryBudget`]: lock-free, shared by every call to a service.
//!
//! The caller (the retry layer) asks, in this order: the policy's
//! [`decide`](RetryPolicy::decide), then the budget's
//! [`try_withdraw`](RetryBudget::try_withdraw), so a retry the policy refuses
//! costs the budget nothing.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::config::RetryConfig;
//! use mesh_core::retry::{Attempt, Decision, Outcome, Pushback, RetryPolicy, StopReason};
//! use rand::SeedableRng;
//!
//! let policy = RetryPolicy::new(&RetryConfig::default()); // connect-failure, reset, unavailable
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
//! let reset = Attempt { outcome: Outcome::Reset, number: 1, method: "POST",
//!                       pushback: Pushback::None, remaining: None };
//! // POST is not idempotent: not retried once the request may have been sent...
//! assert_eq!(policy.decide(&reset, &mut rng), Decision::Stop(StopReason::NonIdempotent));
//! // ...but a connect failure is always safe to retry (nothing was sent),
//! let refused = Attempt { outcome: Outcome::ConnectFailure, ..reset };
//! assert!(matches!(policy.decide(&refused, &mut rng), Decision::RetryAfter(d) if d <= Duration::from_millis(25)));
//! // and a gRPC status decides by its code, whatever the method (gRFC A6).
//! let unavailable = Attempt {
//!     outcome: Outcome::Response { status: 200, grpc_status: Some(14) },
//!     ..reset
//! };
//! assert!(matches!(policy.decide(&unavailable, &mut rng), Decision::RetryAfter(_)));
//! ```

pub mod backoff;
pub mod budget;
pub mod policy;
pub mod pushback;

#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use budget::{BudgetError, MAX_RATIO, MAX_WINDOW, RetryBudget, SLICES};
pub use policy::{
    Attempt, Decision, GRPC_CANCELLED, GRPC_DEADLINE_EXCEEDED, GRPC_INTERNAL,
    GRPC_RESOURCE_EXHAUSTED, GRPC_UNAVAILABLE, Outcome, RetryPolicy, StopReason, is_idempotent,
};
pub use pushback::{Pushback, parse_grpc_pushback, parse_http_date, parse_retry_after};
