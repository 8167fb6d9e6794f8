//! Request body buffering and replay; draining of retried responses.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_streaming_body_larger_than_max_buffer_is_sent_once() {
    let big = vec![b'a'; 100];
    let body = MeshBody::streaming(http_body_util::Full::new(Bytes::from(big.clone())));
    let layer = RetryLayer::new(Some(policy(|_| {}))).max_buffer(64);
    let (call, mut handle) = spawn(layer, get(body));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(!req.body().is_buffered());
    assert_eq!(bytes(req).await, big);
    send.send_response(status(503));
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));

    // Unknown size: sent once too.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let stream = http_body_util::StreamBody::new(tokio_stream_shim(rx));
    let (call, mut handle) = spawn(
        RetryLayer::new(Some(policy(|_| {}))),
        get(MeshBody::streaming(stream)),
    );
    drop(tx);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(503));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(1))
    );
}

/// A `Stream` over an mpsc receiver (no tokio-stream dependency).
fn tokio_stream_shim<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(start_paused = true)]
async fn a_small_streaming_body_is_buffered_and_replayed_identically() {
    let data = Bytes::from_static(b"0123456789");
    let body = MeshBody::streaming(http_body_util::Full::new(data.clone()));
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), get(body));
    for code in [503, 500, 200] {
        let (req, send) = handle.next_request().await.unwrap();
        assert!(req.body().is_buffered());
        assert_eq!(req.body().size_hint().exact(), Some(10));
        assert_eq!(bytes(req).await, data);
        send.send_response(status(code));
    }
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(3))
    );
}

/// A response body that records whether it was read to its end or dropped.
struct Tracked {
    data: Option<Bytes>,
    finished: Arc<AtomicBool>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.data.take() {
            Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
            None => {
                self.finished.store(true, Ordering::SeqCst);
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_retried_response_body_is_drained() {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<Tracked>>();
    let svc = RetryLayer::new(Some(policy(|_| {}))).layer(svc);
    let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
    let finished = Arc::new(AtomicBool::new(false));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = Response::new(Tracked {
        data: Some(Bytes::from_static(b"overloaded")),
        finished: finished.clone(),
    });
    *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    send.send_response(resp);
    let (_, send) = handle.next_request().await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "read to its end before the retry"
    );
    send.send_response(Response::new(Tracked {
        data: None,
        finished: Arc::new(AtomicBool::new(false)),
    }));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

/// A request its policy can never retry (a POST, retried on a listed
/// status only, non-idempotent retries off) is neither copied nor buffered;
/// the same policy buffers a GET's body for a replay.
#[tokio::test(start_paused = true)]
async fn a_request_that_can_never_be_retried_is_not_buffered() {
    let layer = || RetryLayer::new(Some(policy(|c| c.on = vec![RetryOn::Status(503)])));
    let body = || MeshBody::streaming(http_body_util::Full::new(Bytes::from_static(b"x")));
    let post = Request::post("http://news-service/").body(body()).unwrap();
    let (call, mut handle) = spawn(layer(), post);
    let (req, send) = handle.next_request().await.unwrap();
    assert!(!req.body().is_buffered());
    send.send_response(status(503));
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));

    let (call, mut handle) = spawn(layer(), get(body()));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(req.body().is_buffered());
    send.send_response(status(503));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // A POST under `5xx` may still be retried after a connect failure:
    // kept for a replay.
    let post = Request::post("http://news-service/").body(body()).unwrap();
    let (call, mut handle) = spawn(RetryLayer::new(Some(policy(|_| {}))), post);
    let (req, send) = handle.next_request().await.unwrap();
    assert!(req.body().is_buffered());
    send.send_response(status(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}
