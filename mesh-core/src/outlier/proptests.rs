//! Property: ejection never exceeds `max_ejected_percent`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::config::model::{FailureRateConfig, OutlierConfig, SuccessRateConfig};

const SLOTS: usize = 24;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, 0, i as u8], 80))
}

#[derive(Debug, Clone)]
enum Op {
    /// Outcomes on one endpoint: `failures` failures then `successes` successes.
    Traffic {
        slot: usize,
        failures: u8,
        successes: u8,
    },
    /// Time passes, then the periodic pass.
    Evaluate { advance_secs: u64 },
    /// A new endpoint set (a bit mask over the slots).
    SetEndpoints { mask: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SLOTS, 0u8..12, 0u8..4)
            .prop_map(|(slot, failures, successes)| Op::Traffic { slot, failures, successes }),
        3 => (0u64..90).prop_map(|advance_secs| Op::Evaluate { advance_secs }),
        1 => any::<u32>().prop_map(|mask| Op::SetEndpoints { mask }),
    ]
}

fn bound(pct: u32, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (pct as usize * n / 100).max(1)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ejection_never_exceeds_max_ejected_percent(
        n in 1usize..=SLOTS,
        pct in 0u32..=100,
        consecutive in 1u32..4,
        rates in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let config = OutlierConfig {
            consecutive_failures: Some(consecutive),
            failure_rate: rates.then_some(FailureRateConfig { threshold: 0.5, min_requests: 3 }),
            success_rate: rates.then_some(SuccessRateConfig { stdev_factor: 0.5, min_hosts: 2, min_requests: 2 }),
            interval: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: pct,
            slow_start: None,
        };
        let mut d = OutlierDetector::new(config.clone()).unwrap();
        let stats: Vec<EndpointStats> = (0..SLOTS).map(|_| EndpointStats::new(&config)).collect();
        let mut now = Instant::now();
        let mut members: Vec<usize> = (0..n).collect();
        let addrs: Vec<_> = members.iter().map(|&i| addr(i)).collect();
        d.set_endpoints(&addrs, now);
        let mut ejections = 0u32;
        for op in ops {
            match op {
                Op::Traffic { slot, failures, successes } => {
                    let outcomes = std::iter::repeat_n(Observation::Failure, failures as usize)
                        .chain(std::iter::repeat_n(Observation::Success, successes as usize));
                    for o in outcomes {
                        if stats[slot].record(o) {
                            let before = d.state(addr(slot));
                            let room = d.ejected_count() < bound(pct, members.len());
                            let event = d.report(addr(slot), o, now);
                            // Refused only at the cap: the bound is not stricter than needed.
                            let selectable = matches!(before, Some(HostState::Healthy | HostState::Probation));
                            if o == Observation::Failure && selectable && room {
                                prop_assert!(
                                    matches!(event, Some(OutlierEvent::Ejected { .. })),
                                    "{:?} -> {:?}", before, event
                                );
                                ejections += 1;
                            }
                        }
                    }
                }
                Op::Evaluate { advance_secs } => {
                    now += Duration::from_secs(advance_secs);
                    d.evaluate(stats.iter().enumerate().map(|(i, s)| (addr(i), s)), now);
                }
                Op::SetEndpoints { mask } => {
                    members = (0..SLOTS).filter(|i| mask & (1 << i) != 0).collect();
                    let addrs: Vec<_> = members.iter().map(|&i| addr(i)).collect();
                    d.set_endpoints(&addrs, now);
                }
            }
            let ejected = members.iter().filter(|&&i| d.is_ejected(addr(i))).count();
            prop_assert_eq!(ejected, d.ejected_count());
            prop_assert_eq!(d.endpoint_count(), members.len());
            prop_assert!(
                ejected <= bound(pct, members.len()),
                "{} of {} ejected with max_ejected_percent {}", ejected, members.len(), pct
            );
        }
        prop_assert!(u64::from(ejections) <= d.ejections_total());
    }
}
