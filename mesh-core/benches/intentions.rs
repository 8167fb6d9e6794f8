//! Intentions decision cost with 1k intentions (mixed L4/L7, 200 destinations).
//!
//! Target: <= 1 us per decision.

// Benchmark setup is test code: a broken fixture should stop the run loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::config::{
    Action, HeaderMatch, HeaderValueMatch, Intention, IntentionRule, PathMatch, Permission,
    RouteMatch,
};
use mesh_core::identity::SpiffeId;
use mesh_core::intentions::Intentions;
use mesh_core::route::SimpleRequest;

const TD: &str = "mesh.local";
const DESTINATIONS: usize = 200;

/// Five intentions per destination (1000 in all): two exact L4, one exact L7
/// with three permissions, one `prod/*` L4, one `*` deny.
fn intentions() -> Vec<Intention> {
    let mut v = Vec::new();
    for d in 0..DESTINATIONS {
        let dst = format!("svc-{d}");
        let l4 = |source: String, action| Intention {
            source,
            destination: dst.clone(),
            rule: IntentionRule::Action(action),
        };
        v.push(l4(format!("web-{d}"), Action::Allow));
        v.push(l4(format!("batch-{d}"), Action::Deny));
        v.push(Intention {
            source: format!("api-{d}"),
            destination: dst.clone(),
            rule: IntentionRule::Permissions(vec![
                Permission {
                    action: Action::Deny,
                    matches: RouteMatch {
                        path: Some(PathMatch::Exact("/admin".into())),
                        ..Default::default()
                    },
                },
                Permission {
                    action: Action::Allow,
                    matches: RouteMatch {
                        path: Some(PathMatch::Regex("/v1/items/[0-9]+".into())),
                        methods: vec!["PUT".into()],
                        ..Default::default()
                    },
                },
                Permission {
                    action: Action::Allow,
                    matches: RouteMatch {
                        path: Some(PathMatch::Prefix("/v1/".into())),
                        methods: vec!["GET".into(), "HEAD".into()],
                        headers: vec![HeaderMatch {
                            name: "x-tenant".into(),
                            value: HeaderValueMatch::Prefix("acme".into()),
                        }],
                    },
                },
            ]),
        });
        v.push(l4("prod/*".into(), Action::Allow));
        v.push(l4("*".into(), Action::Deny));
    }
    v
}

fn bench(c: &mut Criterion) {
    let rules = intentions();
    assert_eq!(rules.len(), 1000);
    let intentions = Intentions::new(&rules, Action::Deny, TD).unwrap();
    let id = |ns: &str, svc: &str| SpiffeId::for_service(TD, ns, svc).unwrap();
    let web = id("default", "web-42");
    let api = id("default", "api-42");
    let stranger = id("default", "stranger");
    let prod = id("prod", "worker");
    let get = SimpleRequest::new("GET", "/v1/news/7").with_header("x-tenant", "acme-eu");

    let mut g = c.benchmark_group("intentions_1k");
    let mut case = |name: &str, src: Option<&SpiffeId>, dst: &str, allowed: bool| {
        assert_eq!(
            intentions.decide(src, dst, &get).is_allowed(),
            allowed,
            "{name}"
        );
        g.bench_function(name, |b| {
            b.iter(|| black_box(intentions.decide(black_box(src), black_box(dst), black_box(&get))))
        });
    };
    case("exact_l4", Some(&web), "svc-42", true);
    case("exact_l7_third_permission", Some(&api), "svc-42", true);
    case("namespace_wildcard", Some(&prod), "svc-42", true);
    case("wildcard_source", Some(&stranger), "svc-42", false);
    case("anonymous", None, "svc-42", false);
    case("default_policy_miss", Some(&stranger), "unknown", false);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
