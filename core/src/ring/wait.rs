//! Parking for the blocking operations (feature `std`).
//!
//! Each side of the ring has a `Waiters`: the threads of that side parked until the other side
//! makes progress. The other side calls [`Waiters::notify`] after every successful operation;
//! that is one `SeqCst` load of a counter kept in the line of that side's own index (which the
//! operation has just written), and no syscall unless somebody is parked.
//!
//! Why no wake-up is lost (a Dekker-style handshake through the `SeqCst` total order):
//! a sleeper increments `count` (`SeqCst`), then re-checks the ring's indices (`SeqCst` loads)
//! while holding `lock`, and only sleeps if it is still blocked. The waker changes an index with
//! a `SeqCst` read-modify-write (a push's or pop's claiming CAS, or `close`'s `fetch_or`), then,
//! later in the same call (for a batch, at its end), loads `count` (`SeqCst`). Either the
//! sleeper's increment comes first in the total order, and the waker sees it and notifies (it
//! must take `lock`, so it cannot slip in between the sleeper's re-check and its wait); or the
//! waker's index change comes first, and the sleeper's re-check sees the new index and does not
//! sleep on it.
//!
//! One wait is not covered by that handshake: the indices say there is room (or a value), but
//! the slot at hand is still held by the other side between its claim and its stamp store: a
//! single operation for a few nanoseconds, or a batch for as long as its iterator (push) or
//! its `Extend` (pop) runs, since a batch hands its run over only at its end. That slot's
//! release is a `Release` stamp store followed by the `notify` load, which a CPU may reorder,
//! so a sleeper registering at that moment could miss it. Such a sleeper therefore naps: it
//! sleeps until notified (nearly always, the batch's end wakes it, measured about 20 us after
//! it) or for at most its nap, which `wait_for` doubles from 100 us to 10 ms over consecutive
//! naps. Before naps, a producer blocked behind a long `Extend` spun and yielded for all of it.

#[cfg(all(feature = "std", not(loom)))]
mod imp {
    use core::time::Duration;
    use std::sync::{Condvar, Mutex, PoisonError};
    use std::time::Instant;

    use crate::sync::{AtomicUsize, Ordering};

    /// What a parking thread's re-check found.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Blocked {
        /// The wait is over (or cannot end by waiting): do not sleep.
        No,
        /// Blocked by the indices: sleep until notified (or the deadline).
        Indices,
        /// Room by the indices, but the slot at hand is still held by the other side: sleep
        /// until notified or for at most the nap (see the module docs).
        Slot,
    }

    #[derive(Debug)]
    pub(crate) struct Waiters {
        /// Threads between registering in `park` and leaving it. Invariant: never "negative"
        /// (every decrement follows its own increment).
        count: AtomicUsize,
        lock: Mutex<()>,
        cond: Condvar,
        /// Threads inside a `wait` on `cond`: [blocked by the indices, napping behind a held
        /// slot] (test support: what a test waits for).
        #[cfg(test)]
        asleep: [AtomicUsize; 2],
    }

    impl Waiters {
        pub(crate) const fn new() -> Self {
            Self {
                count: AtomicUsize::new(0),
                lock: Mutex::new(()),
                cond: Condvar::new(),
                #[cfg(test)]
                asleep: [AtomicUsize::new(0), AtomicUsize::new(0)],
            }
        }

        /// How many threads are registered to park (test support).
        #[cfg(test)]
        pub(crate) fn registered(&self) -> usize {
            // Relaxed: a test polls this until it sees the parkers arrive.
            self.count.load(Ordering::Relaxed)
        }

        /// How many threads are asleep now napping behind a held slot (test support).
        #[cfg(test)]
        pub(crate) fn napping(&self) -> usize {
            // Relaxed: a test polls this until it sees the sleepers arrive.
            self.asleep[1].load(Ordering::Relaxed)
        }

        /// Wakes every parked thread, if there is one.
        #[inline]
        pub(crate) fn notify(&self) {
            // Pairs with the SeqCst increment in `park`: see the module docs.
            if self.count.load(Ordering::SeqCst) != 0 {
                self.notify_slow();
            }
        }

        #[cold]
        #[inline(never)]
        fn notify_slow(&self) {
            // Taking the lock orders us after any sleeper's re-check: it is either asleep in
            // `wait` (and gets this notification) or has not registered yet.
            drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
            self.cond.notify_all();
        }

        /// Parks until notified, `deadline` passes, or a spurious wake-up, unless `blocked()`
        /// (re-checked after registering) says the wait is already over; if it says the slot is
        /// still held (`Blocked::Slot`), for at most `nap` as well. Returns what it found.
        pub(crate) fn park(
            &self,
            deadline: Option<Instant>,
            nap: Duration,
            blocked: impl FnOnce() -> Blocked,
        ) -> Blocked {
            let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            // Publishes "a thread may be parked"; pairs with the SeqCst load in `notify`.
            self.count.fetch_add(1, Ordering::SeqCst);
            let found = blocked();
            let until = match found {
                Blocked::No => None,
                Blocked::Indices => Some(deadline),
                // A nap whose end `Instant` cannot represent is not taken at all: sleeping with
                // no end here could miss the slot's release for good.
                Blocked::Slot => Instant::now()
                    .checked_add(nap)
                    .map(|nap_end| Some(deadline.map_or(nap_end, |d| d.min(nap_end)))),
            };
            if let Some(until) = until {
                #[cfg(test)]
                // Relaxed: test support only (see `sleeping`).
                self.asleep[usize::from(found == Blocked::Slot)].fetch_add(1, Ordering::Relaxed);
                match until {
                    None => drop(
                        self.cond
                            .wait(guard)
                            .unwrap_or_else(PoisonError::into_inner),
                    ),
                    Some(d) => {
                        let timeout = d.saturating_duration_since(Instant::now());
                        if !timeout.is_zero() {
                            drop(
                                self.cond
                                    .wait_timeout(guard, timeout)
                                    .unwrap_or_else(PoisonError::into_inner),
                            );
                        }
                    }
                }
                #[cfg(test)]
                // Relaxed: test support only.
                self.asleep[usize::from(found == Blocked::Slot)].fetch_sub(1, Ordering::Relaxed);
            }
            // Nothing to publish: the counter only gates notifications.
            self.count.fetch_sub(1, Ordering::SeqCst);
            found
        }
    }
}

#[cfg(not(all(feature = "std", not(loom))))]
mod imp {
    /// Without `std` there is no blocking API, so nobody parks and nobody needs waking.
    #[derive(Debug)]
    pub(crate) struct Waiters;

    impl Waiters {
        pub(crate) const fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn notify(&self) {}
    }
}

#[cfg(all(feature = "std", not(loom)))]
pub(crate) use imp::Blocked;
pub(crate) use imp::Waiters;
