//! The background tasks of `meshctl serve`: TTL expiry and DNS watches.
//!
//! Both feed [`ControlPlane`], which publishes a snapshot when something
//! changed; both end when their task is aborted at shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use mesh_core::config::DnsTarget;
use mesh_discovery::dns::DnsConfig;
use mesh_discovery::{DnsSource, EndpointSet};
use tokio::task::JoinHandle;

use super::control::ControlPlane;

/// The longest the expiry task sleeps without looking (wall-clock jumps,
/// missed notifications).
const MAX_EXPIRY_SLEEP: Duration = Duration::from_secs(5);
/// Slack after a deadline, so the deadline has surely passed when we look.
const EXPIRY_SLACK: Duration = Duration::from_millis(5);

/// Expires registrations as their TTLs run out: sleeps until the earliest
/// deadline (or until a registration may have moved it), then expires.
pub(crate) async fn expire(control: Arc<ControlPlane>) {
    loop {
        let wait = control
            .next_expiry()
            .map(|at| {
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            })
            .map_or(MAX_EXPIRY_SLEEP, |d| {
                (d + EXPIRY_SLACK).min(MAX_EXPIRY_SLEEP)
            });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = control.expiry_changed() => {}
        }
        if let Err(e) = control.expire(SystemTime::now()) {
            tracing::warn!(error = %e, "expiring registrations failed");
        }
    }
}

/// Keeps one DNS watch per service with `dns:` in the running config,
/// following config changes, and records every answer.
pub(crate) async fn dns(control: Arc<ControlPlane>, server: Option<SocketAddr>) {
    let mut snapshots = control.subscribe();
    let mut source: Option<DnsSource> = None;
    let mut watches: BTreeMap<String, (DnsTarget, AbortOnDrop)> = BTreeMap::new();
    loop {
        let wanted: BTreeMap<String, DnsTarget> = snapshots
            .borrow_and_update()
            .config
            .services
            .iter()
            .filter_map(|(name, s)| s.dns.clone().map(|t| (name.clone(), t)))
            .collect();
        watches.retain(|name, (target, task)| {
            let keep = wanted.get(name) == Some(target);
            if !keep {
                task.0.abort();
                control.set_dns(name, Vec::new());
            }
            keep
        });
        for (name, target) in wanted {
            if watches.contains_key(&name) {
                continue;
            }
            if source.is_none() {
                match DnsSource::new(DnsConfig {
                    server,
                    ..DnsConfig::default()
                }) {
                    Ok(s) => source = Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "no DNS resolver: services with `dns:` get no DNS endpoints");
                        break;
                    }
                }
            }
            let Some(src) = source.as_ref() else { break };
            let mut stream = src.watch_target(target.clone());
            let control = control.clone();
            let service = name.clone();
            let task = tokio::spawn(async move {
                let mut set = EndpointSet::new();
                while let Some(update) = stream.next().await {
                    set.apply(update);
                    control.set_dns(&service, set.endpoints());
                }
            });
            watches.insert(name, (target, AbortOnDrop(task)));
        }
        if snapshots.changed().await.is_err() {
            break;
        }
    }
}

/// A task that is aborted when its handle is dropped (here: when the DNS
/// task itself is aborted at shutdown, its watches go with it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
