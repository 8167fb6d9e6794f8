//! One resolution through hickory: A/AAAA, or SRV then A/AAAA of the targets.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use mesh_core::Endpoint;
use mesh_core::config::DnsTarget;

use super::srv::{SrvRecord, select_srv};
use super::{DnsError, Resolved};
use crate::update::normalize;

pub(super) async fn resolve(
    resolver: &TokioResolver,
    target: &DnsTarget,
    fallback_ttl: Duration,
) -> Result<Resolved, DnsError> {
    match target {
        DnsTarget::Host { host, port } => {
            let (ips, ttl) = lookup_ips(resolver, host).await?;
            if ips.is_empty() {
                return Err(DnsError::NoAddresses(host.clone()));
            }
            let endpoints = ips
                .into_iter()
                .map(|ip| Endpoint::new(SocketAddr::new(ip, *port)))
                .collect();
            Ok(Resolved {
                endpoints: normalize(endpoints),
                ttl: ttl.unwrap_or(fallback_ttl),
            })
        }
        DnsTarget::Srv { name } => resolve_srv(resolver, name, fallback_ttl).await,
    }
}

fn lookup_error(name: &str, e: NetError) -> DnsError {
    if e.is_nx_domain() {
        DnsError::NotFound(name.to_string())
    } else if e.is_no_records_found() {
        DnsError::NoAddresses(name.to_string())
    } else {
        DnsError::Lookup {
            name: name.to_string(),
            source: e,
        }
    }
}

/// The addresses of `host` and the smallest TTL among them (`None` when the
/// answer carried no records, e.g. a literal IP).
async fn lookup_ips(
    resolver: &TokioResolver,
    host: &str,
) -> Result<(Vec<std::net::IpAddr>, Option<Duration>), DnsError> {
    let lookup = resolver
        .lookup_ip(host)
        .await
        .map_err(|e| lookup_error(host, e))?;
    let ttl = lookup
        .as_lookup()
        .answers()
        .iter()
        .filter(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
        .map(|r| r.ttl)
        .min()
        .map(|s| Duration::from_secs(u64::from(s)));
    Ok((lookup.iter().collect(), ttl))
}

async fn resolve_srv(
    resolver: &TokioResolver,
    name: &str,
    fallback_ttl: Duration,
) -> Result<Resolved, DnsError> {
    let lookup = resolver
        .srv_lookup(name)
        .await
        .map_err(|e| lookup_error(name, e))?;
    let mut ttl: Option<u32> = None;
    let mut records = Vec::new();
    for r in lookup.answers() {
        if let RData::SRV(srv) = &r.data {
            ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
            records.push(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.to_utf8(),
            });
        }
    }
    if records.is_empty() {
        return Err(DnsError::NoAddresses(name.to_string()));
    }
    let selected = select_srv(&records);
    if selected.is_empty() {
        // Every target is `.`: decidedly no endpoints.
        return Ok(Resolved {
            endpoints: Vec::new(),
            ttl: ttl.map_or(fallback_ttl, |s| Duration::from_secs(u64::from(s))),
        });
    }
    let answers = join_all(
        selected
            .iter()
            .map(|r| async move { (*r, lookup_ips(resolver, &r.target).await) }),
    )
    .await;
    let mut endpoints = Vec::new();
    let mut min_ttl = ttl.map(|s| Duration::from_secs(u64::from(s)));
    for (rec, answer) in answers {
        match answer {
            Ok((ips, t)) => {
                if let Some(t) = t {
                    min_ttl = Some(min_ttl.map_or(t, |m| m.min(t)));
                }
                endpoints.extend(ips.into_iter().map(|ip| {
                    Endpoint::new(SocketAddr::new(ip, rec.port)).with_weight(rec.endpoint_weight())
                }));
            }
            Err(e) => {
                tracing::warn!(srv = name, target = %rec.target, error = %e, "SRV target did not resolve; skipped");
            }
        }
    }
    if endpoints.is_empty() {
        return Err(DnsError::NoSrvTargets {
            name: name.to_string(),
            targets: selected.len(),
        });
    }
    Ok(Resolved {
        endpoints: normalize(endpoints),
        ttl: min_ttl.unwrap_or(fallback_ttl),
    })
}
