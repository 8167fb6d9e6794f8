//! The concurrency limit fails fast with `CircuitOpen` instead of queueing.

use std::time::Duration;

use mesh_tests::upstream::{Faults, Options, Upstream};
use mesh_tower::error::CircuitOpen;
use tokio::time::Instant;

use crate::common::{get, mesh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_fails_fast() {
    let slow =
        Upstream::start(Options::new("slow").faults(Faults::delayed(Duration::from_millis(800))))
            .await;
    let mesh = mesh(&format!(
        "services:
  news:
    endpoints: [ {{ address: {} }} ]
    circuit_breaker: {{ max_requests: 4, max_pending: 4 }}
",
        slow.addr()
    ));
    let client = mesh.client("news");
    // Warm up discovery and a connection first, so that all 20 below are
    // in flight together.
    slow.set_faults(Faults::none());
    get(&client, "/").await.unwrap();
    slow.set_faults(Faults::delayed(Duration::from_millis(800)));

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let result = get(&client, "/").await;
                (result, start.elapsed())
            })
        })
        .collect();
    let (mut ok, mut open) = (0, 0);
    for call in calls {
        let (result, took) = call.await.unwrap();
        match result {
            Ok(reply) => {
                assert_eq!(reply.status, 200);
                ok += 1;
            }
            Err(err) => {
                let typed = {
                    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
                    let mut found = false;
                    while let Some(e) = cur {
                        found |= e.is::<CircuitOpen>();
                        cur = e.source();
                    }
                    found
                };
                assert!(typed, "a CircuitOpen in the chain: {err}");
                // Failing fast: well before the 800ms the upstream takes.
                assert!(took < Duration::from_millis(400), "{took:?}");
                open += 1;
            }
        }
    }
    assert_eq!(ok, 4, "max_requests were let through");
    assert_eq!(open, 16);
    assert_eq!(slow.requests(), 1 + 4, "refused requests never reached it");

    // The limit frees as requests finish: no open/half-open timer.
    get(&client, "/").await.unwrap();
}
