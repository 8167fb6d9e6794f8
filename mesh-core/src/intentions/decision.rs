//! The outcome of an authorization check and the rule that decided it.

use std::fmt;

use crate::config::Action;

/// What [`Intentions::decide`](super::Intentions::decide) concluded.
///
/// Borrows the names of the deciding intention from the
/// [`Intentions`](super::Intentions) it came from, so a decision costs no
/// allocation. Its [`Display`](fmt::Display) is meant for log lines:
/// `denied by intention #2 (* -> news-service)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allow or deny.
    pub action: Action,
    /// Which rule decided.
    pub decided_by: DecidedBy<'a>,
}

/// The rule behind a [`Decision`].
///
/// `index` is the intention's position in the list given to
/// [`Intentions::new`](super::Intentions::new) (0-based, as in the config path
/// `intentions[2]`); `source` and `destination` are its names as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy<'a> {
    /// An intention decided: an L4 intention by its action (`permission` is
    /// `None`), an L7 intention by its first matching permission (`permission`
    /// is that permission's index).
    Intention {
        /// Index of the intention.
        index: usize,
        /// Its source as written.
        source: &'a str,
        /// Its destination as written.
        destination: &'a str,
        /// Index of the deciding permission, for an L7 intention.
        permission: Option<usize>,
    },
    /// The most specific matching intention is an L7 intention and none of its
    /// permissions matched the request: the default policy applied, as in
    /// Consul. Lower-precedence intentions are *not* consulted.
    NoPermissionMatched {
        /// Index of the intention.
        index: usize,
        /// Its source as written.
        source: &'a str,
        /// Its destination as written.
        destination: &'a str,
    },
    /// No intention matched the source and destination: the default policy
    /// applied.
    DefaultPolicy,
}

// === impl Decision ===

impl Decision<'_> {
    /// Whether the request may pass.
    pub fn is_allowed(&self) -> bool {
        self.action == Action::Allow
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.action {
            Action::Allow => "allowed",
            Action::Deny => "denied",
        };
        match self.decided_by {
            DecidedBy::Intention {
                index,
                source,
                destination,
                permission,
            } => {
                write!(
                    f,
                    "{verb} by intention #{index} ({source} -> {destination})"
                )?;
                if let Some(p) = permission {
                    write!(f, " permission #{p}")?;
                }
                Ok(())
            }
            DecidedBy::NoPermissionMatched {
                index,
                source,
                destination,
            } => write!(
                f,
                "{verb} by default policy: no permission of intention #{index} ({source} -> {destination}) matched"
            ),
            DecidedBy::DefaultPolicy => write!(f, "{verb} by default policy: no intention matched"),
        }
    }
}
