//! Helpers for the unit tests of every module (compiled for tests only).

use core::time::Duration;
use std::time::Instant;

/// Yields until `ready` returns true, for at most a minute: a guard that turns a hang into a
/// failure, not a timing check. Whether `ready` came true.
pub(crate) fn within_a_minute(mut ready: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if Instant::now() >= give_up {
            return false;
        }
        std::thread::yield_now();
    }
    true
}
