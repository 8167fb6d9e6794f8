//! Recomputing what picks read: candidates (health, panic mode), slow-start
//! weights and schedules (lazily, before a pick), and the ring or Maglev
//! table (eagerly, on membership change).

use std::net::SocketAddr;
use std::time::Instant;

use super::random::AliasTable;
use super::{Algo, Balancer, Maglev, Ring};

// === impl Balancer ===

impl Balancer {
    /// Recompute candidates, effective weights and schedules.
    pub(super) fn rebuild(&mut self, now: Instant) {
        let view = &mut self.view;
        let n = view.endpoints.len();
        let mut warming = false;
        view.eff.clear();
        for ep in &mut view.endpoints {
            let mut factor = 1.0;
            if let Some(since) = ep.warm_since {
                match self.slow_start {
                    Some(s) if !s.done(since, now) => {
                        if !ep.ejected && self.algo.uses_slow_start() {
                            warming = true;
                            factor = s.factor(since, now);
                        }
                    }
                    _ => ep.warm_since = None,
                }
            }
            view.eff.push(f64::from(ep.weight) * factor);
        }
        let panic = self.healthy == 0 || {
            let total = n as u128;
            (self.healthy as u128) * 100 < u128::from(self.panic_threshold_percent) * total
        };
        view.cands.clear();
        view.usable.clear();
        for (i, ep) in view.endpoints.iter().enumerate() {
            let usable = panic || !ep.ejected;
            view.usable.push(usable);
            if usable {
                view.cands.push(i);
            }
        }
        let first = view.cands.first().and_then(|&i| view.eff.get(i)).copied();
        view.uniform = view
            .cands
            .iter()
            .all(|&i| view.eff.get(i).copied() == first);
        match &mut self.algo {
            Algo::RoundRobin(s) | Algo::WeightedRoundRobin(s) => s.rebuild(view),
            Algo::Random(table) => {
                *table = (!view.uniform).then(|| {
                    let weights: Vec<f64> = view
                        .cands
                        .iter()
                        .map(|&i| view.eff.get(i).copied().unwrap_or(0.0))
                        .collect();
                    AliasTable::new(&weights)
                });
            }
            Algo::LeastRequest(_)
            | Algo::PeakEwma(_)
            | Algo::RingHash { .. }
            | Algo::Maglev { .. } => {}
        }
        self.refresh_at = match (warming, self.slow_start) {
            (true, Some(s)) => Some(now + s.refresh_every()),
            _ => None,
        };
        self.dirty = false;
    }

    /// Rebuild the ring or Maglev table from the current set.
    pub(super) fn rebuild_hashing(&mut self) {
        let items = || -> Vec<(usize, SocketAddr, u32)> {
            self.view
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| (i, e.address, e.weight))
                .collect()
        };
        match &self.algo {
            Algo::RingHash { min, max, .. } => {
                let ring = Ring::new(&items(), *min, *max);
                if let Algo::RingHash { ring: r, .. } = &mut self.algo {
                    *r = ring;
                }
            }
            Algo::Maglev { size, .. } => {
                let table = Maglev::new(&items(), *size);
                if let Algo::Maglev { table: t, .. } = &mut self.algo {
                    *t = table;
                }
            }
            _ => {}
        }
    }
}
