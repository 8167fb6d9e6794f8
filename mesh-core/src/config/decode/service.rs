//! `services.<name>`: endpoints, DNS, subsets, load balancer, hash key, and
//! the policy sections (delegated to [`super::policy`] and [`super::matching`]).

use std::time::Duration;

use super::super::error::ConfigErrorKind as K;
use super::super::model::{
    Algorithm, DnsTarget, HashOn, LoadBalancerConfig, Protocol, ServiceConfig,
};
use super::super::tree::{Kind, Node, Path};
use super::{Ctx, matching, policy};
use crate::config::addr::{parse_dns_target, parse_endpoint_address};
use crate::endpoint::{DEFAULT_WEIGHT, Endpoint};

const SERVICE_FIELDS: &[&str] = &[
    "protocol",
    "endpoints",
    "dns",
    "subsets",
    "load_balancer",
    "hash_on",
    "timeout",
    "retry",
    "circuit_breaker",
    "outlier_detection",
    "health_check",
    "routes",
    "identity",
];

pub(super) fn decode_service(node: &Node, path: &Path, ctx: &mut Ctx) -> ServiceConfig {
    let mut svc = ServiceConfig::default();
    // `news-service:` with nothing under it: a service with default policy.
    if node.kind == Kind::Null {
        return svc;
    }
    let Some(f) = ctx.fields(node, path, SERVICE_FIELDS) else {
        return svc;
    };
    if let Some(n) = f.get("protocol") {
        let p = f.path("protocol");
        if let Some(s) = ctx.string(n, &p) {
            match s.as_str() {
                "http" => svc.protocol = Protocol::Http,
                "http2" => svc.protocol = Protocol::Http2,
                "grpc" => svc.protocol = Protocol::Grpc,
                _ => ctx.err(
                    K::Invalid,
                    &p,
                    n.line,
                    format!("must be one of http, http2, grpc; got `{s}`"),
                ),
            }
        }
    }
    if let Some(n) = f.get("endpoints") {
        let p = f.path("endpoints");
        if let Some(items) = ctx.seq(n, &p) {
            let mut kept = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(ep) = decode_endpoint(item, &p.index(i), ctx) {
                    svc.endpoints.push(ep);
                    kept.push(i);
                }
            }
            ctx.remap(&p, kept, items.len());
        }
    }
    if let Some(n) = f.get("dns") {
        let p = f.path("dns");
        if let Some(s) = ctx.string(n, &p) {
            match parse_dns_target(&s) {
                Ok(t) => svc.dns = Some(t),
                Err(msg) => ctx.err(K::Invalid, &p, n.line, msg),
            }
        }
    }
    if let Some(n) = f.get("subsets") {
        let p = f.path("subsets");
        if let Some(entries) = ctx.entries(n, &p) {
            for e in entries {
                if let Some(sel) = ctx.string_map(&e.value, &p.key(&e.key)) {
                    svc.subsets.insert(e.key.clone(), sel);
                }
            }
        }
    }
    if let Some(n) = f.get("load_balancer")
        && let Some(lb) = decode_load_balancer(n, &f.path("load_balancer"), ctx)
    {
        svc.load_balancer = lb;
    }
    if let Some(n) = f.get("hash_on") {
        let p = f.path("hash_on");
        if let Some(h) = ctx.fields(n, &p, &["header"]) {
            match h.get("header") {
                Some(v) => {
                    if let Some(name) = ctx.string(v, &h.path("header")) {
                        svc.hash_on = Some(HashOn::Header(name.to_ascii_lowercase()));
                    }
                }
                None => ctx.err(
                    K::Missing,
                    &p,
                    n.line,
                    "missing `header`: the request header to hash, e.g. `{ header: x-user-id }`",
                ),
            }
        }
    }
    if let Some(n) = f.get("timeout") {
        svc.timeout = ctx.duration(n, &f.path("timeout"));
    }
    if let Some(n) = f.get("retry") {
        svc.retry = policy::decode_retry(n, &f.path("retry"), ctx);
    }
    if let Some(n) = f.get("circuit_breaker")
        && let Some(cb) = policy::decode_circuit_breaker(n, &f.path("circuit_breaker"), ctx)
    {
        svc.circuit_breaker = cb;
    }
    if let Some(n) = f.get("outlier_detection") {
        svc.outlier_detection = policy::decode_outlier(n, &f.path("outlier_detection"), ctx);
    }
    if let Some(n) = f.get("identity") {
        let p = f.path("identity");
        if let Some(s) = ctx.string(n, &p) {
            match crate::identity::SpiffeId::parse(&s) {
                Ok(id) => svc.identity = Some(id),
                Err(e) => ctx.err(
                    K::Invalid,
                    &p,
                    n.line,
                    format!("must be a SPIFFE ID (`spiffe://<trust_domain>/...`): {e}"),
                ),
            }
        }
    }
    if let Some(n) = f.get("health_check") {
        svc.health_check = policy::decode_health_check(n, &f.path("health_check"), ctx);
    }
    if let Some(n) = f.get("routes") {
        let p = f.path("routes");
        if let Some(items) = ctx.seq(n, &p) {
            let mut kept = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(r) = matching::decode_route(item, &p.index(i), ctx) {
                    svc.routes.push(r);
                    kept.push(i);
                }
            }
            ctx.remap(&p, kept, items.len());
        }
    }
    svc
}

fn decode_endpoint(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<Endpoint> {
    let f = ctx.fields(node, path, &["address", "weight", "zone", "labels"])?;
    let Some(addr_node) = f.get("address") else {
        ctx.err(K::Missing, path, f.line(), "missing `address` (ip:port)");
        return None;
    };
    let p = f.path("address");
    let s = ctx.string(addr_node, &p)?;
    let address = match parse_endpoint_address(&s) {
        Ok(a) => a,
        Err(msg) => {
            ctx.err(K::Invalid, &p, addr_node.line, msg);
            return None;
        }
    };
    let mut ep = Endpoint::new(address);
    ep.weight = match f.get("weight") {
        Some(n) => ctx.u32(n, &f.path("weight")).unwrap_or(DEFAULT_WEIGHT),
        None => DEFAULT_WEIGHT,
    };
    if let Some(n) = f.get("zone") {
        ep.zone = ctx.string(n, &f.path("zone"));
    }
    if let Some(n) = f.get("labels") {
        ep.labels = ctx.string_map(n, &f.path("labels")).unwrap_or_default();
    }
    Some(ep)
}

const ALGORITHMS: &str =
    "round_robin, weighted_round_robin, random, least_request, peak_ewma, ring_hash, maglev";

/// The algorithm named `name` with default parameters.
pub(crate) fn algorithm_by_name(name: &str) -> Option<Algorithm> {
    let default_ewma = Algorithm::PeakEwma {
        decay: Duration::from_secs(10),
        default_rtt: Duration::from_millis(30),
    };
    Some(match name {
        "round_robin" => Algorithm::RoundRobin,
        "weighted_round_robin" => Algorithm::WeightedRoundRobin,
        "random" => Algorithm::Random,
        "least_request" => Algorithm::default(),
        "peak_ewma" => default_ewma,
        "ring_hash" => Algorithm::RingHash {
            min_ring_size: 1024,
            max_ring_size: 8_388_608,
        },
        "maglev" => Algorithm::Maglev { table_size: 65537 },
        _ => return None,
    })
}

fn decode_load_balancer(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<LoadBalancerConfig> {
    let unknown = |ctx: &mut Ctx, p: &Path, line, name: &str| {
        let mut msg = format!("unknown algorithm `{name}`");
        let names: Vec<&str> = ALGORITHMS.split(", ").collect();
        if let Some(s) = super::suggest(name, &names) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        msg.push_str(&format!("; one of {ALGORITHMS}"));
        ctx.err(K::Invalid, p, line, msg);
    };
    if let Kind::Str(name) = &node.kind {
        let Some(algorithm) = algorithm_by_name(name) else {
            unknown(ctx, path, node.line, name);
            return None;
        };
        return Some(LoadBalancerConfig {
            algorithm,
            ..LoadBalancerConfig::default()
        });
    }
    if !matches!(node.kind, Kind::Map(_)) {
        ctx.type_err(
            node,
            path,
            "an algorithm name or a mapping `{ algorithm: NAME, ... }`",
        );
        return None;
    }
    // Read the algorithm first: the allowed parameters depend on it.
    let name = match &node.kind {
        Kind::Map(entries) => entries.iter().find(|e| e.key == "algorithm"),
        _ => None,
    };
    let Some(name_entry) = name else {
        ctx.err(
            K::Missing,
            path,
            node.line,
            format!("missing `algorithm`: one of {ALGORITHMS}"),
        );
        return None;
    };
    let name_path = path.key("algorithm");
    let name = ctx.string(&name_entry.value, &name_path)?;
    let Some(mut algorithm) = algorithm_by_name(&name) else {
        unknown(ctx, &name_path, name_entry.value.line, &name);
        return None;
    };
    let params: &[&str] = match algorithm {
        Algorithm::LeastRequest { .. } => &[
            "algorithm",
            "panic_threshold",
            "choice_count",
            "active_request_bias",
        ],
        Algorithm::PeakEwma { .. } => &["algorithm", "panic_threshold", "decay", "default_rtt"],
        Algorithm::RingHash { .. } => &[
            "algorithm",
            "panic_threshold",
            "min_ring_size",
            "max_ring_size",
        ],
        Algorithm::Maglev { .. } => &["algorithm", "panic_threshold", "table_size"],
        _ => &["algorithm", "panic_threshold"],
    };
    let f = ctx.fields(node, path, params)?;
    let mut lb = LoadBalancerConfig::default();
    if let Some(n) = f.get("panic_threshold")
        && let Some(v) = ctx.u32(n, &f.path("panic_threshold"))
    {
        lb.panic_threshold_percent = v;
    }
    match &mut algorithm {
        Algorithm::LeastRequest {
            choice_count,
            active_request_bias,
        } => {
            if let Some(v) = f
                .get("choice_count")
                .and_then(|n| ctx.u32(n, &f.path("choice_count")))
            {
                *choice_count = v;
            }
            if let Some(v) = f
                .get("active_request_bias")
                .and_then(|n| ctx.number(n, &f.path("active_request_bias")))
            {
                *active_request_bias = v;
            }
        }
        Algorithm::PeakEwma { decay, default_rtt } => {
            if let Some(v) = f
                .get("decay")
                .and_then(|n| ctx.duration(n, &f.path("decay")))
            {
                *decay = v;
            }
            if let Some(v) = f
                .get("default_rtt")
                .and_then(|n| ctx.duration(n, &f.path("default_rtt")))
            {
                *default_rtt = v;
            }
        }
        Algorithm::RingHash {
            min_ring_size,
            max_ring_size,
        } => {
            if let Some(v) = f
                .get("min_ring_size")
                .and_then(|n| ctx.int(n, &f.path("min_ring_size"), u64::MAX))
            {
                *min_ring_size = v;
            }
            if let Some(v) = f
                .get("max_ring_size")
                .and_then(|n| ctx.int(n, &f.path("max_ring_size"), u64::MAX))
            {
                *max_ring_size = v;
            }
        }
        Algorithm::Maglev { table_size } => {
            if let Some(v) = f
                .get("table_size")
                .and_then(|n| ctx.int(n, &f.path("table_size"), u64::MAX))
            {
                *table_size = v;
            }
        }
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin | Algorithm::Random => {}
    }
    lb.algorithm = algorithm;
    Some(lb)
}

/// Writes `target` back as the `dns:` text of a file.
pub(crate) fn dns_text(target: &DnsTarget) -> String {
    match target {
        DnsTarget::Host { host, port } => format!("{host}:{port}"),
        DnsTarget::Srv { name } => name.clone(),
    }
}
