//! One clock read per call: the instant a call entered the stack, shared
//! by the layers its `call` passes through.
//!
//! A request goes down the layers' `call`s synchronously, in a few
//! microseconds: the metrics start, the call deadline, the retry budget's
//! deposit, the per-try deadline and the balancer's pick all mean "now" and
//! can share one `Instant::now()`. The outermost layer that reads the clock
//! opens a scope ([`scoped`]) around its inner `call`; the layers below ask
//! [`now`], which returns the scope's instant, or reads the clock outside a
//! scope (a layer used alone, a retry's later attempt started from a poll,
//! the balancer's slow path). Scopes nest and restore; nothing allocates.
//! Under tokio's paused clock the instant is tokio's, as everywhere else.

use std::cell::Cell;

use tokio::time::Instant;

thread_local! {
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current call's instant inside a scope, else the clock.
pub(crate) fn now() -> Instant {
    NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Runs `call` (a synchronous `Service::call` chain) with [`now`] answering
/// `at`.
pub(crate) fn scoped<R>(at: Instant, call: impl FnOnce() -> R) -> R {
    /// Restores the outer scope, also if `call` unwinds.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0;
            NOW.with(|slot| slot.set(outer));
        }
    }
    let _restore = Restore(NOW.with(|slot| slot.replace(Some(at))));
    call()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_scope_answers_its_instant_and_restores_the_clock() {
        let at = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let inner = scoped(at, || {
            let nested = scoped(at + Duration::from_secs(5), now);
            assert_eq!(nested, at + Duration::from_secs(5));
            now()
        });
        assert_eq!(inner, at);
        assert_eq!(now(), at + Duration::from_secs(1));
    }
}
