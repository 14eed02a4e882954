//! A monotonic nanosecond clock for callers of the token bucket (feature `std`).
//!
//! The core never reads a clock: every bucket operation takes `now` in nanoseconds. This is the
//! clock to take it from: `Instant`-based (monotonic, and the same reading on every core), with
//! nanoseconds counted from an anchor, so they start near 0 and fit a `u64` for 584 years.

#![cfg(all(feature = "std", not(loom)))]

use core::time::Duration;
use std::sync::OnceLock;
use std::time::Instant;

/// Monotonic nanoseconds since an anchor instant.
///
/// Every thread that shares a bucket must read the same `Clock` (or clocks with the same
/// anchor): `now` values from different anchors are unrelated numbers. [`Clock::global`] is one
/// clock for the whole process, anchored at its first use.
///
/// ```
/// use pc_core::{Clock, TokenBucket};
///
/// let clock = Clock::new();
/// let bucket = TokenBucket::per_second(1000, 10).starting_empty_at(clock.now());
/// let grant = bucket.acquire(2, &clock).unwrap(); // waits about 2 ms
/// assert!(grant.due() <= clock.now());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Clock {
    /// The instant that reads as 0.
    anchor: Instant,
}

/// Waits longer than this are slept (minus this margin, since a sleep may overshoot by the
/// timer slack, typically 50 us on Linux); shorter ones yield the CPU until the deadline.
pub(crate) const SLEEP_MARGIN: Duration = Duration::from_micros(200);

impl Clock {
    /// A clock that reads 0 now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            anchor: Instant::now(),
        }
    }

    /// A clock that reads 0 at `anchor`.
    #[must_use]
    pub const fn anchored_at(anchor: Instant) -> Self {
        Self { anchor }
    }

    /// The process-wide clock, anchored at the first call of this function.
    #[must_use]
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<Clock> = OnceLock::new();
        GLOBAL.get_or_init(Self::new)
    }

    /// Nanoseconds since the anchor (saturating at `u64::MAX`, 584 years).
    #[must_use]
    #[inline]
    pub fn now(&self) -> u64 {
        u64::try_from(self.anchor.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant that reads as 0.
    #[must_use]
    pub const fn anchor(&self) -> Instant {
        self.anchor
    }

    /// The `Instant` at which this clock reads `ns`, or `None` if the platform's `Instant`
    /// cannot represent it.
    #[must_use]
    pub fn instant_at(&self, ns: u64) -> Option<Instant> {
        self.anchor.checked_add(Duration::from_nanos(ns))
    }

    /// Waits until this clock reads at least `deadline` and returns the reading: sleeps for long
    /// waits, then yields the CPU for the last stretch (a sleep alone overshoots by tens of
    /// microseconds, which would be late for any rate above a few thousand per second).
    ///
    /// ```
    /// let clock = pc_core::Clock::new();
    /// let deadline = clock.now() + 1_000_000;
    /// assert!(clock.wait_until(deadline) >= deadline);
    /// ```
    pub fn wait_until(&self, deadline: u64) -> u64 {
        loop {
            let now = self.now();
            if now >= deadline {
                return now;
            }
            let left = Duration::from_nanos(deadline - now);
            if left > SLEEP_MARGIN {
                std::thread::sleep(left - SLEEP_MARGIN);
            } else {
                crate::sync::yield_now();
            }
        }
    }

    /// Waits until this clock reads at least `deadline` and returns the reading, by sleeping
    /// only: it costs no CPU while it waits, and it returns late by the sleep's overshoot
    /// (the timer slack, typically 50-100 us on Linux; more on a busy machine). For a
    /// deadline that must be met to the microsecond, [`wait_until`](Self::wait_until).
    ///
    /// ```
    /// let clock = pc_core::Clock::new();
    /// let deadline = clock.now() + 1_000_000;
    /// assert!(clock.sleep_until(deadline) >= deadline);
    /// ```
    pub fn sleep_until(&self, deadline: u64) -> u64 {
        loop {
            let now = self.now();
            if now >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_nanos(deadline - now));
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
