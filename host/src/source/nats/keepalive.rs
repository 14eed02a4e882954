//! Progress acknowledgements for the messages a run holds.
//!
//! A message is acknowledged once its record is settled, which can take longer than the
//! consumer's ack wait: while a database outage is retried (`--retry-for`, 60 s by default,
//! against JetStream's usual 30 s), or while a full ring waits for a slow sink. JetStream would
//! then deliver the message again, to this process or another, while it is still in flight
//! here (stored once by its key, but delivered and checked again, and again at every ack wait).
//! So every message taken and not yet acknowledged or handed back is [`Held`], and a keeper
//! thread ([`keep`]) tells JetStream every third of the ack wait that each is still being
//! worked on (`+WPI`), which restarts its ack wait.
//!
//! Limits:
//! - A message held longer than [`Keep::give_up_after`] (`--retry-for` plus the ack wait: a
//!   sink that hangs rather than fails) is no longer kept alive: its ack wait runs out and
//!   JetStream gives it to another process. (A run's end from a publisher not seen before is
//!   recorded in two steps, each retried on its own: it is held afresh for the second.)
//! - Messages the client has pulled but the source has not yet taken (at most a chunk and a
//!   half, while the source waits for room in the ring) are not held: one left there past
//!   the ack wait is delivered again, and dropped by the sink as a duplicate.
//! - A process that stopped (killed, or its run failed with records left in the ring) keeps
//!   nothing alive: its messages' ack waits run out and JetStream delivers them elsewhere.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::nats;
use crate::telemetry::NatsStats;

/// The shortest time between two rounds, whatever the ack wait of an existing consumer.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The messages taken and not yet acknowledged or handed back: reply subject -> when taken.
#[derive(Debug, Default)]
pub struct Held {
    subjects: Mutex<HashMap<String, Instant>>,
    /// Held by a keeper's round while it queues its `+WPI`s, and by a hand-back while it
    /// queues its `-NAK`s: a `+WPI` queued after a `-NAK` would restart the ack wait the
    /// `-NAK`'s delay shortened (the message would come back after the ack wait, not the
    /// delay). Publishes on one client reach the server in the order they are queued.
    round: Mutex<()>,
}

impl Held {
    /// Holds the message whose reply subject is `subject`.
    pub fn hold(&self, subject: &str) {
        self.subjects().insert(subject.to_owned(), Instant::now());
    }

    /// Lets go of the messages whose reply subjects are `subjects` (acknowledged or handed
    /// back); subjects not held are ignored.
    pub fn release<'a>(&self, subjects: impl IntoIterator<Item = &'a str>) {
        let mut held = self.subjects();
        for s in subjects {
            held.remove(s);
        }
    }

    /// Excludes the keeper's rounds while held: taken around releasing and queueing a
    /// hand-back (see the field `round`).
    pub fn hand_back(&self) -> MutexGuard<'_, ()> {
        self.round.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The subjects of the messages taken after `since` (all of them if `None`).
    fn taken_after(&self, since: Option<Instant>) -> Vec<String> {
        self.subjects()
            .iter()
            .filter(|&(_, &taken)| since.is_none_or(|since| taken > since))
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn subjects(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.subjects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// When the keeper sends progress, and for how long it keeps a message alive.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// A third of the ack wait, so that a late round (a busy machine) still comes before the
    /// wait runs out (at least [`MIN_INTERVAL`]).
    pub every: Duration,
    /// `--retry-for` plus the ack wait: longer than any retry, and a queue's wait, should take.
    pub give_up_after: Duration,
}

impl Keep {
    pub fn new(ack_wait: Duration, retry_for: Duration) -> Self {
        Self {
            every: (ack_wait / 3).max(MIN_INTERVAL),
            give_up_after: retry_for.saturating_add(ack_wait),
        }
    }
}

/// Sends `+WPI` for every message held for less than `keep.give_up_after`, every
/// `keep.every`, until `stop` receives or its sender is dropped; counts each one sent in `sent`.
pub fn keep(
    held: &Held,
    client: &async_nats::Client,
    keep: Keep,
    stop: &Receiver<()>,
    sent: &AtomicU64,
) {
    let body = bytes::Bytes::from_static(b"+WPI");
    // Rounds on a fixed schedule: a slow round does not push the next ones later.
    let mut next = Instant::now() + keep.every;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        if !matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
            return;
        }
        let round = held.hand_back();
        // None: the clock began less than that long ago, so every message is recent enough.
        let since = Instant::now().checked_sub(keep.give_up_after);
        let subjects = held.taken_after(since);
        let n = nats::publish_each(client, subjects, &body, "a progress acknowledgement");
        drop(round);
        NatsStats::add(sent, n);
        next += keep.every;
        let now = Instant::now();
        if next <= now {
            // The round overran the next one's time: that one is skipped, not run at once.
            next = now + keep.every;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Held, Keep, MIN_INTERVAL};

    #[test]
    fn released_subjects_are_no_longer_held_and_unknown_ones_are_ignored() {
        let held = Held::default();
        let before = Instant::now() - Duration::from_secs(1);
        for s in ["$JS.ACK.a.1", "$JS.ACK.a.2", "$JS.ACK.a.3"] {
            held.hold(s);
        }
        held.release(["$JS.ACK.a.2", "$JS.ACK.a.9"]);
        let mut left = held.taken_after(Some(before));
        left.sort();
        assert_eq!(left, ["$JS.ACK.a.1", "$JS.ACK.a.3"]);
        held.release(["$JS.ACK.a.1", "$JS.ACK.a.3"]);
        assert!(held.taken_after(Some(before)).is_empty());
    }

    #[test]
    fn only_messages_taken_after_the_cut_off_are_kept_alive() {
        let held = Held::default();
        held.hold("$JS.ACK.a.1");
        let cut = Instant::now();
        held.hold("$JS.ACK.a.2");
        assert_eq!(held.taken_after(Some(cut)), ["$JS.ACK.a.2"]);
        assert_eq!(held.taken_after(None).len(), 2);
    }

    #[test]
    fn rounds_come_a_third_of_the_ack_wait_apart_and_never_back_to_back() {
        let keep = Keep::new(Duration::from_secs(30), Duration::from_secs(60));
        assert_eq!(keep.every, Duration::from_secs(10));
        assert_eq!(keep.give_up_after, Duration::from_secs(90));
        let tiny = Keep::new(Duration::from_millis(1), Duration::ZERO);
        assert_eq!(tiny.every, MIN_INTERVAL);
    }
}
