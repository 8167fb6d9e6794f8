//! Inherited deadlines: the mesh's equivalent of gRPC's Context deadline
//! propagation.
//!
//! A service that answers a call with a deadline and, to do so, calls other
//! services should not let those calls outlive the caller's patience: when
//! the caller has given up, the work below it is wasted. gRPC's libraries
//! carry the deadline in a per-request context (Go's `context.Context`,
//! Java's `Context`); this module is that context for mesh services, kept in
//! a tokio task-local.
//!
//! - The server side runs a handler inside [`scope`] with the incoming
//!   deadline. mesh-tonic's gRPC server layer does it for every call that
//!   carries `grpc-timeout`; an HTTP handler (e.g. behind
//!   [`ServerLayer`](crate::server::ServerLayer)) calls [`scope`] itself
//!   with whatever deadline it has decided on.
//! - The client side reads [`deadline`]: the mesh client's call timeout
//!   ([`TimeoutLayer::call`](crate::timeout::TimeoutLayer::call)) and
//!   mesh-tonic's `MeshChannel` take it as the call's
//!   [`Deadline`](crate::ext::Deadline) when the request sets none, and the
//!   earlier of the two when both exist. A gRPC call then carries what is
//!   left of it as `grpc-timeout`, so the next hop inherits it in turn.
//!
//! Scopes nest: an inner scope never extends an outer deadline (the
//! earlier one wins). The value belongs to the task polling the scoped
//! future: work moved to a `tokio::spawn`ed task does not inherit it (wrap
//! that future in [`scope`] too, with [`deadline`]'s value).
//!
//! ```
//! use std::time::Duration;
//! use mesh_tower::inherit;
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! assert_eq!(inherit::deadline(), None);
//! let at = Instant::now() + Duration::from_millis(500);
//! inherit::scope(at, async move {
//!     // Any mesh call made here is bounded by `at`.
//!     assert_eq!(inherit::deadline(), Some(at));
//!     let later = at + Duration::from_secs(1);
//!     inherit::scope(later, async move {
//!         assert_eq!(inherit::deadline(), Some(at)); // never extended
//!     })
//!     .await;
//! })
//! .await;
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` with `deadline` as the inherited deadline (or the current
/// one, if that is earlier).
pub fn scope<F: Future>(deadline: Instant, fut: F) -> TaskLocalFuture<Instant, F> {
    DEADLINE.scope(effective(deadline), fut)
}

/// Runs `f` synchronously with `deadline` as the inherited deadline (or the
/// current one, if that is earlier): for poll functions that hand-written
/// futures and bodies call.
pub fn sync_scope<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    DEADLINE.sync_scope(effective(deadline), f)
}

/// The deadline inherited by the current task, if it runs inside a
/// [`scope`].
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|at| *at).ok()
}

/// Time left until the inherited deadline (zero once past); `None` outside
/// a [`scope`].
pub fn remaining() -> Option<Duration> {
    deadline().map(|at| at.saturating_duration_since(Instant::now()))
}

/// The earlier of `at` and the deadline already in force, if any.
pub fn earliest(at: Option<Instant>) -> Option<Instant> {
    match (at, deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn effective(deadline: Instant) -> Instant {
    earliest(Some(deadline)).unwrap_or(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scopes_nest_to_the_earliest_and_end_with_the_future() {
        let now = Instant::now();
        let a = now + Duration::from_millis(300);
        assert_eq!(deadline(), None);
        assert_eq!(earliest(Some(a)), Some(a));
        scope(a, async move {
            assert_eq!(remaining(), Some(Duration::from_millis(300)));
            scope(now + Duration::from_millis(100), async move {
                assert_eq!(deadline(), Some(now + Duration::from_millis(100)));
            })
            .await;
            sync_scope(now + Duration::from_secs(9), || {
                assert_eq!(deadline(), Some(a));
            });
            assert_eq!(earliest(Some(now + Duration::from_secs(1))), Some(a));
            assert_eq!(earliest(None), Some(a));
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
        assert_eq!(deadline(), None);
        assert_eq!(earliest(None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_call_timeout_takes_the_inherited_deadline_unless_its_own_is_earlier() {
        use std::sync::{Arc, Mutex};

        use tower::{Layer, Service, ServiceExt};

        use crate::body::MeshBody;
        use crate::error::{BoxError, Elapsed, TimeoutKind};
        use crate::ext::Deadline;
        use crate::timeout::TimeoutLayer;

        let seen: Arc<Mutex<Vec<Option<Deadline>>>> = Arc::default();
        let record = seen.clone();
        let slow = tower::service_fn(move |req: http::Request<MeshBody>| {
            record
                .lock()
                .unwrap()
                .push(req.extensions().get::<Deadline>().copied());
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, BoxError>(http::Response::new(()))
            }
        });
        let call = |default: Option<Duration>| TimeoutLayer::call(default).layer(slow.clone());
        let at = Instant::now() + Duration::from_millis(100);

        // No timeout of its own: the inherited deadline applies.
        let err = scope(
            at,
            call(None).oneshot(http::Request::new(MeshBody::empty())),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.downcast_ref::<Elapsed>().unwrap().kind,
            TimeoutKind::Call
        );
        assert_eq!(Instant::now(), at);
        assert_eq!(seen.lock().unwrap().pop(), Some(Some(Deadline(at))));

        // Its own, earlier timeout wins.
        let start = Instant::now();
        let at = start + Duration::from_secs(1);
        let mut svc = call(Some(Duration::from_millis(20)));
        let fut = scope(at, async move {
            svc.ready().await?;
            svc.call(http::Request::new(MeshBody::empty())).await
        });
        assert!(fut.await.is_err());
        assert_eq!(Instant::now(), start + Duration::from_millis(20));
        let own = seen.lock().unwrap().pop().unwrap().unwrap();
        assert_eq!(own.0, start + Duration::from_millis(20));

        // Outside a scope and without a timeout: no timer at all.
        let free = call(None).oneshot(http::Request::new(MeshBody::empty()));
        assert!(
            tokio::time::timeout(Duration::from_secs(61), free)
                .await
                .unwrap()
                .is_ok()
        );
        assert_eq!(seen.lock().unwrap().pop(), Some(None));
    }
}
