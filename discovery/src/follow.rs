//! Following a live config: a per-service stream that switches source when
//! the config changes what the service resolves to. Shared by
//! [`Resolver`](crate::resolve::Resolver) and
//! [`FileSource`](crate::file::FileSource).

use std::sync::{Arc, Mutex};

use futures_util::stream::{self, StreamExt};
use mesh_core::MeshConfig;
use tokio::sync::watch;

use crate::dns::{DnsConfig, DnsSource};
use crate::error::DiscoveryError;
use crate::resolve::Plan;
use crate::static_source::fixed_stream;
use crate::update::{Update, UpdateStream};

/// A DNS source built on first use and shared by clones.
#[derive(Clone)]
pub(crate) struct DnsCell {
    config: DnsConfig,
    built: Arc<Mutex<Option<DnsSource>>>,
}

impl DnsCell {
    pub(crate) fn new(config: DnsConfig) -> Self {
        Self {
            config,
            built: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn config(&self) -> &DnsConfig {
        &self.config
    }

    /// The source, building it now if needed.
    pub(crate) fn get(&self) -> Result<DnsSource, DiscoveryError> {
        let mut guard = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let d = DnsSource::new(self.config.clone())?;
        *guard = Some(d.clone());
        Ok(d)
    }
}

/// The stream of one plan; `None` (the service is unknown) is a single
/// `DoesNotExist`.
pub(crate) fn plan_stream(
    plan: Option<&Plan>,
    dns: &DnsCell,
) -> Result<UpdateStream, DiscoveryError> {
    Ok(match plan {
        Some(Plan::Static { endpoints, .. }) => fixed_stream(endpoints.clone()),
        Some(Plan::Dns { target, .. }) => dns.get()?.watch_target(target.clone()),
        None => stream::once(async { Update::DoesNotExist })
            .chain(stream::pending())
            .boxed(),
    })
}

struct Follow<F> {
    rx: watch::Receiver<Arc<MeshConfig>>,
    rx_alive: bool,
    plan_of: F,
    plan: Option<Plan>,
    inner: UpdateStream,
    dns: DnsCell,
    what: String,
}

/// Follows `rx`: the stream of `plan_of(config)`, switched whenever the plan
/// changes. Errors only if the initial plan's source cannot be built; a later
/// plan that cannot be built is logged and the current one kept.
pub(crate) fn follow<F>(
    mut rx: watch::Receiver<Arc<MeshConfig>>,
    plan_of: F,
    dns: DnsCell,
    what: String,
) -> Result<UpdateStream, DiscoveryError>
where
    F: Fn(&MeshConfig) -> Option<Plan> + Send + 'static,
{
    let plan = plan_of(&rx.borrow_and_update());
    let inner = plan_stream(plan.as_ref(), &dns)?;
    let st = Follow {
        rx,
        rx_alive: true,
        plan_of,
        plan,
        inner,
        dns,
        what,
    };
    Ok(stream::unfold(st, |mut st| async move {
        loop {
            tokio::select! {
                biased;
                changed = st.rx.changed(), if st.rx_alive => {
                    if changed.is_err() {
                        // The config's source is gone: keep following the last plan.
                        st.rx_alive = false;
                        continue;
                    }
                    let plan = (st.plan_of)(&st.rx.borrow_and_update());
                    if plan == st.plan {
                        continue;
                    }
                    match plan_stream(plan.as_ref(), &st.dns) {
                        Ok(s) => {
                            tracing::info!(
                                service = %st.what,
                                origin = plan.as_ref().map_or("none", |p| p.origin().as_str()),
                                "service source changed"
                            );
                            st.inner = s;
                            st.plan = plan;
                        }
                        Err(e) => tracing::warn!(
                            service = %st.what,
                            error = %crate::error::error_chain(&e),
                            "cannot switch source; keeping the current one"
                        ),
                    }
                }
                update = st.inner.next() => match update {
                    Some(u) => return Some((u, st)),
                    // Sources do not end; if one does, wait for config changes only.
                    None => st.inner = stream::pending::<Update>().boxed(),
                },
            }
        }
    })
    .boxed())
}
