//! Outlier ejection: a failing endpoint is ejected; once it recovers and
//! its ejection ends, it comes back gradually (slow start).

use std::time::Duration;

use mesh_tests::upstream::{Faults, Options, Upstream};
use tokio::time::Instant;

use crate::common::{get, mesh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejected_then_ramped_back() {
    let bad = Upstream::start(Options::new("bad").faults(Faults::failing(1.0, 503))).await;
    let b = Upstream::start(Options::new("b")).await;
    let c = Upstream::start(Options::new("c")).await;
    let mesh = mesh(&format!(
        "services:
  news:
    load_balancer: weighted_round_robin
    endpoints: [ {{ address: {} }}, {{ address: {} }}, {{ address: {} }} ]
    outlier_detection:
      consecutive_failures: 3
      interval: 100ms
      base_ejection: 2s
      max_ejection: 20s
      max_ejected_percent: 50
      slow_start: 3s
",
        bad.addr(),
        b.addr(),
        c.addr()
    ));
    let client = mesh.client("news");

    // Ejected at its third failure in a row: it sees about a third of the
    // first 30 requests, then nothing.
    let start = Instant::now();
    for _ in 0..30 {
        get(&client, "/").await.unwrap();
    }
    let seen = bad.requests();
    assert!((3..=6).contains(&seen), "{seen} requests before ejection");
    for _ in 0..60 {
        let reply = get(&client, "/").await.unwrap();
        assert_eq!(reply.status, 200, "served by {}", reply.label);
    }
    if start.elapsed() < Duration::from_millis(1900) {
        assert_eq!(bad.requests(), seen, "no traffic while ejected");
    }

    // It recovers; when the ejection ends it gets traffic again, first a
    // small share, then its full third.
    bad.recover();
    let mut timeline: Vec<(Instant, bool)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut back_at = None;
    while Instant::now() < deadline {
        let reply = get(&client, "/").await.unwrap();
        assert_eq!(reply.status, 200);
        let now = Instant::now();
        let is_bad = reply.label == "bad";
        if is_bad && back_at.is_none() {
            back_at = Some(now);
        }
        if let Some(t0) = back_at {
            timeline.push((now, is_bad));
            if now - t0 > Duration::from_millis(4200) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let t0 = back_at.expect("the recovered endpoint came back within 15s");
    let share = |from: u64, to: u64| {
        let window: Vec<bool> = timeline
            .iter()
            .filter(|(t, _)| {
                let dt = *t - t0;
                dt >= Duration::from_millis(from) && dt < Duration::from_millis(to)
            })
            .map(|(_, b)| *b)
            .collect();
        assert!(
            window.len() >= 20,
            "{} samples in {from}..{to}ms",
            window.len()
        );
        window.iter().filter(|b| **b).count() as f64 / window.len() as f64
    };
    let early = share(0, 1000);
    let late = share(3200, 4200);
    // Linear ramp from 10% of its weight: ~5%..13% of the traffic in the
    // first second, a third once warm.
    assert!(early < 0.2, "early share {early:.3}");
    assert!((late - 1.0 / 3.0).abs() < 0.1, "late share {late:.3}");
    assert!(late > early + 0.1, "ramped: {early:.3} -> {late:.3}");
}
