//! Subsets: named groups of a service's endpoints, chosen by label selector.
//!
//! A service config names its subsets (`v1: { version: v1 }`); a route's
//! split sends traffic to them by weight. [`Subsets`] fixes the order of the
//! subset names once (sorted, as in the config map), so a subset is an index
//! everywhere after that: the router reports it, and the layer above keeps
//! one balancer per index. Selecting endpoints is done at update time (when
//! discovery changes the endpoint set), never per request.

use std::collections::BTreeMap;

use crate::config::ServiceConfig;
use crate::endpoint::Endpoint;

/// The subsets of one service, in name order.
#[derive(Debug, Clone, Default)]
pub struct Subsets {
    names: Vec<Box<str>>,
    selectors: Vec<BTreeMap<String, String>>,
}

// === impl Subsets ===

impl Subsets {
    /// The subsets declared by `service`.
    pub fn new(service: &ServiceConfig) -> Self {
        Self::from_selectors(&service.subsets)
    }

    /// Subsets from a name -> label selector map.
    pub fn from_selectors(subsets: &BTreeMap<String, BTreeMap<String, String>>) -> Self {
        let (names, selectors) = subsets
            .iter()
            .map(|(name, sel)| (Box::from(name.as_str()), sel.clone()))
            .unzip();
        Self { names, selectors }
    }

    /// How many subsets there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no subsets.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The subset names, in index order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(|n| &**n)
    }

    /// The name of subset `index`, if it exists.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(|n| &**n)
    }

    /// The index of the subset called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        // Names are sorted (they come from a BTreeMap).
        self.names.binary_search_by(|n| (**n).cmp(name)).ok()
    }

    /// The label selector of subset `index`.
    pub fn selector(&self, index: usize) -> Option<&BTreeMap<String, String>> {
        self.selectors.get(index)
    }

    /// The endpoints of subset `index` (those whose labels match its
    /// selector), in input order. `None` if there is no such subset.
    pub fn select<'a>(
        &'a self,
        index: usize,
        endpoints: &'a [Endpoint],
    ) -> Option<impl Iterator<Item = &'a Endpoint> + 'a> {
        let selector = self.selectors.get(index)?;
        Some(endpoints.iter().filter(move |ep| ep.matches(selector)))
    }

    /// The endpoints of the subset called `name`, cloned. `None` if there is
    /// no such subset.
    pub fn select_by_name(&self, name: &str, endpoints: &[Endpoint]) -> Option<Vec<Endpoint>> {
        let index = self.index_of(name)?;
        let selector = self.selectors.get(index)?;
        Some(
            endpoints
                .iter()
                .filter(|ep| ep.matches(selector))
                .cloned()
                .collect(),
        )
    }

    /// Every subset's endpoints at once, indexed like the subsets: what the
    /// layer above rebuilds its per-subset balancers from after an update.
    /// An endpoint may belong to several subsets.
    pub fn partition(&self, endpoints: &[Endpoint]) -> Vec<Vec<Endpoint>> {
        self.selectors
            .iter()
            .map(|sel| {
                endpoints
                    .iter()
                    .filter(|ep| ep.matches(sel))
                    .cloned()
                    .collect()
            })
            .collect()
    }
}
