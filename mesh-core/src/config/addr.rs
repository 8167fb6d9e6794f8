//! Addresses and names: endpoint addresses, endpoint lists
//! (`127.0.0.1:8081=3,127.0.0.1:8082`), DNS targets and service names.

use std::net::{IpAddr, SocketAddr};

use crate::endpoint::{Endpoint, MAX_WEIGHT};

use super::model::DnsTarget;

/// Why an endpoint list (`MESH_ENDPOINTS_<SVC>`, `static:///...`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointListError {
    /// No endpoint at all.
    #[error("empty endpoint list; write e.g. `127.0.0.1:8081=3,127.0.0.1:8082`")]
    Empty,
    /// One item is not `ip:port` or `ip:port=weight`.
    #[error("`{item}`: {reason}")]
    Item {
        /// The offending item.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same address twice.
    #[error("duplicate address {0}")]
    Duplicate(SocketAddr),
}

/// Parses `ip:port[=weight],...` (weights default to 1, `1..=1_000_000`).
///
/// ```
/// use mesh_core::config::parse_endpoint_list;
/// let eps = parse_endpoint_list("127.0.0.1:8081=3, [::1]:8082").unwrap();
/// assert_eq!(eps[0].weight, 3);
/// assert_eq!(eps[1].weight, 1);
/// ```
pub fn parse_endpoint_list(text: &str) -> Result<Vec<Endpoint>, EndpointListError> {
    if text.trim().is_empty() {
        return Err(EndpointListError::Empty);
    }
    let mut out: Vec<Endpoint> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let bad = |reason: String| EndpointListError::Item {
            item: item.to_string(),
            reason,
        };
        if item.is_empty() {
            return Err(bad("empty item (two commas in a row?)".to_string()));
        }
        let (addr, weight) = match item.split_once('=') {
            Some((a, w)) => {
                let w = w.trim();
                let weight = match w.parse::<u32>() {
                    Ok(v) if (1..=MAX_WEIGHT).contains(&v) => v,
                    _ => {
                        return Err(bad(format!(
                            "weight must be an integer between 1 and {MAX_WEIGHT}, got `{w}`"
                        )));
                    }
                };
                (a.trim(), weight)
            }
            None => (item, 1),
        };
        let address = parse_endpoint_address(addr).map_err(bad)?;
        if out.iter().any(|e| e.address == address) {
            return Err(EndpointListError::Duplicate(address));
        }
        out.push(Endpoint::new(address).with_weight(weight));
    }
    Ok(out)
}

/// Parses an endpoint address (`ip:port`, `[v6]:port`), explaining what to
/// do with a host name.
pub(crate) fn parse_endpoint_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && port.parse::<u16>().is_ok()
        && is_dns_name(host)
        && host.parse::<IpAddr>().is_err()
    {
        return Err(format!(
            "`{s}` is a host name; endpoints take IP addresses (ip:port); discover host names with `dns: {s}`"
        ));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Err(format!("`{s}` has no port; write ip:port, e.g. `{s}:8080`"));
    }
    Err(format!(
        "`{s}` is not an address; write ip:port, e.g. `127.0.0.1:8080` or `[::1]:8080`"
    ))
}

/// Parses a `dns:` target: `host:port` (A/AAAA) or `_svc._proto.name` (SRV).
pub(crate) fn parse_dns_target(s: &str) -> Result<DnsTarget, String> {
    if s.starts_with('_') {
        return if is_srv_name(s) {
            Ok(DnsTarget::Srv {
                name: s.to_string(),
            })
        } else {
            Err(format!(
                "`{s}` is not an SRV name; write `_service._proto.name`, e.g. `_http._tcp.news.example.com`"
            ))
        };
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "`{s}` has no port; write `host:port` (e.g. `news.example.com:8080`) or an SRV name `_http._tcp.news.example.com`"
        ));
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("port must be between 1 and 65535, got `{port}`")),
    };
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err(format!(
            "`{host}` is an IP address; list it under `endpoints` instead of `dns`"
        ));
    }
    if !is_dns_name(host) {
        return Err(format!(
            "`{host}` is not a valid DNS host name (letters, digits, `-` and `.`)"
        ));
    }
    Ok(DnsTarget::Host {
        host: host.to_string(),
        port,
    })
}

/// Whether `s` is a DNS name: dot-separated labels of letters, digits and
/// `-` (not at either end), 1..=63 each, 253 in all; a trailing dot is allowed.
pub(crate) fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_dns_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fn is_srv_name(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 3
        && labels
            .iter()
            .take(2)
            .all(|l| l.len() > 1 && l.starts_with('_'))
        && is_dns_name(s)
}

/// Whether `s` is a service name: a lower-case DNS label (`[a-z0-9-]`,
/// 1..=63, not starting or ending with `-`).
pub fn is_service_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_lists() {
        let eps = parse_endpoint_list("127.0.0.1:8081=3,127.0.0.1:8082").unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!((eps[0].weight, eps[1].weight), (3, 1));
        assert_eq!(parse_endpoint_list(" "), Err(EndpointListError::Empty));
        let e = parse_endpoint_list("127.0.0.1:1,,127.0.0.1:2").unwrap_err();
        assert!(e.to_string().contains("empty item"), "{e}");
        let e = parse_endpoint_list("127.0.0.1:1=0").unwrap_err();
        assert!(e.to_string().contains("between 1 and 1000000"), "{e}");
        let e = parse_endpoint_list("news:80").unwrap_err();
        assert!(e.to_string().contains("dns: news:80"), "{e}");
        let e = parse_endpoint_list("127.0.0.1:1,127.0.0.1:1").unwrap_err();
        assert!(matches!(e, EndpointListError::Duplicate(_)));
        let e = parse_endpoint_list("127.0.0.1").unwrap_err();
        assert!(e.to_string().contains("no port"), "{e}");
    }

    #[test]
    fn dns_targets() {
        assert_eq!(
            parse_dns_target("news.example.com:8080"),
            Ok(DnsTarget::Host {
                host: "news.example.com".into(),
                port: 8080
            })
        );
        assert_eq!(
            parse_dns_target("_http._tcp.news.example.com"),
            Ok(DnsTarget::Srv {
                name: "_http._tcp.news.example.com".into()
            })
        );
        assert!(
            parse_dns_target("news.example.com")
                .unwrap_err()
                .contains("no port")
        );
        assert!(
            parse_dns_target("_http.news")
                .unwrap_err()
                .contains("not an SRV name")
        );
        assert!(
            parse_dns_target("127.0.0.1:53")
                .unwrap_err()
                .contains("IP address")
        );
        assert!(
            parse_dns_target("bad host:1")
                .unwrap_err()
                .contains("not a valid DNS")
        );
    }

    #[test]
    fn service_names() {
        assert!(is_service_name("news-service"));
        assert!(!is_service_name("News"));
        assert!(!is_service_name("-a"));
        assert!(!is_service_name(&"a".repeat(64)));
    }
}
