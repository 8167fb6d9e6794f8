//! The model written back in the file schema ([`MeshConfig::to_json`]) and a
//! one-line summary ([`MeshConfig::summary`]).

use std::fmt;

use serde_json::{Map, Value, json};

use super::decode::dns_text;
use super::duration::format_duration;
use super::model::{
    Action, Algorithm, HashOn, HeaderValueMatch, IntentionRule, MeshConfig, OutlierConfig,
    PathMatch, Protocol, RetryConfig, RetryOn, RouteMatch, ServiceConfig,
};

/// Counts of what a config holds, for logs and `meshctl validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigSummary {
    /// Services defined.
    pub services: usize,
    /// Static endpoints over all services.
    pub endpoints: usize,
    /// Routes over all services and gateways.
    pub routes: usize,
    /// Intentions.
    pub intentions: usize,
    /// Gateways.
    pub gateways: usize,
}

impl fmt::Display for ConfigSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("1 {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        write!(
            f,
            "{}, {}, {}, {}, {}",
            plural(self.services, "service"),
            plural(self.endpoints, "endpoint"),
            plural(self.routes, "route"),
            plural(self.intentions, "intention"),
            plural(self.gateways, "gateway"),
        )
    }
}

impl MeshConfig {
    /// Counts services, static endpoints, routes (services' and gateways'),
    /// intentions and gateways.
    pub fn summary(&self) -> ConfigSummary {
        ConfigSummary {
            services: self.services.len(),
            endpoints: self.services.values().map(|s| s.endpoints.len()).sum(),
            routes: self
                .services
                .values()
                .map(|s| s.routes.len())
                .sum::<usize>()
                + self
                    .gateways
                    .values()
                    .map(|g| g.routes.len())
                    .sum::<usize>(),
            intentions: self.intentions.len(),
            gateways: self.gateways.len(),
        }
    }

    /// This config in the file schema (durations as strings, every field
    /// explicit), such that parsing it as JSON gives back an equal config.
    pub fn to_json(&self) -> Value {
        let services: Map<String, Value> = self
            .services
            .iter()
            .map(|(k, s)| (k.clone(), service(s)))
            .collect();
        let intentions: Vec<Value> = self
            .intentions
            .iter()
            .map(|it| {
                let mut m = Map::new();
                m.insert("source".into(), json!(it.source));
                m.insert("destination".into(), json!(it.destination));
                match &it.rule {
                    IntentionRule::Action(a) => {
                        m.insert("action".into(), json!(action(*a)));
                    }
                    IntentionRule::Permissions(perms) => {
                        let perms: Vec<Value> = perms
                            .iter()
                            .map(|p| {
                                let mut pm = route_match(&p.matches);
                                pm.insert("action".into(), json!(action(p.action)));
                                Value::Object(pm)
                            })
                            .collect();
                        m.insert("permissions".into(), Value::Array(perms));
                    }
                }
                Value::Object(m)
            })
            .collect();
        let gateways: Map<String, Value> = self
            .gateways
            .iter()
            .map(|(k, g)| {
                let routes: Vec<Value> = g
                    .routes
                    .iter()
                    .map(|r| json!({ "match": Value::Object(route_match(&r.matches)), "service": r.service }))
                    .collect();
                (k.clone(), json!({ "listen": g.listen.to_string(), "routes": routes }))
            })
            .collect();
        json!({
            "trust_domain": self.trust_domain,
            "default_policy": action(self.default_policy),
            "services": services,
            "intentions": intentions,
            "gateways": gateways,
        })
    }
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Deny => "deny",
    }
}

fn dur(d: std::time::Duration) -> Value {
    Value::String(format_duration(d))
}

fn service(s: &ServiceConfig) -> Value {
    let mut m = Map::new();
    let protocol = match s.protocol {
        Protocol::Http => "http",
        Protocol::Http2 => "http2",
        Protocol::Grpc => "grpc",
    };
    m.insert("protocol".into(), json!(protocol));
    if let Some(id) = &s.identity {
        m.insert("identity".into(), json!(id.as_str()));
    }
    let eps: Vec<Value> = s
        .endpoints
        .iter()
        .map(|e| {
            let mut em = Map::new();
            em.insert("address".into(), json!(e.address.to_string()));
            em.insert("weight".into(), json!(e.weight));
            if let Some(z) = &e.zone {
                em.insert("zone".into(), json!(z));
            }
            em.insert("labels".into(), json!(e.labels));
            Value::Object(em)
        })
        .collect();
    m.insert("endpoints".into(), Value::Array(eps));
    if let Some(d) = &s.dns {
        m.insert("dns".into(), json!(dns_text(d)));
    }
    m.insert("subsets".into(), json!(s.subsets));
    let mut lb = Map::new();
    lb.insert("algorithm".into(), json!(s.load_balancer.algorithm.name()));
    lb.insert(
        "panic_threshold".into(),
        json!(s.load_balancer.panic_threshold_percent),
    );
    match &s.load_balancer.algorithm {
        Algorithm::LeastRequest {
            choice_count,
            active_request_bias,
        } => {
            lb.insert("choice_count".into(), json!(choice_count));
            lb.insert("active_request_bias".into(), json!(active_request_bias));
        }
        Algorithm::PeakEwma { decay, default_rtt } => {
            lb.insert("decay".into(), dur(*decay));
            lb.insert("default_rtt".into(), dur(*default_rtt));
        }
        Algorithm::RingHash {
            min_ring_size,
            max_ring_size,
        } => {
            lb.insert("min_ring_size".into(), json!(min_ring_size));
            lb.insert("max_ring_size".into(), json!(max_ring_size));
        }
        Algorithm::Maglev { table_size } => {
            lb.insert("table_size".into(), json!(table_size));
        }
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin | Algorithm::Random => {}
    }
    m.insert("load_balancer".into(), Value::Object(lb));
    if let Some(HashOn::Header(h)) = &s.hash_on {
        m.insert("hash_on".into(), json!({ "header": h }));
    }
    if let Some(t) = s.timeout {
        m.insert("timeout".into(), dur(t));
    }
    if let Some(r) = &s.retry {
        m.insert("retry".into(), retry(r));
    }
    m.insert(
        "circuit_breaker".into(),
        json!({ "max_requests": s.circuit_breaker.max_requests, "max_pending": s.circuit_breaker.max_pending }),
    );
    if let Some(o) = &s.outlier_detection {
        m.insert("outlier_detection".into(), outlier(o));
    }
    if let Some(h) = &s.health_check {
        m.insert(
            "health_check".into(),
            json!({
                "interval": dur(h.interval),
                "timeout": dur(h.timeout),
                "healthy_threshold": h.healthy_threshold,
                "unhealthy_threshold": h.unhealthy_threshold,
                "path": h.path,
                "grpc_service": h.grpc_service,
            }),
        );
    }
    let routes: Vec<Value> = s
        .routes
        .iter()
        .map(|r| {
            let mut rm = Map::new();
            if let Some(n) = &r.name {
                rm.insert("name".into(), json!(n));
            }
            rm.insert("match".into(), Value::Object(route_match(&r.matches)));
            rm.insert("split".into(), json!(r.split));
            if let Some(t) = r.timeout {
                rm.insert("timeout".into(), dur(t));
            }
            if let Some(rt) = &r.retry {
                rm.insert("retry".into(), retry(rt));
            }
            Value::Object(rm)
        })
        .collect();
    m.insert("routes".into(), Value::Array(routes));
    Value::Object(m)
}

fn retry(r: &RetryConfig) -> Value {
    let on: Vec<Value> =
        r.on.iter()
            .map(|on| match on {
                RetryOn::ConnectFailure => json!("connect-failure"),
                RetryOn::Reset => json!("reset"),
                RetryOn::Server5xx => json!("5xx"),
                RetryOn::GatewayError => json!("gateway-error"),
                RetryOn::Status(c) => json!(c),
                RetryOn::Cancelled => json!("cancelled"),
                RetryOn::DeadlineExceeded => json!("deadline-exceeded"),
                RetryOn::ResourceExhausted => json!("resource-exhausted"),
                RetryOn::Internal => json!("internal"),
                RetryOn::Unavailable => json!("unavailable"),
            })
            .collect();
    let mut m = Map::new();
    m.insert("attempts".into(), json!(r.attempts));
    if let Some(t) = r.per_try_timeout {
        m.insert("per_try_timeout".into(), dur(t));
    }
    m.insert("on".into(), Value::Array(on));
    m.insert(
        "backoff".into(),
        json!({ "base": dur(r.backoff.base), "max": dur(r.backoff.max) }),
    );
    m.insert(
        "budget".into(),
        json!({ "ratio": r.budget.ratio, "min_per_second": r.budget.min_per_second, "window": dur(r.budget.window) }),
    );
    m.insert("non_idempotent".into(), json!(r.non_idempotent));
    Value::Object(m)
}

fn outlier(o: &OutlierConfig) -> Value {
    let mut m = Map::new();
    m.insert(
        "consecutive_failures".into(),
        json!(o.consecutive_failures.unwrap_or(0)),
    );
    if let Some(fr) = &o.failure_rate {
        m.insert(
            "failure_rate".into(),
            json!({ "threshold": fr.threshold, "min_requests": fr.min_requests }),
        );
    }
    if let Some(sr) = &o.success_rate {
        m.insert(
            "success_rate".into(),
            json!({ "stdev_factor": sr.stdev_factor, "min_hosts": sr.min_hosts, "min_requests": sr.min_requests }),
        );
    }
    m.insert("interval".into(), dur(o.interval));
    m.insert("base_ejection".into(), dur(o.base_ejection));
    m.insert("max_ejection".into(), dur(o.max_ejection));
    m.insert("max_ejected_percent".into(), json!(o.max_ejected_percent));
    if let Some(s) = o.slow_start {
        m.insert("slow_start".into(), dur(s));
    }
    Value::Object(m)
}

fn route_match(rm: &RouteMatch) -> Map<String, Value> {
    let mut m = Map::new();
    match &rm.path {
        Some(PathMatch::Exact(p)) => {
            m.insert("path_exact".into(), json!(p));
        }
        Some(PathMatch::Prefix(p)) => {
            m.insert("path_prefix".into(), json!(p));
        }
        Some(PathMatch::Regex(p)) => {
            m.insert("path_regex".into(), json!(p));
        }
        None => {}
    }
    if !rm.methods.is_empty() {
        m.insert("methods".into(), json!(rm.methods));
    }
    if !rm.headers.is_empty() {
        let headers: Map<String, Value> = rm
            .headers
            .iter()
            .map(|h| {
                let v = match &h.value {
                    HeaderValueMatch::Exact(s) => json!(s),
                    HeaderValueMatch::Prefix(s) => json!({ "prefix": s }),
                    HeaderValueMatch::Regex(s) => json!({ "regex": s }),
                    HeaderValueMatch::Present(b) => json!({ "present": b }),
                };
                (h.name.clone(), v)
            })
            .collect();
        m.insert("headers".into(), Value::Object(headers));
    }
    m
}
