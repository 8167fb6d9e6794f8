//! Where an attempt went, told to its per-try timeout without an extension.
//!
//! An attempt cut short by its per-try timer is dropped before it can say
//! which endpoint it was sent to, so the timeout must learn it when the
//! balancer picks. The balancer picks inside the per-try timeout's
//! synchronous `call` (the fast path): it reports the endpoint to the scope
//! the timeout opened ([`scoped`], [`picked`]), with nothing allocated or
//! inserted. When it must wait for endpoints first (the slow path), it asks
//! the scope for a cell ([`cell`]) and fills it later. A request carrying
//! an [`AttemptEndpoint`] of its own (a caller's, or a layer's between the
//! two) gets it filled as well.

use std::cell::RefCell;
use std::net::SocketAddr;

use crate::ext::AttemptEndpoint;

/// What an attempt's scope learned.
#[derive(Debug, Default)]
pub(crate) enum Picked {
    /// Nothing (yet): no balancer below, or none in this scope.
    #[default]
    Unknown,
    /// Picked during the call.
    Endpoint(SocketAddr),
    /// To be picked later; the cell will say.
    Later(AttemptEndpoint),
}

impl Picked {
    /// The endpoint, once known.
    pub(crate) fn get(&self) -> Option<SocketAddr> {
        match self {
            Picked::Unknown => None,
            Picked::Endpoint(addr) => Some(*addr),
            Picked::Later(cell) => cell.get(),
        }
    }
}

thread_local! {
    /// `None`: no scope open.
    static SCOPE: RefCell<Option<Picked>> = const { RefCell::new(None) };
}

/// Runs `call` (the per-try timeout's inner `call`) in a fresh scope: its
/// result and what the balancer below reported.
pub(crate) fn scoped<R>(call: impl FnOnce() -> R) -> (R, Picked) {
    /// Restores the outer scope, also if `call` unwinds.
    struct Restore(Option<Option<Picked>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                SCOPE.with(|slot| *slot.borrow_mut() = outer);
            }
        }
    }
    let mut restore = Restore(Some(SCOPE.with(|slot| slot.replace(Some(Picked::Unknown)))));
    let result = call();
    let picked = SCOPE.with(|slot| slot.replace(restore.0.take().flatten()));
    (result, picked.unwrap_or_default())
}

/// The balancer picked `endpoint` for the attempt being called.
pub(crate) fn picked(endpoint: SocketAddr) {
    SCOPE.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut()
            && let Some(scope) = slot.as_mut()
        {
            *scope = Picked::Endpoint(endpoint);
        }
    });
}

/// A cell for an endpoint the balancer will pick later, if a per-try
/// timeout's scope is open (else `None`: nobody would read it).
pub(crate) fn cell() -> Option<AttemptEndpoint> {
    SCOPE.with(|slot| {
        let mut slot = slot.try_borrow_mut().ok()?;
        let scope = slot.as_mut()?;
        let cell = AttemptEndpoint::new();
        *scope = Picked::Later(cell.clone());
        Some(cell)
    })
}
