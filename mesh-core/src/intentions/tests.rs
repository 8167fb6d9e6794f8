use std::error::Error as _;

use super::*;
use crate::config::{HeaderMatch, HeaderValueMatch, PathMatch, RouteMatch};
use crate::route::SimpleRequest;

mod precedence;
mod reference;

const TD: &str = "mesh.local";

fn l4(source: &str, destination: &str, action: Action) -> Intention {
    Intention {
        source: source.into(),
        destination: destination.into(),
        rule: IntentionRule::Action(action),
    }
}

fn l7(source: &str, destination: &str, permissions: Vec<Permission>) -> Intention {
    Intention {
        source: source.into(),
        destination: destination.into(),
        rule: IntentionRule::Permissions(permissions),
    }
}

fn perm(action: Action, matches: RouteMatch) -> Permission {
    Permission { action, matches }
}

fn path_exact(p: &str) -> RouteMatch {
    RouteMatch {
        path: Some(PathMatch::Exact(p.into())),
        ..Default::default()
    }
}

fn id(ns: &str, svc: &str) -> SpiffeId {
    SpiffeId::for_service(TD, ns, svc).unwrap()
}

fn get(path: &str) -> SimpleRequest {
    SimpleRequest::new("GET", path)
}

fn decided_index(d: &Decision<'_>) -> Option<usize> {
    match d.decided_by {
        DecidedBy::Intention { index, .. } | DecidedBy::NoPermissionMatched { index, .. } => {
            Some(index)
        }
        DecidedBy::DefaultPolicy => None,
    }
}

#[test]
fn deny_wins_ties_whatever_the_order() {
    let web = id("default", "web");
    for rules in [
        vec![
            l4("web", "api", Action::Allow),
            l4("web", "api", Action::Deny),
        ],
        vec![
            l4("web", "api", Action::Deny),
            l4("web", "api", Action::Allow),
        ],
        vec![
            l4("web", "api", Action::Allow),
            l4("default/web", "default/api", Action::Deny),
        ],
    ] {
        let i = Intentions::new(&rules, Action::Allow, TD).unwrap();
        let d = i.decide(Some(&web), "api", &get("/"));
        assert_eq!(d.action, Action::Deny);
        assert!(matches!(
            rules[decided_index(&d).unwrap()].rule,
            IntentionRule::Action(Action::Deny)
        ));
    }
    // An L7 tie: deny from the L4 twin wins over the L7 allow.
    let rules = vec![
        l7(
            "web",
            "api",
            vec![perm(Action::Allow, RouteMatch::default())],
        ),
        l4("web", "api", Action::Deny),
    ];
    let i = Intentions::new(&rules, Action::Allow, TD).unwrap();
    assert_eq!(
        decided_index(&i.decide(Some(&web), "api", &get("/"))),
        Some(1)
    );
    // But a more specific allow beats a less specific deny.
    let rules = vec![
        l4("*", "api", Action::Deny),
        l4("web", "api", Action::Allow),
    ];
    let i = Intentions::new(&rules, Action::Deny, TD).unwrap();
    assert!(i.decide(Some(&web), "api", &get("/")).is_allowed());
}

#[test]
fn l4_allow_and_deny() {
    let rules = vec![
        l4("web", "api", Action::Allow),
        l4("batch", "api", Action::Deny),
    ];
    let i = Intentions::new(&rules, Action::Deny, TD).unwrap();
    let post = SimpleRequest::new("POST", "/anything");
    assert!(
        i.decide(Some(&id("default", "web")), "api", &post)
            .is_allowed()
    );
    assert!(
        !i.decide(Some(&id("default", "batch")), "api", &post)
            .is_allowed()
    );
    let d = i.decide(Some(&id("default", "web")), "api", &post);
    assert_eq!(
        d.decided_by,
        DecidedBy::Intention {
            index: 0,
            source: "web",
            destination: "api",
            permission: None
        }
    );
}

#[test]
fn l7_first_matching_permission_decides() {
    let rules = vec![l7(
        "web",
        "billing",
        vec![
            perm(Action::Deny, path_exact("/billing.Billing/Refund")),
            perm(
                Action::Allow,
                RouteMatch {
                    path: Some(PathMatch::Prefix("/billing.Billing/".into())),
                    ..Default::default()
                },
            ),
            perm(Action::Deny, RouteMatch::default()),
        ],
    )];
    let i = Intentions::new(&rules, Action::Allow, TD).unwrap();
    let web = id("default", "web");
    let refund = i.decide(
        Some(&web),
        "billing",
        &SimpleRequest::new("POST", "/billing.Billing/Refund"),
    );
    assert_eq!(
        (refund.action, refund.decided_by),
        (
            Action::Deny,
            DecidedBy::Intention {
                index: 0,
                source: "web",
                destination: "billing",
                permission: Some(0)
            }
        )
    );
    let charge = i.decide(
        Some(&web),
        "billing",
        &SimpleRequest::new("POST", "/billing.Billing/Charge"),
    );
    assert!(charge.is_allowed());
    assert!(matches!(
        charge.decided_by,
        DecidedBy::Intention {
            permission: Some(1),
            ..
        }
    ));
    let other = i.decide(Some(&web), "billing", &get("/health"));
    assert!(!other.is_allowed());
    assert!(matches!(
        other.decided_by,
        DecidedBy::Intention {
            permission: Some(2),
            ..
        }
    ));
}

#[test]
fn l7_path_method_and_header_permissions() {
    let rules = vec![l7(
        "web",
        "api",
        vec![
            perm(
                Action::Allow,
                RouteMatch {
                    path: Some(PathMatch::Regex("/users/[0-9]+".into())),
                    methods: vec!["GET".into(), "HEAD".into()],
                    headers: vec![],
                },
            ),
            perm(
                Action::Allow,
                RouteMatch {
                    path: Some(PathMatch::Prefix("/admin/".into())),
                    headers: vec![HeaderMatch {
                        name: "x-role".into(),
                        value: HeaderValueMatch::Exact("admin".into()),
                    }],
                    ..Default::default()
                },
            ),
        ],
    )];
    let i = Intentions::new(&rules, Action::Deny, TD).unwrap();
    let web = id("default", "web");
    let ok = |r: SimpleRequest| i.decide(Some(&web), "api", &r).is_allowed();
    assert!(ok(get("/users/42")));
    assert!(ok(SimpleRequest::new("HEAD", "/users/42")));
    assert!(
        !ok(SimpleRequest::new("DELETE", "/users/42")),
        "method not listed"
    );
    assert!(!ok(get("/users/abc")), "regex is anchored");
    assert!(ok(
        SimpleRequest::new("POST", "/admin/x").with_header("x-role", "admin")
    ));
    assert!(!ok(
        SimpleRequest::new("POST", "/admin/x").with_header("x-role", "user")
    ));
    assert!(
        !ok(SimpleRequest::new("POST", "/admin/x")),
        "missing header"
    );
}

#[test]
fn l7_without_matching_permission_applies_default_not_lower_intentions() {
    let rules = vec![
        l4("*", "api", Action::Allow),
        l7("web", "api", vec![perm(Action::Allow, path_exact("/only"))]),
    ];
    for default in [Action::Deny, Action::Allow] {
        let i = Intentions::new(&rules, default, TD).unwrap();
        let d = i.decide(Some(&id("default", "web")), "api", &get("/other"));
        assert_eq!(d.action, default);
        assert_eq!(
            d.decided_by,
            DecidedBy::NoPermissionMatched {
                index: 1,
                source: "web",
                destination: "api"
            }
        );
    }
}

/// The intentions of DESIGN.md's sample config.
fn seed() -> Vec<Intention> {
    vec![
        l4("app-ui", "news-service", Action::Allow),
        l7(
            "prometheus",
            "*",
            vec![perm(
                Action::Allow,
                RouteMatch {
                    methods: vec!["GET".into()],
                    ..path_exact("/metrics")
                },
            )],
        ),
        l4("*", "news-service", Action::Deny),
    ]
}

#[test]
fn seed_example_from_design() {
    let i = Intentions::new(&seed(), Action::Allow, TD).unwrap();
    let ui = id("default", "app-ui");
    let prom = id("default", "prometheus");
    let other = id("default", "batch");
    let news = "news-service";
    assert!(
        i.decide(Some(&ui), news, &SimpleRequest::new("POST", "/api/news"))
            .is_allowed()
    );
    // prometheus -> news-service: `* -> news-service` (7) outranks
    // `prometheus -> *` (3), so even /metrics is denied there.
    let d = i.decide(Some(&prom), news, &get("/metrics"));
    assert_eq!(d.to_string(), "denied by intention #2 (* -> news-service)");
    // Elsewhere prometheus may only GET /metrics.
    let d = i.decide(Some(&prom), "app-ui", &get("/metrics"));
    assert_eq!(
        d.to_string(),
        "allowed by intention #1 (prometheus -> *) permission #0"
    );
    let d = i.decide(
        Some(&prom),
        "app-ui",
        &SimpleRequest::new("POST", "/metrics"),
    );
    assert!(d.is_allowed(), "no permission matched: default allow");
    assert_eq!(
        d.to_string(),
        "allowed by default policy: no permission of intention #1 (prometheus -> *) matched"
    );
    assert!(!i.decide(Some(&other), news, &get("/")).is_allowed());
    assert!(!i.decide(None, news, &get("/")).is_allowed());
    let d = i.decide(Some(&other), "app-ui", &get("/"));
    assert_eq!(
        d.to_string(),
        "allowed by default policy: no intention matched"
    );
}

#[test]
fn foreign_anonymous_and_non_service_callers_match_only_wildcard_sources() {
    let rules = vec![
        l4("web", "api", Action::Allow),
        l4("default/*", "api", Action::Allow),
        l4("*", "api", Action::Deny),
    ];
    let i = Intentions::new(&rules, Action::Allow, TD).unwrap();
    let req = get("/");
    let foreign = SpiffeId::for_service("evil.example", "default", "web").unwrap();
    let workload: SpiffeId = "spiffe://mesh.local/workload/web".parse().unwrap();
    for caller in [Some(&foreign), Some(&workload), None] {
        let d = i.decide(caller, "api", &req);
        assert_eq!(decided_index(&d), Some(2), "{caller:?}");
        assert!(!d.is_allowed());
    }
    assert_eq!(
        decided_index(&i.decide(Some(&id("default", "web")), "api", &req)),
        Some(0)
    );
    assert_eq!(
        decided_index(&i.decide(Some(&id("default", "x")), "api", &req)),
        Some(1)
    );
    // Without a `*` source they fall to the default policy.
    let i = Intentions::new(&rules[..2], Action::Deny, TD).unwrap();
    let d = i.decide(Some(&foreign), "api", &req);
    assert_eq!(
        (d.action, d.decided_by),
        (Action::Deny, DecidedBy::DefaultPolicy)
    );
}

#[test]
fn default_policy_deny_and_allow() {
    let rules = vec![l4("web", "api", Action::Allow)];
    let deny = Intentions::new(&rules, Action::Deny, TD).unwrap();
    let allow = Intentions::new(&rules, Action::Allow, TD).unwrap();
    let batch = id("default", "batch");
    assert_eq!(
        deny.decide(Some(&batch), "api", &get("/")).action,
        Action::Deny
    );
    assert_eq!(
        allow.decide(Some(&batch), "api", &get("/")).action,
        Action::Allow
    );
    assert!(
        deny.decide(Some(&id("default", "web")), "api", &get("/"))
            .is_allowed()
    );
    let empty = Intentions::new(&[], Action::Deny, TD).unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        empty.decide(None, "api", &get("/")).to_string(),
        "denied by default policy: no intention matched"
    );
}

#[test]
fn from_config_uses_trust_domain_and_default() {
    let config = MeshConfig {
        trust_domain: "corp.example".into(),
        default_policy: Action::Deny,
        intentions: seed(),
        ..Default::default()
    };
    let i = Intentions::from_config(&config).unwrap();
    assert_eq!(
        (i.trust_domain(), i.default_policy(), i.len()),
        ("corp.example", Action::Deny, 3)
    );
    let ui = SpiffeId::for_service("corp.example", "default", "app-ui").unwrap();
    assert!(i.decide(Some(&ui), "news-service", &get("/")).is_allowed());
    // mesh.local is foreign here.
    assert!(
        !i.decide(Some(&id("default", "app-ui")), "news-service", &get("/"))
            .is_allowed()
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let err = Intentions::new(&[l4("*/web", "api", Action::Allow)], Action::Allow, TD).unwrap_err();
    assert!(matches!(
        err,
        IntentionsError::Name {
            index: 0,
            field: "source",
            source: NameError::WildcardNamespace,
            ..
        }
    ));
    let err = Intentions::new(
        &[
            l4("a", "b", Action::Allow),
            l4("a", "bad name", Action::Allow),
        ],
        Action::Allow,
        TD,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "intentions[1].destination: invalid name \"bad name\""
    );
    assert!(err.source().is_some());
    for bad in ["", "a/b/c", "a/", "/a", ".."] {
        assert!(
            Intentions::new(&[l4(bad, "x", Action::Allow)], Action::Allow, TD).is_err(),
            "{bad:?}"
        );
    }
    let regex = l7(
        "a",
        "b",
        vec![perm(
            Action::Allow,
            RouteMatch {
                path: Some(PathMatch::Regex("(".into())),
                ..Default::default()
            },
        )],
    );
    let err = Intentions::new(&[regex], Action::Allow, TD).unwrap_err();
    assert!(matches!(
        err,
        IntentionsError::Matcher {
            index: 0,
            permission: 0,
            ..
        }
    ));
    assert!(err.source().unwrap().to_string().contains("invalid regex"));
    let err = Intentions::new(&[], Action::Allow, "Mesh.Local").unwrap_err();
    assert!(matches!(err, IntentionsError::TrustDomain { .. }));
}

#[test]
fn example_config_intentions_mean_what_they_say() {
    // examples/mesh.yaml: app-ui may call news-service; prometheus may only
    // GET /metrics there; everything else to news-service is denied.
    let cfg = crate::config::parse_str(
        include_str!("../../../examples/mesh.yaml"),
        crate::config::Format::Yaml,
        "examples/mesh.yaml",
    )
    .unwrap();
    let i = Intentions::from_config(&cfg).unwrap();
    let news = "news-service";
    let prom = id("default", "prometheus");
    assert!(i.decide(Some(&prom), news, &get("/metrics")).is_allowed());
    assert!(
        !i.decide(Some(&prom), news, &SimpleRequest::new("POST", "/metrics"))
            .is_allowed()
    );
    assert!(!i.decide(Some(&prom), news, &get("/api/news")).is_allowed());
    let ui = id("default", "app-ui");
    assert!(
        i.decide(Some(&ui), news, &SimpleRequest::new("POST", "/api/news"))
            .is_allowed()
    );
    assert!(
        !i.decide(Some(&id("default", "batch")), news, &get("/"))
            .is_allowed()
    );
    assert!(!i.decide(None, news, &get("/metrics")).is_allowed());
}
