//! Where trace and span ids come from: an injected RNG.

use std::cell::RefCell;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{SpanId, TraceId};

/// A source of trace and span ids. Implementations never return all-zero
/// ids.
pub trait IdGenerator: Send + Sync + Debug {
    /// A new trace id.
    fn trace_id(&self) -> TraceId;
    /// A new span id.
    fn span_id(&self) -> SpanId;

    /// A new trace id and a new span id (in that order), for a new trace:
    /// one call where a generator can draw both at once.
    fn trace_and_span_id(&self) -> (TraceId, SpanId) {
        (self.trace_id(), self.span_id())
    }
}

// Ids are drawn as whole words: `random::<[u8; N]>()` would draw one
// word per byte.
fn trace_from(rng: &mut impl Rng) -> TraceId {
    loop {
        let id = TraceId(rng.random::<u128>().to_le_bytes());
        if !id.is_zero() {
            return id;
        }
    }
}

fn span_from(rng: &mut impl Rng) -> SpanId {
    loop {
        let id = SpanId(rng.random::<u64>().to_le_bytes());
        if !id.is_zero() {
            return id;
        }
    }
}

/// The default: a fast RNG per thread (no lock shared across cores), seeded
/// from the process's random hash keys and the thread. Not cryptographic:
/// trace ids need uniqueness, not secrecy.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

thread_local! {
    static THREAD_RNG: RefCell<SmallRng> = RefCell::new(SmallRng::seed_from_u64(random_seed()));
}

fn random_seed() -> u64 {
    // `RandomState` is seeded from the OS once per thread and varies per
    // instance; mix in the thread id for good measure.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6d65_7368);
    std::hash::Hash::hash(&std::thread::current().id(), &mut h);
    h.finish()
}

impl IdGenerator for RandomIds {
    fn trace_id(&self) -> TraceId {
        THREAD_RNG.with(|r| trace_from(&mut *r.borrow_mut()))
    }

    fn span_id(&self) -> SpanId {
        THREAD_RNG.with(|r| span_from(&mut *r.borrow_mut()))
    }

    fn trace_and_span_id(&self) -> (TraceId, SpanId) {
        THREAD_RNG.with(|r| {
            let rng = &mut *r.borrow_mut();
            (trace_from(rng), span_from(rng))
        })
    }
}

/// Ids from one seeded RNG behind a lock: deterministic, for tests.
#[derive(Debug)]
pub struct SeededIds(Mutex<SmallRng>);

impl SeededIds {
    /// Ids drawn from `SmallRng::seed_from_u64(seed)`.
    pub fn new(seed: u64) -> SeededIds {
        SeededIds(Mutex::new(SmallRng::seed_from_u64(seed)))
    }
}

impl IdGenerator for SeededIds {
    fn trace_id(&self) -> TraceId {
        trace_from(&mut *self.0.lock())
    }

    fn span_id(&self) -> SpanId {
        span_from(&mut *self.0.lock())
    }
}
