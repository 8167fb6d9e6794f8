//! Retries against real failures: an endpoint failing 30% of requests with
//! 503 is invisible to callers, and the retry budget caps the retries when
//! everything fails.

use mesh_tests::upstream::{Faults, Options, Upstream};

use crate::common::{blast, mesh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hide_an_endpoint_failing_30_percent() {
    let flaky = Upstream::start(
        Options::new("flaky")
            .faults(Faults::failing(0.3, 503))
            .seed(11),
    )
    .await;
    let b = Upstream::start(Options::new("b")).await;
    let c = Upstream::start(Options::new("c")).await;
    let mesh = mesh(&format!(
        "services:
  news:
    load_balancer: round_robin
    endpoints: [ {{ address: {} }}, {{ address: {} }}, {{ address: {} }} ]
    retry:
      attempts: 3
      on: [5xx]
      backoff: {{ base: 1ms, max: 5ms }}
",
        flaky.addr(),
        b.addr(),
        c.addr()
    ));
    let n = 3000;
    let tally = blast(&mesh.client("news"), n, 8).await;
    let success = tally.ok as f64 / n as f64;
    assert!(success >= 0.999, "success {success}: {tally:?}");
    let failures_seen = flaky.counters().status(503);
    // ~30% of its ~1/3 share: far from zero, so retries did the work.
    assert!(failures_seen > 100, "{failures_seen}");
    let upstream_requests = flaky.requests() + b.requests() + c.requests();
    assert_eq!(
        tally.retries,
        upstream_requests - n,
        "Attempts counts every retry"
    );
    assert!(tally.retries >= failures_seen - tally.failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_caps_retries() {
    let down = Upstream::start(Options::new("down").faults(Faults::failing(1.0, 503))).await;
    let mesh = mesh(&format!(
        "services:
  news:
    endpoints: [ {{ address: {} }} ]
    retry:
      attempts: 5
      on: [503]
      backoff: {{ base: 1ms, max: 2ms }}
      budget: {{ ratio: 0.1, min_per_second: 1, window: 10s }}
",
        down.addr()
    ));
    let n = 500;
    let tally = blast(&mesh.client("news"), n, 4).await;
    assert_eq!(tally.statuses.get(&503), Some(&n), "{tally:?}");
    assert_eq!(down.requests(), n + tally.retries);
    // Without a budget: 4 retries each (2000). With it: ratio x requests +
    // min_per_second x window, plus a little slack for the window's edges.
    let cap = (0.1 * n as f64) as u64 + 10 + 5;
    assert!(
        tally.retries > 0 && tally.retries <= cap,
        "{} retries, cap {cap}",
        tally.retries
    );
}
