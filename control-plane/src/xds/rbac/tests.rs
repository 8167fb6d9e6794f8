//! The RBAC translation checked against mesh-core's own intentions
//! engine: a small RBAC evaluator (the subset we emit) must agree with
//! `Intentions::decide` for every caller and request tried.
use super::*;
use mesh_core::config::{Format, parse_str};
use mesh_core::identity::SpiffeId;
use mesh_core::intentions::Intentions;
use mesh_core::route::SimpleRequest;

struct Req<'a> {
    id: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

fn string(m: &m::StringMatcher, v: &str) -> bool {
    match m.match_pattern.as_ref().unwrap() {
        m::string_matcher::MatchPattern::Exact(e) => v == e,
        m::string_matcher::MatchPattern::Prefix(p) => v.starts_with(p.as_str()),
        m::string_matcher::MatchPattern::SafeRegex(r) => {
            regex::Regex::new(&format!("^(?:{})$", r.regex))
                .unwrap()
                .is_match(v)
        }
        other => panic!("{other:?}"),
    }
}

fn principal(p: &rb::Principal, r: &Req) -> bool {
    use rb::principal::Identifier as I;
    match p.identifier.as_ref().unwrap() {
        I::Any(_) => true,
        I::Authenticated(a) => {
            r.id.is_some_and(|id| string(a.principal_name.as_ref().unwrap(), id))
        }
        I::AndIds(s) => s.ids.iter().all(|p| principal(p, r)),
        I::OrIds(s) => s.ids.iter().any(|p| principal(p, r)),
        I::NotId(p) => !principal(p, r),
        other => panic!("{other:?}"),
    }
}

fn permission(p: &rb::Permission, r: &Req) -> bool {
    use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier as H;
    use rb::permission::Rule as R;
    match p.rule.as_ref().unwrap() {
        R::Any(_) => true,
        R::AndRules(s) => s.rules.iter().all(|p| permission(p, r)),
        R::OrRules(s) => s.rules.iter().any(|p| permission(p, r)),
        R::NotRule(p) => !permission(p, r),
        R::UrlPath(pm) => match pm.rule.as_ref().unwrap() {
            m::path_matcher::Rule::Path(sm) => string(sm, r.path),
        },
        R::Header(h) => {
            let value = if h.name == ":method" {
                Some(r.method)
            } else {
                r.headers
                    .iter()
                    .find(|(n, _)| *n == h.name)
                    .map(|(_, v)| *v)
            };
            let hit = match (h.header_match_specifier.as_ref().unwrap(), value) {
                (H::PresentMatch(_), v) => v.is_some(),
                (H::StringMatch(sm), Some(v)) => string(sm, v),
                (_, None) => false,
                (other, _) => panic!("{other:?}"),
            };
            hit != h.invert_match
        }
        other => panic!("{other:?}"),
    }
}

fn allowed(rules: &rb::Rbac, r: &Req) -> bool {
    rules.policies.values().any(|p| {
        p.principals.iter().any(|x| principal(x, r))
            && p.permissions.iter().any(|x| permission(x, r))
    })
}

const CONFIGS: [&str; 3] = [
    r#"
default_policy: deny
services: { news: {}, ui: {} }
intentions:
  - { source: ui, destination: news, action: allow }
  - { source: "*", destination: news, action: deny }
"#,
    r#"
default_policy: allow
services: { news: {} }
intentions:
  - source: prometheus
    destination: "*"
    permissions:
      - { action: deny, path_prefix: /admin }
      - { action: allow, path_exact: /metrics, methods: [GET] }
      - { action: deny, headers: { x-debug: { present: true } } }
  - source: ui
    destination: news
    permissions:
      - { action: allow, path_prefix: /api, methods: [GET, POST] }
      - { action: deny, path_regex: "/x/[0-9]+" }
  - { source: "*", destination: "*", action: deny }
"#,
    r#"
default_policy: deny
services: { news: {} }
intentions:
  - { source: "*", destination: news, action: allow }
  - { source: ui, destination: news, action: allow }
"#,
];

#[test]
fn rbac_agrees_with_the_intentions_engine() {
    let ids: Vec<Option<String>> = vec![
        None,
        Some("spiffe://mesh.local/ns/default/svc/ui".into()),
        Some("spiffe://mesh.local/ns/default/svc/prometheus".into()),
        Some("spiffe://mesh.local/ns/default/svc/other".into()),
        Some("spiffe://mesh.local/ns/prod/svc/api".into()),
        Some("spiffe://mesh.local/ns/prod/svc/bad".into()),
        Some("spiffe://other.domain/ns/default/svc/ui".into()),
    ];
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let reqs: [Case; 7] = [
        ("GET", "/metrics", &[]),
        ("GET", "/metrics", &[("x-debug", "1")]),
        ("POST", "/metrics", &[]),
        ("GET", "/admin/x", &[]),
        ("POST", "/api/items", &[]),
        ("DELETE", "/api/items", &[]),
        ("GET", "/x/12", &[]),
    ];
    let mut checked = 0;
    for (n, yaml) in CONFIGS.into_iter().enumerate() {
        let mut config = parse_str(yaml, Format::Yaml, "t.yaml").unwrap();
        // Namespaced names are not in config files yet; the engine takes them.
        for (source, destination, action) in [
            ("prod/*", "*", Action::Allow),
            ("prod/bad", "news", Action::Deny),
        ] {
            config.intentions.push(Intention {
                source: source.into(),
                destination: destination.into(),
                rule: IntentionRule::Action(action),
            });
        }
        if n == 2 {
            // A tie (files refuse duplicates; the engine has deny win).
            config.intentions.push(Intention {
                source: "ui".into(),
                destination: "news".into(),
                rule: IntentionRule::Action(Action::Deny),
            });
        }
        let engine = Intentions::new(
            &config.intentions,
            config.default_policy,
            &config.trust_domain,
        )
        .unwrap();
        for dest in [Some("news"), None] {
            let rules = rbac_rules(&config, dest);
            for id in &ids {
                let spiffe = id.as_deref().map(|s| SpiffeId::parse(s).unwrap());
                for (method, path, headers) in reqs {
                    let mut sr = SimpleRequest::new(method, path);
                    for (n, v) in headers {
                        sr = sr.with_header(n, v);
                    }
                    let want = engine
                        .decide(spiffe.as_ref(), dest.unwrap_or("unclaimed"), &sr)
                        .is_allowed();
                    let got = allowed(
                        &rules,
                        &Req {
                            id: id.as_deref(),
                            method,
                            path,
                            headers,
                        },
                    );
                    assert_eq!(
                        got, want,
                        "{yaml}\ndest {dest:?} caller {id:?} {method} {path} {headers:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 2 * 7 * 7);
}
