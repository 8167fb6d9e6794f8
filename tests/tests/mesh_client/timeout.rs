//! Timeouts against an upstream that never answers: a hung endpoint costs a
//! request at most the per-try timeout (the retry goes elsewhere), and the
//! overall timeout holds whatever the retries.

use std::time::Duration;

use mesh_tests::upstream::{Faults, Options, Upstream};
use mesh_tower::error::{Elapsed, ErrorKind, TimeoutKind};
use tokio::time::Instant;

use crate::common::{blast, get, mesh};

/// A request whose first attempt hangs loses the per-try timeout, once: its
/// retry goes to the endpoint it has not tried.
///
/// Ignored: fails today. A per-try timeout drops the balancer's attempt
/// future, so its `Elapsed { kind: PerTry }` error carries no
/// `EndpointError` and the retry layer cannot add the hung endpoint to
/// `TriedEndpoints`; the retry may go back to it (random balancing: half
/// the time) and the request times out again. Un-ignore once the endpoint
/// of a timed-out attempt reaches the retry layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_costs_at_most_the_per_try_timeout() {
    let hung = Upstream::start(Options::new("hung").faults(Faults::hanging(1.0))).await;
    let ok = Upstream::start(Options::new("ok")).await;
    let mesh = mesh(&format!(
        "services:
  news:
    load_balancer: random
    endpoints: [ {{ address: {} }}, {{ address: {} }} ]
    timeout: 10s
    retry:
      attempts: 2
      per_try_timeout: 200ms
      on: [5xx]
      backoff: {{ base: 1ms, max: 5ms }}
",
        hung.addr(),
        ok.addr()
    ));
    let n = 40;
    let tally = blast(&mesh.client("news"), n, 4).await;
    assert_eq!(tally.ok, n, "{tally:?}");
    assert_eq!(tally.labels.get("ok"), Some(&n));
    let hung_attempts = hung.counters().hung;
    assert!(hung_attempts > 0, "some went to the hung one first");
    assert_eq!(tally.retries, hung_attempts, "one retry per hung attempt");
    // 200ms per-try + a few ms of backoff + a fast answer: far below the
    // 10s call timeout (generous bound for a loaded machine).
    assert!(
        tally.max_latency < Duration::from_millis(1500),
        "{:?}",
        tally.max_latency
    );
}

/// Every attempt to a hung endpoint is cut at the per-try timeout and
/// retried, long before the call's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hung_attempt_is_cut_at_the_per_try_timeout() {
    let hung = Upstream::start(Options::new("hung").faults(Faults::hanging(1.0))).await;
    let mesh = mesh(&format!(
        "services:
  news:
    endpoints: [ {{ address: {} }} ]
    timeout: 20s
    retry:
      attempts: 3
      per_try_timeout: 200ms
      on: [5xx]
      backoff: {{ base: 1ms, max: 5ms }}
",
        hung.addr()
    ));
    let client = mesh.client("news");
    for i in 1..=3 {
        let start = Instant::now();
        let err = get(&client, "/").await.unwrap_err();
        let took = start.elapsed();
        let e: &(dyn std::error::Error + 'static) = err.as_ref();
        assert_eq!(mesh_tower::error::kind(e), ErrorKind::Timeout, "{err}");
        assert!(
            !is_call_timeout(e),
            "the attempts' timeouts, not the call's: {err}"
        );
        // 3 x 200ms and the backoffs: far from the 20s call timeout.
        assert!(
            took >= Duration::from_millis(550) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(hung.counters().hung, 3 * i, "three attempts each");
    }
}

/// Whether a `Elapsed { kind: Call }` is in the cause chain.
fn is_call_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<Elapsed>()
            .is_some_and(|el| el.kind == TimeoutKind::Call)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_timeout_holds() {
    let a = Upstream::start(Options::new("a").faults(Faults::hanging(1.0))).await;
    let b = Upstream::start(Options::new("b").faults(Faults::hanging(1.0))).await;
    let mesh = mesh(&format!(
        "services:
  news:
    endpoints: [ {{ address: {} }}, {{ address: {} }} ]
    timeout: 600ms
    retry:
      attempts: 10
      per_try_timeout: 200ms
      on: [5xx]
      backoff: {{ base: 1ms, max: 5ms }}
",
        a.addr(),
        b.addr()
    ));
    let client = mesh.client("news");
    for _ in 0..3 {
        let start = Instant::now();
        let err = get(&client, "/").await.unwrap_err();
        let took = start.elapsed();
        assert!(
            is_call_timeout(err.as_ref()),
            "the call's timeout fired: {err}"
        );
        assert!(
            took >= Duration::from_millis(550) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
    // At most ~3 attempts of 200ms fit in 600ms, per request.
    let attempts = a.counters().hung + b.counters().hung;
    assert!((3..=3 * 4).contains(&attempts), "{attempts} attempts");
}
