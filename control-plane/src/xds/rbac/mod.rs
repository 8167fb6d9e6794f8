//! Intentions as an RBAC HTTP filter for xDS-enabled gRPC servers (gRFCs
//! A36, A41) and Envoy.
//!
//! # From Consul semantics to one ALLOW policy set
//!
//! Intentions decide by *precedence* (most specific source/destination
//! pair wins, deny wins ties), then, for an L7 intention, by the *first*
//! matching permission, then by the default policy. RBAC has no precedence:
//! an ALLOW engine lets a request through when any policy matches. The
//! translation makes the groups of callers disjoint so that precedence
//! disappears:
//!
//! 1. each exact source `ns/svc` named by a relevant intention: principal =
//!    the authenticated SPIFFE ID `spiffe://<td>/ns/<ns>/svc/<svc>`;
//! 2. each namespace wildcard `ns/*`: principal = IDs under
//!    `spiffe://<td>/ns/<ns>/svc/`, minus the exact sources of group 1;
//! 3. everyone else (other services, foreign trust domains, plaintext
//!    callers): NOT any of the above.
//!
//! Each group's deciding intention is the one of highest precedence among
//! those matching it (exactly as [`mesh_core::intentions`] decides). Its
//! allowed requests become the policy's permissions: L4 allow = any, L4
//! deny = no policy at all; L7 = for each allow permission, "it matches and
//! no earlier deny permission does", plus, when the default policy allows,
//! "no permission matches".
//!
//! A matcher RE2 cannot take is not dropped silently: an allow permission
//! that cannot be expressed matches nothing, a deny matches everything (fail
//! closed), and [`super::resources::warnings`] says so.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::config::rbac::v3 as rb;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as filter;
use envoy_types::pb::envoy::r#type::matcher::v3 as m;
use mesh_core::config::{Action, Intention, IntentionRule, MeshConfig, PathMatch, RouteMatch};
use mesh_core::intentions::precedence;

use super::resources::route::{header_matcher, methods_header, re2};

const DEFAULT_NS: &str = "default";

/// The RBAC filter config enforcing the intentions whose destination is
/// `service` (`None`: an address no service claims, so only intentions to
/// `*` apply).
pub fn rbac_filter(config: &MeshConfig, service: Option<&str>) -> filter::Rbac {
    filter::Rbac {
        rules: Some(rbac_rules(config, service)),
        ..Default::default()
    }
}

fn full(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("{DEFAULT_NS}/{name}")
    }
}

/// Whether pattern `p` (`*`, `ns/*`, `name`, `ns/name`) covers `ns/name`.
fn covers(p: &str, full_name: &str) -> bool {
    if p == "*" {
        return true;
    }
    if let Some(ns) = p.strip_suffix("/*") {
        return full_name.split_once('/').is_some_and(|(n, _)| n == ns);
    }
    full(p) == full_name
}

fn dest_matches(i: &Intention, service: Option<&str>) -> bool {
    match service {
        Some(s) => covers(&i.destination, &full(s)),
        None => i.destination == "*",
    }
}

/// The RBAC rules (an ALLOW engine) for `service`.
pub fn rbac_rules(config: &MeshConfig, service: Option<&str>) -> rb::Rbac {
    let relevant: Vec<&Intention> = config
        .intentions
        .iter()
        .filter(|i| dest_matches(i, service))
        .collect();
    let exact: BTreeSet<String> = relevant
        .iter()
        .filter(|i| i.source != "*" && !i.source.ends_with("/*"))
        .map(|i| full(&i.source))
        .collect();
    let namespaces: BTreeSet<String> = relevant
        .iter()
        .filter_map(|i| i.source.strip_suffix("/*").map(str::to_string))
        .collect();
    let td = &config.trust_domain;
    let dest = service.unwrap_or("*");
    let mut policies = HashMap::new();
    let mut groups: Vec<rb::Principal> = Vec::new();

    for src in &exact {
        let (ns, name) = src.split_once('/').unwrap_or((DEFAULT_NS, src));
        let principal = authenticated(m::string_matcher::MatchPattern::Exact(format!(
            "spiffe://{td}/ns/{ns}/svc/{name}"
        )));
        let rule = deciding(&relevant, dest, |p| covers(p, src));
        add_policy(
            &mut policies,
            format!("source {src}"),
            principal.clone(),
            rule,
            config.default_policy,
        );
        groups.push(principal);
    }
    for ns in &namespaces {
        let prefix = authenticated(m::string_matcher::MatchPattern::Prefix(format!(
            "spiffe://{td}/ns/{ns}/svc/"
        )));
        let exact_here: Vec<rb::Principal> = exact
            .iter()
            .filter(|s| s.split_once('/').is_some_and(|(n, _)| n == ns))
            .map(|s| {
                let (n, name) = s.split_once('/').unwrap_or((DEFAULT_NS, s));
                authenticated(m::string_matcher::MatchPattern::Exact(format!(
                    "spiffe://{td}/ns/{n}/svc/{name}"
                )))
            })
            .collect();
        let principal = if exact_here.is_empty() {
            prefix.clone()
        } else {
            and_ids(vec![prefix.clone(), not_id(or_ids(exact_here))])
        };
        let wildcard = format!("{ns}/*");
        let rule = deciding(&relevant, dest, |p| p == "*" || p == wildcard);
        add_policy(
            &mut policies,
            format!("source {ns}/*"),
            principal,
            rule,
            config.default_policy,
        );
        groups.push(prefix);
    }
    let others = if groups.is_empty() {
        any_principal()
    } else {
        not_id(or_ids(groups))
    };
    let rule = deciding(&relevant, dest, |p| p == "*");
    add_policy(
        &mut policies,
        "source *".to_string(),
        others,
        rule,
        config.default_policy,
    );
    rb::Rbac {
        action: rb::rbac::Action::Allow as i32,
        policies,
        ..Default::default()
    }
}

/// What decides for callers whose source patterns satisfy `src`: the rule of
/// highest precedence (deny wins ties), or `None` for the default policy.
fn deciding<'a>(
    relevant: &[&'a Intention],
    dest: &str,
    src: impl Fn(&str) -> bool,
) -> Option<&'a IntentionRule> {
    let mut best: Option<(u8, &IntentionRule)> = None;
    for i in relevant.iter().filter(|i| src(&i.source)) {
        let p = precedence(&i.source, &i.destination)
            .or_else(|_| precedence(&i.source, dest))
            .unwrap_or(0);
        let deny = matches!(i.rule, IntentionRule::Action(Action::Deny));
        best = match best {
            Some((bp, _)) if p > bp => Some((p, &i.rule)),
            Some((bp, r)) if p == bp && deny => {
                let _ = r;
                Some((p, &i.rule))
            }
            None => Some((p, &i.rule)),
            keep => keep,
        };
    }
    best.map(|(_, r)| r)
}

fn add_policy(
    policies: &mut HashMap<String, rb::Policy>,
    name: String,
    principal: rb::Principal,
    rule: Option<&IntentionRule>,
    default: Action,
) {
    let permission = match rule {
        None => (default == Action::Allow).then(any_permission),
        Some(IntentionRule::Action(Action::Allow)) => Some(any_permission()),
        Some(IntentionRule::Action(Action::Deny)) => None,
        Some(IntentionRule::Permissions(perms)) => {
            let mut allowed = Vec::new();
            let mut earlier_denies = Vec::new();
            let mut all = Vec::new();
            for p in perms {
                let matched = permission_for(&p.matches, p.action);
                all.push(matched.clone());
                match p.action {
                    Action::Allow => {
                        let mut rules = vec![matched];
                        if !earlier_denies.is_empty() {
                            rules.push(not_rule(or_rules(earlier_denies.clone())));
                        }
                        allowed.push(and_rules(rules));
                    }
                    Action::Deny => earlier_denies.push(matched),
                }
            }
            if default == Action::Allow {
                allowed.push(if all.is_empty() {
                    any_permission()
                } else {
                    not_rule(or_rules(all))
                });
            }
            (!allowed.is_empty()).then(|| or_rules(allowed))
        }
    };
    if let Some(permission) = permission {
        policies.insert(
            name,
            rb::Policy {
                permissions: vec![permission],
                principals: vec![principal],
                ..Default::default()
            },
        );
    }
}

/// The RBAC permission matching `rm`; one that RE2 cannot express matches
/// nothing when it allows and everything when it denies.
fn permission_for(rm: &RouteMatch, action: Action) -> rb::Permission {
    try_permission(rm).unwrap_or_else(|_| match action {
        Action::Allow => not_rule(any_permission()),
        Action::Deny => any_permission(),
    })
}

fn try_permission(rm: &RouteMatch) -> Result<rb::Permission, String> {
    use m::string_matcher::MatchPattern;
    let mut rules = Vec::new();
    if let Some(path) = &rm.path {
        let pattern = match path {
            PathMatch::Exact(p) => MatchPattern::Exact(p.clone()),
            PathMatch::Prefix(p) => MatchPattern::Prefix(p.clone()),
            PathMatch::Regex(r) => MatchPattern::SafeRegex(m::RegexMatcher {
                regex: re2(r)?,
                ..Default::default()
            }),
        };
        rules.push(rb::Permission {
            rule: Some(rb::permission::Rule::UrlPath(m::PathMatcher {
                rule: Some(m::path_matcher::Rule::Path(m::StringMatcher {
                    match_pattern: Some(pattern),
                    ..Default::default()
                })),
            })),
        });
    }
    if let Some(h) = methods_header(&rm.methods) {
        rules.push(rb::Permission {
            rule: Some(rb::permission::Rule::Header(h)),
        });
    }
    for h in &rm.headers {
        rules.push(rb::Permission {
            rule: Some(rb::permission::Rule::Header(header_matcher(h)?)),
        });
    }
    Ok(match rules.len() {
        0 => any_permission(),
        _ => and_rules(rules),
    })
}

fn any_permission() -> rb::Permission {
    rb::Permission {
        rule: Some(rb::permission::Rule::Any(true)),
    }
}
fn and_rules(rules: Vec<rb::Permission>) -> rb::Permission {
    rb::Permission {
        rule: Some(rb::permission::Rule::AndRules(rb::permission::Set {
            rules,
        })),
    }
}
fn or_rules(rules: Vec<rb::Permission>) -> rb::Permission {
    rb::Permission {
        rule: Some(rb::permission::Rule::OrRules(rb::permission::Set { rules })),
    }
}
fn not_rule(p: rb::Permission) -> rb::Permission {
    rb::Permission {
        rule: Some(rb::permission::Rule::NotRule(Box::new(p))),
    }
}
fn any_principal() -> rb::Principal {
    rb::Principal {
        identifier: Some(rb::principal::Identifier::Any(true)),
    }
}
fn authenticated(p: m::string_matcher::MatchPattern) -> rb::Principal {
    rb::Principal {
        identifier: Some(rb::principal::Identifier::Authenticated(
            rb::principal::Authenticated {
                principal_name: Some(m::StringMatcher {
                    match_pattern: Some(p),
                    ..Default::default()
                }),
            },
        )),
    }
}
fn or_ids(ids: Vec<rb::Principal>) -> rb::Principal {
    rb::Principal {
        identifier: Some(rb::principal::Identifier::OrIds(rb::principal::Set { ids })),
    }
}
fn and_ids(ids: Vec<rb::Principal>) -> rb::Principal {
    rb::Principal {
        identifier: Some(rb::principal::Identifier::AndIds(rb::principal::Set {
            ids,
        })),
    }
}
fn not_id(p: rb::Principal) -> rb::Principal {
    rb::Principal {
        identifier: Some(rb::principal::Identifier::NotId(Box::new(p))),
    }
}

#[cfg(test)]
mod tests;
