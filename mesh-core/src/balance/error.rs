//! Errors of building a balancer.

/// A load-balancer configuration that cannot be used.
///
/// [`Balancer::new`](super::Balancer::new) validates again what config
/// validation already checked, so hand-built configs fail here instead of
/// panicking later.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceError {
    /// `least_request.choice_count` outside `2..=100`.
    #[error("least_request choice_count must be 2..=100, got {got}")]
    ChoiceCount {
        /// The value given.
        got: u32,
    },
    /// `least_request.active_request_bias` negative or not finite.
    #[error("least_request active_request_bias must be a finite number >= 0, got {got}")]
    ActiveRequestBias {
        /// The value given.
        got: f64,
    },
    /// `peak_ewma.decay` of zero.
    #[error("peak_ewma decay must be longer than zero")]
    EwmaDecay,
    /// Ring sizes out of order or out of range.
    #[error("ring_hash needs 1 <= min_ring_size ({min}) <= max_ring_size ({max}) <= {limit}")]
    RingSize {
        /// `min_ring_size` given.
        min: u64,
        /// `max_ring_size` given.
        max: u64,
        /// The largest allowed size.
        limit: u64,
    },
    /// Maglev table size not a prime within range.
    #[error("maglev table_size must be a prime <= {limit}, got {got}")]
    MaglevTableSize {
        /// The value given.
        got: u64,
        /// The largest allowed size.
        limit: u64,
    },
    /// `panic_threshold_percent` above 100.
    #[error("panic_threshold_percent must be 0..=100, got {got}")]
    PanicThreshold {
        /// The value given.
        got: u32,
    },
}
