//! Retry, circuit-breaker and outlier-detection sections.

use super::super::error::ConfigErrorKind as K;
use super::super::model::{
    BackoffConfig, BudgetConfig, CircuitBreakerConfig, FailureRateConfig, OutlierConfig,
    RetryConfig, RetryOn, SuccessRateConfig,
};
use super::super::tree::{Kind, Node, Path};
use super::Ctx;
use crate::config::HealthCheckConfig;

const RETRY_ON: &str = "connect-failure, reset, 5xx, gateway-error, cancelled, deadline-exceeded, resource-exhausted, internal, unavailable, or an HTTP status code 100..=599";

/// A retry condition by its config name.
pub(crate) fn retry_on_by_name(s: &str) -> Option<RetryOn> {
    Some(match s {
        "connect-failure" => RetryOn::ConnectFailure,
        "reset" => RetryOn::Reset,
        "5xx" => RetryOn::Server5xx,
        "gateway-error" => RetryOn::GatewayError,
        "cancelled" => RetryOn::Cancelled,
        "deadline-exceeded" => RetryOn::DeadlineExceeded,
        "resource-exhausted" => RetryOn::ResourceExhausted,
        "internal" => RetryOn::Internal,
        "unavailable" => RetryOn::Unavailable,
        _ => return s.parse::<u16>().ok().map(RetryOn::Status),
    })
}

pub(super) fn decode_retry(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<RetryConfig> {
    let f = ctx.fields(
        node,
        path,
        &[
            "attempts",
            "per_try_timeout",
            "on",
            "backoff",
            "budget",
            "non_idempotent",
        ],
    )?;
    let mut r = RetryConfig::default();
    if let Some(v) = f
        .get("attempts")
        .and_then(|n| ctx.u32(n, &f.path("attempts")))
    {
        r.attempts = v;
    }
    if let Some(n) = f.get("per_try_timeout") {
        r.per_try_timeout = ctx.duration(n, &f.path("per_try_timeout"));
    }
    if let Some(n) = f.get("on") {
        let p = f.path("on");
        if let Some(items) = ctx.seq(n, &p) {
            r.on.clear();
            let mut kept = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let ip = p.index(i);
                let parsed = match &item.kind {
                    Kind::Str(s) => retry_on_by_name(s).ok_or_else(|| format!("`{s}`")),
                    Kind::Int(c) => u16::try_from(*c)
                        .map(RetryOn::Status)
                        .map_err(|_| c.to_string()),
                    _ => Err(item.type_name().to_string()),
                };
                match parsed {
                    Ok(on) if r.on.contains(&on) => {
                        ctx.err(K::Duplicate, &ip, item.line, "listed twice");
                    }
                    Ok(on) => {
                        r.on.push(on);
                        kept.push(i);
                    }
                    Err(got) => {
                        ctx.err(
                            K::Invalid,
                            &ip,
                            item.line,
                            format!("unknown retry condition {got}; allowed: {RETRY_ON}"),
                        );
                    }
                }
            }
            ctx.remap(&p, kept, items.len());
        }
    }
    if let Some(n) = f.get("backoff") {
        let p = f.path("backoff");
        if let Some(b) = ctx.fields(n, &p, &["base", "max"]) {
            let base = b.get("base").and_then(|n| ctx.duration(n, &b.path("base")));
            let max = b.get("max").and_then(|n| ctx.duration(n, &b.path("max")));
            let default = BackoffConfig::default();
            r.backoff = match (base, max) {
                (Some(base), Some(max)) => BackoffConfig { base, max },
                // The model's rule: max defaults to 10 x base.
                (Some(base), None) => BackoffConfig {
                    base,
                    max: base.saturating_mul(10),
                },
                (None, Some(max)) => BackoffConfig { max, ..default },
                (None, None) => default,
            };
        }
    }
    if let Some(n) = f.get("budget") {
        let p = f.path("budget");
        if let Some(b) = ctx.fields(n, &p, &["ratio", "min_per_second", "window"]) {
            let mut budget = BudgetConfig::default();
            if let Some(v) = b.get("ratio").and_then(|n| ctx.number(n, &b.path("ratio"))) {
                budget.ratio = v;
            }
            if let Some(v) = b
                .get("min_per_second")
                .and_then(|n| ctx.u32(n, &b.path("min_per_second")))
            {
                budget.min_per_second = v;
            }
            if let Some(v) = b
                .get("window")
                .and_then(|n| ctx.duration(n, &b.path("window")))
            {
                budget.window = v;
            }
            r.budget = budget;
        }
    }
    if let Some(v) = f
        .get("non_idempotent")
        .and_then(|n| ctx.boolean(n, &f.path("non_idempotent")))
    {
        r.non_idempotent = v;
    }
    Some(r)
}

pub(super) fn decode_circuit_breaker(
    node: &Node,
    path: &Path,
    ctx: &mut Ctx,
) -> Option<CircuitBreakerConfig> {
    let f = ctx.fields(node, path, &["max_requests", "max_pending"])?;
    let mut cb = CircuitBreakerConfig::default();
    if let Some(v) = f
        .get("max_requests")
        .and_then(|n| ctx.u32(n, &f.path("max_requests")))
    {
        cb.max_requests = v;
    }
    if let Some(v) = f
        .get("max_pending")
        .and_then(|n| ctx.u32(n, &f.path("max_pending")))
    {
        cb.max_pending = v;
    }
    Some(cb)
}

pub(super) fn decode_outlier(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<OutlierConfig> {
    let f = ctx.fields(
        node,
        path,
        &[
            "consecutive_failures",
            "failure_rate",
            "success_rate",
            "interval",
            "base_ejection",
            "max_ejection",
            "max_ejected_percent",
            "slow_start",
        ],
    )?;
    let mut o = OutlierConfig::default();
    if let Some(v) = f
        .get("consecutive_failures")
        .and_then(|n| ctx.u32(n, &f.path("consecutive_failures")))
    {
        // 0 turns consecutive-failure ejection off.
        o.consecutive_failures = (v > 0).then_some(v);
    }
    if let Some(n) = f.get("failure_rate") {
        let p = f.path("failure_rate");
        if let Some(fr) = ctx.fields(n, &p, &["threshold", "min_requests"]) {
            let threshold = match fr.get("threshold") {
                Some(t) => ctx.number(t, &fr.path("threshold")),
                None => {
                    ctx.err(
                        K::Missing,
                        &p,
                        n.line,
                        "missing `threshold` (failure fraction 0.0..=1.0)",
                    );
                    None
                }
            };
            let min_requests = fr
                .get("min_requests")
                .and_then(|n| ctx.u32(n, &fr.path("min_requests")))
                .unwrap_or(20);
            o.failure_rate = threshold.map(|threshold| FailureRateConfig {
                threshold,
                min_requests,
            });
        }
    }
    if let Some(n) = f.get("success_rate") {
        let p = f.path("success_rate");
        if let Some(sr) = ctx.fields(n, &p, &["stdev_factor", "min_hosts", "min_requests"]) {
            let mut s = SuccessRateConfig::default();
            if let Some(v) = sr
                .get("stdev_factor")
                .and_then(|n| ctx.number(n, &sr.path("stdev_factor")))
            {
                s.stdev_factor = v;
            }
            if let Some(v) = sr
                .get("min_hosts")
                .and_then(|n| ctx.u32(n, &sr.path("min_hosts")))
            {
                s.min_hosts = v;
            }
            if let Some(v) = sr
                .get("min_requests")
                .and_then(|n| ctx.u32(n, &sr.path("min_requests")))
            {
                s.min_requests = v;
            }
            o.success_rate = Some(s);
        }
    }
    for (key, slot) in [
        ("interval", &mut o.interval),
        ("base_ejection", &mut o.base_ejection),
        ("max_ejection", &mut o.max_ejection),
    ] {
        if let Some(v) = f.get(key).and_then(|n| ctx.duration(n, &f.path(key))) {
            *slot = v;
        }
    }
    if let Some(v) = f
        .get("max_ejected_percent")
        .and_then(|n| ctx.u32(n, &f.path("max_ejected_percent")))
    {
        o.max_ejected_percent = v;
    }
    if let Some(n) = f.get("slow_start") {
        o.slow_start = ctx.duration(n, &f.path("slow_start"));
    }
    Some(o)
}

pub(super) fn decode_health_check(
    node: &Node,
    path: &Path,
    ctx: &mut Ctx,
) -> Option<HealthCheckConfig> {
    let mut h = HealthCheckConfig::default();
    let f = ctx.fields(
        node,
        path,
        &[
            "interval",
            "timeout",
            "healthy_threshold",
            "unhealthy_threshold",
            "path",
            "grpc_service",
        ],
    )?;
    for (key, slot) in [("interval", &mut h.interval), ("timeout", &mut h.timeout)] {
        if let Some(v) = f.get(key).and_then(|n| ctx.duration(n, &f.path(key))) {
            *slot = v;
        }
    }
    for (key, slot) in [
        ("healthy_threshold", &mut h.healthy_threshold),
        ("unhealthy_threshold", &mut h.unhealthy_threshold),
    ] {
        if let Some(v) = f.get(key).and_then(|n| ctx.u32(n, &f.path(key))) {
            *slot = v;
        }
    }
    for (key, slot) in [("path", &mut h.path), ("grpc_service", &mut h.grpc_service)] {
        if let Some(v) = f.get(key).and_then(|n| ctx.string(n, &f.path(key))) {
            *slot = v;
        }
    }
    Some(h)
}
