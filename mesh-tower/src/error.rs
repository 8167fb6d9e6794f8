//! Typed errors of the mesh client, behind [`BoxError`].
//!
//! Every layer returns `BoxError`; callers find out what happened with
//! [`kind`] (which walks the cause chain) or by downcasting to the small leaf
//! types here. The cause chain is always kept.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The error type of every mesh service.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// No endpoint could take the request: discovery found none (in time), or
/// the service does not exist.
#[derive(Debug, thiserror::Error)]
#[error("no endpoints for service `{service}`: {reason}")]
pub struct NoEndpoints {
    /// The service.
    pub service: Arc<str>,
    /// Why: `discovery found none within 2s`, `service does not exist`, ...
    pub reason: String,
}

/// A concurrency limit refused the request at once (fail fast).
#[derive(Debug, thiserror::Error)]
#[error("service `{service}`: {source}")]
pub struct CircuitOpen {
    /// The service.
    pub service: Arc<str>,
    /// Which limit.
    #[source]
    pub source: mesh_core::circuit::CircuitOpen,
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// The whole call (retries included).
    Call,
    /// One attempt.
    PerTry,
}

/// A timeout fired.
#[derive(Debug, thiserror::Error)]
#[error("{} timed out after {after:?}", match kind { TimeoutKind::Call => "call", TimeoutKind::PerTry => "attempt" })]
pub struct Elapsed {
    /// Which timeout.
    pub kind: TimeoutKind,
    /// Its length.
    pub after: Duration,
}

/// The service has routes and none matched the request.
#[derive(Debug, thiserror::Error)]
#[error("no route of service `{service}` matches {method} {path}")]
pub struct NoRoute {
    /// The service.
    pub service: Arc<str>,
    /// The request's method.
    pub method: String,
    /// The request's path.
    pub path: String,
}

/// An attempt failed at a known endpoint (connect, reset, timeout, ...).
#[derive(Debug, thiserror::Error)]
#[error("endpoint {endpoint}: {source}")]
pub struct EndpointError {
    /// Where the attempt went.
    pub endpoint: SocketAddr,
    /// What went wrong.
    #[source]
    pub source: BoxError,
}

/// The request body could not be buffered or read.
#[derive(Debug, thiserror::Error)]
#[error("request body: {0}")]
pub struct BodyError(#[source] pub BoxError);

/// What kind of failure an error is, for retries, outlier detection,
/// metrics and `meshctl call`'s status histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A timeout (call or attempt).
    Timeout,
    /// A concurrency limit refused the request.
    CircuitOpen,
    /// No endpoints.
    NoEndpoints,
    /// No route matched.
    NoRoute,
    /// The TCP (or TLS) connection could not be established.
    ConnectFailure,
    /// The connection or stream broke before a response.
    Reset,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Short name: `timeout`, `circuit_open`, `no_endpoints`, `no_route`,
    /// `connect_failure`, `reset`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::NoEndpoints => "no_endpoints",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::ConnectFailure => "connect_failure",
            ErrorKind::Reset => "reset",
            ErrorKind::Other => "error",
        }
    }
}

/// Classifies `err` by walking its cause chain: our leaf types first, then
/// hyper-util's connect errors, hyper's errors and I/O errors.
pub fn kind(err: &(dyn Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            return ErrorKind::Timeout;
        }
        if e.is::<CircuitOpen>() || e.is::<mesh_core::circuit::CircuitOpen>() {
            return ErrorKind::CircuitOpen;
        }
        if e.is::<NoEndpoints>() {
            return ErrorKind::NoEndpoints;
        }
        if e.is::<NoRoute>() {
            return ErrorKind::NoRoute;
        }
        if e.is::<crate::connect::ConnectError>() {
            return ErrorKind::ConnectFailure;
        }
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && e.is_connect()
        {
            return ErrorKind::ConnectFailure;
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>()
            && (e.is_incomplete_message() || e.is_canceled() || e.is_closed())
        {
            return ErrorKind::Reset;
        }
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            match e.kind() {
                Io::ConnectionRefused | Io::AddrNotAvailable | Io::HostUnreachable => {
                    return ErrorKind::ConnectFailure;
                }
                Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::BrokenPipe
                | Io::UnexpectedEof => return ErrorKind::Reset,
                Io::TimedOut => return ErrorKind::Timeout,
                _ => {}
            }
        }
        cur = e.source();
    }
    ErrorKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_walks_the_cause_chain() {
        let inner: BoxError = Box::new(Elapsed {
            kind: TimeoutKind::PerTry,
            after: Duration::from_millis(500),
        });
        let wrapped = EndpointError {
            endpoint: "127.0.0.1:1".parse().unwrap(),
            source: inner,
        };
        assert_eq!(kind(&wrapped), ErrorKind::Timeout);
        assert_eq!(
            wrapped.to_string(),
            "endpoint 127.0.0.1:1: attempt timed out after 500ms"
        );

        let refused = EndpointError {
            endpoint: "127.0.0.1:1".parse().unwrap(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(kind(&refused), ErrorKind::ConnectFailure);
        assert_eq!(
            kind(&NoEndpoints {
                service: "news".into(),
                reason: "service does not exist".into()
            }),
            ErrorKind::NoEndpoints
        );
        assert_eq!(kind(&std::fmt::Error), ErrorKind::Other);
    }
}
