use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::config::model::CircuitBreakerConfig;

fn limits(max_requests: u32, max_pending: u32) -> ConcurrencyLimits {
    ConcurrencyLimits::new(&CircuitBreakerConfig {
        max_requests,
        max_pending,
    })
}

#[test]
fn refuses_at_max_requests_and_recovers_when_a_permit_drops() {
    let limits = limits(3, 1);
    let permits: Vec<_> = (0..3)
        .map(|_| limits.try_acquire_request().unwrap())
        .collect();
    assert_eq!(limits.in_flight(), 3);
    let err = limits.try_acquire_request().unwrap_err();
    assert_eq!(err, CircuitOpen::new(Limit::Requests, 3));
    assert_eq!(err.max(), 3);
    assert_eq!(limits.in_flight(), 3, "a refused acquire takes no slot");
    drop(permits);
    assert_eq!(limits.in_flight(), 0);
    assert!(limits.try_acquire_request().is_ok());
}

#[test]
fn pending_and_requests_are_independent() {
    let limits = limits(1, 2);
    let _r = limits.try_acquire_request().unwrap();
    let p1 = limits.try_acquire_pending().unwrap();
    let _p2 = limits.try_acquire_pending().unwrap();
    assert_eq!(limits.pending(), 2);
    assert_eq!(limits.in_flight(), 1);
    let err = limits.try_acquire_pending().unwrap_err();
    assert_eq!(err.limit(), Limit::Pending);
    drop(p1);
    assert_eq!(limits.pending(), 1);
    assert_eq!(
        limits.try_acquire_request().unwrap_err().limit(),
        Limit::Requests
    );
}

#[test]
fn display_names_the_limit_and_its_value() {
    assert_eq!(
        CircuitOpen::new(Limit::Requests, 1024).to_string(),
        "circuit open: 1024 requests in flight (max_requests)"
    );
    assert_eq!(
        CircuitOpen::new(Limit::Pending, 7).to_string(),
        "circuit open: 7 requests pending (max_pending)"
    );
}

#[test]
fn zero_limit_refuses_everything() {
    let limits = limits(0, 0);
    assert!(limits.try_acquire_request().is_err());
    assert!(limits.try_acquire_pending().is_err());
    assert_eq!(limits.in_flight(), 0);
}

#[test]
fn clones_share_counters() {
    let a = limits(1, 1);
    let b = a.clone();
    let _p = a.try_acquire_request().unwrap();
    assert_eq!(b.in_flight(), 1);
    assert!(b.try_acquire_request().is_err());
}

#[test]
fn update_keeps_in_flight_permits_and_applies_new_limit() {
    let limits = limits(4, 4);
    let held: Vec<_> = (0..4)
        .map(|_| limits.try_acquire_request().unwrap())
        .collect();
    limits.update(&CircuitBreakerConfig {
        max_requests: 2,
        max_pending: 4,
    });
    assert_eq!(limits.config().max_requests, 2);
    assert_eq!(limits.in_flight(), 4, "held permits stay valid");
    let mut held = held;
    held.truncate(2);
    assert_eq!(limits.in_flight(), 2);
    assert_eq!(
        limits.try_acquire_request().unwrap_err(),
        CircuitOpen::new(Limit::Requests, 2)
    );
    held.pop();
    let _again = limits.try_acquire_request().unwrap();
    // Raising the limit lets more through at once.
    limits.update(&CircuitBreakerConfig {
        max_requests: 10,
        max_pending: 4,
    });
    let more: Vec<_> = (0..8)
        .map(|_| limits.try_acquire_request().unwrap())
        .collect();
    assert_eq!(limits.in_flight(), 10);
    drop(more);
    drop(held);
    drop(_again);
    assert_eq!(limits.in_flight(), 0);
}

#[test]
fn permits_are_send_and_limits_are_send_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<RequestPermit>();
    send::<PendingPermit>();
    send_sync::<ConcurrencyLimits>();
    send_sync::<CircuitOpen>();
}

#[test]
fn many_threads_never_exceed_the_limit_and_end_at_zero() {
    const MAX: u32 = 8;
    const THREADS: usize = 8;
    const ROUNDS: usize = 2_000;
    let limits = limits(MAX, MAX);
    // Our own count of permits held, checked against the limit after each acquire.
    let held = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let refused = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let limits = limits.clone();
            let held = Arc::clone(&held);
            let peak = Arc::clone(&peak);
            let refused = Arc::clone(&refused);
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    match limits.try_acquire_request() {
                        Ok(permit) => {
                            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            assert!(now <= MAX, "{now} permits held, limit {MAX}");
                            assert!(limits.in_flight() <= MAX);
                            std::thread::yield_now();
                            held.fetch_sub(1, Ordering::SeqCst);
                            // Moved across the function boundary: still released once.
                            drop(permit);
                        }
                        Err(e) => {
                            assert_eq!(e.limit(), Limit::Requests);
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(limits.in_flight(), 0, "no permit leaked or double-released");
    assert!(peak.load(Ordering::SeqCst) <= MAX);
    assert!(peak.load(Ordering::SeqCst) >= 1);
}

#[test]
fn permit_moved_to_another_thread_releases_there() {
    let limits = limits(1, 1);
    let permit = limits.try_acquire_request().unwrap();
    std::thread::spawn(move || drop(permit)).join().unwrap();
    assert_eq!(limits.in_flight(), 0);
    assert!(limits.try_acquire_request().is_ok());
}
