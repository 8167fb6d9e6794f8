//! The watched config file (`MESH_CONFIG`).
//!
//! [`FileSource`] loads the file once (that first load must succeed: there is
//! no last good config yet), then watches it two ways:
//!
//! - a `notify` watcher on the file's **directory** (editors often replace a
//!   file by writing a temporary file and renaming it over the original,
//!   which a watch on the file itself would lose);
//! - a **polling** fallback every [`FileOptions::poll_interval`], comparing
//!   the file's modification time and size (for file systems where events
//!   do not arrive: network mounts, some container volumes).
//!
//! Bursts of events are debounced ([`FileOptions::debounce`]); a file that
//! changes while it is being read is read again; and a reload only parses when
//! the content hash changed.
//!
//! **A bad edit keeps the last good config.** The full validation error is
//! logged (`tracing::error!`, every cause) and kept in
//! [`FileSource::last_error`]; nothing is published. The next good edit is
//! published and clears the error. A deleted file is also an error that
//! keeps the last good config.
//!
//! Configs are published on a `tokio::sync::watch` channel
//! ([`FileSource::subscribe`]), only when the parsed config differs from the
//! current one. As a [`Discover`] source, the file yields per service the
//! `endpoints` of `services.<name>` or a DNS watch of `services.<name>.dns`,
//! and `DoesNotExist` while the file has neither for it; a
//! [`Resolver`](crate::resolve::Resolver) fed with [`FileSource::subscribe`]
//! adds the fallbacks (`MESH_ENDPOINTS_*`, DNS of the name).

mod watcher;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::MeshConfig;
use mesh_core::config::{ConfigErrors, Format, MeshEnv, parse_str};
use tokio::sync::watch;

use crate::dns::DnsConfig;
use crate::error::DiscoveryError;
use crate::follow::{DnsCell, follow};
use crate::resolve::{Origin, Plan};
use crate::source::Discover;
use crate::update::{UpdateStream, normalize};

/// Turns the file's text into a config: `(text, path) -> config`.
/// [`default_loader`] parses YAML/TOML/JSON by extension with
/// [`mesh_core::config::parse_str`].
pub type Loader = Arc<dyn Fn(&str, &Path) -> Result<MeshConfig, ConfigErrors> + Send + Sync>;

/// The standard loader: [`parse_str`] with the format from the file's
/// extension (`.toml`, `.json`, else YAML) and the path as the error origin;
/// then, if `env` is given, [`MeshConfig::apply_env`] (services without
/// endpoints or dns take `MESH_ENDPOINTS_<SVC>`).
pub fn default_loader(env: Option<MeshEnv>) -> Loader {
    Arc::new(move |text: &str, path: &Path| {
        let mut config = parse_str(text, Format::from_path(path), &path.display().to_string())?;
        if let Some(env) = &env {
            config.apply_env(env);
        }
        Ok(config)
    })
}

/// Why the config file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading the file failed (missing, unreadable, not UTF-8).
    #[error("could not read `{path}`")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a valid config.
    #[error("`{path}` is not a valid config")]
    Invalid {
        /// The file.
        path: String,
        /// Every problem found (each with its field path and line).
        #[source]
        source: ConfigErrors,
    },
    /// There is no tokio runtime to run the watcher on.
    #[error("FileSource needs a tokio runtime")]
    NoRuntime,
}

/// How the file is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    /// Check the file's mtime and size this often, events or not (default 2s).
    pub poll_interval: Duration,
    /// Wait this long after an event before reloading, to let a burst of
    /// writes finish (default 100ms).
    pub debounce: Duration,
    /// Whether to use file-system events (`notify`); polling runs anyway
    /// (default true).
    pub use_events: bool,
    /// How DNS targets of the file's services are resolved.
    pub dns: DnsConfig,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            debounce: Duration::from_millis(100),
            use_events: true,
            dns: DnsConfig::default(),
        }
    }
}

/// A config file, watched; see the module docs.
pub struct FileSource {
    path: PathBuf,
    rx: watch::Receiver<Arc<MeshConfig>>,
    last_error: Arc<Mutex<Option<Arc<FileError>>>>,
    dns: DnsCell,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        // Subscribers keep the last config (their `changed()` ends).
        self.task.abort();
    }
}

/// What a load saw: content hash, to skip re-parsing an unchanged file.
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn load(path: &Path, loader: &Loader) -> (Option<u64>, Result<MeshConfig, FileError>) {
    let display = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(source) => {
            return (
                None,
                Err(FileError::Read {
                    path: display,
                    source,
                }),
            );
        }
    };
    let fp = fingerprint(&bytes);
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let source = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            return (
                Some(fp),
                Err(FileError::Read {
                    path: display,
                    source,
                }),
            );
        }
    };
    let result = loader(&text, path).map_err(|source| FileError::Invalid {
        path: display,
        source,
    });
    (Some(fp), result)
}

impl FileSource {
    /// Loads `path` with the [`default_loader`] (no environment overlay) and
    /// starts watching it. Fails if the first load fails or there is no tokio
    /// runtime.
    pub fn open(path: impl Into<PathBuf>, options: FileOptions) -> Result<Self, DiscoveryError> {
        Self::open_with(path, options, default_loader(None))
    }

    /// Loads `path` with `loader` and starts watching it. Fails if the first
    /// load fails or there is no tokio runtime.
    pub fn open_with(
        path: impl Into<PathBuf>,
        options: FileOptions,
        loader: Loader,
    ) -> Result<Self, DiscoveryError> {
        let path: PathBuf = path.into();
        let wrap = |source: FileError| DiscoveryError::File {
            path: path.display().to_string(),
            source,
        };
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| wrap(FileError::NoRuntime))?;
        // Watch first, then load: a change in between is not lost.
        let notify = Arc::new(tokio::sync::Notify::new());
        let events = if options.use_events {
            watcher::start_events(&path, notify.clone())
        } else {
            None
        };
        let initial_stat = watcher::stat(&path);
        let (fp, first) = load(&path, &loader);
        let config = first.map_err(wrap)?;
        let (tx, rx) = watch::channel(Arc::new(config));
        let last_error = Arc::new(Mutex::new(None));
        let task = handle.spawn(watcher::run(watcher::Watch {
            path: path.clone(),
            options: options.clone(),
            loader,
            tx,
            last_error: last_error.clone(),
            last_fingerprint: fp,
            initial_stat,
            notify,
            _events: events,
        }));
        Ok(Self {
            path,
            rx,
            last_error,
            dns: DnsCell::new(options.dns),
            task,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current (last good) config.
    pub fn current(&self) -> Arc<MeshConfig> {
        self.rx.borrow().clone()
    }

    /// A receiver of configs: the current one, then each new good one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MeshConfig>> {
        self.rx.clone()
    }

    /// The error of the last load, if it failed (cleared by a good load).
    pub fn last_error(&self) -> Option<Arc<FileError>> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the file alone says about one service: its endpoints, or its DNS
/// target; `None` when it has neither.
pub fn file_plan(config: &MeshConfig, service: &str) -> Option<Plan> {
    let svc = config.services.get(service)?;
    if !svc.endpoints.is_empty() {
        return Some(Plan::Static {
            origin: Origin::Config,
            endpoints: normalize(svc.endpoints.clone()),
        });
    }
    svc.dns.as_ref().map(|t| Plan::Dns {
        origin: Origin::Config,
        target: t.clone(),
    })
}

impl Discover for FileSource {
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError> {
        let name = service.to_string();
        follow(
            self.rx.clone(),
            move |c| file_plan(c, &name),
            self.dns.clone(),
            service.to_string(),
        )
    }
}

#[cfg(test)]
mod tests;
