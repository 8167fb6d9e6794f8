//! Round robin: each candidate endpoint in turn.
//!
//! The rotation walks the precomputed candidate list (healthy endpoints, or
//! all of them in panic mode) with a cursor, so a pick is one load and one
//! compare whatever the endpoint count. The cursor starts at a random place
//! (drawn on the first pick) so that many clients started together do not
//! all hit the first endpoint first.
//!
//! Plain round robin ignores weights. While an endpoint warms up (slow
//! start) its share must still ramp, so the schedule then switches to the
//! weighted scheduler of [`super::wrr`] (the static stride scheduler of gRFC
//! A58) with weights `1 x factor`, as Envoy's round robin does for slow start.

use rand::Rng;

use super::hash::reduce;

/// A rotation over a candidate list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rotation {
    cursor: Option<usize>,
}

impl Rotation {
    /// The next candidate position in `0..len` (`None` when `len == 0`).
    #[inline]
    pub(crate) fn next(&mut self, len: usize, rng: &mut impl Rng) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let mut at = match self.cursor {
            Some(at) => at,
            None => reduce(rng.next_u64(), len),
        };
        if at >= len {
            at = 0;
        }
        self.cursor = Some(at + 1);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn visits_each_position_once_per_cycle() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut rot = Rotation::default();
        let mut seen = vec![0u32; 7];
        for _ in 0..70 {
            let at = rot.next(7, &mut rng).unwrap();
            seen[at] += 1;
        }
        assert!(seen.iter().all(|&c| c == 10), "{seen:?}");
    }

    #[test]
    fn survives_shrinking_list_and_empty() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut rot = Rotation::default();
        for _ in 0..5 {
            rot.next(10, &mut rng);
        }
        for _ in 0..20 {
            assert!(rot.next(3, &mut rng).unwrap() < 3);
        }
        assert_eq!(rot.next(0, &mut rng), None);
    }
}
