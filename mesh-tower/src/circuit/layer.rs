//! [`CircuitBreakerLayer`].

use std::sync::Arc;

use mesh_core::circuit::ConcurrencyLimits;
use mesh_core::config::model::CircuitBreakerConfig;
use tower::Layer;

use super::CircuitBreaker;

/// Wraps services in a [`CircuitBreaker`]; every service it makes shares
/// the same limits.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    limits: ConcurrencyLimits,
    service: Arc<str>,
}

// === impl CircuitBreakerLayer ===

impl CircuitBreakerLayer {
    /// Limits of `config` for the upstream `service` (named in
    /// [`CircuitOpen`](crate::error::CircuitOpen) errors).
    pub fn new(config: &CircuitBreakerConfig, service: Arc<str>) -> Self {
        Self::from_limits(ConcurrencyLimits::new(config), service)
    }

    /// Shares existing `limits` (e.g. with the balancer, or to update them
    /// live).
    pub fn from_limits(limits: ConcurrencyLimits, service: Arc<str>) -> Self {
        Self { limits, service }
    }

    /// The shared limits.
    pub fn limits(&self) -> &ConcurrencyLimits {
        &self.limits
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker::new(inner, self.limits.clone(), Arc::clone(&self.service))
    }
}
