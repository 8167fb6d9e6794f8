//! Tests of the circuit breaker.

use std::sync::Arc;

use http::{Request, Response};
use mesh_core::circuit::Limit;
use mesh_core::config::model::CircuitBreakerConfig;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::body::MeshBody;
use crate::error::{ErrorKind, kind};

type Mock = mock::Mock<Request<MeshBody>, Response<()>>;
type Handle = mock::Handle<Request<MeshBody>, Response<()>>;

fn breaker(max_requests: u32) -> (CircuitBreaker<Mock>, Handle) {
    let (svc, handle) = mock::pair();
    let layer = CircuitBreakerLayer::new(
        &CircuitBreakerConfig {
            max_requests,
            max_pending: 1,
        },
        Arc::from("news"),
    );
    (layer.layer(svc), handle)
}

fn req() -> Request<MeshBody> {
    Request::new(MeshBody::empty())
}

#[tokio::test]
async fn fails_fast_at_the_limit_and_releases_on_completion() {
    let (mut svc, mut handle) = breaker(2);
    let a = svc.ready().await.unwrap().call(req());
    let b = svc.ready().await.unwrap().call(req());
    assert_eq!(svc.limits().in_flight(), 2);

    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(kind(&*err), ErrorKind::CircuitOpen);
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.service.as_ref(), "news");
    assert_eq!(open.source.limit(), Limit::Requests);

    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    a.await.unwrap();
    assert_eq!(svc.limits().in_flight(), 1);

    // An error completes the call too.
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("boom"));
    assert!(b.await.is_err());
    assert_eq!(svc.limits().in_flight(), 0);

    let c = tokio::spawn(svc.clone().oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    assert!(c.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_dropped_call_gives_its_slot_back() {
    let (mut svc, _handle) = breaker(1);
    let a = svc.ready().await.unwrap().call(req());
    assert!(svc.ready().await.unwrap().call(req()).await.is_err());
    drop(a); // the caller gave up
    assert_eq!(svc.limits().in_flight(), 0);
    let _b = svc.ready().await.unwrap().call(req());
    assert_eq!(svc.limits().in_flight(), 1);
}

#[tokio::test]
async fn clones_and_services_of_one_layer_share_the_limit() {
    let layer = CircuitBreakerLayer::new(
        &CircuitBreakerConfig {
            max_requests: 1,
            max_pending: 1,
        },
        Arc::from("news"),
    );
    let (a, _ha) = mock::pair::<Request<MeshBody>, Response<()>>();
    let (b, _hb) = mock::pair::<Request<MeshBody>, Response<()>>();
    let mut a = layer.layer(a);
    let mut b = layer.layer(b);
    let _held = a.ready().await.unwrap().call(req());
    assert!(b.ready().await.unwrap().call(req()).await.is_err());
    // Live update: raise the limit, and b gets through.
    layer.limits().update(&CircuitBreakerConfig {
        max_requests: 2,
        max_pending: 1,
    });
    let _second = b.ready().await.unwrap().call(req());
    assert_eq!(layer.limits().in_flight(), 2);
}
