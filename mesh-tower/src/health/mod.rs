//! Active health checking: probe every endpoint, send traffic only to those
//! that pass.
//!
//! # What is probed
//!
//! For a service with a `health_check` block
//! ([`HealthCheckConfig`](mesh_core::config::HealthCheckConfig)), the
//! service's [`EndpointPool`](crate::balance::EndpointPool) runs one tokio
//! task per endpoint. Every `interval` (plus up to 10% random jitter, so
//! endpoints are not probed in lockstep), the task sends one probe straight
//! to the endpoint's address through the pool's
//! [`Connector`](crate::connect::Connector), not through the balancer, so
//! the same connection settings (and transport security) apply:
//!
//! - `http` / `http2` services: `GET <path>` with the service name as
//!   `Host`; any 2xx passes.
//! - `grpc` services: the unary `/grpc.health.v1.Health/Check` with a
//!   hand-encoded `HealthCheckRequest { service: <grpc_service> }` (see
//!   [`grpc`]); it passes on `grpc-status: 0` and `status: SERVING`.
//!
//! Anything else fails the probe: another status, `NOT_SERVING`, no answer
//! within `timeout`, a refused or reset connection ([`ProbeError`] says
//! which).
//!
//! # From results to readiness
//!
//! Each endpoint's [`HealthState`] counts consecutive results:
//! `unhealthy_threshold` failures in a row make a healthy endpoint
//! unhealthy, `healthy_threshold` successes in a row make it healthy again.
//! A new endpoint (discovered, or present when the pool starts) is probed at
//! once and takes **no traffic until its first probe passes**; one pass is
//! enough while it has never been healthy (Envoy's rule for new hosts).
//!
//! An unhealthy endpoint is taken out of every balancer of the pool, like an
//! endpoint ejected by outlier detection, but independently: it takes
//! traffic only when neither says no. Transitions are logged (`warn` when an
//! endpoint turns unhealthy, with the last probe's error; `info` when it
//! turns healthy) and counted in the `mesh.endpoints` gauge under
//! `state="unhealthy"`.
//!
//! # When every endpoint fails
//!
//! Health checks never black-hole a service: the balancer's panic mode
//! (Envoy's `healthy_panic_threshold`, `load_balancer.panic_threshold`,
//! 50% by default) counts unhealthy endpoints like ejected ones, so when
//! fewer than that share are usable, or none at all, it balances over every
//! endpoint again. A health endpoint that breaks everywhere at once (a bad
//! deploy of `/healthz`) thus degrades to "no health checking", not to an
//! outage. This also covers the first moments of a pool: before any probe
//! has answered, no endpoint is healthy, so requests go to all of them.
//!
//! # Lifetime
//!
//! A task is aborted when its endpoint leaves discovery and when the pool
//! is dropped; it holds only a weak reference to the pool. A config change
//! of the block restarts the tasks with the new settings, keeping each
//! endpoint's state; removing the block stops checking and makes every
//! endpoint eligible again.

mod checker;
pub mod grpc;
mod probe;
mod state;

#[cfg(test)]
mod tests;

pub(crate) use checker::{HealthChecker, ProbeFn, ProbeSource};
pub use probe::{PROBE_USER_AGENT, ProbeError, check};
pub use state::{HealthState, Transition};
