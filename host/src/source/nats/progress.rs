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
//! Not kept alive: a message of a process that stopped (killed, or its run failed with records
//! left in the ring): its ack wait runs out and JetStream delivers it elsewhere, as before.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::nats;
use crate::telemetry::NatsStats;

/// The reply subjects of the messages taken and not yet acknowledged or handed back.
#[derive(Debug, Default)]
pub struct Held {
    subjects: Mutex<HashSet<String>>,
}

impl Held {
    /// Holds the message whose reply subject is `subject`.
    pub fn hold(&self, subject: &str) {
        self.lock().insert(subject.to_owned());
    }

    /// Lets go of the messages whose reply subjects are `subjects` (acknowledged or handed
    /// back); subjects not held are ignored.
    pub fn release<'a>(&self, subjects: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for s in subjects {
            held.remove(s);
        }
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.subjects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How often the keeper sends progress: a third of the ack wait, so that a late round (a busy
/// machine) still comes before the wait runs out.
pub fn interval(ack_wait: Duration) -> Duration {
    ack_wait / 3
}

/// Sends `+WPI` for every held message every `every`, until `stop` receives or its sender is
/// dropped; counts each one sent in `sent`.
pub fn keep(
    held: &Held,
    client: &async_nats::Client,
    every: Duration,
    stop: &Receiver<()>,
    sent: &AtomicU64,
) {
    let body = bytes::Bytes::from_static(b"+WPI");
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let subjects = held.snapshot();
        if subjects.is_empty() {
            continue;
        }
        let n = subjects.len() as u64;
        nats::runtime().block_on(async {
            for s in subjects {
                // A lost progress ack only lets this message be delivered again, which the
                // sink drops as a duplicate.
                if let Err(e) = client.publish(s, body.clone()).await {
                    tracing::debug!("NATS: a progress acknowledgement was not sent: {e}");
                }
            }
        });
        NatsStats::add(sent, n);
    }
}

#[cfg(test)]
mod tests {
    use super::Held;

    #[test]
    fn released_subjects_are_no_longer_held_and_unknown_ones_are_ignored() {
        let held = Held::default();
        for s in ["$JS.ACK.a.1", "$JS.ACK.a.2", "$JS.ACK.a.3"] {
            held.hold(s);
        }
        held.release(["$JS.ACK.a.2", "$JS.ACK.a.9"]);
        let mut left = held.snapshot();
        left.sort();
        assert_eq!(left, ["$JS.ACK.a.1", "$JS.ACK.a.3"]);
        held.release(["$JS.ACK.a.1", "$JS.ACK.a.3"]);
        assert!(held.is_empty());
    }
}
