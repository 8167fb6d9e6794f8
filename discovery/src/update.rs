//! Endpoint-set updates: what every discovery source yields.
//!
//! A source reports a service's endpoints as a stream of [`Update`]s, the
//! shape linkerd2-proxy uses between discovery and its balancer:
//!
//! - [`Update::Reset`] replaces the whole set (always the first update of a
//!   stream that found endpoints, and whenever a source starts over);
//! - [`Update::Add`] adds endpoints, or *replaces* endpoints with the same
//!   address (an endpoint is identified by its address, so a weight change is
//!   an `Add` of the same address with the new weight);
//! - [`Update::Remove`] removes endpoints by address;
//! - [`Update::DoesNotExist`] says the service is unknown to the source (DNS
//!   `NXDOMAIN`), which a caller should treat as "no endpoints".
//!
//! Sources only emit when something changed: after the first `Reset`, a
//! re-resolution that finds the same set emits nothing, and one that finds a
//! different set emits the difference computed by [`diff`] (a `Remove` of the
//! addresses that went away, then an `Add` of the new or changed endpoints).
//! [`EndpointSet`] applies updates, so a consumer (or a test) can rebuild the
//! set a stream describes.
//!
//! These are our own types: tower's `Change` is not part of this crate's API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::Stream;
use mesh_core::Endpoint;

/// One change to a service's endpoint set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The whole set is now exactly these endpoints (possibly none).
    Reset(Vec<Endpoint>),
    /// These endpoints are added, or replace the endpoint with the same address.
    Add(Vec<Endpoint>),
    /// The endpoints at these addresses are gone.
    Remove(Vec<SocketAddr>),
    /// The source does not know this service (e.g. DNS `NXDOMAIN`).
    DoesNotExist,
}

/// A boxed stream of updates for one service. It does not end while the
/// source is alive: a source that has nothing more to say stays pending.
pub type UpdateStream = Pin<Box<dyn Stream<Item = Update> + Send>>;

/// The updates that turn `old` into `new`: empty when they are the same set
/// (order does not matter), otherwise a `Remove` of the addresses missing from
/// `new` (if any) followed by an `Add` of the endpoints that are new or differ
/// (weight, zone or labels) from `old` (if any).
pub fn diff(old: &[Endpoint], new: &[Endpoint]) -> Vec<Update> {
    let old_by_addr: BTreeMap<SocketAddr, &Endpoint> = old.iter().map(|e| (e.address, e)).collect();
    let new_by_addr: BTreeMap<SocketAddr, &Endpoint> = new.iter().map(|e| (e.address, e)).collect();
    let removed: Vec<SocketAddr> = old_by_addr
        .keys()
        .filter(|a| !new_by_addr.contains_key(a))
        .copied()
        .collect();
    let added: Vec<Endpoint> = new_by_addr
        .iter()
        .filter(|(a, e)| old_by_addr.get(a) != Some(e))
        .map(|(_, e)| (*e).clone())
        .collect();
    let mut out = Vec::new();
    if !removed.is_empty() {
        out.push(Update::Remove(removed));
    }
    if !added.is_empty() {
        out.push(Update::Add(added));
    }
    out
}

/// Sorts endpoints by address and keeps the last of duplicate addresses, so
/// two descriptions of the same set compare equal.
pub(crate) fn normalize(endpoints: Vec<Endpoint>) -> Vec<Endpoint> {
    let by_addr: BTreeMap<SocketAddr, Endpoint> =
        endpoints.into_iter().map(|e| (e.address, e)).collect();
    by_addr.into_values().collect()
}

/// The endpoint set a stream of updates describes.
///
/// `None` until the first update; `DoesNotExist` makes it known-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSet {
    endpoints: BTreeMap<SocketAddr, Endpoint>,
    exists: Option<bool>,
}

impl EndpointSet {
    /// An empty set that has seen no update yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one update.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Reset(eps) => {
                self.endpoints = eps.into_iter().map(|e| (e.address, e)).collect();
                self.exists = Some(true);
            }
            Update::Add(eps) => {
                self.endpoints
                    .extend(eps.into_iter().map(|e| (e.address, e)));
                self.exists = Some(true);
            }
            Update::Remove(addrs) => {
                for a in addrs {
                    self.endpoints.remove(&a);
                }
            }
            Update::DoesNotExist => {
                self.endpoints.clear();
                self.exists = Some(false);
            }
        }
    }

    /// The endpoints, sorted by address.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.endpoints.values().cloned().collect()
    }

    /// The addresses, sorted.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.endpoints.keys().copied().collect()
    }

    /// `Some(false)` after `DoesNotExist`, `Some(true)` after endpoints were
    /// reported, `None` before any update.
    pub fn exists(&self) -> Option<bool> {
        self.exists
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, w: u32) -> Endpoint {
        Endpoint::new(s.parse().unwrap()).with_weight(w)
    }

    #[test]
    fn same_set_in_another_order_has_no_diff() {
        let a = vec![ep("127.0.0.1:1", 1), ep("127.0.0.1:2", 2)];
        let b = vec![ep("127.0.0.1:2", 2), ep("127.0.0.1:1", 1)];
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn diff_removes_adds_and_replaces_changed_weights() {
        let old = vec![ep("127.0.0.1:1", 1), ep("127.0.0.1:2", 2)];
        let new = vec![ep("127.0.0.1:2", 5), ep("127.0.0.1:3", 1)];
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![
                Update::Remove(vec!["127.0.0.1:1".parse().unwrap()]),
                Update::Add(vec![ep("127.0.0.1:2", 5), ep("127.0.0.1:3", 1)]),
            ]
        );
        let mut set = EndpointSet::new();
        set.apply(Update::Reset(old));
        for u in d {
            set.apply(u);
        }
        assert_eq!(set.endpoints(), normalize(new));
    }

    #[test]
    fn endpoint_set_tracks_existence() {
        let mut set = EndpointSet::new();
        assert_eq!(set.exists(), None);
        set.apply(Update::DoesNotExist);
        assert_eq!(set.exists(), Some(false));
        set.apply(Update::Add(vec![ep("127.0.0.1:1", 1)]));
        assert_eq!(set.exists(), Some(true));
        set.apply(Update::Remove(vec!["127.0.0.1:1".parse().unwrap()]));
        assert!(set.endpoints().is_empty());
    }

    proptest::proptest! {
        /// Applying `diff(old, new)` to `old` always gives `new`, and the diff
        /// is empty exactly when the sets are equal.
        #[test]
        fn diff_turns_old_into_new(
            old in proptest::collection::vec((0u16..20, 1u32..4), 0..12),
            new in proptest::collection::vec((0u16..20, 1u32..4), 0..12),
        ) {
            let mk = |v: &[(u16, u32)]| -> Vec<Endpoint> {
                v.iter()
                    .map(|(p, w)| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], *p))).with_weight(*w))
                    .collect()
            };
            let (old, new) = (normalize(mk(&old)), normalize(mk(&new)));
            let d = diff(&old, &new);
            proptest::prop_assert_eq!(d.is_empty(), old == new);
            let mut set = EndpointSet::new();
            set.apply(Update::Reset(old));
            for u in d {
                set.apply(u);
            }
            proptest::prop_assert_eq!(set.endpoints(), new);
        }
    }

    #[test]
    fn normalize_dedups_by_address_keeping_the_last() {
        let n = normalize(vec![
            ep("127.0.0.1:2", 1),
            ep("127.0.0.1:1", 1),
            ep("127.0.0.1:2", 7),
        ]);
        assert_eq!(n, vec![ep("127.0.0.1:1", 1), ep("127.0.0.1:2", 7)]);
    }
}
