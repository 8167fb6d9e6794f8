//! The compiled policy one config gives a server: mesh-core's
//! [`Intentions`] plus, precomputed, the metric label of every rule that can
//! decide, so a decision is labelled without formatting a string.

use std::sync::Arc;

use mesh_core::MeshConfig;
use mesh_core::config::IntentionRule;
use mesh_core::intentions::{DecidedBy, Intentions, IntentionsError};
use opentelemetry::Value;

/// The label of decisions made by the default policy (no intention matched).
pub const DEFAULT_RULE: &str = "default";

/// Intentions of one config with their rule labels.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) intentions: Intentions,
    /// Per intention (config order), its labels.
    rules: Vec<RuleLabels>,
    default: Value,
}

#[derive(Debug)]
struct RuleLabels {
    /// `app-ui -> news-service`: an L4 intention decided.
    whole: Value,
    /// `prometheus -> * permission 0`: an L7 permission decided.
    permissions: Vec<Value>,
    /// `prometheus -> * no permission`: an L7 intention matched, none of its
    /// permissions did; the default policy applied.
    no_permission: Value,
}

// === impl Engine ===

impl Engine {
    /// Compiles the intentions of `config`.
    pub(crate) fn compile(config: &MeshConfig) -> Result<Engine, IntentionsError> {
        let intentions = Intentions::from_config(config)?;
        let rules = config
            .intentions
            .iter()
            .map(|i| {
                let pair = format!("{} -> {}", i.source, i.destination);
                let permissions = match &i.rule {
                    IntentionRule::Action(_) => Vec::new(),
                    IntentionRule::Permissions(p) => (0..p.len())
                        .map(|n| label(format!("{pair} permission {n}")))
                        .collect(),
                };
                RuleLabels {
                    no_permission: label(format!("{pair} no permission")),
                    whole: label(pair),
                    permissions,
                }
            })
            .collect();
        Ok(Engine {
            intentions,
            rules,
            default: Value::from(DEFAULT_RULE),
        })
    }

    /// The metric label of the rule behind a decision (an `Arc` clone).
    pub(crate) fn rule_label(&self, by: &DecidedBy<'_>) -> Value {
        let found = match *by {
            DecidedBy::Intention {
                index, permission, ..
            } => self.rules.get(index).and_then(|r| match permission {
                None => Some(&r.whole),
                Some(p) => r.permissions.get(p),
            }),
            DecidedBy::NoPermissionMatched { index, .. } => {
                self.rules.get(index).map(|r| &r.no_permission)
            }
            DecidedBy::DefaultPolicy => None,
        };
        found.unwrap_or(&self.default).clone()
    }
}

fn label(s: String) -> Value {
    Value::from(Arc::<str>::from(s))
}
