//! Timer coverage: how the call timeout avoids arming a timer of its own.
//!
//! A call's layers are futures nested in one task, so any wake re-polls the
//! whole chain. While an inner timer (an attempt's per-try timer, which is
//! clamped to the call's deadline, or the retry layer's backoff sleep) is
//! armed to fire at or before the call's deadline, the call timeout is sure
//! to be polled again by then: it needs no timer of its own. It arms one
//! only for the gaps (buffering a body, waiting for the balancer to be
//! ready), and keeps it once armed.
//!
//! The inner futures say so through a per-thread slot, scoped to one poll:
//! the call timeout opens a scope ([`scoped`]) around its inner poll, and a
//! future returning `Pending` with a timer registered reports that timer's
//! instant ([`report`]). Scopes nest (a call made inside another call's
//! poll) and restore the outer scope's value when they close; nothing is
//! allocated.

use std::cell::Cell;

use tokio::time::Instant;

thread_local! {
    /// The earliest timer reported in the innermost open scope.
    static ARMED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Reports that the calling future returns `Pending` with a registered
/// timer firing at `at` (no effect outside a scope's poll).
pub(crate) fn report(at: Instant) {
    ARMED.with(|slot| {
        let earliest = slot.get().map_or(at, |prev| prev.min(at));
        slot.set(Some(earliest));
    });
}

/// Runs `poll` in a fresh scope: its result and the earliest timer
/// reported inside it.
pub(crate) fn scoped<R>(poll: impl FnOnce() -> R) -> (R, Option<Instant>) {
    /// Restores the outer scope's value when dropped, also if `poll`
    /// unwinds.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0;
            ARMED.with(|slot| slot.set(outer));
        }
    }
    let restore = Restore(ARMED.with(|slot| slot.replace(None)));
    let result = poll();
    let inner = ARMED.with(Cell::get);
    drop(restore);
    (result, inner)
}
