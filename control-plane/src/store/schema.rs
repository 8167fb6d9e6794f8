//! Schema migrations: numbered SQL scripts, applied once each, in order.
//!
//! A migration is never edited after release; a schema change is a new entry
//! at the end of [`MIGRATIONS`].

use rusqlite::{Connection, OptionalExtension};

use super::unix_ms;

/// The migrations, version `i + 1` at index `i`.
const MIGRATIONS: &[&str] = &[
    // 1: config history and registered endpoints.
    "CREATE TABLE config_versions (
         version     INTEGER PRIMARY KEY,
         created_ms  INTEGER NOT NULL,
         format      TEXT    NOT NULL,
         source      TEXT    NOT NULL,
         origin      TEXT    NOT NULL,
         rollback_of INTEGER
     );
     CREATE TABLE endpoints (
         service      TEXT    NOT NULL,
         id           TEXT    NOT NULL,
         address      TEXT    NOT NULL,
         weight       INTEGER NOT NULL,
         zone         TEXT,
         labels       TEXT    NOT NULL,
         ttl_ms       INTEGER,
         registered_ms INTEGER NOT NULL,
         heartbeat_ms INTEGER NOT NULL,
         PRIMARY KEY (service, id)
     );",
];

/// Why migrating failed.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The file has migrations this build does not know.
    TooNew { found: i64, known: i64 },
    /// SQLite failed.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

/// Applies the migrations `conn` lacks, all in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_ms INTEGER NOT NULL
         );",
    )?;
    let applied: i64 = tx
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if applied > known {
        return Err(MigrateError::TooNew {
            found: applied,
            known,
        });
    }
    let now = unix_ms(std::time::SystemTime::now());
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
        if version <= applied {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
            (version, now),
        )?;
    }
    tx.commit()?;
    Ok(())
}
