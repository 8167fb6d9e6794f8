//! RDS: a service's routes as a RouteConfiguration (gRFCs A28, A31, A44, A42
//! hash policies), and the matchers shared with gateways and RBAC.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::r#type::matcher::v3 as m;
use envoy_types::pb::google::protobuf::UInt32Value;
use mesh_core::config::{
    HashOn, HeaderMatch, HeaderValueMatch, PathMatch, RetryConfig, RetryOn, RouteMatch,
    ServiceConfig,
};

use super::{cluster_name, duration};
use crate::state::Snapshot;

/// The RouteConfiguration named `service` (one virtual host matching any
/// authority), or `None` when the service is unknown. Routes that cannot be
/// expressed safely are left out (and reported by [`super::warnings`]).
pub fn route_configuration(snapshot: &Snapshot, service: &str) -> Option<rt::RouteConfiguration> {
    let svc = snapshot.config.services.get(service)?;
    Some(rt::RouteConfiguration {
        name: service.to_string(),
        virtual_hosts: vec![rt::VirtualHost {
            name: service.to_string(),
            domains: vec!["*".to_string()],
            routes: service_routes(service, svc, None).0,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// The routes of `service`, each also restricted by `extra` (a gateway's
/// match, when given), plus a warning per route left out.
pub(crate) fn service_routes(
    service: &str,
    svc: &ServiceConfig,
    prefix_match: Option<&RouteMatch>,
) -> (Vec<rt::Route>, Vec<String>) {
    let mut routes = Vec::new();
    let mut warnings = Vec::new();
    if svc.routes.is_empty() {
        let matches = prefix_match.cloned().unwrap_or_default();
        match route_match(&matches) {
            Ok(rm) => routes.push(rt::Route {
                name: format!("{service}/all"),
                r#match: Some(rm),
                action: Some(rt::route::Action::Route(
                    route_action(
                        service,
                        svc,
                        &BTreeMap::new(),
                        svc.timeout,
                        svc.retry.as_ref(),
                    )
                    .unwrap_or_default(),
                )),
                ..Default::default()
            }),
            Err(e) => warnings.push(format!("services.{service}: route left out: {e}")),
        }
        return (routes, warnings);
    }
    for (i, r) in svc.routes.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| i.to_string());
        let at = format!("services.{service}.routes[{i}]");
        let combined = match prefix_match {
            Some(p) => match intersect(p, &r.matches) {
                Some(c) => c,
                None => continue,
            },
            None => r.matches.clone(),
        };
        let rm = match route_match(&combined) {
            Ok(rm) => rm,
            Err(e) => {
                warnings.push(format!("{at}: route left out for xDS clients: {e}"));
                continue;
            }
        };
        let action = match route_action(
            service,
            svc,
            &r.split,
            r.timeout.or(svc.timeout),
            r.retry.as_ref().or(svc.retry.as_ref()),
        ) {
            Some(a) => a,
            None => {
                warnings.push(format!(
                    "{at}: every subset of the split has weight 0; route left out for xDS clients"
                ));
                continue;
            }
        };
        routes.push(rt::Route {
            name: format!("{service}/{name}"),
            r#match: Some(rm),
            action: Some(rt::route::Action::Route(action)),
            ..Default::default()
        });
    }
    (routes, warnings)
}

/// A gateway's match combined with a service route's, when the gateway's is
/// a plain path prefix the service route's path lies under (or none).
fn intersect(outer: &RouteMatch, inner: &RouteMatch) -> Option<RouteMatch> {
    let mut out = inner.clone();
    out.headers.extend(outer.headers.iter().cloned());
    if out.methods.is_empty() {
        out.methods = outer.methods.clone();
    }
    match (&outer.path, &inner.path) {
        (None, _) => {}
        (Some(p), None) => out.path = Some(p.clone()),
        (Some(PathMatch::Prefix(o)), Some(PathMatch::Prefix(i) | PathMatch::Exact(i)))
            if i.starts_with(o.as_str()) => {}
        (Some(PathMatch::Prefix(o)), Some(PathMatch::Prefix(i))) if o.starts_with(i.as_str()) => {
            out.path = Some(PathMatch::Prefix(o.clone()));
        }
        _ => return None,
    }
    Some(out)
}

/// The action sending to `split` of `service` (empty: the whole service),
/// with timeout, retry and hash policy; `None` when every weight is 0.
pub(crate) fn route_action(
    service: &str,
    svc: &ServiceConfig,
    split: &BTreeMap<String, u32>,
    timeout: Option<std::time::Duration>,
    retry: Option<&RetryConfig>,
) -> Option<rt::RouteAction> {
    let weighted: Vec<(&String, u32)> = split
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(s, w)| (s, *w))
        .collect();
    let specifier = if split.is_empty() {
        rt::route_action::ClusterSpecifier::Cluster(cluster_name(service, None))
    } else {
        match weighted.as_slice() {
            [] => return None,
            [(subset, _)] => {
                rt::route_action::ClusterSpecifier::Cluster(cluster_name(service, Some(subset)))
            }
            many => rt::route_action::ClusterSpecifier::WeightedClusters(rt::WeightedCluster {
                clusters: many
                    .iter()
                    .map(|(subset, w)| rt::weighted_cluster::ClusterWeight {
                        name: cluster_name(service, Some(subset)),
                        weight: Some(UInt32Value { value: *w }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        }
    };
    let mut action = rt::RouteAction {
        cluster_specifier: Some(specifier),
        ..Default::default()
    };
    match timeout {
        Some(t) => {
            // Envoy reads `timeout`; gRPC reads `max_stream_duration` (A31).
            action.timeout = Some(duration(t));
            action.max_stream_duration = Some(rt::route_action::MaxStreamDuration {
                max_stream_duration: Some(duration(t)),
                ..Default::default()
            });
        }
        // Envoy's default is 15s; the mesh's is none.
        None => action.timeout = Some(duration(std::time::Duration::ZERO)),
    }
    if let Some(r) = retry {
        action.retry_policy = retry_policy(r);
    }
    if let Some(HashOn::Header(h)) = &svc.hash_on {
        action.hash_policy = vec![rt::route_action::HashPolicy {
            policy_specifier: Some(rt::route_action::hash_policy::PolicySpecifier::Header(
                rt::route_action::hash_policy::Header {
                    header_name: h.clone(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }];
    }
    Some(action)
}

/// Envoy/gRPC retry policy (A44); `None` for a single attempt.
pub(crate) fn retry_policy(r: &RetryConfig) -> Option<rt::RetryPolicy> {
    if r.attempts <= 1 {
        return None;
    }
    let mut on = Vec::new();
    let mut codes = Vec::new();
    for c in &r.on {
        let s = match c {
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::Reset => "reset",
            RetryOn::Server5xx => "5xx",
            RetryOn::GatewayError => "gateway-error",
            RetryOn::Status(code) => {
                codes.push(u32::from(*code));
                "retriable-status-codes"
            }
            RetryOn::Cancelled => "cancelled",
            RetryOn::DeadlineExceeded => "deadline-exceeded",
            RetryOn::ResourceExhausted => "resource-exhausted",
            RetryOn::Internal => "internal",
            RetryOn::Unavailable => "unavailable",
        };
        if !on.contains(&s) {
            on.push(s);
        }
    }
    let back_off = (!r.backoff.base.is_zero()).then(|| rt::retry_policy::RetryBackOff {
        base_interval: Some(duration(r.backoff.base)),
        max_interval: Some(duration(r.backoff.max.max(r.backoff.base))),
    });
    Some(rt::RetryPolicy {
        retry_on: on.join(","),
        num_retries: Some(UInt32Value {
            value: r.attempts - 1,
        }),
        per_try_timeout: r.per_try_timeout.map(duration),
        retry_back_off: back_off,
        retriable_status_codes: codes,
        ..Default::default()
    })
}

/// A route match (A28): path prefix/exact/regex, methods as `:method`,
/// headers. An error says why it cannot be sent.
pub(crate) fn route_match(rm: &RouteMatch) -> Result<rt::RouteMatch, String> {
    let path = match &rm.path {
        None => rt::route_match::PathSpecifier::Prefix(String::new()),
        Some(PathMatch::Prefix(p)) => rt::route_match::PathSpecifier::Prefix(p.clone()),
        Some(PathMatch::Exact(p)) => rt::route_match::PathSpecifier::Path(p.clone()),
        Some(PathMatch::Regex(r)) => rt::route_match::PathSpecifier::SafeRegex(regex(r)?),
    };
    let mut headers = Vec::new();
    if let Some(h) = methods_header(&rm.methods) {
        headers.push(h);
    }
    for h in &rm.headers {
        headers.push(header_matcher(h)?);
    }
    Ok(rt::RouteMatch {
        path_specifier: Some(path),
        headers,
        ..Default::default()
    })
}

/// `:method` as a header matcher (exact for one method, a regex for several).
pub(crate) fn methods_header(methods: &[String]) -> Option<rt::HeaderMatcher> {
    let spec = match methods {
        [] => return None,
        [one] => string_match(m::string_matcher::MatchPattern::Exact(one.clone())),
        many => string_match(m::string_matcher::MatchPattern::SafeRegex(
            m::RegexMatcher {
                regex: many.join("|"),
                ..Default::default()
            },
        )),
    };
    Some(rt::HeaderMatcher {
        name: ":method".into(),
        header_match_specifier: Some(spec),
        ..Default::default()
    })
}

fn string_match(p: m::string_matcher::MatchPattern) -> rt::header_matcher::HeaderMatchSpecifier {
    rt::header_matcher::HeaderMatchSpecifier::StringMatch(m::StringMatcher {
        match_pattern: Some(p),
        ..Default::default()
    })
}

/// One header matcher; absence is `present` inverted.
pub(crate) fn header_matcher(h: &HeaderMatch) -> Result<rt::HeaderMatcher, String> {
    use m::string_matcher::MatchPattern;
    let (spec, invert) = match &h.value {
        HeaderValueMatch::Exact(v) => (string_match(MatchPattern::Exact(v.clone())), false),
        HeaderValueMatch::Prefix(v) => (string_match(MatchPattern::Prefix(v.clone())), false),
        HeaderValueMatch::Regex(r) => (string_match(MatchPattern::SafeRegex(regex(r)?)), false),
        HeaderValueMatch::Present(p) => (
            rt::header_matcher::HeaderMatchSpecifier::PresentMatch(true),
            !*p,
        ),
    };
    Ok(rt::HeaderMatcher {
        name: h.name.clone(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    })
}

/// A regex matcher for RE2 (Envoy and gRPC), translating the Rust-only
/// spellings RE2 lacks where that is safe, refusing the rest.
pub(crate) fn regex(re: &str) -> Result<m::RegexMatcher, String> {
    Ok(m::RegexMatcher {
        regex: re2(re)?,
        ..Default::default()
    })
}

/// `re` in RE2 syntax: `(?<name>` becomes `(?P<name>` (older RE2 builds lack
/// the former); Rust-only class set operations (`&&`, `--`, `~~` inside
/// `[...]`) and the `\<`/`\>`/`\b{..}` word boundaries are refused.
pub(crate) fn re2(re: &str) -> Result<String, String> {
    let refuse = |what: &str| {
        Err(format!(
            "regex {re:?} uses `{what}`, which RE2 (Envoy, gRPC) does not accept"
        ))
    };
    let bytes = re.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                if let Some(&n) = bytes.get(i + 1) {
                    if n == b'<' || n == b'>' {
                        return refuse("\\<` or `\\>");
                    }
                    if n == b'b' && bytes.get(i + 2) == Some(&b'{') {
                        return refuse("\\b{..}");
                    }
                }
                i += 2;
                continue;
            }
            b'[' => depth += 1,
            b']' if depth > 0 => depth -= 1,
            b'&' | b'-' | b'~' if depth > 0 && bytes.get(i + 1) == Some(&b) => {
                let op = if b == b'&' {
                    "&&"
                } else if b == b'-' {
                    "--"
                } else {
                    "~~"
                };
                return refuse(op);
            }
            _ => {}
        }
        i += 1;
    }
    Ok(re.replace("(?<", "(?P<"))
}
