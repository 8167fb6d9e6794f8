//! Rules of routes, matchers, intentions and gateways: exact path, line and message.

use super::*;

#[test]
fn route_matchers() {
    let r = |m: &str| svc(&format!("routes:\n  - match: {m}"));
    expect_err(
        &r("{ path_exact: /a, path_prefix: /b }"),
        "services.a.routes[0].match.path_prefix",
        4,
        "at most one of path_exact, path_prefix, path_regex",
    );
    expect_err(
        &r("{ path_prefix: api }"),
        "services.a.routes[0].match.path_prefix",
        4,
        "must start with `/`, got `api`",
    );
    expect_err(
        &r("{ path_exact: api }"),
        "services.a.routes[0].match.path_exact",
        4,
        "must start with `/`",
    );
    expect_err(
        &r("{ path_regex: \"(\" }"),
        "services.a.routes[0].match.path_regex",
        4,
        "invalid regex",
    );
    expect_err(
        &r("{ path_regex: \"a)|(b\" }"),
        "services.a.routes[0].match.path_regex",
        4,
        "invalid regex",
    );
    expect_err(
        &r("{ path_regex: \"a{1000}{1000}\" }"),
        "services.a.routes[0].match.path_regex",
        4,
        "invalid regex",
    );
    expect_err(
        &r("{ methods: [\"GE T\"] }"),
        "services.a.routes[0].match.methods[0]",
        4,
        "not an HTTP method",
    );
    expect_err(
        &r("{ methods: [get, GET] }"),
        "services.a.routes[0].match.methods[1]",
        4,
        "listed twice",
    );
    expect_err(
        &r("{ headers: { \"x y\": a } }"),
        "services.a.routes[0].match.headers.x y",
        4,
        "not a header name",
    );
    expect_err(
        &r("{ headers: { x-a: true } }"),
        "services.a.routes[0].match.headers.x-a",
        4,
        "quote `true`",
    );
    expect_err(
        &r("{ headers: { x-a: { prefix: a, regex: b } } }"),
        "services.a.routes[0].match.headers.x-a",
        4,
        "exactly one of `prefix`, `regex`, `present`",
    );
    expect_err(
        &r("{ headers: { x-a: { regex: \"[\" } } }"),
        "services.a.routes[0].match.headers.x-a.regex",
        4,
        "invalid regex",
    );
    expect_err(
        &r("{ headers: { x-a: { prefx: a } } }"),
        "services.a.routes[0].match.headers.x-a.prefx",
        4,
        "did you mean `prefix`?",
    );
    expect_err(
        &r("{ headers: { X-A: a, x-a: b } }"),
        "services.a.routes[0].match.headers.x-a",
        4,
        "given twice",
    );
    let cfg = yaml(&r(
        "{ methods: [get], headers: { X-B: { present: false }, X-A: v } }",
    ))
    .unwrap();
    let m = &cfg.services["a"].routes[0].matches;
    assert_eq!(m.methods, vec!["GET".to_string()]);
    let names: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, vec!["x-a", "x-b"]);
    assert_eq!(m.headers[1].value, HeaderValueMatch::Present(false));
}

#[test]
fn route_splits_name_existing_subsets() {
    let base = "subsets: { v1: { version: v1 } }\nroutes:\n";
    expect_err(
        &svc(&format!("{base}  - split: {{ v1: 1, v3: 1 }}")),
        "services.a.routes[0].split.v3",
        5,
        "unknown subset `v3`; subsets: v1",
    );
    expect_err(
        &svc(&format!("{base}  - split: {{ v1: 0 }}")),
        "services.a.routes[0].split",
        5,
        "must not all be 0",
    );
    expect_err(
        &svc("routes:\n  - split: { v1: 1 }"),
        "services.a.routes[0].split.v1",
        4,
        "subsets: none defined",
    );
    expect_err(
        &svc(&format!(
            "timeout: 5s\n{base}  - timeout: 1s\n    retry: {{ per_try_timeout: 2s }}"
        )),
        "services.a.routes[0].retry.per_try_timeout",
        7,
        "must not exceed the timeout (1s)",
    );
}

#[test]
fn a_broken_subset_is_reported_once() {
    let text = svc("subsets: { v1: { version: 1 } }\nroutes:\n  - split: { v1: 1 }");
    let e = yaml(&text).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].path, "services.a.subsets.v1.version");
}

#[test]
fn intention_rules() {
    expect_err(
        "intentions:\n  - { source: a, destination: b }\n",
        "intentions[0]",
        2,
        "either `action` (L4) or `permissions` (L7)",
    );
    expect_err(
        "intentions:\n  - { source: a, destination: b, action: allow, permissions: [] }\n",
        "intentions[0].permissions",
        2,
        "not both",
    );
    expect_err(
        "intentions:\n  - { destination: b, action: allow }\n",
        "intentions[0]",
        2,
        "missing `source`",
    );
    expect_err(
        "intentions:\n  - { source: A, destination: b, action: allow }\n",
        "intentions[0].source",
        2,
        "neither a service name",
    );
    expect_err(
        "intentions:\n  - { source: a, destination: \"*\", action: allow }\n  - { source: a, destination: \"*\", action: deny }\n",
        "intentions[1]",
        3,
        "a second intention from `a` to `*`",
    );
    expect_err(
        "intentions:\n  - { source: a, destination: b, permissions: [] }\n",
        "intentions[0].permissions",
        2,
        "at least one permission",
    );
    expect_err(
        "intentions:\n  - source: a\n    destination: b\n    permissions:\n      - { path_prefix: / }\n",
        "intentions[0].permissions[0]",
        5,
        "missing `action`",
    );
    expect_err(
        "intentions:\n  - source: a\n    destination: b\n    permissions:\n      - { action: allow, path_prefix: x }\n",
        "intentions[0].permissions[0].path_prefix",
        5,
        "must start with `/`",
    );
}

#[test]
fn intentions_name_namespaces() {
    let cfg = yaml(
        "intentions:\n  - { source: prod/app-ui, destination: news, action: allow }\n  - { source: \"prod/*\", destination: default/news, action: deny }\n  - { source: \"*\", destination: \"prod/*\", action: deny }\n",
    )
    .expect("ns/name, ns/* and * are valid");
    assert_eq!(cfg.intentions.len(), 3);
    assert_eq!(cfg.intentions[1].source, "prod/*");
    expect_err(
        "intentions:\n  - { source: \"*/app-ui\", destination: b, action: allow }\n",
        "intentions[0].source",
        2,
        "wildcard namespace",
    );
    expect_err(
        "intentions:\n  - { source: a, destination: \"*/*\", action: allow }\n",
        "intentions[0].destination",
        2,
        "wildcard namespace",
    );
    expect_err(
        "intentions:\n  - { source: Prod/a, destination: b, action: allow }\n",
        "intentions[0].source",
        2,
        "invalid namespace `Prod`",
    );
    expect_err(
        "intentions:\n  - { source: prod/A, destination: b, action: allow }\n",
        "intentions[0].source",
        2,
        "is neither a service name",
    );
    // A bare name is namespace `default`: the same pair twice.
    expect_err(
        "intentions:\n  - { source: a, destination: b, action: allow }\n  - { source: default/a, destination: b, action: deny }\n",
        "intentions[1]",
        3,
        "a second intention from `default/a` to `b`",
    );
}

#[test]
fn gateway_rules() {
    let gw = |body: &str| format!("services:\n  a: {{}}\ngateways:\n  edge:\n{body}");
    expect_err(
        &gw("    listen: 127.0.0.1:1\n    routes: [{ service: b }]\n"),
        "gateways.edge.routes[0].service",
        6,
        "unknown service `b`; define it under `services`",
    );
    expect_err(
        &gw("    listen: localhost:1\n"),
        "gateways.edge.listen",
        5,
        "not an ip:port address",
    );
    expect_err(
        &gw("    routes: []\n"),
        "gateways.edge",
        5,
        "missing `listen`",
    );
    expect_err(
        &gw("    listen: 127.0.0.1:1\n    routes: [{ match: { path_prefix: / } }]\n"),
        "gateways.edge.routes[0]",
        6,
        "missing `service`",
    );
    let cfg = yaml(&gw(
        "    listen: 127.0.0.1:1\n    routes: [{ service: a }]\n",
    ))
    .unwrap();
    assert_eq!(
        cfg.gateways["edge"].routes[0].matches,
        RouteMatch::default()
    );
}
