//! A per-thread random source for the request path: no lock, no allocation.
//!
//! The router's split and the balancer's pick need randomness on every
//! request. A shared `Mutex<Rng>` would be a lock every core fights over;
//! instead each thread keeps its own small generator, seeded once from the
//! process's random hasher keys.

use std::cell::RefCell;
use std::hash::BuildHasher;

use rand::SeedableRng;
use rand::rngs::SmallRng;

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(seeded());
}

fn seeded() -> SmallRng {
    let seed = std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id());
    SmallRng::seed_from_u64(seed)
}

/// Runs `f` with this thread's generator.
pub(crate) fn with_rng<R>(f: impl FnOnce(&mut SmallRng) -> R) -> R {
    RNG.with(|cell| match cell.try_borrow_mut() {
        Ok(mut rng) => f(&mut rng),
        // Only on re-entrance, which the callers never do.
        Err(_) => f(&mut seeded()),
    })
}
