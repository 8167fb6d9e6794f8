//! One verdict per attempt, consumed by retries, outlier detection and
//! metrics alike (as tower-http's `classify`): an attempt's result becomes a
//! [`mesh_core::retry::Outcome`] once, here.

use mesh_core::outlier::Observation;
use mesh_core::retry::Outcome;

use crate::error::{ErrorKind, kind};

/// `grpc-status` as a prebuilt name: a `&str` key would be parsed and
/// validated on every lookup.
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The outcome of an attempt that produced a response. gRPC's status is
/// read from the headers (trailers-only responses); a status that comes in
/// trailers is classified by mesh-tonic.
pub fn response_outcome<B>(response: &http::Response<B>) -> Outcome {
    let grpc_status = response
        .headers()
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    Outcome::Response {
        status: response.status().as_u16(),
        grpc_status,
    }
}

/// The outcome of an attempt that failed without a response, or `None` when
/// the failure says nothing about the endpoint (no endpoints, circuit open,
/// no route, a bad request body...).
pub fn error_outcome(err: &(dyn std::error::Error + 'static)) -> Option<Outcome> {
    match kind(err) {
        ErrorKind::ConnectFailure => Some(Outcome::ConnectFailure),
        ErrorKind::Reset => Some(Outcome::Reset),
        ErrorKind::Timeout => Some(Outcome::Timeout),
        ErrorKind::CircuitOpen | ErrorKind::NoEndpoints | ErrorKind::NoRoute => None,
        ErrorKind::Other => Some(Outcome::Reset),
    }
}

/// What outlier detection learns from an outcome: 5xx, connect failures,
/// resets, timeouts and gRPC UNAVAILABLE/INTERNAL/UNKNOWN/DATA_LOSS/
/// DEADLINE_EXCEEDED count against the endpoint; everything else (4xx
/// included) counts for it.
pub fn observation(outcome: &Outcome) -> Observation {
    match outcome {
        Outcome::ConnectFailure | Outcome::Reset | Outcome::Timeout => Observation::Failure,
        Outcome::Response {
            status,
            grpc_status,
        } => {
            if *status >= 500 || matches!(grpc_status, Some(2 | 4 | 13 | 14 | 15)) {
                Observation::Failure
            } else {
                Observation::Success
            }
        }
    }
}

/// Whether the caller got what it asked for: a non-5xx response with no
/// failing gRPC status. (Metrics count 4xx as served, not as errors of the
/// mesh.)
pub fn is_success(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Response {
            status,
            grpc_status,
        } => *status < 500 && grpc_status.is_none_or(|s| s == 0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, grpc: Option<&str>) -> http::Response<()> {
        let mut b = http::Response::builder().status(status);
        if let Some(g) = grpc {
            b = b.header("grpc-status", g);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn responses() {
        assert_eq!(
            response_outcome(&resp(503, None)),
            Outcome::Response {
                status: 503,
                grpc_status: None
            }
        );
        let trailers_only = response_outcome(&resp(200, Some("14")));
        assert_eq!(
            trailers_only,
            Outcome::Response {
                status: 200,
                grpc_status: Some(14)
            }
        );
        assert_eq!(observation(&trailers_only), Observation::Failure);
        assert!(!is_success(&trailers_only));
        assert_eq!(
            observation(&response_outcome(&resp(404, None))),
            Observation::Success
        );
        assert!(is_success(&response_outcome(&resp(200, Some("0")))));
        assert!(!is_success(&response_outcome(&resp(502, None))));
    }

    #[test]
    fn errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(error_outcome(&refused), Some(Outcome::ConnectFailure));
        let no = crate::error::NoEndpoints {
            service: "s".into(),
            reason: "none".into(),
        };
        assert_eq!(error_outcome(&no), None);
    }
}
