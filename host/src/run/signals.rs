//! SIGINT, SIGTERM and SIGHUP: the first starts the graceful drain; the same request again
//! within a second is still that request; a signal after that exits at once. Once the run is
//! over and its summary written ([`finished`]), a signal only ends `--metrics-linger`'s wait.
//!
//! GNU `timeout` and a terminal send one request as two signals (to the process, then to its
//! group): both arrive within the second, so they drain once. A later signal is the user
//! insisting: the signal thread prints one line and exits with `_exit` (no unwinding, no
//! destructors racing the other threads). Whatever was committed is intact, because a
//! committed SQLite WAL transaction survives the process dying at any instant; the run is left
//! recorded as not completed. Exit status 128 + the signal number (130, 143, 129), as a shell
//! reports it.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Event;
use crate::telemetry::Stats;

/// Signals closer than this to the first are the same request.
pub const SAME_REQUEST: Duration = Duration::from_secs(1);

/// Set once the run has ended and its summary is written: a signal then only ends the wait
/// for the last scrape (`--metrics-linger`), whatever came before it.
static FINISHED: AtomicBool = AtomicBool::new(false);

/// Says the run is over (see [`FINISHED`]): later signals reach the main thread as
/// [`Event::Signal`] and never force an exit.
pub fn finished() {
    // Release/Acquire: a plain flag between two threads; nothing else is published by it.
    FINISHED.store(true, Ordering::Release);
}

/// The running run's counters, for the line a forced exit prints, and whether its sink
/// records runs (a database does; a NATS sink does not).
static RUNNING: Mutex<Option<(Arc<Stats>, bool)>> = Mutex::new(None);

/// Makes a forced exit report `stats` (the run now running); `recorded`: the sink keeps a
/// record of the run, which the exit leaves as not completed.
pub fn counting(stats: Arc<Stats>, recorded: bool) {
    *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) = Some((stats, recorded));
}

/// Installs the handlers and the thread that turns signals into [`Event::Signal`] (see the
/// module docs).
///
/// # Errors
/// The handlers or the thread could not be set up.
pub fn install(events: Sender<Event>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first: Option<Instant> = None;
            for sig in signals.forever() {
                let name = crate::interrupt::signal_name(sig);
                // Acquire: pairs with the Release store in `finished`.
                if FINISHED.load(Ordering::Acquire) {
                    let _ = events.send(Event::Signal(name));
                    continue;
                }
                match first {
                    None => {
                        first = Some(Instant::now());
                        crate::interrupt::request(sig);
                        let _ = events.send(Event::Signal(name));
                    }
                    Some(at) if at.elapsed() < SAME_REQUEST => {}
                    Some(_) => exit_now(name, 128 + sig),
                }
            }
        })?;
    Ok(())
}

/// Exits at once, saying so on stderr.
fn exit_now(name: &str, status: i32) -> ! {
    // try_lock: the lock is only ever held to set the counters; never wait in an exit path.
    let line = match RUNNING.try_lock().ok().and_then(|r| r.clone()) {
        Some((stats, recorded)) => {
            let c = stats.counts();
            let (produced, stored, dead) = (c.produced, c.stored, c.dead_lettered);
            let left = produced.saturating_sub(stored + dead);
            let record = if recorded {
                "; the run is recorded as not completed"
            } else {
                ""
            };
            // Counted after each commit returns: a batch committed just now is in the
            // database and not yet here, so these are bounds, not exact figures.
            format!(
                "at least {stored} of {produced} accepted messages committed (a batch committed \
                 as the signal came is not counted yet), {dead} dead-lettered, at most {left} \
                 not stored{record}"
            )
        }
        // Still starting (a server sink waiting for a lock, say): the run may be recorded
        // already, or not.
        None => "the run had not started: nothing was stored (if it was recorded already, it \
                 stays recorded as not completed)"
            .into(),
    };
    let _ = writeln!(
        std::io::stderr(),
        "pc-host: {name} again: exiting at once: {line}"
    );
    // SAFETY: _exit has no preconditions; it ends the process without running destructors or
    // atexit handlers, which other threads may be using.
    unsafe { libc::_exit(status) }
}
