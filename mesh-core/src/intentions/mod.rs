//! Intentions: Consul-style authorization of service-to-service calls, at L4
//! (allow or deny a caller) and L7 (allow or deny by path, method, headers).
//!
//! # The model
//!
//! An [`Intention`] says whether `source` may call `destination`. Either side
//! is a service (`news-service`, meaning namespace `default`; or
//! `prod/news-service`), every service of a namespace (`prod/*`), or every
//! service (`*`). An L4 intention carries one [`Action`]; an L7 intention
//! carries a list of [`Permission`]s, each a request matcher (path
//! exact/prefix/regex, methods, headers) with an action.
//!
//! A server asks [`Intentions::decide`] with the caller's SPIFFE ID (from its
//! mTLS client certificate), its own service name and the request. The answer
//! follows Consul:
//!
//! 1. **Most specific wins.** Of the intentions whose source and destination
//!    match, only those of the highest [`precedence`] count (Consul's table: an
//!    exact destination beats a wildcard one, then an exact source beats a
//!    wildcard one; see [`precedence`] for all nine ranks). File order does
//!    not matter.
//! 2. **Deny wins ties.** Several intentions of equal precedence (the same
//!    source and destination written twice) are all evaluated; if any denies,
//!    the request is denied.
//! 3. **L7: first matching permission decides.** Permissions are tried in
//!    order and the first that matches gives the action. When none matches,
//!    the [default policy](crate::config::MeshConfig::default_policy) applies
//!    (Consul: "traffic that fails to match any of the provided permissions in
//!    this intention will be subject to the default intention behavior"); a
//!    less specific intention is *not* consulted, so an L7 intention fully
//!    owns its source/destination pair. Write a last catch-all permission to
//!    choose otherwise.
//! 4. **No intention matches:** the default policy (`allow` or `deny`).
//!
//! # Who the caller is
//!
//! Only a SPIFFE ID of our trust domain with the path
//! `/ns/<namespace>/svc/<service>` names a service. Any other caller (an ID
//! from a foreign trust domain, an ID of another shape, or no ID at all on a
//! plaintext connection) matches only intentions whose source is `*`. This
//! keeps `source: app-ui` from being satisfied by `app-ui` of somebody else's
//! trust domain, while `* -> x: deny` still denies everyone.
//!
//! # Cost
//!
//! [`Intentions::new`] compiles every matcher (regexes included) once and
//! indexes intentions by destination, then by source. A decision is then at
//! most twelve hash lookups plus the permissions of the one winning
//! intention, whatever the number of intentions, and allocates nothing.
//!
//! ```
//! use mesh_core::config::{Action, Intention, IntentionRule};
//! use mesh_core::identity::SpiffeId;
//! use mesh_core::intentions::Intentions;
//! use mesh_core::route::SimpleRequest;
//!
//! let rules = vec![
//!     Intention { source: "app-ui".into(), destination: "news-service".into(), rule: IntentionRule::Action(Action::Allow) },
//!     Intention { source: "*".into(), destination: "news-service".into(), rule: IntentionRule::Action(Action::Deny) },
//! ];
//! let intentions = Intentions::new(&rules, Action::Allow, "mesh.local")?;
//! let ui = SpiffeId::for_service("mesh.local", "default", "app-ui")?;
//! let other = SpiffeId::for_service("mesh.local", "default", "other")?;
//! let req = SimpleRequest::new("GET", "/news");
//! assert!(intentions.decide(Some(&ui), "news-service", &req).is_allowed());
//! let denied = intentions.decide(Some(&other), "news-service", &req);
//! assert_eq!(denied.to_string(), "denied by intention #1 (* -> news-service)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decision;
mod index;
mod name;

#[cfg(test)]
mod tests;

pub use decision::{DecidedBy, Decision};
pub use name::{NameError, precedence};

use crate::config::{Action, Intention, IntentionRule, MeshConfig, Permission};
use crate::identity::{SpiffeId, SpiffeIdError, validate_trust_domain};
use crate::route::matcher::{MatcherError, RequestMatcher, RequestView};

use index::{Bucket, Level};
use name::{NamePattern, split_service};

/// Why a set of intentions could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum IntentionsError {
    /// The trust domain is not a valid SPIFFE trust domain.
    #[error("invalid trust domain {trust_domain:?}")]
    TrustDomain {
        /// The trust domain as given.
        trust_domain: String,
        /// What is wrong with it.
        #[source]
        source: SpiffeIdError,
    },
    /// A source or destination is not a valid intention name.
    #[error("intentions[{index}].{field}: invalid name {name:?}")]
    Name {
        /// Index of the intention.
        index: usize,
        /// `source` or `destination`.
        field: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        #[source]
        source: NameError,
    },
    /// A permission's matcher did not compile.
    #[error("intentions[{index}].permissions[{permission}]: bad matcher")]
    Matcher {
        /// Index of the intention.
        index: usize,
        /// Index of the permission.
        permission: usize,
        /// The compile error.
        #[source]
        source: MatcherError,
    },
}

/// A compiled, indexed set of intentions with its default policy. Build once
/// per config update; share behind an `Arc` and call [`decide`](Self::decide)
/// per request.
#[derive(Debug)]
pub struct Intentions {
    compiled: Vec<Compiled>,
    /// Destination, then source, to the intentions of that exact pair.
    index: Level<Level<Bucket>>,
    default_policy: Action,
    trust_domain: Box<str>,
}

#[derive(Debug)]
struct Compiled {
    source: Box<str>,
    destination: Box<str>,
    rule: CompiledRule,
}

#[derive(Debug)]
enum CompiledRule {
    L4(Action),
    L7(Vec<(Action, RequestMatcher)>),
}

// === impl Intentions ===

impl Intentions {
    /// Compiles `intentions` for servers of `trust_domain`; `default_policy`
    /// decides when no intention matches.
    pub fn new(
        intentions: &[Intention],
        default_policy: Action,
        trust_domain: &str,
    ) -> Result<Self, IntentionsError> {
        validate_trust_domain(trust_domain).map_err(|source| IntentionsError::TrustDomain {
            trust_domain: trust_domain.to_string(),
            source,
        })?;
        let mut compiled = Vec::with_capacity(intentions.len());
        let mut index: Level<Level<Bucket>> = Level::default();
        for (i, intention) in intentions.iter().enumerate() {
            let parse = |field: &'static str, name: &str| {
                NamePattern::parse(name).map_err(|source| IntentionsError::Name {
                    index: i,
                    field,
                    name: name.to_string(),
                    source,
                })
            };
            let src = parse("source", &intention.source)?;
            let dst = parse("destination", &intention.destination)?;
            let rule = match &intention.rule {
                IntentionRule::Action(a) => CompiledRule::L4(*a),
                IntentionRule::Permissions(perms) => CompiledRule::L7(
                    perms
                        .iter()
                        .enumerate()
                        .map(|(p, Permission { action, matches })| {
                            RequestMatcher::new(matches)
                                .map(|m| (*action, m))
                                .map_err(|source| IntentionsError::Matcher {
                                    index: i,
                                    permission: p,
                                    source,
                                })
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
            index.entry(&dst).entry(&src).push(i);
            compiled.push(Compiled {
                source: intention.source.as_str().into(),
                destination: intention.destination.as_str().into(),
                rule,
            });
        }
        Ok(Self {
            compiled,
            index,
            default_policy,
            trust_domain: trust_domain.into(),
        })
    }

    /// Compiles the intentions, default policy and trust domain of `config`.
    pub fn from_config(config: &MeshConfig) -> Result<Self, IntentionsError> {
        Self::new(
            &config.intentions,
            config.default_policy,
            &config.trust_domain,
        )
    }

    /// Decides whether `source` may make request `req` to `destination`.
    ///
    /// `source` is the caller's verified SPIFFE ID (`None` without mTLS);
    /// `destination` is this server's service, `name` (namespace `default`)
    /// or `ns/name`. See the module docs for the rules.
    pub fn decide<R: RequestView + ?Sized>(
        &self,
        source: Option<&SpiffeId>,
        destination: &str,
        req: &R,
    ) -> Decision<'_> {
        let caller = source
            .filter(|id| id.trust_domain() == &*self.trust_domain)
            .and_then(SpiffeId::service_identity)
            .map(|s| (s.namespace, s.service));
        let callee = Some(split_service(destination));
        for sources in self.index.candidates(callee).into_iter().flatten() {
            for bucket in sources.candidates(caller).into_iter().flatten() {
                if !bucket.is_empty() {
                    return self.decide_tied(bucket, req);
                }
            }
        }
        Decision {
            action: self.default_policy,
            decided_by: DecidedBy::DefaultPolicy,
        }
    }

    /// Evaluates intentions of equal precedence: the first to deny decides,
    /// else the first.
    fn decide_tied<R: RequestView + ?Sized>(&self, bucket: &[usize], req: &R) -> Decision<'_> {
        let mut first = None;
        for &i in bucket {
            let Some(decision) = self.evaluate(i, req) else {
                continue;
            };
            if decision.action == Action::Deny {
                return decision;
            }
            first.get_or_insert(decision);
        }
        first.unwrap_or(Decision {
            action: self.default_policy,
            decided_by: DecidedBy::DefaultPolicy,
        })
    }

    /// What intention `i` alone decides for `req`.
    fn evaluate<R: RequestView + ?Sized>(&self, i: usize, req: &R) -> Option<Decision<'_>> {
        let c = self.compiled.get(i)?;
        let (source, destination) = (&*c.source, &*c.destination);
        Some(match &c.rule {
            CompiledRule::L4(action) => Decision {
                action: *action,
                decided_by: DecidedBy::Intention {
                    index: i,
                    source,
                    destination,
                    permission: None,
                },
            },
            CompiledRule::L7(perms) => {
                match perms.iter().enumerate().find(|(_, (_, m))| m.matches(req)) {
                    Some((p, (action, _))) => Decision {
                        action: *action,
                        decided_by: DecidedBy::Intention {
                            index: i,
                            source,
                            destination,
                            permission: Some(p),
                        },
                    },
                    None => Decision {
                        action: self.default_policy,
                        decided_by: DecidedBy::NoPermissionMatched {
                            index: i,
                            source,
                            destination,
                        },
                    },
                }
            }
        })
    }

    /// The policy applied when no intention matches.
    pub fn default_policy(&self) -> Action {
        self.default_policy
    }

    /// The trust domain whose service identities intentions name.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Number of intentions.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// Whether there are no intentions (every decision is the default policy).
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }
}
