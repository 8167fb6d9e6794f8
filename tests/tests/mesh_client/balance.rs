//! Weighted traffic split and weighted balancing, measured over 10k
//! requests: each share within +-3 percentage points of its weight.

use mesh_tests::upstream::{Options, Upstream};

use crate::common::{assert_share, blast, mesh};

const N: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_between_subsets() {
    let v1 = Upstream::start(Options::new("news").version("v1")).await;
    let v2 = Upstream::start(Options::new("news").version("v2")).await;
    let mesh = mesh(&format!(
        "services:
  news:
    endpoints:
      - {{ address: {}, labels: {{ version: v1 }} }}
      - {{ address: {}, labels: {{ version: v2 }} }}
    subsets: {{ v1: {{ version: v1 }}, v2: {{ version: v2 }} }}
    routes:
      - match: {{ path_prefix: / }}
        split: {{ v1: 80, v2: 20 }}
",
        v1.addr(),
        v2.addr()
    ));
    let tally = blast(&mesh.client("news"), N, 16).await;
    assert_eq!(tally.ok, N, "{tally:?}");
    assert_share("v1", tally.share("news/v1"), 0.80, 0.03);
    assert_share("v2", tally.share("news/v2"), 0.20, 0.03);
    assert_eq!(v1.requests() + v2.requests(), N, "one attempt each");
}

async fn weighted(algorithm: &str) {
    let ups = [
        Upstream::start(Options::new("a")).await,
        Upstream::start(Options::new("b")).await,
        Upstream::start(Options::new("c")).await,
    ];
    let weights = [5, 3, 2];
    let mesh = mesh(&format!(
        "services:
  news:
    load_balancer: {algorithm}
    endpoints:
      - {{ address: {}, weight: 5 }}
      - {{ address: {}, weight: 3 }}
      - {{ address: {}, weight: 2 }}
",
        ups[0].addr(),
        ups[1].addr(),
        ups[2].addr()
    ));
    let tally = blast(&mesh.client("news"), N, 16).await;
    assert_eq!(tally.ok, N, "{tally:?}");
    assert_eq!(tally.unattributed, 0, "every response says who served it");
    for (up, w) in ups.iter().zip(weights) {
        let expected = f64::from(w) / 10.0;
        assert_share(
            &format!("{algorithm} {}", up.label()),
            tally.share(up.label()),
            expected,
            0.03,
        );
        assert_eq!(up.requests(), tally.labels[up.label()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_weights() {
    weighted("weighted_round_robin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_random_follows_weights() {
    weighted("random").await;
}
