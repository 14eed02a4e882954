//! SIGINT / SIGTERM: the first starts the graceful drain, a second exits at once.
//!
//! The second signal exits from inside the signal handler (`_exit`, no unwinding): whatever was
//! committed is intact, because a committed SQLite WAL transaction survives the process dying
//! at any instant. Exit status 130 (SIGINT) or 143 (SIGTERM), as a shell reports them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;

use super::Event;

/// Installs the handlers; each first signal is sent to `events` as [`Event::Signal`].
pub fn install(events: Sender<Event>) -> std::io::Result<()> {
    let armed = Arc::new(AtomicBool::new(false));
    for (sig, status) in [(SIGINT, 130), (SIGTERM, 143)] {
        // Order matters: the exit is checked before the flag is set, so it fires on the second.
        flag::register_conditional_shutdown(sig, status, Arc::clone(&armed))?;
        flag::register(sig, Arc::clone(&armed))?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if events.send(Event::Signal(name)).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}
