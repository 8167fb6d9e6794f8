//! DNS discovery against a real dnsmasq on 127.0.0.1 (see PEERS.md).
//!
//! Each test starts its own dnsmasq as a child process on a free port, with
//! `--local-ttl=1` and the records it needs; records that change live in an
//! `--addn-hosts` file re-read on SIGHUP. Without dnsmasq the tests print a
//! skip message and pass, unless `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness helpers

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use mesh_core::config::DnsTarget;
use mesh_discovery::{DnsConfig, DnsError, DnsSource, EndpointSet, Update, UpdateStream};
use mesh_tests::dnsmasq::{self, Dnsmasq};

fn source(server: SocketAddr) -> DnsSource {
    DnsSource::new(DnsConfig {
        server: Some(server),
        min_ttl: Duration::from_secs(1),
        max_ttl: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

fn host(h: &str, port: u16) -> DnsTarget {
    DnsTarget::Host {
        host: h.to_string(),
        port,
    }
}

fn addrs(v: &[&str]) -> Vec<SocketAddr> {
    let mut a: Vec<SocketAddr> = v.iter().map(|s| s.parse().unwrap()).collect();
    a.sort();
    a
}

async fn next(s: &mut UpdateStream, within: Duration) -> Update {
    tokio::time::timeout(within, s.next())
        .await
        .expect("no update in time")
        .expect("stream ended")
}

/// Applies updates until the set has `want` addresses, or fails after `within`.
async fn until_addresses(
    s: &mut UpdateStream,
    set: &mut EndpointSet,
    want: &[SocketAddr],
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    while set.addresses() != want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let u = tokio::time::timeout(left, s.next())
            .await
            .unwrap_or_else(|_| panic!("set is {:?}, wanted {want:?}", set.addresses()))
            .expect("stream ended");
        set.apply(u);
    }
}

#[tokio::test]
async fn a_and_aaaa_records_resolve_with_the_port() {
    if !dnsmasq::available() {
        return;
    }
    let d = Dnsmasq::start(
        "127.0.0.1 news.mesh.local\n127.0.0.2 news.mesh.local\n",
        &["--host-record=mix.mesh.local,127.0.0.3,::1"],
    );
    let dns = source(d.addr());
    let r = dns.resolve(&host("news.mesh.local", 8080)).await.unwrap();
    let got: Vec<SocketAddr> = r.endpoints.iter().map(|e| e.address).collect();
    assert_eq!(got, addrs(&["127.0.0.1:8080", "127.0.0.2:8080"]));
    assert!(r.endpoints.iter().all(|e| e.weight == 1));
    assert!(
        r.ttl <= Duration::from_secs(1),
        "local-ttl=1, got {:?}",
        r.ttl
    );

    let r = dns.resolve(&host("mix.mesh.local", 9000)).await.unwrap();
    let got: Vec<SocketAddr> = r.endpoints.iter().map(|e| e.address).collect();
    assert_eq!(got, addrs(&["127.0.0.3:9000", "[::1]:9000"]));
}

#[tokio::test]
async fn srv_records_give_ports_and_weights_of_the_lowest_priority() {
    if !dnsmasq::available() {
        return;
    }
    let d = Dnsmasq::start(
        "",
        &[
            "--srv-host=_http._tcp.news.mesh.local,news-1.mesh.local,8080,0,10",
            "--srv-host=_http._tcp.news.mesh.local,news-2.mesh.local,8081,0,20",
            "--srv-host=_http._tcp.news.mesh.local,news-0.mesh.local,8082,0,0",
            "--srv-host=_http._tcp.news.mesh.local,backup.mesh.local,9999,5,50",
            "--host-record=news-1.mesh.local,127.0.0.1",
            "--host-record=news-2.mesh.local,127.0.0.2",
            "--host-record=news-0.mesh.local,127.0.0.4",
            "--host-record=backup.mesh.local,127.0.0.9",
            "--srv-host=_http._tcp.weird.mesh.local,nohost.mesh.local,80,0,1",
        ],
    );
    let dns = source(d.addr());
    let mut s = mesh_discovery::Discover::watch(&dns, "_http._tcp.news.mesh.local").unwrap();
    let Update::Reset(eps) = next(&mut s, Duration::from_secs(5)).await else {
        panic!("first update must be a Reset")
    };
    let got: Vec<(SocketAddr, u32)> = eps.iter().map(|e| (e.address, e.weight)).collect();
    assert_eq!(
        got,
        vec![
            ("127.0.0.1:8080".parse().unwrap(), 10),
            ("127.0.0.2:8081".parse().unwrap(), 20),
            ("127.0.0.4:8082".parse().unwrap(), 1),
        ],
        "priority 5 backup excluded; weight 0 raised to 1"
    );

    // An SRV answer whose targets do not resolve is a typed error, not a panic.
    let weird = DnsTarget::Srv {
        name: "_http._tcp.weird.mesh.local".into(),
    };
    let err = dns.resolve(&weird).await.unwrap_err();
    assert!(
        matches!(err, DnsError::NoSrvTargets { targets: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_change_is_picked_up_after_the_ttl() {
    if !dnsmasq::available() {
        return;
    }
    let d = Dnsmasq::start("127.0.0.1 chg.mesh.local\n", &[]);
    let dns = source(d.addr());
    let mut s = dns.watch_target(host("chg.mesh.local", 80));
    let mut set = EndpointSet::new();
    set.apply(next(&mut s, Duration::from_secs(5)).await);
    assert_eq!(set.addresses(), addrs(&["127.0.0.1:80"]));

    d.set_hosts("127.0.0.2 chg.mesh.local\n127.0.0.3 chg.mesh.local\n");
    until_addresses(
        &mut s,
        &mut set,
        &addrs(&["127.0.0.2:80", "127.0.0.3:80"]),
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn a_dead_resolver_keeps_the_last_good_set() {
    if !dnsmasq::available() {
        return;
    }
    let mut d = Dnsmasq::start("127.0.0.1 keep.mesh.local\n", &[]);
    let dns = source(d.addr());
    let mut s = dns.watch_target(host("keep.mesh.local", 80));
    let mut set = EndpointSet::new();
    set.apply(next(&mut s, Duration::from_secs(5)).await);
    assert_eq!(set.addresses(), addrs(&["127.0.0.1:80"]));

    d.kill();
    let err = dns.resolve(&host("keep.mesh.local", 80)).await.unwrap_err();
    assert!(
        matches!(err, DnsError::Lookup { .. } | DnsError::Timeout { .. }),
        "resolver must really be down: {err:?}"
    );
    // Several TTLs pass with a dead resolver: no update, the set stays.
    let quiet = tokio::time::timeout(Duration::from_secs(4), s.next()).await;
    assert!(
        quiet.is_err(),
        "no update while the resolver is down: {quiet:?}"
    );

    // The watch is still alive: a resolver that comes back with new records is heard.
    d.write_hosts("127.0.0.5 keep.mesh.local\n");
    d.restart();
    until_addresses(
        &mut s,
        &mut set,
        &addrs(&["127.0.0.5:80"]),
        Duration::from_secs(15),
    )
    .await;
}

#[tokio::test]
async fn nxdomain_is_does_not_exist_first_and_fail_static_later() {
    if !dnsmasq::available() {
        return;
    }
    let d = Dnsmasq::start("127.0.0.1 gone.mesh.local\n", &[]);
    let dns = source(d.addr());

    let mut missing = dns.watch_target(host("missing.mesh.local", 80));
    assert_eq!(
        next(&mut missing, Duration::from_secs(5)).await,
        Update::DoesNotExist
    );
    assert!(matches!(
        dns.resolve(&host("missing.mesh.local", 80)).await,
        Err(DnsError::NotFound(_))
    ));

    let mut s = dns.watch_target(host("gone.mesh.local", 80));
    let mut set = EndpointSet::new();
    set.apply(next(&mut s, Duration::from_secs(5)).await);
    assert_eq!(set.addresses(), addrs(&["127.0.0.1:80"]));
    d.set_hosts("");
    // Check the name is now really NXDOMAIN (after the cache's TTL)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match dns.resolve(&host("gone.mesh.local", 80)).await {
            Err(DnsError::NotFound(_)) => break,
            other => {
                assert!(tokio::time::Instant::now() < deadline, "still {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // ...and the watch still says nothing: the last good set is kept.
    let quiet = tokio::time::timeout(Duration::from_secs(3), s.next()).await;
    assert!(
        quiet.is_err(),
        "NXDOMAIN after a good set must not empty it: {quiet:?}"
    );
}

#[tokio::test]
async fn a_bare_service_name_falls_back_to_dns_of_the_name_on_port_80() {
    if !dnsmasq::available() {
        return;
    }
    let d = Dnsmasq::start("127.0.0.7 api.mesh.local\n", &[]);
    let resolver = mesh_discovery::resolve::Resolver::new(DnsConfig {
        server: Some(d.addr()),
        min_ttl: Duration::from_secs(1),
        max_ttl: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
    });
    let res = resolver.resolve_once("api.mesh.local").await.unwrap();
    assert_eq!(res.plan.origin(), mesh_discovery::resolve::Origin::NameDns);
    let got: Vec<SocketAddr> = res.endpoints.iter().map(|e| e.address).collect();
    assert_eq!(got, addrs(&["127.0.0.7:80"]));

    let res = resolver
        .resolve_once("dns:///_none._tcp.mesh.local")
        .await
        .unwrap_err();
    assert!(
        matches!(
            res,
            mesh_discovery::DiscoveryError::Dns(DnsError::NotFound(_))
        ),
        "{res:?}"
    );
}
