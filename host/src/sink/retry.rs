//! Retrying a write that may succeed later: exponential backoff with jitter, for at most
//! `--retry-for`, and the sink's health as the progress line and the summary see it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::ErrorKind;

/// The first wait after a failed write.
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// The wait before retry number `attempt` (0 = the first retry): 100 ms doubling to 5 s, each
/// drawn uniformly from its upper half, so that writers that failed together do not retry in
/// step; never past `left`.
pub fn backoff(attempt: u32, left: Duration) -> Duration {
    let cap = FIRST_WAIT
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_WAIT);
    let half = cap / 2;
    let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64));
    (half + jitter).min(left)
}

/// What the sink is going through, for the progress line, the metrics and the summary.
/// Written by whoever calls the sink (the consumers' writers, a source recording a publishing
/// run); read by anyone.
///
/// The atomics are `Relaxed`: each is a figure read on its own for display and publishes no
/// other memory. `retrying` is raised after `last_error` is stored under its mutex; a reader
/// that sees it may still read the previous episode's text (a display race only). The end of
/// the run reads them after joining the consumers, which orders everything.
#[derive(Debug, Default)]
pub struct Health {
    /// How many calls are retrying a failure now (writers side by side, a source recording a
    /// publishing run): each holds a [`Retrying`] while it does.
    retrying: AtomicU32,
    /// Retries in the run (tries after a failed one).
    retries: AtomicU64,
    /// Why the sink failed for good: each distinct reason, first first.
    failure: Mutex<Vec<String>>,
    /// The last retryable error, while retrying.
    last_error: Mutex<Option<String>>,
    /// Failed writes by kind: retryable, record, fatal.
    errors: [AtomicU64; 3],
}

impl Health {
    /// The last error retried, while any call is retrying one.
    pub fn retrying(&self) -> Option<String> {
        if self.retrying.load(Ordering::Relaxed) == 0 {
            return None;
        }
        lock(&self.last_error).clone()
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Failed writes of `kind` so far.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Ordering::Relaxed)
    }

    pub(super) fn count_error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The reasons the sink failed, joined; `None` while it has not.
    pub fn failure(&self) -> Option<String> {
        let reasons = lock(&self.failure);
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// A call starts retrying `error`: [`retrying`](Self::retrying) says so until the
    /// returned guard, and every other call's, is dropped.
    pub(super) fn start_retrying(&self, error: String) -> Retrying<'_> {
        *lock(&self.last_error) = Some(error.clone());
        self.retrying.fetch_add(1, Ordering::Relaxed);
        Retrying {
            health: self,
            last: error,
            changes: 0,
        }
    }

    pub(super) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a reason the sink failed; returns whether it is a new one.
    pub(super) fn fail(&self, why: String) -> bool {
        let mut reasons = lock(&self.failure);
        if reasons.contains(&why) {
            return false;
        }
        reasons.push(why);
        true
    }
}

/// One call retrying a failure ([`Health::start_retrying`]), until dropped.
#[derive(Debug)]
pub(super) struct Retrying<'a> {
    health: &'a Health,
    /// This call's last error (other calls retrying beside it have their own).
    last: String,
    /// How many times it changed.
    changes: u32,
}

impl Retrying<'_> {
    /// The most changes of error one call reports: an error whose text changes at every try
    /// (a server naming the session it deadlocked with) is said a few times, not at each.
    const CHANGES_SAID: u32 = 3;

    /// The retried call failed again with `error`: it becomes the error the health says
    /// ([`Health::retrying`]). Returns whether to report it: it differs from this call's
    /// error before (a lock that became a full disk, say), for its first few changes.
    pub(super) fn failed_again(&mut self, error: String) -> bool {
        *lock(&self.health.last_error) = Some(error.clone());
        if error == self.last {
            return false;
        }
        self.last = error;
        self.changes += 1;
        self.changes <= Self::CHANGES_SAID
    }
}

impl Drop for Retrying<'_> {
    fn drop(&mut self) {
        self.health.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_jitter_and_never_passes_what_is_left() {
        for attempt in 0..8 {
            let cap = (FIRST_WAIT * (1 << attempt)).min(MAX_WAIT);
            let d = backoff(attempt, Duration::from_secs(3600));
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            backoff(30, Duration::from_millis(7)),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn the_sink_is_retrying_while_any_call_is_and_says_the_last_error() {
        let health = Health::default();
        assert_eq!(health.retrying(), None);
        let first = health.start_retrying("locked".into());
        let second = health.start_retrying("gone".into());
        drop(first);
        assert_eq!(health.retrying().as_deref(), Some("gone"));
        drop(second);
        assert_eq!(health.retrying(), None);
    }

    #[test]
    fn a_retry_that_fails_differently_is_what_the_health_says_and_is_reported_once() {
        let health = Health::default();
        let mut episode = health.start_retrying("database is locked".into());
        assert!(
            !episode.failed_again("database is locked".into()),
            "the same error"
        );
        assert!(episode.failed_again("disk I/O error".into()), "a new error");
        assert_eq!(health.retrying().as_deref(), Some("disk I/O error"));
        assert!(!episode.failed_again("disk I/O error".into()), "said once");
        // Another call retrying beside it, its error another: no change for this one, and the
        // health says the latest try's error.
        let mut beside = health.start_retrying("locked by session 7".into());
        assert!(!episode.failed_again("disk I/O error".into()));
        assert_eq!(health.retrying().as_deref(), Some("disk I/O error"));
        assert!(beside.failed_again("locked by session 8".into()));
        assert_eq!(health.retrying().as_deref(), Some("locked by session 8"));
        // An error that changes at every try is reported for its first few changes only.
        let said: Vec<bool> = (9..14)
            .map(|n| beside.failed_again(format!("locked by session {n}")))
            .collect();
        assert_eq!(said, [true, true, false, false, false]);
        assert_eq!(health.retrying().as_deref(), Some("locked by session 13"));
    }
}
