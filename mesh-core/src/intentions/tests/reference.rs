//! A naive reference implementation (scan every intention, keep the highest
//! precedence, deny on ties) that random intention sets are checked against.

use proptest::prelude::*;

use super::*;

/// Specificity of `pattern` for `caller`, if it matches: 2 exact, 1 `ns/*`, 0 `*`.
fn spec(pattern: &str, caller: Option<(&str, &str)>) -> Option<usize> {
    if pattern == "*" || pattern == "*/*" {
        return Some(0);
    }
    let (cns, cname) = caller?;
    let (ns, name) = pattern.split_once('/').unwrap_or(("default", pattern));
    if name == "*" {
        (ns == cns).then_some(1)
    } else {
        (ns == cns && name == cname).then_some(2)
    }
}

/// Consul's table, indexed [destination specificity][source specificity].
const RANK: [[u8; 3]; 3] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]];

/// (action, deciding intention, deciding permission, no permission matched)
type Outcome = (Action, Option<usize>, Option<usize>, bool);

fn naive(
    rules: &[Intention],
    default: Action,
    caller: Option<&SpiffeId>,
    destination: &str,
    req: &SimpleRequest,
) -> Outcome {
    let caller = caller
        .filter(|id| id.trust_domain() == TD)
        .and_then(|id| id.service_identity())
        .map(|s| (s.namespace, s.service));
    let callee = destination
        .split_once('/')
        .unwrap_or(("default", destination));
    let matching: Vec<(usize, u8)> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let s = spec(&r.source, caller)?;
            let d = spec(&r.destination, Some(callee))?;
            Some((i, RANK[d][s]))
        })
        .collect();
    let Some(best) = matching.iter().map(|(_, p)| *p).max() else {
        return (default, None, None, false);
    };
    let outcomes: Vec<Outcome> = matching
        .iter()
        .filter(|(_, p)| *p == best)
        .map(|(i, _)| match &rules[*i].rule {
            IntentionRule::Action(a) => (*a, Some(*i), None, false),
            IntentionRule::Permissions(perms) => {
                for (p, perm) in perms.iter().enumerate() {
                    if RequestMatcher::new(&perm.matches).unwrap().matches(req) {
                        return (perm.action, Some(*i), Some(p), false);
                    }
                }
                (default, Some(*i), None, true)
            }
        })
        .collect();
    outcomes
        .iter()
        .find(|o| o.0 == Action::Deny)
        .or(outcomes.first())
        .copied()
        .unwrap()
}

fn outcome(d: &Decision<'_>) -> Outcome {
    match d.decided_by {
        DecidedBy::Intention {
            index, permission, ..
        } => (d.action, Some(index), permission, false),
        DecidedBy::NoPermissionMatched { index, .. } => (d.action, Some(index), None, true),
        DecidedBy::DefaultPolicy => (d.action, None, None, false),
    }
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Allow), Just(Action::Deny)]
}

fn matcher() -> impl Strategy<Value = RouteMatch> {
    prop_oneof![
        Just(RouteMatch::default()),
        Just(path_exact("/a")),
        Just(RouteMatch {
            path: Some(PathMatch::Prefix("/b".into())),
            ..Default::default()
        }),
        Just(RouteMatch {
            methods: vec!["POST".into()],
            ..Default::default()
        }),
        Just(RouteMatch {
            headers: vec![HeaderMatch {
                name: "x-k".into(),
                value: HeaderValueMatch::Present(true)
            }],
            ..Default::default()
        }),
    ]
}

fn intention() -> impl Strategy<Value = Intention> {
    let source = prop::sample::select(vec![
        "*",
        "a",
        "b",
        "prod/a",
        "prod/*",
        "default/*",
        "default/a",
    ]);
    let destination = prop::sample::select(vec!["*", "x", "y", "prod/x", "prod/*", "default/*"]);
    let rule = prop_oneof![
        action().prop_map(IntentionRule::Action),
        prop::collection::vec((action(), matcher()).prop_map(|(a, m)| perm(a, m)), 0..4)
            .prop_map(IntentionRule::Permissions),
    ];
    (source, destination, rule).prop_map(|(s, d, rule)| Intention {
        source: s.into(),
        destination: d.into(),
        rule,
    })
}

fn caller() -> impl Strategy<Value = Option<SpiffeId>> {
    prop::sample::select(vec![
        None,
        Some("spiffe://other.td/ns/default/svc/a"),
        Some("spiffe://mesh.local/ns/default/svc/a"),
        Some("spiffe://mesh.local/ns/default/svc/b"),
        Some("spiffe://mesh.local/ns/prod/svc/a"),
        Some("spiffe://mesh.local/ns/prod/svc/c"),
        Some("spiffe://mesh.local/workload/a"),
    ])
    .prop_map(|s| s.map(|s| s.parse().unwrap()))
}

fn request() -> impl Strategy<Value = SimpleRequest> {
    (
        prop::sample::select(vec!["GET", "POST"]),
        prop::sample::select(vec!["/a", "/b/c", "/c"]),
        any::<bool>(),
    )
        .prop_map(|(m, p, h)| {
            let r = SimpleRequest::new(m, p);
            if h { r.with_header("x-k", "1") } else { r }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decision_equals_naive_reference(
        rules in prop::collection::vec(intention(), 0..16),
        default in action(),
        caller in caller(),
        destination in prop::sample::select(vec!["x", "y", "z", "prod/x", "prod/z", "default/x"]),
        req in request(),
    ) {
        let intentions = Intentions::new(&rules, default, TD).unwrap();
        let got = outcome(&intentions.decide(caller.as_ref(), destination, &req));
        let want = naive(&rules, default, caller.as_ref(), destination, &req);
        prop_assert_eq!(got, want);
    }
}
