//! The config history: one row per applied config, the highest is running.

use std::time::SystemTime;

use mesh_core::config::Format;
use rusqlite::{OptionalExtension, Row};

use super::{Store, StoreError, from_unix_ms, unix_ms};

/// One applied config, with its text.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    /// What is known of the version.
    pub info: VersionInfo,
    /// The config text as it was applied.
    pub source: String,
}

/// One entry of the config history, without its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// 1, 2, 3...: the row in the history.
    pub version: u64,
    /// When it was applied.
    pub created: SystemTime,
    /// The format of the text.
    pub format: Format,
    /// Who made it: `apply`, `--config FILE`, `intention create`, ...
    pub origin: String,
    /// For a rollback: the version whose text this one repeats.
    pub rollback_of: Option<u64>,
}

/// The name of a format in the database and the API.
pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::Yaml => "yaml",
        Format::Toml => "toml",
        Format::Json => "json",
    }
}

impl Store {
    /// The running config: the highest version, if any config was applied.
    pub fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.conn
            .query_row(
                "SELECT version, created_ms, format, origin, rollback_of, source
                 FROM config_versions ORDER BY version DESC LIMIT 1",
                [],
                row_to_version,
            )
            .optional()?
            .transpose()
    }

    /// Version `version` of the history, if it exists.
    pub fn config_version(&self, version: u64) -> Result<Option<ConfigVersion>, StoreError> {
        let Ok(v) = i64::try_from(version) else {
            return Ok(None);
        };
        self.conn
            .query_row(
                "SELECT version, created_ms, format, origin, rollback_of, source
                 FROM config_versions WHERE version = ?1",
                [v],
                row_to_version,
            )
            .optional()?
            .transpose()
    }

    /// The whole history, oldest first.
    pub fn config_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT version, created_ms, format, origin, rollback_of
             FROM config_versions ORDER BY version",
        )?;
        let rows = stmt.query_map([], |r| Ok(row_to_info(r)))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Appends a version (the new running config) and returns its number.
    pub fn append_config(
        &mut self,
        format: Format,
        source: &str,
        origin: &str,
        rollback_of: Option<u64>,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        let rollback_of = rollback_of.and_then(|v| i64::try_from(v).ok());
        let tx = self.conn.transaction()?;
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM config_versions",
            [],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO config_versions (version, created_ms, format, source, origin, rollback_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                next,
                unix_ms(now),
                format_name(format),
                source,
                origin,
                rollback_of,
            ),
        )?;
        tx.commit()?;
        u64::try_from(next).map_err(|_| StoreError::BadData(format!("config version {next}")))
    }
}

fn row_to_info(r: &Row<'_>) -> Result<VersionInfo, StoreError> {
    let version: i64 = r.get(0)?;
    let created: i64 = r.get(1)?;
    let format: String = r.get(2)?;
    let origin: String = r.get(3)?;
    let rollback_of: Option<i64> = r.get(4)?;
    Ok(VersionInfo {
        version: u64::try_from(version)
            .map_err(|_| StoreError::BadData(format!("config version {version}")))?,
        created: from_unix_ms(created),
        format: format
            .parse()
            .map_err(|_| StoreError::BadData(format!("config format `{format}`")))?,
        origin,
        rollback_of: rollback_of.and_then(|v| u64::try_from(v).ok()),
    })
}

fn row_to_version(r: &Row<'_>) -> rusqlite::Result<Result<ConfigVersion, StoreError>> {
    let source: String = r.get(5)?;
    Ok(row_to_info(r).map(|info| ConfigVersion { info, source }))
}
