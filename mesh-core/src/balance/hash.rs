//! Request-key hashing: XXH64, the hash Envoy and gRPC use for ring hash and
//! Maglev.
//!
//! A consistent-hash balancer is only consistent if every client maps a key to
//! the same point, so the hash must be stable across processes, platforms and
//! releases: [`std::hash::DefaultHasher`] promises none of that. XXH64 does,
//! is fast on short keys (header values) and mixes well. This is a plain,
//! safe implementation of the published algorithm, checked against the
//! reference library's outputs in the tests.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// The 64-bit hash of a request key (a header value, ...), as ring hash and
/// Maglev expect it in [`PickContext::hash`](super::PickContext::hash).
///
/// This is XXH64 with seed 0, so `hash_key(b"abc") == 0x44bc2cf5ad770999`.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// XXH64 of `data` with `seed`.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let len = data.len() as u64;
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        let mut stripes = data.chunks_exact(32);
        for stripe in &mut stripes {
            for (lane, word) in v.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, read_u64(word));
            }
        }
        rest = stripes.remainder();
        let [v1, v2, v3, v4] = v;
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len);
    let mut words = rest.chunks_exact(8);
    for word in &mut words {
        h ^= round(0, read_u64(word));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        let (word, tail) = rest.split_at(4);
        h ^= u64::from(read_u32(word)).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = tail;
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// A cheap, well-mixing step from one 64-bit value to another (SplitMix64's
/// finalizer): used to derive further probe positions from a request hash.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform index below `n` from 64 random bits (Lemire's multiply-shift,
/// without the rejection step: the bias is below 2^-40 for any realistic `n`).
#[inline]
pub(crate) fn reduce(r: u64, n: usize) -> usize {
    ((u128::from(r) * n as u128) >> 64) as usize
}

/// Two distinct uniform positions below `n >= 2` (P2C compares two
/// *different* endpoints: with replacement, two endpoints would be compared
/// with themselves half the time).
#[inline]
pub(crate) fn two_distinct(rng: &mut impl rand::Rng, n: usize) -> (usize, usize) {
    let a = reduce(rng.next_u64(), n);
    let b = reduce(rng.next_u64(), n.saturating_sub(1));
    (a, if b >= a { b + 1 } else { b })
}

#[inline]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline]
fn merge(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline]
fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    for (dst, src) in word.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u64::from_le_bytes(word)
}

#[inline]
fn read_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    for (dst, src) in word.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed with the reference C library (libxxhash 0.8).
    #[test]
    fn matches_reference_xxh64() {
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
        assert_eq!(hash_key(b"abc"), 0x44bc_2cf5_ad77_0999);
        assert_eq!(hash_key(b"user-42"), 0x397e_9d3a_76af_7c81);
        assert_eq!(
            hash_key(b"The quick brown fox jumps over the lazy dog"),
            0x0b24_2d36_1fda_71bc
        );
        assert_eq!(xxh64(b"127.0.0.1:8080", 1), 0xa5d6_dc00_53ab_4ed8);
        let bytes: Vec<u8> = (0..100).collect();
        assert_eq!(xxh64(&bytes, 7), 0x8065_3e7e_9b88_7cdd);
    }

    #[test]
    fn reduce_stays_in_range() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            for n in [1, 2, 7, 65_537] {
                assert!(reduce(r, n) < n);
            }
        }
        assert_eq!(reduce(u64::MAX, 10), 9);
        assert_eq!(reduce(0, 10), 0);
    }
}
