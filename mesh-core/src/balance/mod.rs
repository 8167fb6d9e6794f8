//! Load balancing over an endpoint set.
//!
//! A [`Balancer`] owns one service subset's endpoints and picks one per
//! request with the configured [`Algorithm`]:
//!
//! | algorithm | module | pick | weights |
//! | --- | --- | --- | --- |
//! | `round_robin` | [`round_robin`] | rotation over a precomputed list | ignored (slow start only) |
//! | `weighted_round_robin` | [`wrr`] | precomputed EDF cycle (Envoy's order), else gRPC A58's static stride scheduler | yes |
//! | `random` | [`random`] | Vose alias table | yes |
//! | `least_request` | [`p2c`] | power of `choice_count` choices on in-flight requests | Envoy's `weight / (active + 1) ^ bias` |
//! | `peak_ewma` | [`ewma`] | P2C on peak-EWMA latency x (in-flight + 1) | cost / weight |
//! | `ring_hash` | [`ring_hash`] | Ketama ring, bucketed binary search | points per weight |
//! | `maglev` | [`maglev`] | table lookup (65537 slots) | Envoy's weighted Maglev |
//!
//! Every pick costs the same whatever the number of endpoints: everything a
//! pick needs (candidate lists, schedules, alias tables, the ring, the Maglev
//! table) is computed when the set changes, not per pick.
//!
//! # Health, panic mode
//!
//! Endpoints ejected by outlier detection ([`Balancer::set_ejected`]) are not
//! candidates. But when too few endpoints are left, sending all traffic to
//! them would overload them too: below `panic_threshold_percent` healthy
//! (Envoy's `healthy_panic_threshold`, 50 by default) the balancer *panics*
//! and balances over all endpoints, ejected or not. 0 disables panic mode,
//! except that with no healthy endpoint at all the balancer still uses all
//! (a pick fails only on an empty set; failing fast is the circuit breaker's
//! job).
//!
//! Rotation, weighted and least-request algorithms pick from the candidate list.
//! The consistent-hash algorithms keep their ring or table over all
//! endpoints and step past non-candidates (see their modules), so an ejection
//! never moves the keys of other endpoints.
//!
//! # Slow start
//!
//! With `slow_start` (see [`slow_start`]), an endpoint added after the first
//! [`Balancer::update`] or returning from ejection gets a weight ramping from
//! 10% to 100% over the window. Schedules are refreshed at most every tenth
//! of the window while something warms up.
//!
//! # Retries
//!
//! [`PickContext::tried`] lists the addresses already tried for this request:
//! the balancer avoids them whenever another candidate exists (a few
//! re-picks by the algorithm, then a bounded scan from a random place:
//! `tried.len() + 1` steps at most). No allocation.
//!
//! # Feedback
//!
//! The caller reports requests with [`Balancer::on_start`] and
//! [`Balancer::on_end`] (with the round trip): least request uses the
//! in-flight counts, peak EWMA both. They take the [`Picked`] of the pick,
//! which stays valid across updates: an endpoint that has left is ignored,
//! and one that moved in the list is found by address.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use mesh_core::balance::{Balancer, PickContext};
//! use mesh_core::config::model::LoadBalancerConfig;
//! use mesh_core::Endpoint;
//! use rand::SeedableRng;
//!
//! let mut lb = Balancer::new(&LoadBalancerConfig::default(), None)?;
//! let now = Instant::now();
//! lb.update(
//!     &[
//!         Endpoint::new("10.0.0.1:80".parse()?),
//!         Endpoint::new("10.0.0.2:80".parse()?),
//!     ],
//!     now,
//! );
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
//! let picked = lb.pick(&PickContext::default(), now, &mut rng).ok_or("empty")?;
//! lb.on_start(&picked);
//! // ... send the request to picked.address ...
//! lb.on_end(&picked, std::time::Duration::from_millis(3), now);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::model::{Algorithm, LoadBalancerConfig};
use crate::endpoint::{Endpoint, MAX_WEIGHT};

pub mod error;
pub mod ewma;
pub mod hash;
pub mod maglev;
pub mod p2c;
pub mod random;
pub mod ring_hash;
pub mod round_robin;
pub mod slow_start;
pub mod wrr;

mod picking;
#[cfg(test)]
mod props;
mod refresh;
#[cfg(test)]
mod tests;

pub use error::BalanceError;
pub use hash::hash_key;
pub use slow_start::SlowStart;

use ewma::{Ewma, PeakEwma};
use maglev::Maglev;
use p2c::LeastRequest;
use random::AliasTable;
use ring_hash::Ring;
use wrr::Schedule;

/// What a pick knows about the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    /// The request key's hash ([`hash_key`] of the `hash_on` header), for
    /// ring hash and Maglev. Requests without one get a random endpoint.
    pub hash: Option<u64>,
    /// Endpoints already tried for this request (retries): avoided whenever
    /// another candidate is available. Usually empty or a few entries.
    pub tried: &'a [SocketAddr],
}

impl<'a> PickContext<'a> {
    /// A context with a request hash.
    pub fn with_hash(hash: u64) -> Self {
        Self {
            hash: Some(hash),
            tried: &[],
        }
    }

    /// The same context, avoiding `tried`.
    pub fn tried(mut self, tried: &'a [SocketAddr]) -> Self {
        self.tried = tried;
        self
    }
}

/// The endpoint a pick chose.
///
/// Pass it back to [`Balancer::on_start`] / [`Balancer::on_end`]. `index` is
/// the endpoint's position in the slice given to the last
/// [`Balancer::update`] (duplicates removed), valid until the next update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked {
    /// Position of the endpoint in the current set.
    pub index: usize,
    /// Where to send the request.
    pub address: SocketAddr,
    generation: u64,
}

/// Dynamic state of one endpoint, kept across updates by address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndpointState {
    pub(crate) address: SocketAddr,
    /// Stable hash of the address (schedule phases).
    pub(crate) addr_hash: u64,
    pub(crate) weight: u32,
    pub(crate) in_flight: u32,
    pub(crate) ewma: Ewma,
    pub(crate) ejected: bool,
    /// Warming up since (slow start), if it is.
    pub(crate) warm_since: Option<Instant>,
}

/// What picks read: endpoints, the candidate list and effective weights.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub(crate) endpoints: Vec<EndpointState>,
    /// Indices of the candidates: healthy endpoints, or all in panic mode.
    pub(crate) cands: Vec<usize>,
    /// Per endpoint: whether it is a candidate.
    pub(crate) usable: Vec<bool>,
    /// Per endpoint: weight x slow-start factor.
    pub(crate) eff: Vec<f64>,
    /// Whether all candidates have the same effective weight.
    pub(crate) uniform: bool,
}

impl View {
    #[inline]
    pub(crate) fn in_flight(&self, i: usize) -> u32 {
        self.endpoints.get(i).map_or(u32::MAX, |e| e.in_flight)
    }

    #[inline]
    pub(crate) fn is_tried(&self, i: usize, tried: &[SocketAddr]) -> bool {
        !tried.is_empty()
            && self
                .endpoints
                .get(i)
                .is_some_and(|e| tried.contains(&e.address))
    }
}

/// Per-algorithm precomputed state.
#[derive(Debug, Clone)]
enum Algo {
    RoundRobin(Schedule),
    WeightedRoundRobin(Schedule),
    Random(Option<AliasTable>),
    LeastRequest(LeastRequest),
    PeakEwma(PeakEwma),
    RingHash { ring: Ring, min: u64, max: u64 },
    Maglev { table: Maglev, size: u64 },
}

impl Algo {
    fn uses_slow_start(&self) -> bool {
        !matches!(self, Algo::RingHash { .. } | Algo::Maglev { .. })
    }
}

/// A load balancer over one endpoint set (see the [module docs](self)).
///
/// Owned by one worker (or behind one lock): every method takes `&mut self`
/// and nothing inside locks or allocates per pick.
#[derive(Debug, Clone)]
pub struct Balancer {
    algo: Algo,
    panic_threshold_percent: u32,
    slow_start: Option<SlowStart>,
    default_rtt: Duration,
    view: View,
    by_addr: HashMap<SocketAddr, usize>,
    healthy: usize,
    updated_once: bool,
    /// Candidates and schedules need recomputing before the next pick.
    dirty: bool,
    /// Recompute slow-start weights at this time.
    refresh_at: Option<Instant>,
    generation: u64,
}

// === impl Balancer ===

impl Balancer {
    /// A balancer for `config`, with slow start over `slow_start` if given
    /// (the outlier config's `slow_start`; zero means none).
    pub fn new(
        config: &LoadBalancerConfig,
        slow_start: Option<Duration>,
    ) -> Result<Balancer, BalanceError> {
        if config.panic_threshold_percent > 100 {
            return Err(BalanceError::PanicThreshold {
                got: config.panic_threshold_percent,
            });
        }
        let mut default_rtt = Duration::ZERO;
        let algo = match &config.algorithm {
            Algorithm::RoundRobin => Algo::RoundRobin(Schedule::new(true)),
            Algorithm::WeightedRoundRobin => Algo::WeightedRoundRobin(Schedule::new(false)),
            Algorithm::Random => Algo::Random(None),
            &Algorithm::LeastRequest {
                choice_count,
                active_request_bias,
            } => {
                if !(2..=100).contains(&choice_count) {
                    return Err(BalanceError::ChoiceCount { got: choice_count });
                }
                if !(active_request_bias.is_finite() && active_request_bias >= 0.0) {
                    return Err(BalanceError::ActiveRequestBias {
                        got: active_request_bias,
                    });
                }
                Algo::LeastRequest(LeastRequest {
                    choice_count,
                    bias: active_request_bias,
                })
            }
            &Algorithm::PeakEwma {
                decay,
                default_rtt: rtt,
            } => {
                if decay.is_zero() {
                    return Err(BalanceError::EwmaDecay);
                }
                default_rtt = rtt;
                Algo::PeakEwma(PeakEwma {
                    decay_ns: decay.as_nanos() as f64,
                })
            }
            &Algorithm::RingHash {
                min_ring_size,
                max_ring_size,
            } => {
                let limit = ring_hash::MAX_RING_SIZE;
                if min_ring_size < 1 || min_ring_size > max_ring_size || max_ring_size > limit {
                    return Err(BalanceError::RingSize {
                        min: min_ring_size,
                        max: max_ring_size,
                        limit,
                    });
                }
                Algo::RingHash {
                    ring: Ring::default(),
                    min: min_ring_size,
                    max: max_ring_size,
                }
            }
            &Algorithm::Maglev { table_size } => {
                let limit = maglev::MAX_TABLE_SIZE;
                if table_size > limit || !maglev::is_prime(table_size) {
                    return Err(BalanceError::MaglevTableSize {
                        got: table_size,
                        limit,
                    });
                }
                Algo::Maglev {
                    table: Maglev::default(),
                    size: table_size,
                }
            }
        };
        Ok(Balancer {
            algo,
            panic_threshold_percent: config.panic_threshold_percent,
            slow_start: slow_start.filter(|w| !w.is_zero()).map(SlowStart::new),
            default_rtt,
            view: View::default(),
            by_addr: HashMap::new(),
            healthy: 0,
            updated_once: false,
            dirty: true,
            refresh_at: None,
            generation: 0,
        })
    }

    /// Replace the endpoint set.
    ///
    /// Endpoints whose address remains keep their in-flight count, latency
    /// estimate, ejection and warm-up; their weight and position follow the
    /// new list. Endpoints new since the first update start slow start at
    /// `now` (when configured). A repeated address is ignored after its first
    /// occurrence; weights are clamped to `1..=MAX_WEIGHT`.
    pub fn update(&mut self, endpoints: &[Endpoint], now: Instant) {
        let first = !self.updated_once;
        self.updated_once = true;
        let warm = (!first && self.slow_start.is_some()).then_some(now);
        let mut states = Vec::with_capacity(endpoints.len());
        let mut by_addr = HashMap::with_capacity(endpoints.len());
        for ep in endpoints {
            if by_addr.contains_key(&ep.address) {
                continue;
            }
            let weight = ep.weight.clamp(1, MAX_WEIGHT);
            let state = match self
                .by_addr
                .get(&ep.address)
                .and_then(|&i| self.view.endpoints.get(i))
            {
                Some(old) => EndpointState { weight, ..*old },
                None => EndpointState {
                    address: ep.address,
                    addr_hash: address_hash(ep.address),
                    weight,
                    in_flight: 0,
                    ewma: Ewma::new(self.default_rtt, now),
                    ejected: false,
                    warm_since: warm,
                },
            };
            by_addr.insert(ep.address, states.len());
            states.push(state);
        }
        let same_hash_input = states.len() == self.view.endpoints.len()
            && states
                .iter()
                .zip(&self.view.endpoints)
                .all(|(a, b)| a.address == b.address && a.weight == b.weight);
        self.healthy = states.iter().filter(|e| !e.ejected).count();
        self.view.endpoints = states;
        self.by_addr = by_addr;
        self.generation = self.generation.wrapping_add(1);
        self.dirty = true;
        if !same_hash_input || first {
            self.rebuild_hashing();
        }
    }

    /// Mark the endpoint at `addr` ejected (or back). Coming back starts slow
    /// start at `now` when configured. Unknown addresses are ignored.
    pub fn set_ejected(&mut self, addr: SocketAddr, ejected: bool, now: Instant) {
        let Some(ep) = self
            .by_addr
            .get(&addr)
            .and_then(|&i| self.view.endpoints.get_mut(i))
        else {
            return;
        };
        if ep.ejected == ejected {
            return;
        }
        ep.ejected = ejected;
        if ejected {
            self.healthy = self.healthy.saturating_sub(1);
        } else {
            self.healthy += 1;
            if self.slow_start.is_some() {
                ep.warm_since = Some(now);
            }
        }
        self.dirty = true;
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.view.endpoints.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.view.endpoints.is_empty()
    }

    /// Number of endpoints not ejected.
    pub fn healthy_len(&self) -> usize {
        self.healthy
    }

    /// Whether the balancer is in panic mode: fewer than
    /// `panic_threshold_percent` of the endpoints healthy (or none at all).
    pub fn in_panic(&self) -> bool {
        let total = self.view.endpoints.len() as u128;
        let healthy = self.healthy as u128;
        total > 0
            && (healthy == 0 || healthy * 100 < u128::from(self.panic_threshold_percent) * total)
    }

    /// Requests in flight to `addr`, if it is in the set.
    pub fn in_flight(&self, addr: SocketAddr) -> Option<u32> {
        let i = *self.by_addr.get(&addr)?;
        self.view.endpoints.get(i).map(|e| e.in_flight)
    }

    /// Choose an endpoint for a request. `None` only when the set is empty.
    pub fn pick(
        &mut self,
        ctx: &PickContext<'_>,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Option<Picked> {
        if self.view.endpoints.is_empty() {
            return None;
        }
        if self.dirty || self.refresh_at.is_some_and(|at| now >= at) {
            self.rebuild(now);
        }
        let index = picking::pick(&mut self.algo, &self.view, ctx, now, rng)?;
        let address = self.view.endpoints.get(index)?.address;
        Some(Picked {
            index,
            address,
            generation: self.generation,
        })
    }

    /// A request to `picked` has started.
    pub fn on_start(&mut self, picked: &Picked) {
        if let Some(ep) = self.state_mut(picked) {
            ep.in_flight = ep.in_flight.saturating_add(1);
        }
    }

    /// A request to `picked` has ended after `rtt` (feeds peak EWMA).
    pub fn on_end(&mut self, picked: &Picked, rtt: Duration, now: Instant) {
        let decay_ns = match &self.algo {
            Algo::PeakEwma(p) => Some(p.decay_ns),
            _ => None,
        };
        if let Some(ep) = self.state_mut(picked) {
            ep.in_flight = ep.in_flight.saturating_sub(1);
            if let Some(decay_ns) = decay_ns {
                ep.ewma.observe(rtt, now, decay_ns);
            }
        }
    }

    fn state_mut(&mut self, picked: &Picked) -> Option<&mut EndpointState> {
        let index = if picked.generation == self.generation {
            picked.index
        } else {
            *self.by_addr.get(&picked.address)?
        };
        self.view
            .endpoints
            .get_mut(index)
            .filter(|e| e.address == picked.address)
    }
}

/// A stable hash of an address's text form.
fn address_hash(addr: SocketAddr) -> u64 {
    hash::xxh64(addr.to_string().as_bytes(), 0x6d65_7368)
}
