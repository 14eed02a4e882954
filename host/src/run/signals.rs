//! SIGINT, SIGTERM and SIGHUP: the first starts the graceful drain; the same request again
//! within a second is still that request; a signal after that exits at once.
//!
//! GNU `timeout` and a terminal send one request as two signals (to the process, then to its
//! group): both arrive within the second, so they drain once. A later signal is the user
//! insisting: the signal thread prints one line and exits with `_exit` (no unwinding, no
//! destructors racing the other threads). Whatever was committed is intact, because a
//! committed SQLite WAL transaction survives the process dying at any instant; the run is left
//! recorded as not completed. Exit status 128 + the signal number (130, 143, 129), as a shell
//! reports it.

use std::io::Write as _;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Event;

/// Signals closer than this to the first are the same request.
pub const SAME_REQUEST: Duration = Duration::from_secs(1);

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
                let name = match sig {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                match first {
                    None => {
                        first = Some(Instant::now());
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
    let _ = writeln!(
        std::io::stderr(),
        "pc-host: {name} again: exiting at once; what was committed stays, the rest of the run \
         is not stored and the run is recorded as not completed"
    );
    // SAFETY: _exit has no preconditions; it ends the process without running destructors or
    // atexit handlers, which other threads may be using.
    unsafe { libc::_exit(status) }
}
