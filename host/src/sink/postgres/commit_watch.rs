//! A bound on COMMIT. The server stops timing a statement (`statement_timeout`) before its
//! COMMIT does its work: deferred triggers and constraint checks, the commit record's flush, a
//! synchronous standby's acknowledgement. A COMMIT stuck in deferred work would hold its
//! writer, and the run, for ever. A watch per session acts on a COMMIT still going after its
//! bound, in one of two ways ([`OnOverrun`]):
//! - where no synchronous standby can be waited for, it asks the server to cancel the COMMIT,
//!   as `pg_cancel_backend` would (a cancel request on a connection of its own,
//!   [`postgres::CancelToken`]): a COMMIT running deferred work fails (SQLSTATE 57014) and
//!   rolls back, so the write is retried. (The flush itself holds interrupts off: a stalled
//!   disk is waited for.)
//! - where the server names synchronous standbys and the session's `synchronous_commit` waits
//!   for them, the wait is the guarantee the server was set up to give: a cancel would return
//!   the COMMIT as done on the primary alone. The watch says on stderr that the COMMIT is still
//!   going, once per COMMIT, and lets it wait.
//!
//! A cancel the server receives just after the COMMIT ended is ignored by an idle session, or
//! fails the session's next statement with 57014: a write is then retried, and the writer's
//! bookkeeping calls try once more.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{CancelToken, NoTls};

/// What the watch does with a COMMIT still going after its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOverrun {
    /// Asks the server to cancel it.
    Cancel,
    /// Says so on stderr and lets it wait: it may be waiting for a synchronous standby.
    Warn,
}

impl OnOverrun {
    /// What to do on a session whose server has `synchronous_standby_names` =
    /// `standby_names` and whose `synchronous_commit` is `commit`: wait where a COMMIT may be
    /// waiting for a standby (any setting but `off` and `local` waits, once standbys are named).
    pub fn for_settings(standby_names: &str, commit: &str) -> Self {
        let waits = !standby_names.trim().is_empty()
            && !matches!(commit.trim().to_ascii_lowercase().as_str(), "off" | "local");
        if waits { Self::Warn } else { Self::Cancel }
    }
}

/// One session's watch: a thread that waits while no COMMIT is under way.
pub struct CommitWatch {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a COMMIT starts and when the watch is dropped.
    wake: Condvar,
    on_overrun: OnOverrun,
    token: CancelToken,
    /// The server, without its password, for messages.
    server: String,
}

#[derive(Default)]
struct State {
    /// When the COMMIT under way started, and how long it may take; `None` between COMMITs.
    since: Option<(Instant, Duration)>,
    /// The watch acted on the COMMIT under way.
    overran: bool,
    /// The session is gone: the thread ends.
    closed: bool,
}

impl std::fmt::Debug for CommitWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitWatch")
            .field("on_overrun", &self.shared.on_overrun)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CommitWatch {
    /// A watch that acts as `on_overrun` says (through `token` to cancel) on a COMMIT to
    /// `server` (shown without its password) still going after its bound.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(on_overrun: OnOverrun, token: CancelToken, server: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            on_overrun,
            token,
            server: server.to_string(),
        });
        let watched = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("pc-postgres-commit-watch".into())
            .spawn(move || watched.watch())?;
        Ok(Self { shared })
    }

    /// Runs `commit` under the watch, which acts on it once `bound` has passed; returns its
    /// result, and whether the watch asked the server to cancel it.
    pub fn around<T>(&self, bound: Duration, commit: impl FnOnce() -> T) -> (T, bool) {
        {
            let mut state = lock(&self.shared.state);
            state.since = Some((Instant::now(), bound));
            state.overran = false;
        }
        self.shared.wake.notify_one();
        let done = commit();
        let mut state = lock(&self.shared.state);
        state.since = None;
        let overran = std::mem::take(&mut state.overran);
        (done, overran && self.shared.on_overrun == OnOverrun::Cancel)
    }
}

impl Drop for CommitWatch {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    /// The thread: waits for a COMMIT, then for its bound; acts on it once if it is still
    /// going by then.
    fn watch(&self) {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return;
            }
            let Some((since, bound)) = state.since.filter(|_| !state.overran) else {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let left = (since + bound).saturating_duration_since(Instant::now());
            if !left.is_zero() {
                state = self
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            state.overran = true;
            drop(state);
            match self.on_overrun {
                // A failed request (the server cannot be reached) leaves the COMMIT to the
                // connection's own keepalives and TCP timeout.
                OnOverrun::Cancel => drop(self.token.cancel_query(NoTls)),
                OnOverrun::Warn => tracing::warn!(
                    "PostgreSQL {}: a COMMIT has not finished after {:.0} s; the server names \
                     synchronous standbys (synchronous_standby_names), so it may be waiting for \
                     one: still waiting",
                    self.server,
                    bound.as_secs_f64()
                ),
            }
            state = lock(&self.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OnOverrun;

    #[test]
    fn a_commit_that_may_wait_for_a_synchronous_standby_is_not_cancelled() {
        assert_eq!(OnOverrun::for_settings("", "on"), OnOverrun::Cancel);
        assert_eq!(
            OnOverrun::for_settings("  ", "remote_apply"),
            OnOverrun::Cancel
        );
        for commit in ["on", "remote_write", "remote_apply", "ON"] {
            assert_eq!(
                OnOverrun::for_settings("FIRST 1 (s1)", commit),
                OnOverrun::Warn,
                "{commit}"
            );
        }
        for commit in ["off", "local", "Local"] {
            assert_eq!(
                OnOverrun::for_settings("*", commit),
                OnOverrun::Cancel,
                "{commit}"
            );
        }
    }
}
