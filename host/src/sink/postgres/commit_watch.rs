//! A bound on COMMIT. The server stops timing a statement (`statement_timeout`) before its
//! COMMIT does its work: deferred triggers and constraint checks, the commit record's flush, a
//! synchronous standby's acknowledgement. A COMMIT stuck there would hold its writer, and the
//! run, for ever. A watch per session asks the server to cancel a COMMIT still going after the
//! writers' statement bound, as `pg_cancel_backend` would (a cancel request on a connection
//! of its own, [`postgres::CancelToken`]).
//!
//! What the cancel does is the server's: a COMMIT running deferred work fails (SQLSTATE 57014)
//! and rolls back, so the write is retried; one waiting for a synchronous standby has already
//! committed on the primary and returns as done, with a warning that it might not be
//! replicated. A cancel that reaches the server just after the COMMIT ended is ignored by an
//! idle session, or fails the session's next statement, which is then retried.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{CancelToken, NoTls};

/// One session's watch: a thread that waits while no COMMIT is under way.
pub struct CommitWatch {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a COMMIT starts and when the watch is dropped.
    wake: Condvar,
    bound: Duration,
    token: CancelToken,
}

#[derive(Default)]
struct State {
    /// When the COMMIT under way started; `None` between COMMITs.
    since: Option<Instant>,
    /// The COMMIT under way was asked to cancel.
    cancelled: bool,
    /// The session is gone: the thread ends.
    closed: bool,
}

impl std::fmt::Debug for CommitWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitWatch")
            .field("bound", &self.shared.bound)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CommitWatch {
    /// A watch that cancels, through `token`, a COMMIT still going after `bound`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(bound: Duration, token: CancelToken) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            bound,
            token,
        });
        let watched = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("pc-postgres-commit-watch".into())
            .spawn(move || watched.watch())?;
        Ok(Self { shared })
    }

    /// How long a COMMIT may take before it is cancelled.
    pub fn bound(&self) -> Duration {
        self.shared.bound
    }

    /// Runs `commit` under the watch; returns its result, and whether the watch asked the
    /// server to cancel it.
    pub fn around<T>(&self, commit: impl FnOnce() -> T) -> (T, bool) {
        {
            let mut state = lock(&self.shared.state);
            state.since = Some(Instant::now());
            state.cancelled = false;
        }
        self.shared.wake.notify_one();
        let done = commit();
        let mut state = lock(&self.shared.state);
        state.since = None;
        (done, std::mem::take(&mut state.cancelled))
    }
}

impl Drop for CommitWatch {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    /// The thread: waits for a COMMIT, then for its bound; cancels it once if it is still
    /// going by then.
    fn watch(&self) {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return;
            }
            let Some(since) = state.since.filter(|_| !state.cancelled) else {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let left = (since + self.bound).saturating_duration_since(Instant::now());
            if !left.is_zero() {
                state = self
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            state.cancelled = true;
            drop(state);
            // A failed request (the server cannot be reached) leaves the COMMIT to the
            // connection's own keepalives and TCP timeout.
            let _ = self.token.cancel_query(NoTls);
            state = lock(&self.state);
        }
    }
}
