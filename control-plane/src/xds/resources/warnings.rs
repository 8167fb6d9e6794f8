//! What of a config xDS clients will not get as written.

use mesh_core::config::{Algorithm, HeaderValueMatch, IntentionRule, PathMatch, RouteMatch};

use super::route::{re2, service_routes};
use crate::state::Snapshot;

/// One line per config element that xDS clients (Envoy, stock gRPC) get
/// translated or not at all, with its field path. Empty when everything is
/// served as written. The API shows these next to the config.
pub fn warnings(snapshot: &Snapshot) -> Vec<String> {
    let config = &snapshot.config;
    let mut out = Vec::new();
    for (name, svc) in &config.services {
        let at = format!("services.{name}");
        match &svc.load_balancer.algorithm {
            Algorithm::PeakEwma { .. } => out.push(format!(
                "{at}.load_balancer: peak_ewma is served to xDS clients as least_request"
            )),
            Algorithm::Random => out.push(format!(
                "{at}.load_balancer: stock gRPC clients have no random policy and use round_robin"
            )),
            Algorithm::Maglev { .. } => out.push(format!(
                "{at}.load_balancer: stock gRPC clients have no maglev and use ring_hash"
            )),
            Algorithm::LeastRequest { choice_count, .. } if *choice_count > 10 => out.push(format!(
                "{at}.load_balancer: choice_count {choice_count} is served as 10 (gRPC's maximum)"
            )),
            _ => {}
        }
        if let Some(o) = &svc.outlier_detection
            && o.slow_start.is_some()
        {
            out.push(format!(
                "{at}.outlier_detection.slow_start: honoured by Envoy, ignored by stock gRPC clients"
            ));
        }
        if svc.health_check.is_some() {
            out.push(format!(
                "{at}.health_check: honoured by Envoy, ignored by stock gRPC clients (they take no health checks from xDS)"
            ));
        }
        if let Some(r) = &svc.retry
            && r.budget != Default::default()
        {
            out.push(format!(
                "{at}.retry.budget: not expressible in xDS route retry policies; Envoy and gRPC clients retry without it"
            ));
        }
        out.extend(service_routes(name, svc, None).1);
        for (i, r) in svc.routes.iter().enumerate() {
            regex_warnings(&format!("{at}.routes[{i}].match"), &r.matches, &mut out);
        }
    }
    for (name, gw) in &config.gateways {
        for (i, r) in gw.routes.iter().enumerate() {
            let at = format!("gateways.{name}.routes[{i}]");
            if !config.services.contains_key(&r.service) {
                out.push(format!(
                    "{at}: service {:?} is not defined; route left out",
                    r.service
                ));
            }
            regex_warnings(&format!("{at}.match"), &r.matches, &mut out);
        }
    }
    for (i, intention) in config.intentions.iter().enumerate() {
        if let IntentionRule::Permissions(perms) = &intention.rule {
            for (j, p) in perms.iter().enumerate() {
                let mut found = Vec::new();
                regex_warnings("", &p.matches, &mut found);
                if !found.is_empty() {
                    out.push(format!(
                        "intentions[{i}].permissions[{j}]: a regex RE2 cannot take; gRPC servers {} (fail closed)",
                        match p.action {
                            mesh_core::config::Action::Allow => "never match this allow",
                            mesh_core::config::Action::Deny => "apply this deny to every request",
                        }
                    ));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn regex_warnings(at: &str, m: &RouteMatch, out: &mut Vec<String>) {
    if let Some(PathMatch::Regex(r)) = &m.path
        && let Err(e) = re2(r)
    {
        out.push(format!("{at}.path_regex: {e}"));
    }
    for h in &m.headers {
        if let HeaderValueMatch::Regex(r) = &h.value
            && let Err(e) = re2(r)
        {
            out.push(format!("{at}.headers.{}: {e}", h.name));
        }
    }
}
