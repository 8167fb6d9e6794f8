//! SQLite persistence for `meshctl serve`: the one place the control plane's
//! state lives, so that a restart loses nothing.
//!
//! # What is stored
//!
//! - **Config versions** ([`config`]): every applied config is a new row of a
//!   history, with the text as it was sent and its format. The highest version
//!   is the running config. A rollback does not rewrite history: it appends a
//!   new version whose text equals the old one (and remembers which).
//! - **Intentions** live *inside* the config versions, not in a table of
//!   their own: there is one source of truth, so an intention created through
//!   the API is also in `GET /api/v1/config`, and rolling back a config rolls
//!   back its intentions. Every intention change is a new config version
//!   (stored as JSON, rendered by [`mesh_core::config::MeshConfig::to_json`]).
//!   The flip side, as with `kubectl apply`: applying a whole config file
//!   replaces the intentions with the file's.
//! - **Registered endpoints** ([`endpoints`]): endpoints registered through
//!   the API, each with its TTL and the wall-clock time of its last heartbeat,
//!   so that an endpoint whose TTL ran out while the control plane was down
//!   is expired at the next start.
//! - **`schema_migrations`**: which schema migrations ran. Migrations are
//!   applied in order at open; a database from a newer `meshctl` is refused.
//!
//! # One process per data directory
//!
//! The database is opened in SQLite's exclusive locking mode and locked at
//! open, so a second `meshctl serve` on the same data directory fails at once
//! with [`StoreError::Locked`] naming the file, instead of two control
//! planes silently fighting over it. A file that is not a SQLite database is
//! [`StoreError::Corrupt`], also naming the file.
//!
//! Every operation is a short statement on a local file; callers hold the
//! [`Store`] behind a mutex and call it from async code directly.

pub mod config;
pub mod endpoints;
mod schema;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use config::{ConfigVersion, VersionInfo};
pub use endpoints::{Registered, Registration};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "mesh.db";

/// How long opening waits for another process's lock before giving up.
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the database (another `meshctl serve` on the
    /// same data directory, most likely).
    #[error(
        "the database {} is locked by another process (is another `meshctl serve` using this data directory?)",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database, or is damaged.
    #[error("the database {} is corrupt or not a SQLite database", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer `meshctl` (unknown migrations).
    #[error(
        "the database {} has schema version {found}, newer than this meshctl knows ({known})",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The highest migration in the file.
        found: i64,
        /// The highest migration this build knows.
        known: i64,
    },
    /// Any other SQLite failure while opening.
    #[error("cannot open the database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("database error")]
    Sql(#[from] rusqlite::Error),
    /// A stored row could not be read back (edited by hand?).
    #[error("bad stored data: {0}")]
    BadData(String),
}

/// The SQLite database of one data directory.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `DIR/mesh.db`, locks it for this process
    /// and brings its schema up to date.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::open(&dir.join(DB_FILE))
    }

    /// Opens (creating if needed) the database file `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let classify = |source: rusqlite::Error| classify_open_error(&path, source);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(classify)?;
        conn.busy_timeout(OPEN_BUSY_TIMEOUT).map_err(classify)?;
        // Exclusive mode keeps the lock taken below until the connection closes.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(classify)?;
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
            .map_err(classify)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(classify)?;
        let mut store = Self { conn, path };
        schema::migrate(&mut store.conn).map_err(|e| match e {
            schema::MigrateError::TooNew { found, known } => StoreError::TooNew {
                path: store.path.clone(),
                found,
                known,
            },
            schema::MigrateError::Sql(source) => classify_open_error(&store.path, source),
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The migrations applied, in order.
    pub fn migrations(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn classify_open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked { path, source }
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, source }
        }
        _ => StoreError::Open { path, source },
    }
}

/// Milliseconds since the Unix epoch (0 before it; saturating far after).
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
