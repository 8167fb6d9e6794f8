//! The watched config file (`MESH_CONFIG`).

/// Why the config file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading the file failed.
    #[error("could not read the file")]
    Read(#[source] std::io::Error),
}
