//! Helpers for the unit tests of every stage (compiled for tests only; imports nothing).

use std::path::PathBuf;
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

/// An empty directory for test `name`, of this process (`pc-NAME-PID` in the system's
/// temporary directory): whatever an earlier run of the test left there is removed first.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    dir
}
