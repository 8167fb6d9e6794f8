//! The pool's background task: applies discovery updates and config
//! changes, and runs outlier detection every `interval`.
//!
//! One task per pool, holding only a weak reference: it ends when the last
//! handle to the pool is dropped (the pool's drop closes the shutdown
//! channel, which wakes the task even while discovery is silent).

use std::future::pending;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use mesh_core::MeshConfig;
use mesh_discovery::{DiscoveryError, Update, UpdateStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::pool::PoolShared;

/// What to do with each new config.
pub(crate) type ApplyConfig = Box<dyn FnMut(&PoolShared, &MeshConfig) + Send>;

/// A live config the task follows, and what to do with each new one.
pub(crate) struct ConfigFollow {
    pub(crate) rx: watch::Receiver<Arc<MeshConfig>>,
    pub(crate) apply: ApplyConfig,
}

enum Event {
    Shutdown,
    Update(Option<Update>),
    Config(bool),
    Tick,
}

pub(crate) async fn run(
    weak: Weak<PoolShared>,
    mut shutdown: oneshot::Receiver<()>,
    updates: Option<Result<UpdateStream, DiscoveryError>>,
    mut follow: Option<ConfigFollow>,
) {
    let mut updates = match updates {
        Some(Ok(stream)) => Some(stream),
        Some(Err(err)) => {
            if let Some(shared) = weak.upgrade() {
                shared.fail(&err);
            }
            None
        }
        None => None,
    };
    if let Some(f) = follow.as_mut() {
        // Apply the config as it is now: it may have changed since the
        // pool was built.
        let config = f.rx.borrow_and_update().clone();
        let Some(shared) = weak.upgrade() else { return };
        (f.apply)(&shared, &config);
    }
    let mut next_eval = next_tick(&weak);
    loop {
        let event = tokio::select! {
            biased;
            _ = &mut shutdown => Event::Shutdown,
            update = async {
                match updates.as_mut() {
                    Some(s) => s.next().await,
                    None => pending().await,
                }
            } => Event::Update(update),
            changed = async {
                match follow.as_mut() {
                    Some(f) => f.rx.changed().await.is_ok(),
                    None => pending().await,
                }
            } => Event::Config(changed),
            () = async {
                match next_eval {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => pending().await,
                }
            } => Event::Tick,
        };
        let Some(shared) = weak.upgrade() else { return };
        match event {
            Event::Shutdown => return,
            Event::Update(Some(update)) => shared.apply_update(update),
            // The source ended: keep the last set (fail static).
            Event::Update(None) => updates = None,
            Event::Config(true) => {
                if let Some(f) = follow.as_mut() {
                    let config = f.rx.borrow_and_update().clone();
                    (f.apply)(&shared, &config);
                    next_eval = tick_after(&shared);
                }
            }
            Event::Config(false) => follow = None,
            Event::Tick => {
                shared.evaluate();
                next_eval = tick_after(&shared);
            }
        }
    }
}

fn next_tick(weak: &Weak<PoolShared>) -> Option<Instant> {
    weak.upgrade().and_then(|s| tick_after(&s))
}

fn tick_after(shared: &Arc<PoolShared>) -> Option<Instant> {
    shared
        .interval()
        .filter(|i| !i.is_zero())
        .map(|i| Instant::now() + i)
}
