//! Consul's precedence table, value by value and decision by decision.

use super::*;

/// Consul's table (docs "Precedence and match order"), as (source,
/// destination, precedence), highest first, for a caller `prod/web` calling
/// `prod/api`.
const TABLE: [(&str, &str, u8); 9] = [
    ("prod/web", "prod/api", 9),
    ("prod/*", "prod/api", 8),
    ("*", "prod/api", 7),
    ("prod/web", "prod/*", 6),
    ("prod/*", "prod/*", 5),
    ("*", "prod/*", 4),
    ("prod/web", "*", 3),
    ("prod/*", "*", 2),
    ("*", "*", 1),
];

#[test]
fn precedence_values_follow_consul_table() {
    for (source, destination, want) in TABLE {
        assert_eq!(
            precedence(source, destination),
            Ok(want),
            "{source} -> {destination}"
        );
    }
    // Without namespaces (Consul OSS): exact->exact, *->exact, exact->*, *->*.
    let oss: Vec<u8> = [("a", "b"), ("*", "b"), ("a", "*"), ("*", "*")]
        .iter()
        .map(|(s, d)| precedence(s, d).unwrap())
        .collect();
    assert_eq!(oss, [9, 7, 3, 1]);
    assert!(oss.windows(2).all(|w| w[0] > w[1]));
}

#[test]
fn precedence_table_decides_most_specific_whatever_the_order() {
    // Give every row the opposite action of the row below, put them in
    // reverse order, then remove the winner one at a time: the decision must
    // walk down the table.
    let caller = id("prod", "web");
    for drop in 0..=TABLE.len() {
        let remaining = &TABLE[drop..];
        let rules: Vec<Intention> = remaining
            .iter()
            .rev()
            .enumerate()
            .map(|(i, (s, d, _))| {
                l4(
                    s,
                    d,
                    if i % 2 == 0 {
                        Action::Allow
                    } else {
                        Action::Deny
                    },
                )
            })
            .collect();
        let intentions = Intentions::new(&rules, Action::Deny, TD).unwrap();
        let d = intentions.decide(Some(&caller), "prod/api", &get("/"));
        match remaining.first() {
            Some((s, dst, _)) => {
                let idx = decided_index(&d).unwrap();
                assert_eq!(
                    (rules[idx].source.as_str(), rules[idx].destination.as_str()),
                    (*s, *dst)
                );
                assert_eq!(
                    d.action,
                    match &rules[idx].rule {
                        IntentionRule::Action(a) => *a,
                        IntentionRule::Permissions(_) => unreachable!(),
                    }
                );
            }
            None => assert_eq!(d.decided_by, DecidedBy::DefaultPolicy),
        }
    }
}

#[test]
fn oss_order_without_namespaces() {
    let rules = vec![
        l4("*", "*", Action::Deny),
        l4("web", "*", Action::Allow),
        l4("*", "api", Action::Deny),
        l4("web", "api", Action::Allow),
    ];
    let i = Intentions::new(&rules, Action::Allow, TD).unwrap();
    let web = id("default", "web");
    let other = id("default", "other");
    let req = get("/");
    assert_eq!(decided_index(&i.decide(Some(&web), "api", &req)), Some(3));
    assert_eq!(decided_index(&i.decide(Some(&other), "api", &req)), Some(2));
    assert_eq!(decided_index(&i.decide(Some(&web), "db", &req)), Some(1));
    assert_eq!(decided_index(&i.decide(Some(&other), "db", &req)), Some(0));
    // A bare name means namespace `default`: `web` of `prod` is not `web`.
    let prod_web = id("prod", "web");
    assert_eq!(
        decided_index(&i.decide(Some(&prod_web), "api", &req)),
        Some(2)
    );
    assert_eq!(
        decided_index(&i.decide(Some(&web), "default/api", &req)),
        Some(3)
    );
}
