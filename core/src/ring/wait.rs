//! Parking for the blocking operations (feature `std`).
//!
//! Each side of the ring has a `Waiters`: the threads of that side parked until the other side
//! makes progress. The other side calls [`Waiters::notify`] after every successful operation;
//! that is one `SeqCst` load of a counter that lives in its own cache line, and no syscall
//! unless somebody is parked.
//!
//! Why no wake-up is lost (a Dekker-style handshake through the `SeqCst` total order):
//! a sleeper increments `count` (`SeqCst`), then re-checks the ring's indices (`SeqCst` loads)
//! while holding `lock`, and only sleeps if it is still blocked. The waker changes an index with
//! a `SeqCst` CAS, then loads `count` (`SeqCst`). Either the sleeper's increment comes first in
//! the total order, and the waker sees it and notifies (it must take `lock`, so it cannot slip
//! in between the sleeper's re-check and its wait); or the waker's CAS comes first, and the
//! sleeper's re-check sees the new index and does not sleep.

#[cfg(all(feature = "std", not(loom)))]
mod imp {
    use std::sync::{Condvar, Mutex, PoisonError};
    use std::time::Instant;

    use crate::sync::{AtomicUsize, Ordering};

    #[derive(Debug)]
    pub(crate) struct Waiters {
        /// Threads between registering in `park` and leaving it. Invariant: never "negative"
        /// (every decrement follows its own increment).
        count: AtomicUsize,
        lock: Mutex<()>,
        cond: Condvar,
    }

    impl Waiters {
        pub(crate) const fn new() -> Self {
            Self {
                count: AtomicUsize::new(0),
                lock: Mutex::new(()),
                cond: Condvar::new(),
            }
        }

        /// How many threads are registered to park (test support).
        #[cfg(test)]
        pub(crate) fn registered(&self) -> usize {
            // Relaxed: a test polls this until it sees the parkers arrive.
            self.count.load(Ordering::Relaxed)
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
        /// (re-checked after registering) says the wait is already over.
        pub(crate) fn park(&self, deadline: Option<Instant>, blocked: impl FnOnce() -> bool) {
            let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            // Publishes "a thread may be parked"; pairs with the SeqCst load in `notify`.
            self.count.fetch_add(1, Ordering::SeqCst);
            if blocked() {
                match deadline {
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
            }
            // Nothing to publish: the counter only gates notifications.
            self.count.fetch_sub(1, Ordering::SeqCst);
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

pub(crate) use imp::Waiters;
