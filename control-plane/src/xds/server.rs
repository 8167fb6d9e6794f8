//! The tonic ADS service and [`serve`]: one broadcaster task translating
//! snapshots, one task per ADS stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures_util::Stream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::XdsError;
use super::ads::AdsStream;
use super::resources::Resources;
use crate::state::{SnapshotRx, XdsStatus};

/// How long after a snapshot change the broadcaster waits for more changes
/// before translating and pushing (a burst of API writes becomes one push).
pub const COALESCE: Duration = Duration::from_millis(20);

/// Translated resources of one snapshot and when the change was seen.
#[derive(Debug)]
struct Published {
    resources: Arc<Resources>,
    changed_at: Instant,
}

/// Serves ADS on `listener` until `shutdown` completes, reading snapshots
/// from `snapshots` and reporting into `status`. Open streams are ended on
/// shutdown (clients reconnect to the next server).
pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshots: SnapshotRx,
    status: Arc<XdsStatus>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), XdsError> {
    let first = snapshots.borrow().clone();
    let (pub_tx, pub_rx) = watch::channel(Arc::new(Published {
        resources: Arc::new(Resources::build(first)),
        changed_at: Instant::now(),
    }));
    let (close_tx, close_rx) = watch::channel(false);
    let broadcaster = tokio::spawn(broadcast(snapshots, pub_tx));
    let service = Ads {
        published: pub_rx,
        status,
        closing: close_rx,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(AggregatedDiscoveryServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            let _ = close_tx.send(true);
        })
        .await;
    broadcaster.abort();
    result.map_err(XdsError::Transport)
}

async fn broadcast(mut snapshots: SnapshotRx, tx: watch::Sender<Arc<Published>>) {
    while snapshots.changed().await.is_ok() {
        let changed_at = Instant::now();
        tokio::time::sleep(COALESCE).await;
        let snapshot = snapshots.borrow_and_update().clone();
        let resources = Arc::new(Resources::build(snapshot));
        tx.send_replace(Arc::new(Published {
            resources,
            changed_at,
        }));
    }
}

#[derive(Debug, Clone)]
struct Ads {
    published: watch::Receiver<Arc<Published>>,
    status: Arc<XdsStatus>,
    closing: watch::Receiver<bool>,
    next_id: Arc<AtomicU64>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(run_stream(id, inbound, tx, self.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) xDS is not supported; use state of the world",
        ))
    }
}

async fn run_stream(
    id: u64,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    ads: Ads,
) {
    let Ads {
        mut published,
        status,
        mut closing,
        ..
    } = ads;
    let mut stream = AdsStream::new(id);
    published.mark_unchanged();
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => {
                    let current = published.borrow().resources.clone();
                    if let Some(resp) = stream.on_request(req, &current, &status) {
                        status.stats.pushes.fetch_add(1, Ordering::Relaxed);
                        if tx.send(Ok(resp)).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(stream = id, error = %e, "ADS stream ended with an error");
                    break;
                }
            },
            changed = published.changed() => {
                if changed.is_err() {
                    break;
                }
                let p = published.borrow_and_update().clone();
                for resp in stream.on_publish(&p.resources) {
                    if tx.send(Ok(resp)).await.is_err() {
                        break;
                    }
                    status.stats.record_push(p.changed_at.elapsed());
                }
            }
            _ = closing.changed() => break,
        }
    }
    status.disconnect(id);
}
