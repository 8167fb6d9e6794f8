//! Mesh errors as gRPC statuses.
//!
//! | mesh error ([`mesh_tower::error::kind`]) | status |
//! | --- | --- |
//! | a timeout (call deadline or attempt) | DEADLINE_EXCEEDED |
//! | `CircuitOpen`, `NoEndpoints` | UNAVAILABLE, naming the service |
//! | connect failure, reset | UNAVAILABLE |
//! | `NoRoute` | UNIMPLEMENTED |
//! | a `Status` in the cause chain (e.g. from the request body) | that status |
//! | anything else | UNKNOWN |
//!
//! The original error stays reachable as the status's `source()`.

use std::error::Error;
use std::sync::Arc;

use mesh_tower::BoxError;
use mesh_tower::error::{ErrorKind, kind};
use tonic::{Code, Status};

/// The status a tonic client sees for `err`, a failed call to `service`.
pub fn from_error(service: &str, err: BoxError) -> Status {
    if let Some(status) = find_status(&*err) {
        return status;
    }
    let code = match kind(&*err) {
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::CircuitOpen
        | ErrorKind::NoEndpoints
        | ErrorKind::ConnectFailure
        | ErrorKind::Reset => Code::Unavailable,
        ErrorKind::NoRoute => Code::Unimplemented,
        ErrorKind::Other => Code::Unknown,
    };
    let mut status = Status::new(code, format!("service `{service}`: {err}"));
    status.set_source(Arc::from(err));
    status
}

fn find_status(err: &(dyn Error + 'static)) -> Option<Status> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(status) = e.downcast_ref::<Status>() {
            return Some(status.clone());
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh_tower::error::{Elapsed, NoEndpoints, TimeoutKind};

    use super::*;

    #[test]
    fn maps_mesh_errors() {
        let no = from_error(
            "greeter",
            Box::new(NoEndpoints {
                service: "greeter".into(),
                reason: "service does not exist".into(),
            }),
        );
        assert_eq!(no.code(), Code::Unavailable);
        assert!(no.message().contains("greeter"), "{}", no.message());
        assert!(no.source().is_some());

        let late = from_error(
            "greeter",
            Box::new(Elapsed {
                kind: TimeoutKind::Call,
                after: Duration::from_millis(5),
            }),
        );
        assert_eq!(late.code(), Code::DeadlineExceeded);

        let inner = from_error("greeter", Box::new(Status::permission_denied("no")));
        assert_eq!(inner.code(), Code::PermissionDenied);
        assert_eq!(
            from_error("g", Box::new(std::fmt::Error)).code(),
            Code::Unknown
        );
    }
}
