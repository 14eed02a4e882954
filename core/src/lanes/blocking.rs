//! Parking for the lanes (and, with `std`, the blocking operations): consumers wait on all
//! lanes with one [`Waiters`]. The only file of `lanes` that uses `Waiters`.
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
//! ring's producers and is woken by the pops (every lanes pop is a ring pop).

use crate::ring::Waiters;

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
mod wait {
    use core::time::Duration;
    use std::time::Instant;

    use super::super::{LaneSet, LanesCore};
    use crate::ring::{Blocked, Closed, PopError, PushError};
    use crate::sync::Backoff;

    impl<T, L: LaneSet<T>> LanesCore<T, L> {
        /// Pushes `value` to lane `lane`, waiting while that lane is full.
        ///
        /// # Errors
        /// [`Closed`] with the value once the lanes are closed (before a slot frees up).
        ///
        /// # Panics
        /// If `lane >= self.lanes()`.
        ///
        /// ```
        /// let lanes = pc_core::HeapLanes::with_capacities(&[2, 2]);
        /// lanes.push(1, "later").unwrap();
        /// lanes.push(0, "now").unwrap();
        /// assert_eq!(lanes.pop(), Ok("now"));
        /// ```
        #[track_caller]
        pub fn push(&self, lane: usize, value: T) -> Result<(), Closed<T>> {
            self.lane(lane).push(value)?;
            self.parking.pushed();
            Ok(())
        }

        /// Pushes `value` to lane `lane`, waiting at most `timeout` while that lane is full.
        ///
        /// # Errors
        /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] once the lanes are
        /// closed; both hand the value back.
        ///
        /// # Panics
        /// If `lane >= self.lanes()`.
        #[track_caller]
        pub fn push_timeout(
            &self,
            lane: usize,
            value: T,
            timeout: Duration,
        ) -> Result<(), PushError<T>> {
            self.lane(lane).push_timeout(value, timeout)?;
            self.parking.pushed();
            Ok(())
        }

        /// Pops as [`try_pop`](Self::try_pop) does, waiting on all lanes at once while none
        /// has a value ready.
        ///
        /// # Errors
        /// [`Closed`] once every lane is closed and drained: the signal for a consumer to end.
        ///
        /// ```
        /// let lanes = pc_core::Lanes::<u32, 2, 4>::new();
        /// std::thread::scope(|s| {
        ///     s.spawn(|| {
        ///         for i in 0..10u32 {
        ///             lanes.push(i as usize % 2, i).unwrap(); // even to lane 0, odd to lane 1
        ///         }
        ///         lanes.close();
        ///     });
        ///     let mut sum = 0;
        ///     while let Ok(v) = lanes.pop() {
        ///         sum += v;
        ///     }
        ///     assert_eq!(sum, 45);
        /// });
        /// ```
        pub fn pop(&self) -> Result<T, Closed> {
            self.pop_lane().map(|(_, value)| value)
        }

        /// Pops as [`try_pop_lane`](Self::try_pop_lane) does (saying which lane), waiting on
        /// all lanes at once while none has a value ready.
        ///
        /// # Errors
        /// [`Closed`] once every lane is closed and drained.
        pub fn pop_lane(&self) -> Result<(usize, T), Closed> {
            self.wait_for(None, || self.try_pop_lane())
                .map_err(|_| Closed(()))
        }

        /// Pops as [`try_pop`](Self::try_pop) does, waiting at most `timeout` on all lanes.
        ///
        /// # Errors
        /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once every lane is
        /// closed and drained.
        pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
            self.wait_for(Some(deadline(timeout)), || self.try_pop())
        }

        /// Pops up to `max` values into `out` as [`try_pop_batch`](Self::try_pop_batch) does,
        /// waiting on all lanes at once until at least one is ready. Returns how many were
        /// popped (0 only if `max` is 0).
        ///
        /// # Errors
        /// [`Closed`] once every lane is closed and drained.
        pub fn pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, Closed> {
            self.wait_for(None, || self.try_pop_batch(out, max))
                .map_err(|_| Closed(()))
        }

        /// Pops up to `max` values into `out`, waiting at most `timeout` until at least one is
        /// ready. Returns how many were popped (0 only if `max` is 0).
        ///
        /// # Errors
        /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once every lane is
        /// closed and drained.
        pub fn pop_batch_timeout<E: Extend<T>>(
            &self,
            out: &mut E,
            max: usize,
            timeout: Duration,
        ) -> Result<usize, PopError> {
            self.wait_for(Some(deadline(timeout)), || self.try_pop_batch(out, max))
        }

        /// Retries `attempt` while it says `Empty`, with the adaptive wait, until `deadline`
        /// (then `Empty`). Parks on the lanes' consumers only while no lane has a value ready
        /// after registering; naps (see `ring/wait.rs`) while a lane's head slot is held.
        fn wait_for<R>(
            &self,
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
                    let found = self
                        .parking
                        .consumers
                        .park(deadline, nap, || self.consumers_blocked());
                    nap = if found == Blocked::Slot {
                        (nap * 2).min(NAP_MAX)
                    } else {
                        NAP_MIN
                    };
                    backoff.reset();
                }
            }
        }

        /// Parking re-check over all lanes: not blocked if any lane has a value (or a hole) at
        /// its head or is closed and drained (then the close is under way: its end wakes us, or
        /// the next attempt says `Closed`); napping if a lane's head slot is held; else blocked
        /// by the indices of every lane.
        fn consumers_blocked(&self) -> Blocked {
            let mut found = Blocked::Indices;
            for ring in self.rings() {
                match ring.consumer_blocked() {
                    Blocked::No => return Blocked::No,
                    Blocked::Slot => found = Blocked::Slot,
                    Blocked::Indices => {}
                }
            }
            found
        }
    }

    /// `now + timeout`, saturating far in the future instead of overflowing.
    fn deadline(timeout: Duration) -> Instant {
        let now = Instant::now();
        now.checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(u32::MAX.into()))
    }
}
