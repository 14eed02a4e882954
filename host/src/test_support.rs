//! Helpers for the unit tests of every stage (compiled for tests only; imports nothing).

use std::time::{Duration, Instant};

/// Yields until `ready` returns true; fails, rather than hangs, if that has not happened
/// within a minute (the thread that was to make it true has died or is stuck).
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < give_up, "gave up waiting until {what}");
        std::thread::yield_now();
    }
}
