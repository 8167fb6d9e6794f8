//! Router and subset tests.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;
use crate::config::{HeaderMatch, HeaderValueMatch, PathMatch, RetryOn, RouteConfig, RouteMatch};
use crate::endpoint::Endpoint;

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(0x5eed)
}

fn selector(version: &str) -> BTreeMap<String, String> {
    [("version".to_string(), version.to_string())].into()
}

fn service(routes: Vec<RouteConfig>) -> ServiceConfig {
    let mut s = ServiceConfig::default();
    for v in ["v1", "v2", "v3"] {
        s.subsets.insert(v.to_string(), selector(v));
    }
    s.routes = routes;
    s
}

fn route(name: &str, matches: RouteMatch, split: &[(&str, u32)]) -> RouteConfig {
    RouteConfig {
        name: Some(name.to_string()),
        matches,
        split: split.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        ..Default::default()
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path: Some(PathMatch::Prefix(p.to_string())),
        ..Default::default()
    }
}

fn header(name: &str, value: HeaderValueMatch) -> RouteMatch {
    RouteMatch {
        headers: vec![HeaderMatch {
            name: name.to_string(),
            value,
        }],
        ..Default::default()
    }
}

fn name_of(router: &Router, req: &SimpleRequest) -> Option<String> {
    router
        .route(req, &mut rng())
        .ok()
        .map(|d| d.name().to_string())
}

#[test]
fn first_match_wins() {
    let router = Router::new(&service(vec![
        route(
            "canary",
            header("x-canary", HeaderValueMatch::Exact("true".into())),
            &[("v2", 1)],
        ),
        route("api", prefix("/api/"), &[("v1", 1)]),
        route("all", prefix("/"), &[("v3", 1)]),
    ]))
    .unwrap();
    let canary_api = SimpleRequest::new("GET", "/api/x").with_header("x-canary", "true");
    let d = router.route(&canary_api, &mut rng()).unwrap();
    assert_eq!(
        (d.index(), d.name(), d.subset_name()),
        (0, "canary", Some("v2"))
    );
    let d = router
        .route(&SimpleRequest::new("GET", "/api/x"), &mut rng())
        .unwrap();
    assert_eq!(
        (d.index(), d.name(), d.subset_name()),
        (1, "api", Some("v1"))
    );
    let d = router
        .route(&SimpleRequest::new("GET", "/home"), &mut rng())
        .unwrap();
    assert_eq!(
        (d.index(), d.subset()),
        (2, router.subsets().index_of("v3"))
    );
}

#[test]
fn each_matcher_kind() {
    let regex_path = RouteMatch {
        path: Some(PathMatch::Regex("/users/[0-9]+".into())),
        ..Default::default()
    };
    let exact_path = RouteMatch {
        path: Some(PathMatch::Exact("/healthz".into())),
        ..Default::default()
    };
    let methods = RouteMatch {
        methods: vec!["DELETE".into()],
        ..Default::default()
    };
    let router = Router::new(&service(vec![
        route("exact", exact_path, &[]),
        route("regex", regex_path, &[]),
        route("method", methods, &[]),
        route(
            "h-prefix",
            header("x-user", HeaderValueMatch::Prefix("admin-".into())),
            &[],
        ),
        route(
            "h-regex",
            header("x-region", HeaderValueMatch::Regex("eu-.*".into())),
            &[],
        ),
        route(
            "h-present",
            header("x-debug", HeaderValueMatch::Present(true)),
            &[],
        ),
    ]))
    .unwrap();
    let cases = [
        (SimpleRequest::new("GET", "/healthz"), Some("exact")),
        (SimpleRequest::new("GET", "/healthz/x"), None),
        (SimpleRequest::new("GET", "/users/7"), Some("regex")),
        (SimpleRequest::new("GET", "/users/x"), None),
        (SimpleRequest::new("DELETE", "/x"), Some("method")),
        (
            SimpleRequest::new("GET", "/x").with_header("x-user", "admin-a"),
            Some("h-prefix"),
        ),
        (
            SimpleRequest::new("GET", "/x").with_header("x-user", "bob"),
            None,
        ),
        (
            SimpleRequest::new("GET", "/x").with_header("x-region", "eu-west"),
            Some("h-regex"),
        ),
        (
            SimpleRequest::new("GET", "/x").with_header("x-debug", ""),
            Some("h-present"),
        ),
        (SimpleRequest::new("GET", "/x"), None),
    ];
    for (req, want) in cases {
        assert_eq!(name_of(&router, &req).as_deref(), want, "{req:?}");
    }
}

#[test]
fn no_match_is_an_error() {
    let router = Router::new(&service(vec![route("api", prefix("/api/"), &[])])).unwrap();
    assert_eq!(
        router
            .route(&SimpleRequest::new("GET", "/"), &mut rng())
            .unwrap_err(),
        NoRouteMatch
    );
}

#[test]
fn no_routes_means_catch_all_to_all_endpoints() {
    let mut s = service(vec![]);
    s.timeout = Some(Duration::from_secs(2));
    let router = Router::new(&s).unwrap();
    assert!(router.is_implicit());
    for req in [
        SimpleRequest::new("GET", "/"),
        SimpleRequest::new("BREW", "/pot"),
    ] {
        let d = router.route(&req, &mut rng()).unwrap();
        assert_eq!(
            (d.index(), d.name(), d.subset()),
            (0, DEFAULT_ROUTE_NAME, None)
        );
        assert_eq!(d.timeout(), Some(Duration::from_secs(2)));
        assert!(d.retry().is_none());
    }
}

#[test]
fn unnamed_routes_are_named_by_index() {
    let mut r = route("x", prefix("/"), &[]);
    r.name = None;
    let router = Router::new(&service(vec![route("a", prefix("/a"), &[]), r])).unwrap();
    assert_eq!(router.route_names().collect::<Vec<_>>(), ["a", "1"]);
    assert_eq!(
        name_of(&router, &SimpleRequest::new("GET", "/b")).as_deref(),
        Some("1")
    );
}

#[test]
fn weighted_split_converges() {
    let router = Router::new(&service(vec![route(
        "split",
        prefix("/"),
        &[("v1", 70), ("v2", 20), ("v3", 10)],
    )]))
    .unwrap();
    let mut rng = rng();
    let mut counts = [0usize; 3];
    let req = SimpleRequest::new("GET", "/");
    for _ in 0..10_000 {
        let subset = router.route(&req, &mut rng).unwrap().subset().unwrap();
        counts[subset] += 1;
    }
    for (got, want) in counts.iter().zip([7000usize, 2000, 1000]) {
        assert!(got.abs_diff(want) <= 100, "{counts:?}");
    }
}

#[test]
fn zero_weights_get_nothing() {
    let router = Router::new(&service(vec![route(
        "r",
        prefix("/"),
        &[("v1", 0), ("v2", 5)],
    )]))
    .unwrap();
    assert_eq!(router.split(0).map(SplitTable::len), Some(1));
    let mut rng = rng();
    for _ in 0..100 {
        let d = router
            .route(&SimpleRequest::new("GET", "/"), &mut rng)
            .unwrap();
        assert_eq!(d.subset_name(), Some("v2"));
    }
}

#[test]
fn bad_routes_are_typed_errors() {
    let err = Router::new(&service(vec![route("r", prefix("/"), &[("v9", 1)])])).unwrap_err();
    assert!(
        matches!(&err, RouteError::UnknownSubset { subset, .. } if subset == "v9"),
        "{err}"
    );
    let err = Router::new(&service(vec![route("r", prefix("/"), &[("v1", 0)])])).unwrap_err();
    assert!(matches!(err, RouteError::ZeroSplit { .. }));
    let bad_regex = RouteMatch {
        path: Some(PathMatch::Regex("(".into())),
        ..Default::default()
    };
    let err = Router::new(&service(vec![route("re", bad_regex, &[])])).unwrap_err();
    assert!(err.to_string().starts_with("route re:"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "cause chain kept"
    );
}

#[test]
fn route_overrides_service_policy() {
    let mut s = service(vec![
        RouteConfig {
            timeout: Some(Duration::from_millis(100)),
            retry: Some(RetryConfig {
                attempts: 5,
                on: vec![RetryOn::Server5xx],
                ..RetryConfig::default()
            }),
            ..route("custom", prefix("/custom"), &[])
        },
        route("inherit", prefix("/"), &[]),
    ]);
    s.timeout = Some(Duration::from_secs(2));
    s.retry = Some(RetryConfig::default());
    let router = Router::new(&s).unwrap();
    let d = router
        .route(&SimpleRequest::new("GET", "/custom"), &mut rng())
        .unwrap();
    assert_eq!(d.timeout(), Some(Duration::from_millis(100)));
    assert_eq!(d.retry().map(|r| r.attempts), Some(5));
    assert_eq!(d.retry_policy().map(RetryPolicy::attempts), Some(5));
    let d = router
        .route(&SimpleRequest::new("GET", "/x"), &mut rng())
        .unwrap();
    assert_eq!(d.timeout(), Some(Duration::from_secs(2)));
    assert_eq!(d.retry(), s.retry.as_ref());
}

#[test]
fn subsets_select_by_labels() {
    let ep = |port: u16, version: &str| {
        Endpoint::new(([127, 0, 0, 1], port).into()).with_label("version", version)
    };
    let endpoints = vec![ep(1, "v1"), ep(2, "v2"), ep(3, "v1"), ep(4, "v4")];
    let subsets = Subsets::new(&service(vec![]));
    assert_eq!(subsets.names().collect::<Vec<_>>(), ["v1", "v2", "v3"]);
    assert_eq!(subsets.index_of("v2"), Some(1));
    assert_eq!(subsets.index_of("v4"), None);
    let ports = |eps: Vec<Endpoint>| eps.iter().map(|e| e.address.port()).collect::<Vec<_>>();
    assert_eq!(
        ports(subsets.select_by_name("v1", &endpoints).unwrap()),
        [1, 3]
    );
    assert_eq!(
        ports(subsets.select_by_name("v3", &endpoints).unwrap()),
        Vec::<u16>::new()
    );
    assert!(subsets.select_by_name("v4", &endpoints).is_none());
    let v2: Vec<_> = subsets.select(1, &endpoints).unwrap().collect();
    assert_eq!(v2, [&endpoints[1]]);
    let all = subsets.partition(&endpoints);
    assert_eq!(all.len(), 3);
    assert_eq!(ports(all[0].clone()), [1, 3]);
    assert_eq!(ports(all[1].clone()), [2]);
}

mod index_agrees_with_linear {
    use super::*;
    use proptest::prelude::*;

    const PATHS: [&str; 8] = ["", "/", "/a", "/a/", "/a/b", "/ab", "/b/x", "/a/b/c"];
    const REGEXES: [&str; 8] = [
        "/a/[a-z]+",
        "/a.*",
        "/(a|b)/x",
        "/a|/b/x",
        "/ab?",
        "/a/b/c",
        ".*",
        "/[ab]/.*|/ab",
    ];
    const VALUES: [&str; 3] = ["v1", "v2", "v"];

    fn path_match() -> impl Strategy<Value = Option<PathMatch>> {
        prop_oneof![
            Just(None),
            proptest::sample::select(&PATHS[..]).prop_map(|p| Some(PathMatch::Exact(p.into()))),
            proptest::sample::select(&PATHS[..]).prop_map(|p| Some(PathMatch::Prefix(p.into()))),
            proptest::sample::select(&REGEXES[..]).prop_map(|r| Some(PathMatch::Regex(r.into()))),
        ]
    }

    fn header_match() -> impl Strategy<Value = HeaderMatch> {
        let value = prop_oneof![
            proptest::sample::select(&VALUES[..]).prop_map(|v| HeaderValueMatch::Exact(v.into())),
            proptest::sample::select(&VALUES[..]).prop_map(|v| HeaderValueMatch::Prefix(v.into())),
            any::<bool>().prop_map(HeaderValueMatch::Present),
        ];
        (proptest::sample::select(&["x-a", "x-b"][..]), value).prop_map(|(name, value)| {
            HeaderMatch {
                name: name.into(),
                value,
            }
        })
    }

    fn route_config() -> impl Strategy<Value = RouteConfig> {
        (
            path_match(),
            proptest::collection::vec(header_match(), 0..3),
            proptest::option::of(proptest::sample::select(&["GET", "POST"][..])),
        )
            .prop_map(|(path, headers, method)| RouteConfig {
                matches: RouteMatch {
                    path,
                    methods: method.map(|m| vec![m.to_string()]).unwrap_or_default(),
                    headers,
                },
                ..Default::default()
            })
    }

    fn request() -> impl Strategy<Value = SimpleRequest> {
        (
            proptest::sample::select(&PATHS[..]),
            proptest::sample::select(&["", "x", "/"][..]),
            proptest::sample::select(&["GET", "POST"][..]),
            proptest::option::of(proptest::sample::select(&VALUES[..])),
            proptest::option::of(proptest::sample::select(&VALUES[..])),
        )
            .prop_map(|(path, suffix, method, a, b)| {
                let mut req = SimpleRequest::new(method, &format!("{path}{suffix}"));
                if let Some(a) = a {
                    req = req.with_header("x-a", a);
                }
                if let Some(b) = b {
                    req = req.with_header("x-b", b);
                }
                req
            })
    }

    proptest! {
        /// The index finds exactly the route a plain first-match scan finds.
        #[test]
        fn same_route_as_linear_scan(
            routes in proptest::collection::vec(route_config(), (LINEAR_MAX + 1)..40),
            requests in proptest::collection::vec(request(), 1..40),
        ) {
            let router = Router::new(&service(routes)).unwrap();
            prop_assert!(router.index.is_some());
            let mut rng = rng();
            for req in &requests {
                let indexed = router.route(req, &mut rng).ok().map(|d| d.index());
                prop_assert_eq!(indexed, router.first_match_linear(req), "{:?}", req);
            }
        }
    }
}
