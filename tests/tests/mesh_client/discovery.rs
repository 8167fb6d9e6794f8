//! Discovery changes under load: endpoints removed from a watched config
//! file drain without failing a request, new ones take traffic; the same
//! with DNS records (dnsmasq).

use std::net::SocketAddr;
use std::time::Duration;

use mesh_discovery::DnsConfig;
use mesh_tests::dnsmasq::{self, Dnsmasq};
use mesh_tests::upstream::{Faults, Options, Upstream};
use mesh_tower::Mesh;

use crate::common::{Load, eventually, get};

fn file_config(addrs: &[SocketAddr]) -> String {
    let eps: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ address: {a} }}"))
        .collect();
    format!(
        "services:\n  news:\n    load_balancer: round_robin\n    endpoints: [ {} ]\n",
        eps.join(", ")
    )
}

/// Waits until `up` stops receiving requests (no change over 500ms).
async fn until_quiet(up: &Upstream) {
    for _ in 0..40 {
        let before = up.requests();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if up.requests() == before && up.counters().in_flight == 0 {
            return;
        }
    }
    panic!("{} still receives traffic after 20s", up.label());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_edits_under_load() {
    // A few ms per request, so that requests are in flight at each change.
    let slow = || Faults::delayed(Duration::from_millis(5));
    let a = Upstream::start(Options::new("a").faults(slow())).await;
    let b = Upstream::start(Options::new("b").faults(slow())).await;
    let c = Upstream::start(Options::new("c").faults(slow())).await;
    let d = Upstream::start(Options::new("d").faults(slow())).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, file_config(&[a.addr(), b.addr(), c.addr()])).unwrap();
    let mesh = Mesh::builder().config_file(&file).build().unwrap();
    let client = mesh.client("news");
    get(&client, "/").await.unwrap();

    let load = Load::start(&client, 8, Duration::ZERO);
    eventually("c takes traffic", Duration::from_secs(10), || {
        c.requests() > 50
    })
    .await;

    // Remove c while requests to it are in flight: it drains.
    std::fs::write(&file, file_config(&[a.addr(), b.addr()])).unwrap();
    until_quiet(&c).await;
    let c_final = c.requests();

    // Add d: it starts taking traffic.
    std::fs::write(&file, file_config(&[a.addr(), b.addr(), d.addr()])).unwrap();
    eventually("d takes traffic", Duration::from_secs(10), || {
        d.requests() > 50
    })
    .await;
    let sent_before = load.sent();
    eventually("more load", Duration::from_secs(10), || {
        load.sent() > sent_before + 200
    })
    .await;

    let tally = load.finish().await;
    assert_eq!(tally.failed(), 0, "no request failed: {tally:?}");
    assert!(tally.requests > 500, "{tally:?}");
    assert_eq!(c.requests(), c_final, "c got nothing once removed");
    assert_eq!(
        a.requests() + b.requests() + c.requests() + d.requests(),
        tally.requests + 1
    );
}

/// Upstreams `name` on 127.0.0.2, .3 and .4, all on one port (DNS A
/// records carry addresses, the port comes from the config).
async fn same_port_upstreams() -> Vec<Upstream> {
    for _ in 0..20 {
        let first = Upstream::start(Options::new("a").bind(([127, 0, 0, 2], 0).into())).await;
        let port = first.addr().port();
        let mut ups = vec![first];
        for (name, last) in [("b", 3), ("c", 4)] {
            match Upstream::try_start(Options::new(name).bind(([127, 0, 0, last], port).into()))
                .await
            {
                Ok(up) => ups.push(up),
                Err(_) => break,
            }
        }
        if ups.len() == 3 {
            return ups;
        }
    }
    panic!("no port free on 127.0.0.2, .3 and .4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_records_change_under_load() {
    if !dnsmasq::available() {
        return;
    }
    let ups = same_port_upstreams().await;
    let (a, b, c) = (&ups[0], &ups[1], &ups[2]);
    let port = a.addr().port();
    let dns = Dnsmasq::start(
        "127.0.0.2 news.mesh.local\n127.0.0.3 news.mesh.local\n",
        &[],
    );
    let config = mesh_core::config::parse_str(
        &format!(
            "services:\n  news:\n    load_balancer: round_robin\n    dns: news.mesh.local:{port}\n"
        ),
        mesh_core::config::Format::Yaml,
        "test.yaml",
    )
    .unwrap();
    let mesh = Mesh::builder()
        .config(config)
        .dns(DnsConfig {
            server: Some(dns.addr()),
            min_ttl: Duration::from_secs(1),
            ..DnsConfig::default()
        })
        .build()
        .unwrap();
    let client = mesh.client("news");

    let load = Load::start(&client, 4, Duration::from_millis(1));
    eventually("a and b take traffic", Duration::from_secs(10), || {
        a.requests() > 20 && b.requests() > 20
    })
    .await;
    assert_eq!(c.requests(), 0);

    // a leaves the records, c joins.
    dns.set_hosts("127.0.0.3 news.mesh.local\n127.0.0.4 news.mesh.local\n");
    eventually("c takes traffic", Duration::from_secs(20), || {
        c.requests() > 20
    })
    .await;
    until_quiet(a).await;
    let a_final = a.requests();
    let sent = load.sent();
    eventually("more load", Duration::from_secs(10), || {
        load.sent() > sent + 100
    })
    .await;

    let tally = load.finish().await;
    assert_eq!(tally.failed(), 0, "no request failed: {tally:?}");
    assert_eq!(a.requests(), a_final, "a got nothing once out of DNS");
    assert!(b.requests() > 40);
}
