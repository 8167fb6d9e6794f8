//! Targets: what a caller asks discovery to resolve.
//!
//! A target is either a bare service name (`news-service`), resolved by the
//! order in [`crate::resolve`], or an explicit URI:
//!
//! | target | meaning |
//! | --- | --- |
//! | `static:///127.0.0.1:8081=3,127.0.0.1:8082` | these endpoints (`=weight` optional) |
//! | `dns:///news.example.com:8080` | A/AAAA records of the host, each with the port |
//! | `dns:///_http._tcp.news.example.com` | SRV records: targets, ports and weights |
//! | `xds:///news-service` | the xDS control plane (parsed; not resolvable yet) |
//! | `k8s:///news.default:8080` | a Kubernetes Service (parsed; not resolvable yet) |
//!
//! The authority part of the URI must be empty (three slashes), as in gRPC's
//! name syntax.

use std::fmt;

use mesh_core::Endpoint;
use mesh_core::config::{DnsTarget, EndpointListError, parse_endpoint_list};

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A service name, resolved by the configured sources in order.
    Service(String),
    /// Explicit endpoints.
    Static(Vec<Endpoint>),
    /// A DNS name (A/AAAA with a port, or SRV).
    Dns(DnsTarget),
    /// A service from the xDS control plane.
    Xds(String),
    /// A Kubernetes Service.
    K8s {
        /// Service name.
        name: String,
        /// Namespace.
        namespace: String,
        /// Port, if given.
        port: Option<u16>,
    },
}

/// Why a target string is not a valid target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Empty input.
    #[error("empty target")]
    Empty,
    /// A scheme other than `static`, `dns`, `xds`, `k8s`.
    #[error("unknown scheme `{0}` (expected static, dns, xds or k8s)")]
    UnknownScheme(String),
    /// `scheme://authority/...`: an authority is not supported.
    #[error("target `{0}` has an authority; use three slashes, e.g. `dns:///host:port`")]
    Authority(String),
    /// A name that is not a valid service or host name.
    #[error("invalid name `{0}` (letters, digits, `-`, `_` and `.` only)")]
    InvalidName(String),
    /// The endpoint list of a `static:///` target is invalid.
    #[error("invalid `static:///` endpoint list")]
    Endpoints(#[source] EndpointListError),
    /// `dns:///host` without a port (SRV names start with `_`).
    #[error("`{0}` needs a port (host:port) or an SRV name (_service._proto.name)")]
    MissingPort(String),
    /// A port that is not a number in `1..=65535`.
    #[error("invalid port in `{0}`")]
    InvalidPort(String),
    /// `k8s:///name.namespace[:port]` without a namespace.
    #[error("`{0}` needs a namespace: k8s:///name.namespace[:port]")]
    MissingNamespace(String),
}

impl Target {
    /// Parses a target string (see the module docs for the forms).
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            check_name(s)?;
            return Ok(Target::Service(s.to_string()));
        };
        let Some(path) = rest.strip_prefix('/') else {
            return Err(TargetError::Authority(s.to_string()));
        };
        match scheme {
            "static" => parse_endpoint_list(path)
                .map(Target::Static)
                .map_err(TargetError::Endpoints),
            "dns" => parse_dns_target(path).map(Target::Dns),
            "xds" => {
                check_name(path)?;
                Ok(Target::Xds(path.to_string()))
            }
            "k8s" => parse_k8s(path),
            other => Err(TargetError::UnknownScheme(other.to_string())),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Service(name) => write!(f, "{name}"),
            Target::Static(eps) => {
                write!(f, "static:///")?;
                for (i, e) in eps.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{}", e.address)?;
                    if e.weight != mesh_core::endpoint::DEFAULT_WEIGHT {
                        write!(f, "={}", e.weight)?;
                    }
                }
                Ok(())
            }
            Target::Dns(DnsTarget::Host { host, port }) => write!(f, "dns:///{host}:{port}"),
            Target::Dns(DnsTarget::Srv { name }) => write!(f, "dns:///{name}"),
            Target::Xds(name) => write!(f, "xds:///{name}"),
            Target::K8s {
                name,
                namespace,
                port,
            } => match port {
                Some(p) => write!(f, "k8s:///{name}.{namespace}:{p}"),
                None => write!(f, "k8s:///{name}.{namespace}"),
            },
        }
    }
}

fn check_name(s: &str) -> Result<(), TargetError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(TargetError::InvalidName(s.to_string()))
    }
}

fn parse_port(s: &str, whole: &str) -> Result<u16, TargetError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(TargetError::InvalidPort(whole.to_string())),
    }
}

/// Parses a DNS target: `_service._proto.name` (SRV) or `host:port` (A/AAAA).
/// A trailing dot (fully qualified name) is kept.
pub fn parse_dns_target(s: &str) -> Result<DnsTarget, TargetError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TargetError::Empty);
    }
    if s.starts_with('_') {
        check_name(s)?;
        return Ok(DnsTarget::Srv {
            name: s.to_string(),
        });
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(TargetError::MissingPort(s.to_string()));
    };
    let port = parse_port(port, s)?;
    check_name(host)?;
    Ok(DnsTarget::Host {
        host: host.to_string(),
        port,
    })
}

fn parse_k8s(path: &str) -> Result<Target, TargetError> {
    let (name_ns, port) = match path.rsplit_once(':') {
        Some((n, p)) => (n, Some(parse_port(p, path)?)),
        None => (path, None),
    };
    let Some((name, namespace)) = name_ns.split_once('.') else {
        return Err(TargetError::MissingNamespace(path.to_string()));
    };
    check_name(name)?;
    check_name(namespace)?;
    Ok(Target::K8s {
        name: name.to_string(),
        namespace: namespace.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_services() {
        assert_eq!(
            Target::parse("news-service").unwrap(),
            Target::Service("news-service".into())
        );
        assert!(matches!(
            Target::parse("news service"),
            Err(TargetError::InvalidName(_))
        ));
        assert_eq!(Target::parse("  "), Err(TargetError::Empty));
    }

    #[test]
    fn static_targets_carry_weights() {
        let t = Target::parse("static:///127.0.0.1:8081=3,[::1]:8082").unwrap();
        let Target::Static(eps) = &t else {
            panic!("{t:?}")
        };
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].weight, 3);
        assert_eq!(eps[1].address, "[::1]:8082".parse().unwrap());
        assert_eq!(eps[1].weight, 1);
        assert_eq!(t.to_string(), "static:///127.0.0.1:8081=3,[::1]:8082");
        assert_eq!(
            Target::parse("static:///"),
            Err(TargetError::Endpoints(EndpointListError::Empty))
        );
        for bad in ["static:///127.0.0.1:1=0", "static:///localhost:80"] {
            assert!(
                matches!(Target::parse(bad), Err(TargetError::Endpoints(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn dns_targets_are_host_port_or_srv() {
        assert_eq!(
            Target::parse("dns:///news.example.com:8080").unwrap(),
            Target::Dns(DnsTarget::Host {
                host: "news.example.com".into(),
                port: 8080
            })
        );
        assert_eq!(
            Target::parse("dns:///_http._tcp.news.mesh.local").unwrap(),
            Target::Dns(DnsTarget::Srv {
                name: "_http._tcp.news.mesh.local".into()
            })
        );
        assert!(matches!(
            Target::parse("dns:///news.example.com"),
            Err(TargetError::MissingPort(_))
        ));
        assert!(matches!(
            Target::parse("dns:///news:0"),
            Err(TargetError::InvalidPort(_))
        ));
        assert!(matches!(
            Target::parse("dns://8.8.8.8/news:80"),
            Err(TargetError::Authority(_))
        ));
    }

    #[test]
    fn xds_and_k8s_parse() {
        assert_eq!(
            Target::parse("xds:///greeter").unwrap(),
            Target::Xds("greeter".into())
        );
        assert_eq!(
            Target::parse("k8s:///news.prod:8080").unwrap(),
            Target::K8s {
                name: "news".into(),
                namespace: "prod".into(),
                port: Some(8080)
            }
        );
        assert!(matches!(
            Target::parse("k8s:///news:8080"),
            Err(TargetError::MissingNamespace(_))
        ));
        assert!(matches!(
            Target::parse("consul:///news"),
            Err(TargetError::UnknownScheme(s)) if s == "consul"
        ));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "news",
            "dns:///a.b:80",
            "dns:///_grpc._tcp.x.y",
            "xds:///n",
            "k8s:///a.b",
            "k8s:///a.b:1",
        ] {
            assert_eq!(Target::parse(s).unwrap().to_string(), s);
        }
    }
}
