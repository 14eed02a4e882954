//! Whether a signal has asked pc-host to stop, for the waits before a run starts.
//!
//! Once a run is going, a signal reaches the main thread as an event and the run drains
//! (`run::signals`, `run::watch`). Before that, the start may wait for a database another
//! process has locked (SQLite), or a lock another client holds (PostgreSQL, MySQL), for up to
//! `--busy-timeout-ms`, with nothing reading those events: such
//! a wait asks [`check`] each time a slice of it ends and gives up with [`Interrupted`],
//! before the run is recorded.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stop signal's number, 0 while none came.
static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// Records that signal `number` asked pc-host to stop; the first one counts.
pub fn request(number: i32) {
    // Relaxed: a flag read by polling waits; it publishes no other data.
    let _ = REQUESTED.compare_exchange(0, number, Ordering::Relaxed, Ordering::Relaxed);
}

/// The stop signal's number, if one came.
pub fn requested() -> Option<i32> {
    // Relaxed: see `request`.
    match REQUESTED.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// Between two slices of a wait before the run started: [`Interrupted`], waiting for what
/// `waiting_for` says, if a stop signal came.
///
/// # Errors
/// The [`Interrupted`], as the wait's error.
pub fn check(waiting_for: impl FnOnce() -> String) -> anyhow::Result<()> {
    match requested() {
        Some(signal) => Err(anyhow::Error::new(Interrupted {
            signal,
            waiting_for: waiting_for(),
        })),
        None => Ok(()),
    }
}

/// A wait before the run started that a signal ended: nothing was recorded. Exit status 128 +
/// the signal's number, as for a run a second signal ends.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub waiting_for: String,
}

/// The name of signal `number` (one of those pc-host handles: SIGINT, SIGTERM, SIGHUP).
pub fn signal_name(number: i32) -> &'static str {
    match number {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped by {} while waiting for {}: the run did not start and nothing was recorded",
            signal_name(self.signal),
            self.waiting_for
        )
    }
}

impl std::error::Error for Interrupted {}
