//! The reload task of a [`FileSource`](super::FileSource): events + polling,
//! debounce, content hash, publish good configs, keep bad ones out.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mesh_core::MeshConfig;
use notify::Watcher;
use tokio::sync::{Notify, watch};

use super::{FileError, FileOptions, Loader, load};
use crate::error::error_chain;

pub(super) struct Watch {
    pub path: PathBuf,
    pub options: FileOptions,
    pub loader: Loader,
    pub tx: watch::Sender<Arc<MeshConfig>>,
    pub last_error: Arc<Mutex<Option<Arc<FileError>>>>,
    pub last_fingerprint: Option<u64>,
    /// mtime and size when the first load read the file.
    pub initial_stat: Option<(SystemTime, u64)>,
    /// Woken by file-system events.
    pub notify: Arc<Notify>,
    /// Kept alive as long as the task runs.
    pub _events: Option<notify::RecommendedWatcher>,
}

pub(super) fn stat(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Starts a `notify` watcher on the file's directory; `None` (polling only)
/// if that fails.
pub(super) fn start_events(
    path: &std::path::Path,
    notify: Arc<Notify>,
) -> Option<notify::RecommendedWatcher> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
            if ours || ev.paths.is_empty() {
                notify.notify_one();
            }
        }
        Err(_) => notify.notify_one(),
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "file events unavailable; polling only");
            return None;
        }
    };
    if let Err(e) = w.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; polling only");
        return None;
    }
    Some(w)
}

pub(super) async fn run(mut w: Watch) {
    let notify = w.notify.clone();
    let mut last_stat = w.initial_stat;
    loop {
        let event = tokio::select! {
            _ = notify.notified() => true,
            _ = tokio::time::sleep(w.options.poll_interval) => false,
        };
        let now_stat = stat(&w.path);
        if !event && now_stat == last_stat {
            continue;
        }
        if event {
            tokio::time::sleep(w.options.debounce).await;
        }
        last_stat = reload(&mut w).await;
    }
}

/// How many times a reload re-reads a file that is still changing.
const STABLE_READ_ATTEMPTS: usize = 5;

/// Loads the file and publishes a good config; returns the file's stat as
/// read. A read counts only when the file's mtime and size were the same
/// before and after it *and* still are one debounce later: a writer that
/// truncates and then writes (as `std::fs::write` and many editors do) can
/// be caught between the two, and an empty or cut-off file may well parse
/// as a valid config that drops services. After `STABLE_READ_ATTEMPTS` the
/// last read is taken, so a file that never settles is still followed.
async fn reload(w: &mut Watch) -> Option<(SystemTime, u64)> {
    let mut attempt = 0;
    let (before, fp, result) = loop {
        attempt += 1;
        let path = w.path.clone();
        let loader = w.loader.clone();
        let read = tokio::task::spawn_blocking(move || {
            let before = stat(&path);
            let (fp, result) = load(&path, &loader);
            (before, stat(&path), fp, result)
        })
        .await;
        let Ok((before, after, fp, result)) = read else {
            return stat(&w.path);
        };
        tokio::time::sleep(w.options.debounce).await;
        let settled = before == after && stat(&w.path) == after;
        if settled || attempt >= STABLE_READ_ATTEMPTS {
            break (before, fp, result);
        }
    };
    publish(w, fp, result);
    before
}

fn publish(w: &mut Watch, fp: Option<u64>, result: Result<MeshConfig, FileError>) {
    if fp.is_some() && fp == w.last_fingerprint {
        return;
    }
    w.last_fingerprint = fp;
    match result {
        Ok(config) => {
            let changed = w.tx.send_if_modified(|cur| {
                if **cur == config {
                    false
                } else {
                    *cur = Arc::new(config);
                    true
                }
            });
            let had_error = w
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some();
            if changed || had_error {
                tracing::info!(path = %w.path.display(), changed, "config file reloaded");
            }
        }
        Err(e) => {
            tracing::error!(
                path = %w.path.display(),
                error = %error_chain(&e),
                "config file rejected; keeping the last good config"
            );
            *w.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(e));
        }
    }
}
