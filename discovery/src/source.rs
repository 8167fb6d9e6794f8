//! The source trait: one per place endpoints come from.

use crate::error::DiscoveryError;
use crate::update::UpdateStream;

/// A place endpoints come from (static config, a file, DNS, ...).
///
/// `watch` is synchronous and cheap: it validates what it can up front
/// (typed errors) and returns a lazy stream that does the I/O when polled.
/// The stream's first item describes the initial state (a
/// [`Reset`](crate::Update::Reset) or
/// [`DoesNotExist`](crate::Update::DoesNotExist)); later items are changes
/// only. Dropping the stream stops the watch. The trait is object safe:
/// `Box<dyn Discover>` works.
pub trait Discover: Send + Sync {
    /// A stream of endpoint-set updates for `service`.
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError>;
}

impl<D: Discover + ?Sized> Discover for std::sync::Arc<D> {
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError> {
        (**self).watch(service)
    }
}

impl<D: Discover + ?Sized> Discover for Box<D> {
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError> {
        (**self).watch(service)
    }
}
