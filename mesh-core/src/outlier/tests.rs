use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::model::{FailureRateConfig, OutlierConfig, SuccessRateConfig};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80))
}

fn config() -> OutlierConfig {
    OutlierConfig {
        consecutive_failures: Some(5),
        failure_rate: None,
        success_rate: None,
        interval: SECS(10),
        base_ejection: SECS(30),
        max_ejection: SECS(300),
        max_ejected_percent: 100,
        slow_start: None,
    }
}

/// A detector over endpoints `0..n`, with their stats.
fn setup(config: OutlierConfig, n: u16, now: Instant) -> (OutlierDetector, Vec<EndpointStats>) {
    let mut detector = OutlierDetector::new(config.clone()).unwrap();
    let addrs: Vec<_> = (0..n).map(addr).collect();
    assert!(detector.set_endpoints(&addrs, now).is_empty());
    let stats = (0..n).map(|_| EndpointStats::new(&config)).collect();
    (detector, stats)
}

fn all(stats: &[EndpointStats]) -> impl Iterator<Item = (SocketAddr, &EndpointStats)> {
    stats.iter().enumerate().map(|(i, s)| (addr(i as u16), s))
}

/// Records `successes` then `failures` on `stats`, reporting as told.
fn feed(
    detector: &mut OutlierDetector,
    stats: &EndpointStats,
    a: SocketAddr,
    successes: u32,
    failures: u32,
    now: Instant,
) -> Vec<OutlierEvent> {
    let mut events = Vec::new();
    let outcomes = std::iter::repeat_n(Observation::Success, successes as usize)
        .chain(std::iter::repeat_n(Observation::Failure, failures as usize));
    for o in outcomes {
        if stats.record(o) {
            events.extend(detector.report(a, o, now));
        }
    }
    events
}

#[test]
fn invalid_configs_are_typed_errors() {
    let bad = |f: fn(&mut OutlierConfig)| {
        let mut c = config();
        f(&mut c);
        OutlierDetector::new(c).unwrap_err()
    };
    assert_eq!(
        bad(|c| c.interval = Duration::ZERO),
        OutlierConfigError::ZeroInterval
    );
    assert_eq!(
        bad(|c| c.base_ejection = Duration::ZERO),
        OutlierConfigError::ZeroBaseEjection
    );
    assert!(matches!(
        bad(|c| c.max_ejection = SECS(1)),
        OutlierConfigError::MaxEjectionBelowBase { .. }
    ));
    assert_eq!(
        bad(|c| c.max_ejected_percent = 101),
        OutlierConfigError::MaxEjectedPercent(101)
    );
    assert_eq!(
        bad(|c| c.consecutive_failures = Some(0)),
        OutlierConfigError::ZeroConsecutiveFailures
    );
    let e = bad(|c| {
        c.failure_rate = Some(FailureRateConfig {
            threshold: 1.5,
            min_requests: 1,
        })
    });
    assert_eq!(e, OutlierConfigError::FailureRateThreshold(1.5));
    assert!(
        e.to_string()
            .contains("outlier_detection.failure_rate.threshold")
    );
    assert!(matches!(
        bad(|c| c.success_rate = Some(SuccessRateConfig {
            stdev_factor: f64::NAN,
            ..Default::default()
        })),
        OutlierConfigError::StdevFactor(_)
    ));
    assert!(OutlierDetector::new(OutlierConfig::default()).is_ok());
}

#[test]
fn consecutive_failures_eject_at_the_threshold() {
    let t0 = Instant::now();
    let (mut d, stats) = setup(config(), 4, t0);
    let a = addr(0);
    // A success breaks the run: 4 failures, success, 4 failures: no ejection.
    assert!(feed(&mut d, &stats[0], a, 0, 4, t0).is_empty());
    assert!(feed(&mut d, &stats[0], a, 1, 4, t0).is_empty());
    assert_eq!(stats[0].consecutive_failures(), 4);
    // The 5th in a row ejects at once, for base_ejection.
    assert!(stats[0].record(Observation::Failure));
    assert_eq!(
        d.report(a, Observation::Failure, t0),
        Some(OutlierEvent::Ejected {
            addr: a,
            until: t0 + SECS(30),
            times: 1,
            reason: EjectionReason::ConsecutiveFailures
        })
    );
    assert!(d.is_ejected(a));
    assert_eq!(d.ejected_count(), 1);
    assert_eq!(d.ejections_total(), 1);
    // Further reports while ejected change nothing.
    assert_eq!(d.report(a, Observation::Failure, t0), None);
    assert_eq!(d.ejections_total(), 1);
}

#[test]
fn consecutive_signal_repeats_every_threshold_failures() {
    let stats = EndpointStats::new(&config());
    let signals: Vec<usize> = (1..=15)
        .filter(|_| stats.record(Observation::Failure))
        .collect();
    assert_eq!(signals.len(), 3, "at 5, 10 and 15 failures in a row");
    let off = EndpointStats::new(&OutlierConfig {
        consecutive_failures: None,
        ..config()
    });
    assert!((0..50).all(|_| !off.record(Observation::Failure)));
}

#[test]
fn consecutive_ejection_off_ignores_reports() {
    let t0 = Instant::now();
    let (mut d, _) = setup(
        OutlierConfig {
            consecutive_failures: None,
            ..config()
        },
        2,
        t0,
    );
    assert_eq!(d.on_consecutive_failures(addr(0), t0), None);
    assert_eq!(
        d.report(addr(9), Observation::Failure, t0),
        None,
        "unknown endpoint"
    );
}

#[test]
fn failure_rate_ejects_only_with_enough_volume() {
    let t0 = Instant::now();
    let cfg = OutlierConfig {
        consecutive_failures: None,
        failure_rate: Some(FailureRateConfig {
            threshold: 0.5,
            min_requests: 20,
        }),
        ..config()
    };
    let (mut d, stats) = setup(cfg, 3, t0);
    // 0: 19 requests, all failed (not enough volume). 1: 10/20 failed (at the
    // threshold). 2: 9/20 failed (below).
    feed(&mut d, &stats[0], addr(0), 0, 19, t0);
    feed(&mut d, &stats[1], addr(1), 10, 10, t0);
    feed(&mut d, &stats[2], addr(2), 11, 9, t0);
    let t1 = t0 + SECS(10);
    let events = d.evaluate(all(&stats), t1);
    assert_eq!(
        events,
        vec![OutlierEvent::Ejected {
            addr: addr(1),
            until: t1 + SECS(30),
            times: 1,
            reason: EjectionReason::FailureRate
        }]
    );
    // Counters were reset: one more failure on 0 does not reach 20 with the old ones.
    assert_eq!(stats[0].interval_counts(), IntervalCounts::default());
    feed(&mut d, &stats[0], addr(0), 0, 1, t1);
    assert!(d.evaluate(all(&stats), t1 + SECS(10)).is_empty());
    // With the volume, it goes.
    feed(&mut d, &stats[0], addr(0), 0, 20, t1);
    let events = d.evaluate(all(&stats), t1 + SECS(20));
    assert!(matches!(events[..], [OutlierEvent::Ejected { addr: a, .. }] if a == addr(0)));
}

#[test]
fn success_rate_outlier_matches_a_hand_computed_example() {
    let t0 = Instant::now();
    let cfg = OutlierConfig {
        consecutive_failures: None,
        success_rate: Some(SuccessRateConfig {
            stdev_factor: 1.9,
            min_hosts: 5,
            min_requests: 100,
        }),
        ..config()
    };
    let (mut d, stats) = setup(cfg, 7, t0);
    // Rates 100, 100, 100, 100, 50 (percent), 100 requests each; host 5 has
    // too few requests (and a terrible rate), host 6 none.
    // mean = 450 / 5 = 90; squared deviations 4 x 100 + 1600 = 2000;
    // variance = 2000 / 5 = 400; stdev = 20; threshold = 90 - 1.9 x 20 = 52.
    for (i, s) in stats.iter().enumerate().take(4) {
        feed(&mut d, s, addr(i as u16), 100, 0, t0);
    }
    feed(&mut d, &stats[4], addr(4), 50, 50, t0);
    feed(&mut d, &stats[5], addr(5), 0, 99, t0);
    let events = d.evaluate(all(&stats), t0 + SECS(10));
    let sr = d.last_success_rate().unwrap();
    assert_eq!(sr.hosts, 5);
    assert!((sr.mean - 90.0).abs() < 1e-9);
    assert!((sr.stdev - 20.0).abs() < 1e-9);
    assert!((sr.threshold - 52.0).abs() < 1e-9);
    assert_eq!(events.len(), 1);
    assert!(matches!(
        events[0],
        OutlierEvent::Ejected { addr: a, reason: EjectionReason::SuccessRate, .. } if a == addr(4)
    ));
    assert!(!d.is_ejected(addr(5)), "not enough volume to be rated");
}

#[test]
fn success_rate_needs_min_hosts_and_is_relative() {
    let t0 = Instant::now();
    let cfg = OutlierConfig {
        consecutive_failures: None,
        success_rate: Some(SuccessRateConfig {
            stdev_factor: 1.0,
            min_hosts: 5,
            min_requests: 10,
        }),
        ..config()
    };
    // Only 4 endpoints with volume: no statistics, no ejection.
    let (mut d, stats) = setup(cfg.clone(), 4, t0);
    for (i, s) in stats.iter().enumerate().take(3) {
        feed(&mut d, s, addr(i as u16), 10, 0, t0);
    }
    feed(&mut d, &stats[3], addr(3), 0, 10, t0);
    assert!(d.evaluate(all(&stats), t0 + SECS(10)).is_empty());
    assert_eq!(d.last_success_rate(), None);
    // Everyone equally bad: stdev 0, nobody below the mean.
    let (mut d, stats) = setup(cfg, 6, t0);
    for (i, s) in stats.iter().enumerate() {
        feed(&mut d, s, addr(i as u16), 2, 8, t0);
    }
    assert!(d.evaluate(all(&stats), t0 + SECS(10)).is_empty());
    assert_eq!(d.last_success_rate().unwrap().stdev, 0.0);
}

/// Ejects `a` by consecutive failures, or by a failed probe when on probation.
fn fail_out(
    d: &mut OutlierDetector,
    s: &EndpointStats,
    a: SocketAddr,
    now: Instant,
) -> OutlierEvent {
    let events = feed(d, s, a, 0, 5, now);
    assert_eq!(events.len(), 1, "{events:?}");
    events[0]
}

#[test]
fn ejection_time_grows_with_each_ejection_and_is_capped() {
    let clock = ManualClock::new(Instant::now());
    let cfg = OutlierConfig {
        max_ejection: SECS(100),
        ..config()
    };
    let (mut d, stats) = setup(cfg, 2, clock.now());
    let a = addr(0);
    let mut lengths = Vec::new();
    for round in 1..=5u32 {
        let now = clock.now();
        let OutlierEvent::Ejected {
            until,
            times,
            reason,
            ..
        } = fail_out(&mut d, &stats[0], a, now)
        else {
            panic!("expected an ejection");
        };
        assert_eq!(times, round);
        let expected = if round == 1 {
            EjectionReason::ConsecutiveFailures
        } else {
            EjectionReason::ProbationFailure
        };
        assert_eq!(reason, expected);
        lengths.push((until - now).as_secs());
        // Not un-ejected a moment early.
        clock.advance(until - now - Duration::from_millis(1));
        assert!(d.evaluate(all(&stats), clock.now()).is_empty());
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            d.evaluate(all(&stats), clock.now()),
            vec![OutlierEvent::Unejected { addr: a }]
        );
        assert_eq!(d.state(a), Some(HostState::Probation));
        assert!(stats[0].is_probing());
    }
    assert_eq!(lengths, vec![30, 60, 90, 100, 100]);
    assert_eq!(d.ejection_duration(0), SECS(30));
    assert_eq!(d.ejection_duration(u32::MAX), SECS(100));
}

#[test]
fn probation_failure_re_ejects_at_once_and_success_returns() {
    let t0 = Instant::now();
    let (mut d, stats) = setup(config(), 2, t0);
    let a = addr(0);
    fail_out(&mut d, &stats[0], a, t0);
    let t1 = t0 + SECS(30);
    d.evaluate(all(&stats), t1);
    // One failure on probation is enough.
    assert!(stats[0].record(Observation::Failure));
    assert!(matches!(
        d.report(a, Observation::Failure, t1),
        Some(OutlierEvent::Ejected { times: 2, until, reason: EjectionReason::ProbationFailure, .. }) if until == t1 + SECS(60)
    ));
    let t2 = t1 + SECS(60);
    assert_eq!(
        d.evaluate(all(&stats), t2),
        vec![OutlierEvent::Unejected { addr: a }]
    );
    // The probe succeeds: returned, and only the first outcome is reported.
    assert!(stats[0].record(Observation::Success));
    assert_eq!(
        d.report(a, Observation::Success, t2),
        Some(OutlierEvent::Returned { addr: a })
    );
    assert!(!stats[0].record(Observation::Success));
    assert!(
        !stats[0].record(Observation::Failure),
        "a single failure no longer ejects"
    );
    assert_eq!(d.state(a), Some(HostState::Healthy));
    assert_eq!(d.ejected_count(), 0);
}

#[test]
fn multiplier_decays_one_per_healthy_interval() {
    let t0 = Instant::now();
    let (mut d, stats) = setup(config(), 2, t0);
    let a = addr(0);
    fail_out(&mut d, &stats[0], a, t0);
    let t1 = t0 + SECS(30);
    d.evaluate(all(&stats), t1);
    fail_out(&mut d, &stats[0], a, t1); // probe failed: times 2
    let t2 = t1 + SECS(60);
    d.evaluate(all(&stats), t2);
    feed(&mut d, &stats[0], a, 1, 0, t2); // returned
    assert_eq!(d.multiplier(a), Some(2));
    d.evaluate(all(&stats), t2 + SECS(10));
    assert_eq!(d.multiplier(a), Some(1));
    // Ejected again now: 2 x base (the multiplier decayed from 2 to 1).
    let ev = fail_out(&mut d, &stats[0], a, t2 + SECS(10));
    assert!(matches!(ev, OutlierEvent::Ejected { times: 2, .. }));
}

#[test]
fn unreported_probe_is_decided_by_the_next_interval() {
    let t0 = Instant::now();
    let (mut d, stats) = setup(config(), 2, t0);
    let a = addr(0);
    fail_out(&mut d, &stats[0], a, t0);
    let t1 = t0 + SECS(30);
    d.evaluate(all(&stats), t1);
    // The probe is taken but the caller never reports it.
    assert!(stats[0].record(Observation::Failure));
    let events = d.evaluate(all(&stats), t1 + SECS(10));
    assert!(matches!(
        events[..],
        [OutlierEvent::Ejected {
            times: 2,
            reason: EjectionReason::ProbationFailure,
            ..
        }]
    ));
}

#[test]
fn max_ejected_percent_refuses_and_one_is_always_allowed() {
    let t0 = Instant::now();
    let (mut d, stats) = setup(
        OutlierConfig {
            max_ejected_percent: 20,
            ..config()
        },
        10,
        t0,
    );
    assert_eq!(d.max_ejected(), 2);
    let events: Vec<_> = (0..4)
        .flat_map(|i| feed(&mut d, &stats[i], addr(i as u16), 0, 5, t0))
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(d.ejected_count(), 2);
    assert_eq!(d.ejections_overflow_total(), 2);
    // A refused endpoint asks again after another run of failures, and gets
    // in once a slot frees up.
    d.evaluate(all(&stats), t0 + SECS(30));
    assert_eq!(d.ejected_count(), 0);
    assert_eq!(
        feed(&mut d, &stats[2], addr(2), 0, 5, t0 + SECS(30)).len(),
        1
    );

    let (mut d, stats) = setup(
        OutlierConfig {
            max_ejected_percent: 0,
            ..config()
        },
        3,
        t0,
    );
    assert_eq!(d.max_ejected(), 1);
    assert_eq!(feed(&mut d, &stats[0], addr(0), 0, 5, t0).len(), 1);
    assert!(feed(&mut d, &stats[1], addr(1), 0, 5, t0).is_empty());
}

#[test]
fn set_endpoints_keeps_drops_adds_and_respects_the_cap() {
    let t0 = Instant::now();
    let (mut d, stats) = setup(
        OutlierConfig {
            max_ejected_percent: 50,
            ..config()
        },
        4,
        t0,
    );
    fail_out(&mut d, &stats[0], addr(0), t0);
    fail_out(&mut d, &stats[1], addr(1), t0 + SECS(1));
    assert_eq!(d.ejected_count(), 2);
    // Keep 0 and 1 (ejected), 2; drop 3; add 7.
    assert!(
        d.set_endpoints(&[addr(0), addr(1), addr(2), addr(7)], t0)
            .is_empty()
    );
    assert!(d.is_ejected(addr(0)) && d.is_ejected(addr(1)));
    assert_eq!(d.state(addr(3)), None);
    assert_eq!(d.state(addr(7)), Some(HostState::Healthy));
    // Down to 2 endpoints: at most 1 ejected; the one ending soonest (0) returns.
    let events = d.set_endpoints(&[addr(0), addr(1)], t0 + SECS(2));
    assert_eq!(events, vec![OutlierEvent::Unejected { addr: addr(0) }]);
    assert_eq!(d.ejected_count(), 1);
    assert_eq!(d.state(addr(0)), Some(HostState::Probation));
    // Its probe gets armed at the next pass.
    d.evaluate(all(&stats[..2]), t0 + SECS(3));
    assert!(stats[0].is_probing());
    // Dropping an ejected endpoint frees its slot.
    d.set_endpoints(&[addr(0)], t0);
    assert_eq!(d.ejected_count(), 0);
}

#[test]
fn ejected_endpoints_are_not_rated_and_counters_reset() {
    let t0 = Instant::now();
    let cfg = OutlierConfig {
        failure_rate: Some(FailureRateConfig {
            threshold: 0.5,
            min_requests: 5,
        }),
        ..config()
    };
    let (mut d, stats) = setup(cfg, 2, t0);
    fail_out(&mut d, &stats[0], addr(0), t0);
    // Late failures of requests in flight during the ejection.
    feed(&mut d, &stats[0], addr(0), 0, 10, t0);
    let events = d.evaluate(all(&stats), t0 + SECS(10));
    assert!(events.is_empty());
    assert_eq!(d.ejections_total(), 1);
    assert_eq!(stats[0].interval_counts().total(), 0);
}
