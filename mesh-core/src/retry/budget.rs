//! The retry budget: retries may add at most a fraction of recent traffic.
//!
//! See the [module docs](super) for why. The algorithm:
//!
//! Time since the budget's epoch is cut into slices of `window / SLICES`
//! ([`SLICES`] = 20, so 500ms for the default 10s window). A ring of
//! `SLICES + 1` buckets holds, per slice, the number of original requests
//! (deposits) and of retries (withdrawals). Each counter is one `AtomicU64`
//! packing the slice number it belongs to (high 32 bits) and its count (low
//! 32 bits), so moving a bucket to a new slice and counting in it is one
//! compare-and-swap: no lock, no torn state. A bucket whose stamp is not one
//! of the slices being summed counts as zero (it is stale).
//!
//! A withdrawal at time `now`, in slice `k`, first counts itself in slice
//! `k`, then sums:
//!
//! - `W` = withdrawals in slices `k - SLICES ..= k` (a span of `window` plus
//!   one slice, which covers every instant of `(now - window, now]`), and
//! - `D` = deposits in slices `k - SLICES + 1 ..= k` (a span that lies
//!   entirely within `(now - window, now]`),
//!
//! and succeeds if `W <= ratio x D + min_per_second x window_secs`; if not,
//! it takes its count back and fails. Counting first means concurrent
//! withdrawals can only be refused spuriously, never allowed in excess.
//!
//! **Guarantee** (what the property test checks, with no slack): for every
//! successful withdrawal at time `t`,
//!
//! ```text
//! retries in (t - window, t]  <=  ratio x requests in (t - window, t]  +  min_per_second x window_secs
//! ```
//!
//! The bucket granularity only makes the budget stricter than that: up to
//! one slice of older withdrawals is counted against it, and the deposits of
//! `(t - window, start of slice k - SLICES + 1)` (less than one slice) are
//! not credited to it, so in steady state it allows up to about
//! `1 / SLICES` (5%) less than the ideal. A bound for *every* window, not
//! only those ending at a retry, cannot hold for any sliding budget:
//! deposits just before a window fund retries inside it.
//!
//! Deposits or withdrawals that arrive with a `now` older than the slice a
//! bucket has already moved on to are dropped / refused (conservative). A
//! `now` before the epoch counts as the epoch. Counts saturate at
//! `u32::MAX` per slice; slice numbers wrap after 2^32 slices (68 years at
//! 500ms).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::BudgetConfig;

/// Slices per window.
pub const SLICES: u64 = 20;

/// Largest ratio accepted (as in the config).
pub const MAX_RATIO: f64 = 1000.0;

/// Longest window accepted (the config allows up to 60s).
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

const RING: usize = SLICES as usize + 1;

/// A budget config that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// `ratio` is not a number in `0.0..=1000.0`.
    #[error("retry budget ratio {0} is not within 0.0..=1000.0")]
    Ratio(f64),
    /// `window` is shorter than one millisecond or longer than an hour.
    #[error("retry budget window {0:?} is not within 1ms..=1h")]
    Window(Duration),
}

/// A retry budget shared by all calls to one service, usable from many
/// threads at once through `&self`.
#[derive(Debug)]
pub struct RetryBudget {
    epoch: Instant,
    slice_nanos: u64,
    ratio: f64,
    /// `min_per_second x window_secs`.
    floor: f64,
    deposits: [AtomicU64; RING],
    withdrawals: [AtomicU64; RING],
}

// === impl RetryBudget ===

impl RetryBudget {
    /// A budget whose time starts now.
    pub fn new(config: &BudgetConfig) -> Result<Self, BudgetError> {
        Self::with_epoch(config, Instant::now())
    }

    /// A budget whose time starts at `epoch` (tests pass a fixed instant).
    pub fn with_epoch(config: &BudgetConfig, epoch: Instant) -> Result<Self, BudgetError> {
        if !(0.0..=MAX_RATIO).contains(&config.ratio) {
            return Err(BudgetError::Ratio(config.ratio));
        }
        if config.window < Duration::from_millis(1) || config.window > MAX_WINDOW {
            return Err(BudgetError::Window(config.window));
        }
        let window_nanos = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        Ok(Self {
            epoch,
            slice_nanos: (window_nanos / SLICES).max(1),
            ratio: config.ratio,
            floor: f64::from(config.min_per_second) * config.window.as_secs_f64(),
            deposits: Default::default(),
            withdrawals: Default::default(),
        })
    }

    /// Records one original request (not a retry).
    pub fn deposit(&self, now: Instant) {
        let k = self.slice(now);
        let _ = bump(&self.deposits, k);
    }

    /// Asks to retry once: `true` (and counted) if the budget allows it.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let k = self.slice(now);
        if !bump(&self.withdrawals, k) {
            return false;
        }
        let withdrawn = sum(&self.withdrawals, k, SLICES);
        let deposited = sum(&self.deposits, k, SLICES - 1);
        if withdrawn as f64 <= self.ratio * deposited as f64 + self.floor {
            true
        } else {
            unbump(&self.withdrawals, k);
            false
        }
    }

    /// Retries the budget would allow right now (for metrics).
    pub fn available(&self, now: Instant) -> u64 {
        let k = self.slice(now);
        let allowance = self.ratio * sum(&self.deposits, k, SLICES - 1) as f64 + self.floor;
        let withdrawn = sum(&self.withdrawals, k, SLICES) as f64;
        // Float to int casts saturate.
        (allowance - withdrawn).max(0.0) as u64
    }

    /// The width of one slice.
    pub fn slice_width(&self) -> Duration {
        Duration::from_nanos(self.slice_nanos)
    }

    fn slice(&self, now: Instant) -> u64 {
        let nanos =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        nanos / self.slice_nanos
    }
}

fn pack(slice: u64, count: u64) -> u64 {
    ((slice & 0xFFFF_FFFF) << 32) | count
}

fn stamp(v: u64) -> u32 {
    (v >> 32) as u32
}

fn count(v: u64) -> u64 {
    v & 0xFFFF_FFFF
}

fn bucket(ring: &[AtomicU64; RING], k: u64) -> Option<&AtomicU64> {
    ring.get((k % RING as u64) as usize)
}

/// Counts one event in slice `k`. `false` if the bucket already moved on to
/// a later slice (the event is too old to count).
fn bump(ring: &[AtomicU64; RING], k: u64) -> bool {
    let Some(cell) = bucket(ring, k) else {
        return false;
    };
    let want = k as u32;
    let mut cur = cell.load(Ordering::Acquire);
    loop {
        let have = stamp(cur);
        let next = if have == want {
            pack(k, (count(cur) + 1).min(u64::from(u32::MAX)))
        } else if (want.wrapping_sub(have) as i32) > 0 {
            pack(k, 1)
        } else {
            return false;
        };
        match cell.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// Takes back one event counted in slice `k` (if the bucket still holds it).
fn unbump(ring: &[AtomicU64; RING], k: u64) {
    let Some(cell) = bucket(ring, k) else {
        return;
    };
    let mut cur = cell.load(Ordering::Acquire);
    while stamp(cur) == k as u32 && count(cur) > 0 {
        match cell.compare_exchange_weak(cur, cur - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// Sum of the counts of slices `k - back ..= k` (slices before 0 don't exist).
fn sum(ring: &[AtomicU64; RING], k: u64, back: u64) -> u64 {
    (k.saturating_sub(back)..=k)
        .filter_map(|j| {
            let v = bucket(ring, j)?.load(Ordering::Acquire);
            (stamp(v) == j as u32).then_some(count(v))
        })
        .sum()
}
