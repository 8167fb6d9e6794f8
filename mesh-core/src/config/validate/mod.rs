//! Rules on the typed model: ranges, names and references between fields.
//!
//! These run on every parsed file (after decoding) and on configs built in
//! code, through [`MeshConfig::validate`], so both obey the same rules.

use std::collections::BTreeSet;
use std::time::Duration;

use super::addr::{is_dns_name, is_service_name, parse_dns_target};
use super::decode;
use super::error::{ConfigError, ConfigErrorKind as K, ConfigErrors};
use super::model::{Algorithm, DnsTarget, HashOn, IntentionRule, MeshConfig, ServiceConfig};
use super::tree::{Node, Path, Seg};

mod matching;
mod policy;

use crate::endpoint::MAX_WEIGHT;
use matching::{check_header_name, check_match};
use policy::{check_health, check_outlier, check_retry, is_prime};

/// One problem, before it is rendered into a [`ConfigError`].
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub path: Path,
    pub line: Option<u32>,
    pub kind: K,
    pub message: String,
}

impl MeshConfig {
    /// Checks every rule of the schema on a config built in code (parsed
    /// configs are already checked). Errors carry field paths but no lines.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let issues = check(self);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(render("config", issues, None))
        }
    }
}

/// Parses, decodes and validates a tree; the heart of [`super::parse_str`].
pub(crate) fn decode_and_check(root: &Node, origin: &str) -> Result<MeshConfig, ConfigErrors> {
    let mut ctx = decode::Ctx::default();
    let cfg = decode::decode(root, &mut ctx);
    let mut issues = ctx.issues.clone();
    // Model rules on what decoded; skip those inside a field that already
    // failed to decode (it holds a default, not what the file says).
    for mut issue in check(&cfg) {
        issue.path = ctx.file_path(&issue.path);
        let inside_failed = ctx.issues.iter().any(|i| i.path.contains(&issue.path));
        // A split naming a subset whose definition failed to decode is
        // not a second problem.
        let subsets_failed = issue.kind == K::Reference
            && issue.path.0.len() > 2
            && ctx.issues.iter().any(|i| {
                i.path.0.get(..2) == issue.path.0.get(..2)
                    && i.path.0.get(2) == Some(&Seg::Key("subsets".into()))
            });
        if !inside_failed && !subsets_failed {
            issues.push(issue);
        }
    }
    if issues.is_empty() {
        Ok(cfg)
    } else {
        Err(render(origin, issues, Some(root)))
    }
}

fn render(origin: &str, mut issues: Vec<Issue>, root: Option<&Node>) -> ConfigErrors {
    if let Some(root) = root {
        for i in &mut issues {
            if i.line.is_none() {
                i.line = root.line_of(&i.path.0);
            }
        }
        issues.sort_by_key(|i| i.line.unwrap_or(u32::MAX));
    }
    let errors = issues
        .into_iter()
        .map(|i| ConfigError::new(i.kind, i.path.to_string(), i.line, i.message))
        .collect();
    ConfigErrors::new(origin, errors)
}

pub(super) struct Checker {
    pub(super) issues: Vec<Issue>,
}

impl Checker {
    pub(super) fn err(&mut self, kind: K, path: Path, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            line: None,
            kind,
            message: message.into(),
        });
    }

    pub(super) fn range<T: PartialOrd + std::fmt::Display>(
        &mut self,
        path: Path,
        v: T,
        lo: T,
        hi: T,
    ) {
        if v < lo || v > hi {
            self.err(
                K::Invalid,
                path,
                format!("must be between {lo} and {hi}, got {v}"),
            );
        }
    }

    pub(super) fn positive(&mut self, path: Path, d: Duration) {
        if d.is_zero() {
            self.err(K::Invalid, path, "must be longer than 0s");
        }
    }
}

/// Every rule, on the model.
pub(crate) fn check(cfg: &MeshConfig) -> Vec<Issue> {
    let mut c = Checker { issues: Vec::new() };
    let root = Path::root();
    if !is_dns_name(&cfg.trust_domain)
        || cfg
            .trust_domain
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b == b'_')
    {
        c.err(
            K::Invalid,
            root.key("trust_domain"),
            format!(
                "`{}` is not a trust domain: lower-case DNS name such as `mesh.local`",
                cfg.trust_domain
            ),
        );
    }
    let services = root.key("services");
    for (name, svc) in &cfg.services {
        let p = services.key(name);
        if !is_service_name(name) {
            c.err(K::Invalid, p.clone(), format!("`{name}` is not a service name: 1 to 63 of a-z, 0-9 and `-`, not starting or ending with `-`"));
        }
        check_service(&mut c, &p, svc);
    }
    let intentions = root.key("intentions");
    let mut pairs = BTreeSet::new();
    for (i, it) in cfg.intentions.iter().enumerate() {
        let p = intentions.index(i);
        let mut canonical = Vec::with_capacity(2);
        for (key, name) in [("source", &it.source), ("destination", &it.destination)] {
            match intention_pattern(name) {
                Ok(c) => canonical.push(c),
                Err(why) => c.err(K::Invalid, p.key(key), format!("`{name}` {why}")),
            }
        }
        // `a` and `default/a` are the same pair.
        if let [src, dst] = canonical.as_slice()
            && !pairs.insert((src.clone(), dst.clone()))
        {
            c.err(
                K::Duplicate,
                p.clone(),
                format!(
                    "a second intention from `{}` to `{}`; merge them into one",
                    it.source, it.destination
                ),
            );
        }
        if let IntentionRule::Permissions(perms) = &it.rule {
            if perms.is_empty() {
                c.err(
                    K::Invalid,
                    p.key("permissions"),
                    "must list at least one permission; for one decision on every request use `action: allow` or `action: deny`",
                );
            }
            for (j, perm) in perms.iter().enumerate() {
                check_match(&mut c, &p.key("permissions").index(j), &perm.matches);
            }
        }
    }
    let gateways = root.key("gateways");
    for (name, gw) in &cfg.gateways {
        let p = gateways.key(name);
        if !is_service_name(name) {
            c.err(
                K::Invalid,
                p.clone(),
                format!("`{name}` is not a gateway name: 1 to 63 of a-z, 0-9 and `-`"),
            );
        }
        for (i, r) in gw.routes.iter().enumerate() {
            let rp = p.key("routes").index(i);
            check_match(&mut c, &rp.key("match"), &r.matches);
            if !cfg.services.contains_key(&r.service) {
                c.err(
                    K::Reference,
                    rp.key("service"),
                    format!(
                        "unknown service `{}`; define it under `services`",
                        r.service
                    ),
                );
            }
        }
    }
    c.issues
}

fn check_service(c: &mut Checker, p: &Path, svc: &ServiceConfig) {
    let mut seen = BTreeSet::new();
    for (i, ep) in svc.endpoints.iter().enumerate() {
        let ep_path = p.key("endpoints").index(i);
        c.range(ep_path.key("weight"), ep.weight, 1, MAX_WEIGHT);
        if !seen.insert(ep.address) {
            c.err(
                K::Duplicate,
                ep_path.key("address"),
                format!("duplicate address {}", ep.address),
            );
        }
    }
    if let Some(dns) = &svc.dns {
        if !svc.endpoints.is_empty() {
            c.err(
                K::Conflict,
                p.key("dns"),
                "give either `endpoints` or `dns`, not both",
            );
        }
        let text = match dns {
            DnsTarget::Host { host, port } => format!("{host}:{port}"),
            DnsTarget::Srv { name } => name.clone(),
        };
        if let Err(msg) = parse_dns_target(&text) {
            c.err(K::Invalid, p.key("dns"), msg);
        }
    }
    for (name, sel) in &svc.subsets {
        if name.is_empty() {
            c.err(
                K::Invalid,
                p.key("subsets"),
                "subset names must not be empty",
            );
        }
        if sel.is_empty() {
            c.err(
                K::Invalid,
                p.key("subsets").key(name),
                "must select by at least one label, e.g. `{ version: v1 }`",
            );
        }
    }
    let lb = p.key("load_balancer");
    c.range(
        lb.key("panic_threshold"),
        svc.load_balancer.panic_threshold_percent,
        0,
        100,
    );
    match &svc.load_balancer.algorithm {
        Algorithm::LeastRequest {
            choice_count,
            active_request_bias,
        } => {
            c.range(lb.key("choice_count"), *choice_count, 2, 100);
            if !(active_request_bias.is_finite() && *active_request_bias >= 0.0) {
                c.err(
                    K::Invalid,
                    lb.key("active_request_bias"),
                    format!("must be a number >= 0, got {active_request_bias}"),
                );
            }
        }
        Algorithm::PeakEwma { decay, default_rtt } => {
            c.positive(lb.key("decay"), *decay);
            c.positive(lb.key("default_rtt"), *default_rtt);
        }
        Algorithm::RingHash {
            min_ring_size,
            max_ring_size,
        } => {
            c.range(lb.key("min_ring_size"), *min_ring_size, 1, 8_388_608);
            c.range(lb.key("max_ring_size"), *max_ring_size, 1, 8_388_608);
            if min_ring_size > max_ring_size {
                c.err(
                    K::Conflict,
                    lb.key("min_ring_size"),
                    format!("must be <= max_ring_size ({max_ring_size}), got {min_ring_size}"),
                );
            }
        }
        Algorithm::Maglev { table_size } => {
            if !(*table_size <= 5_000_011 && is_prime(*table_size)) {
                c.err(
                    K::Invalid,
                    lb.key("table_size"),
                    format!(
                        "must be a prime number up to 5000011 (default 65537), got {table_size}"
                    ),
                );
            }
        }
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin | Algorithm::Random => {}
    }
    if let Some(HashOn::Header(h)) = &svc.hash_on {
        if !matches!(
            svc.load_balancer.algorithm,
            Algorithm::RingHash { .. } | Algorithm::Maglev { .. }
        ) {
            c.err(
                K::Conflict,
                p.key("hash_on"),
                format!(
                    "only used by `ring_hash` and `maglev`, but load_balancer is `{}`",
                    svc.load_balancer.algorithm.name()
                ),
            );
        }
        check_header_name(c, p.key("hash_on").key("header"), h);
    }
    if let Some(t) = svc.timeout {
        c.positive(p.key("timeout"), t);
    }
    if let Some(r) = &svc.retry {
        check_retry(c, &p.key("retry"), r, svc.timeout);
    }
    c.range(
        p.key("circuit_breaker").key("max_requests"),
        svc.circuit_breaker.max_requests,
        1,
        u32::MAX,
    );
    if let Some(o) = &svc.outlier_detection {
        check_outlier(c, &p.key("outlier_detection"), o);
    }
    if let Some(h) = &svc.health_check {
        check_health(c, &p.key("health_check"), h);
    }
    for (i, r) in svc.routes.iter().enumerate() {
        let rp = p.key("routes").index(i);
        check_match(c, &rp.key("match"), &r.matches);
        for name in r.split.keys() {
            if !svc.subsets.contains_key(name) {
                let known: Vec<&str> = svc.subsets.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none defined".to_string()
                } else {
                    known.join(", ")
                };
                c.err(
                    K::Reference,
                    rp.key("split").key(name),
                    format!("unknown subset `{name}`; subsets: {known}"),
                );
            }
        }
        if !r.split.is_empty() && r.split.values().map(|w| u64::from(*w)).sum::<u64>() == 0 {
            c.err(K::Invalid, rp.key("split"), "weights must not all be 0");
        }
        if let Some(t) = r.timeout {
            c.positive(rp.key("timeout"), t);
        }
        if let Some(retry) = &r.retry {
            check_retry(c, &rp.key("retry"), retry, r.timeout.or(svc.timeout));
        }
    }
}

/// An intention's source or destination in canonical form (`*`, `ns/*`,
/// `ns/name`; a bare `name` is `default/name`), or why it is none of them.
fn intention_pattern(s: &str) -> Result<String, String> {
    const FORMS: &str = "a service name (a-z, 0-9, `-`; namespace `default`), `namespace/name`, `namespace/*` or \"*\"";
    if s == "*" {
        return Ok("*".to_string());
    }
    match s.split_once('/') {
        None if is_service_name(s) => Ok(format!("{}/{s}", crate::identity::DEFAULT_NAMESPACE)),
        None => Err(format!("is neither {FORMS}")),
        Some(("*", _)) => Err(format!(
            "has a wildcard namespace: Consul's rules have none (write \"*\" for every service); allowed: {FORMS}"
        )),
        Some((ns, _)) if !is_service_name(ns) => {
            Err(format!("has an invalid namespace `{ns}`; allowed: {FORMS}"))
        }
        Some((ns, "*")) => Ok(format!("{ns}/*")),
        Some((ns, name)) if is_service_name(name) => Ok(format!("{ns}/{name}")),
        Some(_) => Err(format!("is neither {FORMS}")),
    }
}
