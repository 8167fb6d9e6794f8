//! Ring hash: consistent hashing on a ring (Ketama), as Envoy's `RING_HASH`.
//!
//! Each endpoint is hashed onto a 64-bit ring at several points
//! (`xxh64(address, seed = j)` for its `j`-th point); a request key's hash
//! goes to the first point at or after it, wrapping around. Adding one of
//! `N` endpoints only takes over the arcs in front of its own points, about
//! `1/N` of the keys; removing one only moves that endpoint's keys. Every
//! client builds the same ring from the same set, whatever order discovery
//! lists the endpoints in.
//!
//! **Points per endpoint.** An endpoint of the smallest weight gets 160
//! points (Ketama's choice, about 8% spread between shares), heavier ones
//! proportionally more, unless the total would leave
//! `min_ring_size..=min(max_ring_size, max(min_ring_size, RING_BUDGET))`, in
//! which case all counts are scaled to the bound (every endpoint keeps at
//! least one point). Because counts do not depend on the number of endpoints
//! (unlike Envoy, where each host's count shrinks as hosts are added and so
//! every addition moves extra keys), adding an endpoint whose weight is not
//! below the current smallest leaves every other point where it was. The
//! budget of [`RING_BUDGET`] points (~1600 endpoints of equal weight) keeps
//! the ring in cache and lookups flat; past it, counts shrink as the set
//! grows, and an addition moves up to about twice its share (Envoy's
//! behaviour at every size). Raise `min_ring_size` to trade memory for
//! stability on very large sets. Slow start does not apply here: changing
//! weights would move keys.
//!
//! **Lookup** is a binary search, made flat by a bucket index on the top bits
//! of the hash: one table read and a search over a handful of points.
//!
//! **Ejected and already-tried endpoints** are skipped by walking on to the
//! next point (the same rule as removing them, so their keys spread over
//! the others and come back when they do), so ejection never rebuilds the
//! ring.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::hash::xxh64;

/// Points of an endpoint of the smallest weight, bounds permitting.
pub(crate) const POINTS_PER_MIN_WEIGHT: f64 = 160.0;

/// Largest allowed `max_ring_size` (Envoy's limit).
pub const MAX_RING_SIZE: u64 = 8_388_608;

/// Largest ring built unless `min_ring_size` asks for more: 2^18 points
/// (3 MiB), so lookups stay in cache.
pub const RING_BUDGET: u64 = 1 << 18;

/// Most points a pick walks past before falling back to a random candidate.
const MAX_WALK: usize = 256;

/// A hash ring over endpoint indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    hashes: Vec<u64>,
    owners: Vec<u32>,
    /// `buckets[b]`: first point whose hash's top bits are `>= b`.
    buckets: Vec<u32>,
    shift: u32,
}

impl Ring {
    /// The ring of `(index, address, weight)`, with `min..=max` points.
    pub(crate) fn new(endpoints: &[(usize, SocketAddr, u32)], min: u64, max: u64) -> Self {
        let total_weight: f64 = endpoints.iter().map(|e| f64::from(e.2)).sum();
        let Some(min_weight) = endpoints.iter().map(|e| e.2).min() else {
            return Self::default();
        };
        let max = max.min(min.max(RING_BUDGET));
        let mut per_unit = POINTS_PER_MIN_WEIGHT / f64::from(min_weight.max(1));
        let estimate = per_unit * total_weight;
        if estimate < min as f64 {
            per_unit = min as f64 / total_weight;
        } else if estimate > max as f64 {
            per_unit = max as f64 / total_weight;
        }
        let mut points: Vec<(u64, u64, u32)> = Vec::new();
        let mut key = String::with_capacity(48);
        for &(index, address, weight) in endpoints {
            let Ok(owner) = u32::try_from(index) else {
                continue;
            };
            let count = ((per_unit * f64::from(weight)).round() as u64).max(1);
            key.clear();
            let _ = write!(key, "{address}");
            let tie = xxh64(key.as_bytes(), u64::MAX);
            for j in 0..count {
                points.push((xxh64(key.as_bytes(), j), tie, owner));
            }
        }
        points.sort_unstable();
        let hashes: Vec<u64> = points.iter().map(|p| p.0).collect();
        let owners: Vec<u32> = points.iter().map(|p| p.2).collect();
        let bits = (usize::BITS - hashes.len().leading_zeros())
            .saturating_sub(1)
            .min(20);
        let shift = 64 - bits;
        let bucket_count = 1usize << bits;
        let mut buckets = Vec::with_capacity(bucket_count + 1);
        let mut at = 0usize;
        for b in 0..=bucket_count {
            while hashes
                .get(at)
                .is_some_and(|&h| (h.checked_shr(shift).unwrap_or(0) as usize) < b)
            {
                at += 1;
            }
            buckets.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
        Self {
            hashes,
            owners,
            buckets,
            shift,
        }
    }

    /// Number of points.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The owner of the first point at or after `hash` that `accept`s, walking
    /// at most a bounded number of points.
    #[inline]
    pub(crate) fn pick(&self, hash: u64, accept: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.hashes.len();
        if len == 0 {
            return None;
        }
        let mut at = self.lookup(hash);
        for _ in 0..MAX_WALK.min(len) {
            let owner = *self.owners.get(at)? as usize;
            if accept(owner) {
                return Some(owner);
            }
            at += 1;
            if at == len {
                at = 0;
            }
        }
        None
    }

    /// Position of the first point at or after `hash` (wrapping).
    #[inline]
    fn lookup(&self, hash: u64) -> usize {
        let b = hash.checked_shr(self.shift).unwrap_or(0) as usize;
        let lo = self.buckets.get(b).map_or(0, |&x| x as usize);
        let hi = self
            .buckets
            .get(b + 1)
            .map_or(self.hashes.len(), |&x| x as usize);
        let within = self
            .hashes
            .get(lo..hi)
            .map_or(0, |s| s.partition_point(|&h| h < hash));
        let at = lo + within;
        if at >= self.hashes.len() { 0 } else { at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(n: usize) -> Vec<(usize, SocketAddr, u32)> {
        (0..n)
            .map(|i| {
                (
                    i,
                    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8], 80)),
                    1,
                )
            })
            .collect()
    }

    #[test]
    fn sizes_follow_bounds() {
        assert_eq!(Ring::new(&eps(10), 1024, MAX_RING_SIZE).len(), 1600);
        assert_eq!(Ring::new(&eps(2), 1024, MAX_RING_SIZE).len(), 1024);
        assert_eq!(Ring::new(&eps(100), 16, 1000).len(), 1000);
        // Every endpoint keeps a point even under a tiny maximum.
        assert_eq!(Ring::new(&eps(50), 1, 10).len(), 50);
        assert_eq!(Ring::new(&[], 1, 10).len(), 0);
    }

    #[test]
    fn lookup_matches_linear_search() {
        let ring = Ring::new(&eps(37), 1024, MAX_RING_SIZE);
        let mut h = 12345u64;
        for _ in 0..5000 {
            h = super::super::hash::mix(h);
            let want = ring.hashes.iter().position(|&p| p >= h).unwrap_or(0);
            assert_eq!(ring.lookup(h), want);
        }
        assert_eq!(
            ring.lookup(u64::MAX),
            ring.hashes.iter().position(|&p| p == u64::MAX).unwrap_or(0)
        );
    }

    #[test]
    fn order_of_endpoints_does_not_matter() {
        let a = eps(20);
        let mut b = a.clone();
        b.reverse();
        // Re-index b so owners refer to the same addresses via a map.
        let ra = Ring::new(&a, 1024, MAX_RING_SIZE);
        let rb = Ring::new(&b, 1024, MAX_RING_SIZE);
        let addr_a = |i: usize| a[i].1;
        let addr_b = |i: usize| b.iter().find(|e| e.0 == i).unwrap().1;
        let mut h = 7u64;
        for _ in 0..2000 {
            h = super::super::hash::mix(h);
            let x = ra.pick(h, |_| true).unwrap();
            let y = rb.pick(h, |_| true).unwrap();
            assert_eq!(addr_a(x), addr_b(y));
        }
    }
}
