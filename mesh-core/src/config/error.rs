//! Config errors: every problem in a file, each with its field path and line.
//!
//! A config file is read by people. When it is wrong, they want *all* that is
//! wrong at once (not one error per edit-run cycle), each pointing at the
//! place (`mesh.yaml:12`) and the field (`services.news-service.retry.attempts`)
//! and saying what would be accepted.

use std::fmt;

/// What sort of problem a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigErrorKind {
    /// The text is not valid YAML / TOML / JSON.
    Syntax,
    /// A field that the schema does not have (often a typo).
    UnknownField,
    /// A required field is absent.
    Missing,
    /// A value of the wrong type (a number where a string is expected, ...).
    Type,
    /// A value of the right type that is not allowed (out of range, bad name, ...).
    Invalid,
    /// The same key, address or pair given twice.
    Duplicate,
    /// Two fields that exclude each other, or that disagree.
    Conflict,
    /// A name that refers to nothing (unknown subset or service).
    Reference,
    /// An environment variable is invalid.
    Environment,
}

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path, e.g. `services.news-service.retry.attempts` (empty for the
    /// whole document, the variable name for environment errors).
    pub path: String,
    /// 1-based line in the file, when the format and the problem allow.
    pub line: Option<u32>,
    /// What is wrong and what is allowed.
    pub message: String,
    /// What sort of problem it is.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// A new error.
    pub fn new(
        kind: ConfigErrorKind,
        path: impl Into<String>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            line,
            message: message.into(),
            kind,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config (file or environment).
///
/// Displayed one problem per line, as `origin:line: path: message`, e.g.
/// `mesh.yaml:12: services.news-service.retry.attempts: must be between 1 and 10, got 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// Where the config came from (file name, `environment`, ...).
    pub origin: String,
    /// The problems, in file order where lines are known.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// A set of errors from `origin`.
    pub fn new(origin: impl Into<String>, errors: Vec<ConfigError>) -> Self {
        Self {
            origin: origin.into(),
            errors,
        }
    }

    /// Whether any error is at exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }

    /// The first error at exactly `path`.
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.errors.iter().find(|e| e.path == path)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&self.origin)?;
            if let Some(line) = e.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
            if !e.path.is_empty() {
                write!(f, "{}: ", e.path)?;
            }
            f.write_str(&e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
