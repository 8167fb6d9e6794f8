//! The control plane's core: the store, what is running, and the publisher.
//!
//! Every change goes through [`ControlPlane`]: a config applied or rolled
//! back, an intention created/updated/deleted (a new config version), an
//! endpoint registered, changed, expired or deregistered, a DNS answer that
//! changed. Each one is written to the store first, then a new [`Snapshot`]
//! is built and sent on the watch channel, all under one lock, so snapshots
//! go out in the order the store saw the changes and every snapshot is one
//! the store could be reloaded into. A heartbeat that changes nothing but
//! the deadline publishes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use mesh_core::Endpoint;
use mesh_core::config::{self, ConfigErrors, Format, MeshConfig};
use parking_lot::Mutex;

use crate::state::{Snapshot, SnapshotRx, SnapshotTx, snapshot_channel};
use crate::store::endpoints::RegisterOutcome;
use crate::store::{ConfigVersion, Registered, Registration, Store, StoreError, VersionInfo};

/// Why a config (or intention) change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The result would not be a valid config; nothing changed.
    #[error("invalid config")]
    Invalid(#[source] ConfigErrors),
    /// The version to roll back to, or the intention, does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The intention to create exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// The store failed; nothing changed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// Why the control plane could not start from its store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The running config in the store no longer validates.
    #[error("the stored config version {version} is not valid any more")]
    StoredConfig {
        /// Its version.
        version: u64,
        /// What is wrong with it.
        #[source]
        errors: ConfigErrors,
    },
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The running config version afterwards.
    pub version: u64,
    /// False when the config equalled the running one (no new version).
    pub changed: bool,
}

/// The running state, store and publisher of `meshctl serve`.
#[derive(Debug)]
pub struct ControlPlane {
    inner: Mutex<Inner>,
    tx: SnapshotTx,
    expiry: tokio::sync::Notify,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: Arc<MeshConfig>,
    config_info: Option<VersionInfo>,
    config_source: String,
    registered: Vec<Registered>,
    dns: BTreeMap<String, Vec<Endpoint>>,
}

impl ControlPlane {
    /// Loads the running config and registrations from `store` (expiring
    /// registrations whose TTL ran out while stopped) and builds the first
    /// snapshot.
    pub fn open(mut store: Store, now: SystemTime) -> Result<Self, OpenError> {
        store.expire(now)?;
        let (config, config_info, config_source) = match store.current_config()? {
            Some(cv) => {
                let cfg = parse_stored(&cv).map_err(|errors| OpenError::StoredConfig {
                    version: cv.info.version,
                    errors,
                })?;
                (Arc::new(cfg), Some(cv.info), cv.source)
            }
            None => (Arc::new(MeshConfig::default()), None, String::new()),
        };
        let registered = store.registrations()?;
        let inner = Inner {
            store,
            config,
            config_info,
            config_source,
            registered,
            dns: BTreeMap::new(),
        };
        let mut first = inner.snapshot_without_version();
        first.version = 1;
        let (tx, _) = snapshot_channel(first);
        Ok(Self {
            inner: Mutex::new(inner),
            tx,
            expiry: tokio::sync::Notify::new(),
        })
    }

    /// A receiver of snapshots (the xDS server's side of the contract).
    pub fn subscribe(&self) -> SnapshotRx {
        self.tx.subscribe()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// The running config, its version (none before the first apply) and text.
    pub fn config(&self) -> (Arc<MeshConfig>, Option<VersionInfo>, String) {
        let inner = self.inner.lock();
        (
            inner.config.clone(),
            inner.config_info.clone(),
            inner.config_source.clone(),
        )
    }

    /// The config history, oldest first.
    pub fn versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        self.inner.lock().store.config_versions()
    }

    /// Version `version` of the history, with its text.
    pub fn version(&self, version: u64) -> Result<Option<ConfigVersion>, StoreError> {
        self.inner.lock().store.config_version(version)
    }

    /// Validates `text` and, if valid and different from the running config,
    /// makes it the new running version. On error nothing changes.
    pub fn apply(&self, text: &str, format: Format, origin: &str) -> Result<Applied, ChangeError> {
        let cfg = config::parse_str(text, format, origin).map_err(ChangeError::Invalid)?;
        let mut inner = self.inner.lock();
        if inner.config_info.is_some() && *inner.config == cfg {
            return Ok(Applied {
                version: inner.current_version(),
                changed: false,
            });
        }
        let version = self.commit(&mut inner, cfg, text, format, origin, None)?;
        Ok(Applied {
            version,
            changed: true,
        })
    }

    /// Appends a version equal to `version` (which must exist and still
    /// validate); returns the new version.
    pub fn rollback(&self, version: u64) -> Result<u64, ChangeError> {
        let mut inner = self.inner.lock();
        let old = inner
            .store
            .config_version(version)?
            .ok_or_else(|| ChangeError::NotFound(format!("config version {version}")))?;
        let cfg = parse_stored(&old).map_err(ChangeError::Invalid)?;
        let origin = format!("rollback to {version}");
        self.commit(
            &mut inner,
            cfg,
            &old.source,
            old.info.format,
            &origin,
            Some(version),
        )
    }

    /// Applies a config built from the running one by `edit` (its JSON form),
    /// as a new JSON version (intention changes use this).
    pub(crate) fn edit_config<T>(
        &self,
        origin: &str,
        edit: impl FnOnce(&MeshConfig, &mut serde_json::Value) -> Result<T, ChangeError>,
    ) -> Result<(T, u64), ChangeError> {
        let mut inner = self.inner.lock();
        let mut json = inner.config.to_json();
        let out = edit(&inner.config, &mut json)?;
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| StoreError::BadData(e.to_string()))?;
        let cfg = config::parse_str(&text, Format::Json, origin).map_err(ChangeError::Invalid)?;
        let version = self.commit(&mut inner, cfg, &text, Format::Json, origin, None)?;
        Ok((out, version))
    }

    fn commit(
        &self,
        inner: &mut Inner,
        cfg: MeshConfig,
        text: &str,
        format: Format,
        origin: &str,
        rollback_of: Option<u64>,
    ) -> Result<u64, ChangeError> {
        let now = SystemTime::now();
        let version = inner
            .store
            .append_config(format, text, origin, rollback_of, now)?;
        inner.config = Arc::new(cfg);
        inner.config_source = text.to_string();
        inner.config_info = Some(VersionInfo {
            version,
            created: now,
            format,
            origin: origin.to_string(),
            rollback_of,
        });
        // DNS answers of services that lost their `dns:` no longer count.
        let cfg = inner.config.clone();
        inner
            .dns
            .retain(|s, _| cfg.services.get(s).is_some_and(|s| s.dns.is_some()));
        self.publish(inner);
        Ok(version)
    }

    /// Registers or renews an endpoint; publishes when the endpoint set changed.
    pub fn register(&self, reg: &Registration) -> Result<RegisterOutcome, StoreError> {
        let mut inner = self.inner.lock();
        let outcome = inner.store.register(reg, SystemTime::now())?;
        inner.registered = inner.store.registrations()?;
        if matches!(outcome, RegisterOutcome::Created | RegisterOutcome::Changed) {
            self.publish(&mut inner);
        }
        drop(inner);
        self.expiry.notify_one();
        Ok(outcome)
    }

    /// Renews `(service, id)`; `None` if not registered.
    pub fn heartbeat(&self, service: &str, id: &str) -> Result<Option<Registered>, StoreError> {
        let mut inner = self.inner.lock();
        let found = inner.store.heartbeat(service, id, SystemTime::now())?;
        inner.registered = inner.store.registrations()?;
        Ok(found)
    }

    /// Deregisters `(service, id)`; whether it was registered.
    pub fn deregister(&self, service: &str, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        let found = inner.store.deregister(service, id)?;
        if found {
            inner.registered = inner.store.registrations()?;
            self.publish(&mut inner);
        }
        Ok(found)
    }

    /// Removes registrations whose TTL ran out at `now`; publishes if any did.
    pub fn expire(&self, now: SystemTime) -> Result<Vec<Registered>, StoreError> {
        let mut inner = self.inner.lock();
        let expired = inner.store.expire(now)?;
        if !expired.is_empty() {
            for r in &expired {
                tracing::info!(
                    service = %r.registration.service,
                    id = %r.registration.id,
                    "registered endpoint expired"
                );
            }
            inner.registered = inner.store.registrations()?;
            self.publish(&mut inner);
        }
        Ok(expired)
    }

    /// The earliest expiry among registrations, if any has a TTL.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        let inner = self.inner.lock();
        inner.registered.iter().filter_map(|r| r.expires_at()).min()
    }

    /// Resolves when a registration may have moved the next expiry earlier.
    pub async fn expiry_changed(&self) {
        self.expiry.notified().await;
    }

    /// Every live registration.
    pub fn registrations(&self) -> Vec<Registered> {
        self.inner.lock().registered.clone()
    }

    /// The endpoints DNS found for each service with `dns:`.
    pub fn dns_endpoints(&self) -> BTreeMap<String, Vec<Endpoint>> {
        self.inner.lock().dns.clone()
    }

    /// Records a DNS answer for `service` (ignored if the service no longer
    /// has `dns:`); publishes when it changed.
    pub fn set_dns(&self, service: &str, endpoints: Vec<Endpoint>) {
        let mut inner = self.inner.lock();
        let wanted = inner
            .config
            .services
            .get(service)
            .is_some_and(|s| s.dns.is_some());
        if !wanted || inner.dns.get(service) == Some(&endpoints) {
            return;
        }
        inner.dns.insert(service.to_string(), endpoints);
        self.publish(&mut inner);
    }

    fn publish(&self, inner: &mut Inner) {
        let next = inner.snapshot_without_version();
        self.tx.send_if_modified(|cur| {
            if cur.config_version == next.config_version
                && Arc::ptr_eq(&cur.config, &next.config)
                && cur.discovered == next.discovered
            {
                return false;
            }
            let version = cur.version.saturating_add(1);
            *cur = Arc::new(Snapshot { version, ..next });
            true
        });
    }
}

impl Inner {
    fn current_version(&self) -> u64 {
        self.config_info.as_ref().map_or(0, |i| i.version)
    }

    fn snapshot_without_version(&self) -> Snapshot {
        let mut discovered: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
        for (service, eps) in &self.dns {
            discovered.insert(service.clone(), eps.clone());
        }
        for r in &self.registered {
            let eps = discovered
                .entry(r.registration.service.clone())
                .or_default();
            let ep = r.registration.endpoint.clone();
            // A registration wins over a DNS answer for the same address.
            match eps.iter_mut().find(|e| e.address == ep.address) {
                Some(existing) => *existing = ep,
                None => eps.push(ep),
            }
        }
        discovered.retain(|_, eps| !eps.is_empty());
        Snapshot {
            version: 0,
            config_version: self.current_version(),
            config: self.config.clone(),
            discovered,
        }
    }
}

fn parse_stored(cv: &ConfigVersion) -> Result<MeshConfig, ConfigErrors> {
    let origin = format!("config version {}", cv.info.version);
    config::parse_str(&cv.source, cv.info.format, &origin)
}
