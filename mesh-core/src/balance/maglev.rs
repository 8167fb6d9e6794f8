//! Maglev: consistent hashing through a lookup table (Google's Maglev, as
//! Envoy's `MAGLEV`, with Envoy's weighted variant).
//!
//! Each endpoint gets a pseudo-random permutation of the table's slots,
//! `(offset + j x skip) mod M` with `offset` and `skip` from two hashes of its
//! address (`M` prime, so every `skip` visits every slot). Endpoints take turns
//! claiming their next free preferred slot until the table is full. A pick is
//! `table[hash mod M]`: one read, flat in the endpoint count. Tables built by
//! different clients from the same set agree, and a membership change
//! reassigns only a little more than the changed share of slots (Maglev trades
//! a bit of stability for perfect balance and `O(1)` lookup).
//!
//! **Weights** (Envoy): in round `t`, an endpoint of weight `w` claims a slot
//! when `t x w` has reached its running target, which grows by the largest
//! weight with every claim; so it claims in proportion to its weight. Turns
//! are ordered by a heap on `(round, index)`, which makes building
//! `O(M log n)` even with very unequal weights (Envoy's loop over all
//! endpoints per round is `O(M x n)` in the worst case).
//!
//! **Ejected and already-tried endpoints**: the key's hash is remixed and the
//! table read again (a few times at most), so the same key keeps going to the
//! same substitute and ejection never rebuilds the table. Slow start does not
//! apply (it would move keys).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use super::hash::{mix, xxh64};

/// The default and recommended table size (prime).
pub const DEFAULT_TABLE_SIZE: u64 = 65_537;

/// Largest allowed table size (Envoy's limit, prime).
pub const MAX_TABLE_SIZE: u64 = 5_000_011;

/// Remixes tried before falling back to a random candidate.
const MAX_TRIES: usize = 32;

/// A Maglev lookup table over endpoint indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Maglev {
    table: Vec<u32>,
}

struct Builder {
    owner: u32,
    offset: u64,
    skip: u64,
    next: u64,
    weight: u64,
    claims: u64,
}

impl Maglev {
    /// The table of `size` (prime) slots over `(index, address, weight)`.
    pub(crate) fn new(endpoints: &[(usize, SocketAddr, u32)], size: u64) -> Self {
        let Some(max_weight) = endpoints.iter().map(|e| u64::from(e.2.max(1))).max() else {
            return Self::default();
        };
        let Ok(slots) = usize::try_from(size) else {
            return Self::default();
        };
        if size < 2 {
            return Self::default();
        }
        let mut key = String::with_capacity(48);
        let mut builders: Vec<Builder> = Vec::with_capacity(endpoints.len());
        for &(index, address, weight) in endpoints {
            let Ok(owner) = u32::try_from(index) else {
                continue;
            };
            key.clear();
            let _ = write!(key, "{address}");
            builders.push(Builder {
                owner,
                offset: xxh64(key.as_bytes(), 0) % size,
                skip: xxh64(key.as_bytes(), 1) % (size - 1) + 1,
                next: 0,
                weight: u64::from(weight.max(1)),
                claims: 0,
            });
        }
        // Order of turns must not depend on the order discovery listed the
        // endpoints in: sort by offset/skip (address hashes).
        builders.sort_unstable_by_key(|b| (b.offset, b.skip, b.owner));
        let mut table = vec![u32::MAX; slots];
        let mut filled = 0usize;
        let mut turns: BinaryHeap<Reverse<(u64, usize)>> =
            (0..builders.len()).map(|i| Reverse((1, i))).collect();
        while filled < slots {
            let Some(Reverse((round, i))) = turns.pop() else {
                break;
            };
            let Some(b) = builders.get_mut(i) else {
                break;
            };
            // Claim the next free preferred slot.
            loop {
                let slot = ((b.offset + b.next % size * b.skip % size) % size) as usize;
                b.next += 1;
                if let Some(cell) = table.get_mut(slot) {
                    if *cell == u32::MAX {
                        *cell = b.owner;
                        filled += 1;
                        break;
                    }
                } else {
                    break;
                }
            }
            b.claims += 1;
            // The round of the next claim: the first after this one where
            // round x weight reaches claims x max_weight.
            let due =
                (u128::from(b.claims) * u128::from(max_weight)).div_ceil(u128::from(b.weight));
            let next_round = u64::try_from(due).unwrap_or(u64::MAX).max(round + 1);
            turns.push(Reverse((next_round, i)));
        }
        Self { table }
    }

    /// The owner of the key's slot, or of the slot of a remix of the key
    /// while the owner is not `accept`ed.
    #[inline]
    pub(crate) fn pick(&self, hash: u64, accept: impl Fn(usize) -> bool) -> Option<usize> {
        let size = self.table.len() as u64;
        if size == 0 {
            return None;
        }
        let mut h = hash;
        for _ in 0..MAX_TRIES {
            let owner = *self.table.get((h % size) as usize)?;
            if owner != u32::MAX && accept(owner as usize) {
                return Some(owner as usize);
            }
            h = mix(h);
        }
        None
    }

    /// Slots owned by each index (tests).
    #[cfg(test)]
    fn shares(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &o in &self.table {
            counts[o as usize] += 1;
        }
        counts
    }
}

/// Whether `n` is prime (trial division; config sizes are at most a few million).
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(weights: &[u32]) -> Vec<(usize, SocketAddr, u32)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (i, SocketAddr::from(([10, 1, 0, i as u8], 8080)), w))
            .collect()
    }

    #[test]
    fn fills_every_slot_evenly() {
        let m = Maglev::new(&eps(&[1; 7]), DEFAULT_TABLE_SIZE);
        let shares = m.shares(7);
        assert_eq!(shares.iter().sum::<usize>(), 65_537);
        for s in shares {
            assert!((9362..=9363).contains(&s), "{s}");
        }
    }

    #[test]
    fn weighted_shares() {
        let m = Maglev::new(&eps(&[1, 2, 5]), DEFAULT_TABLE_SIZE);
        let shares = m.shares(3);
        let total = 65_537.0;
        for (s, want) in shares.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            assert!((*s as f64 / total - want).abs() < 0.002, "{shares:?}");
        }
        // Extreme weights build quickly and still give the light one a slot.
        let m = Maglev::new(&eps(&[1_000_000, 1]), DEFAULT_TABLE_SIZE);
        assert!(m.shares(2)[1] >= 1);
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537) && is_prime(5_000_011) && is_prime(2) && is_prime(251));
        assert!(!is_prime(65_536) && !is_prime(1) && !is_prime(0) && !is_prime(9));
    }
}
