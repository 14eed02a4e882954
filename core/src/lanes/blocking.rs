//! Parking for the lanes: consumers wait on all lanes with one [`Waiters`], and pushes and
//! the close wake them. The only file of `lanes` that uses `Waiters` (or `Blocked`).
//!
//! Why no wake-up is lost: the handshake of `ring/wait.rs`, spread over the lanes. A consumer
//! registers (`SeqCst` increment in `park`), then re-checks every lane's indices (`SeqCst`
//! loads in `RingCore::consumer_blocked`); a push changes its lane's tail with a `SeqCst` CAS
//! (inside the ring's `try_push`) and then loads the count (`SeqCst`, in `notify`), and a close
//! does the same with each lane's `SeqCst` `fetch_or`. Either the consumer's registration comes
//! first in the total order and the pusher wakes it, or the push comes first and the re-check
//! sees it. A lane whose slot at the head is claimed but not yet published is the ring's
//! held-slot case: the consumer naps, as the ring's do.
//!
//! Blocking pushes need nothing here: they are the lane's own ring `push`, which parks on that
//! ring's producers and is woken by the pops (every lanes pop is a ring pop). The blocking
//! operations themselves are in `blocking_ops.rs`.

#[cfg(all(feature = "std", not(loom)))]
use core::time::Duration;
#[cfg(all(feature = "std", not(loom)))]
use std::time::Instant;

use crate::ring::Waiters;
#[cfg(all(feature = "std", not(loom)))]
use crate::ring::{Blocked, PopError, RingCore, Storage};
#[cfg(all(feature = "std", not(loom)))]
use crate::sync::Backoff;

/// The consumers parked on all lanes at once.
#[derive(Debug)]
pub(crate) struct Parking {
    consumers: Waiters,
}

impl Parking {
    pub(crate) const fn new() -> Self {
        Self {
            consumers: Waiters::new(),
        }
    }

    /// A value was pushed to some lane: wakes the parked consumers, if any (one `SeqCst` load
    /// when nobody is parked).
    #[inline]
    pub(crate) fn pushed(&self) {
        self.consumers.notify();
    }

    /// How many consumers are registered to park (test support).
    #[cfg(all(test, feature = "std", not(loom)))]
    pub(crate) fn registered(&self) -> usize {
        self.consumers.registered()
    }

    /// Every lane was closed: wakes every parked consumer.
    #[inline]
    pub(crate) fn closed(&self) {
        self.consumers.notify();
    }
}

#[cfg(all(feature = "std", not(loom)))]
impl Parking {
    /// Retries `attempt` while it says `Empty`, with the adaptive wait, until `deadline` (then
    /// `Empty`). Parks only while no lane of `rings` has a value ready after registering; naps
    /// (see `ring/wait.rs`) while a lane's head slot is held.
    pub(crate) fn wait<T, S: Storage<T>, R>(
        &self,
        rings: &[RingCore<T, S>],
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        const NAP_MIN: Duration = Duration::from_micros(100);
        const NAP_MAX: Duration = Duration::from_millis(10);
        let mut backoff = Backoff::new();
        let mut nap = NAP_MIN;
        loop {
            match attempt() {
                Err(PopError::Empty) => {}
                done => return done,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PopError::Empty);
            }
            if !backoff.snooze() {
                let found = self.consumers.park(deadline, nap, || blocked(rings));
                nap = if found == Blocked::Slot {
                    (nap * 2).min(NAP_MAX)
                } else {
                    NAP_MIN
                };
                backoff.reset();
            }
        }
    }
}

/// Parking re-check over all lanes: not blocked if any lane has a value (or a hole) at its
/// head or is closed and drained (then a close is under way: its end wakes us, or the next
/// attempt says `Closed`); napping if a lane's head slot is held; else blocked by the indices
/// of every lane.
#[cfg(all(feature = "std", not(loom)))]
fn blocked<T, S: Storage<T>>(rings: &[RingCore<T, S>]) -> Blocked {
    let mut found = Blocked::Indices;
    for ring in rings {
        match ring.consumer_blocked() {
            Blocked::No => return Blocked::No,
            Blocked::Slot => found = Blocked::Slot,
            Blocked::Indices => {}
        }
    }
    found
}
