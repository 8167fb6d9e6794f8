//! A rate limit on denial log lines: a scanner hammering a server must not
//! flood its log. At most [`LINES_PER_SECOND`] lines a second per layer; the
//! next line logged says how many were left out (the counters count them
//! all).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Denial lines logged per second, at most.
pub const LINES_PER_SECOND: u64 = 10;

/// The limiter: the current one-second window and the lines in it.
#[derive(Debug)]
pub(crate) struct LogLimit {
    origin: Instant,
    /// Window (whole seconds since `origin`) << 32 | lines logged in it.
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub(crate) fn new() -> LogLimit {
        LogLimit {
            origin: Instant::now(),
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log this line, saying `n` lines were left out since the
    /// last one; `None`: leave it out.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = self.origin.elapsed().as_secs() & 0xffff_ffff;
        let admitted = self
            .window
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let (window, lines) = (packed >> 32, packed & 0xffff_ffff);
                if window != now {
                    Some(now << 32 | 1)
                } else if lines < LINES_PER_SECOND {
                    Some(packed + 1)
                } else {
                    None
                }
            })
            .is_ok();
        if admitted {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_ten_lines_a_second_then_the_count_left_out() {
        let limit = LogLimit::new();
        let admitted = (0..25).filter(|_| limit.admit().is_some()).count();
        assert_eq!(admitted, 10);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert_eq!(limit.admit(), Some(15));
        assert_eq!(limit.admit(), Some(0));
    }
}
