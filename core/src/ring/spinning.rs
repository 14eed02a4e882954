//! The push for a producer that spins on `Full`: after a `Full`, it waits for room for a run
//! instead of pushing into each slot the moment the consumer frees it; and the batch pop for a
//! consumer that spins on `Empty`: after an `Empty`, it waits for a run of values instead of
//! taking each run the moment the producer publishes it. The ring's own
//! [`RingCore::try_push_spinning`] keeps its state in the tail's `Side` (shared by every
//! producer of the ring), its [`RingCore::try_pop_batch_spinning`] in the head's (shared by
//! every consumer); a split ring's handles keep theirs each in the handle (split.rs); a
//! blocking `push` keeps its own in its wait (blocking.rs).
//!
//! Why: a producer that outruns its consumer and tries again the moment one slot frees reads
//! the very slot the consumer is freeing, and each read takes that cache line from the
//! consumer in the middle of its work, so the line crosses between the cores several times
//! per value. Looking a run ahead instead reads a line the consumer reaches only later, and
//! the producer then fills the run without meeting the consumer (README, "A producer that spins on
//! `Full`", and the Benchmarks section's "The rhythm", measure it).

use super::single::{Seen, classify};
use super::slot::{MARK, ONE};
use super::{CLOSED_COPY, PopError, PushError, RingCore, Storage};
use crate::sync::Ordering;

/// After a `Full`, every this many `try_push_spinning` calls one looks at the tail even without
/// room for a run: a producer that keeps trying is never held off for good, whatever its
/// consumer waits for. A blocking push's wait counts its looks the same way but once only:
/// after its 64th, or its first re-check before sleeping, it looks at the tail every time.
const RUN_WAIT_LOOKS: u32 = 64;

impl<T, S: Storage<T>> RingCore<T, S> {
    /// [`try_push`](Self::try_push) for a caller that, on `Full`, tries again at once (a spin
    /// loop): after a `Full`, it waits for room for a run rather than push into each slot the
    /// moment a consumer frees it.
    ///
    /// Once a `try_push_spinning` has returned `Full`, the ring's `try_push_spinning` calls
    /// (from any producer: the ring keeps one state for all of them) return `Full` without
    /// looking at the tail until the slot `capacity / 8` positions past the tail is free (with
    /// one consumer, which frees slots in order: until `capacity / 8 + 1` slots are free),
    /// except every 64th call, which looks at the tail and pushes if its slot is free. A
    /// producer that outruns its consumer and tries again the moment one slot frees reads the
    /// very slot the consumer is freeing, taking its cache line mid-work; on some CPUs this
    /// wait is what keeps such a stream fast, on others it changes nothing (README, "A
    /// producer that spins on `Full`", measures both). A `try_push_spinning` that pushes ends the
    /// wait, and so does a [`wait_space`](Self::wait_space) (or its timed form) that returns
    /// `Ok`. Rings of fewer than 8 slots look at the tail itself.
    /// [`try_push`](Self::try_push) is exact, whatever this call last saw, and leaves the wait
    /// as it is; so does a blocking [`push`](Self::push), which keeps a wait of its own.
    /// Each call that waits writes the count into the producers' own cache line, which the
    /// other producers' claims use too: with several producers spinning at once that costs
    /// them line transfers among themselves (not measured). A split ring's producers keep
    /// this state each in its handle
    /// ([`Producer::try_push_spinning`](super::Producer::try_push_spinning)).
    ///
    /// # Errors
    /// [`PushError::Full`] if the slot at the tail is not free, or, after a `Full`, while the
    /// run past it is not free (so `Full` while [`is_full`](Self::is_full) is false: for at
    /// most 63 calls in a row from one producer, about that many from several, whose racing
    /// counts can lengthen it; each hands the value back; with several consumers, one
    /// preempted in the middle of popping the slot the wait looks at holds it until then);
    /// [`PushError::Closed`] if the ring is closed (never hidden by the wait).
    ///
    /// Not for a caller that stops calling on `Full` and waits for a signal that a consumer
    /// sends once (when it pops from a full ring, say), nor one that drops its value on
    /// `Full`: the call after the signal can be one of the 63, and then no signal comes, or
    /// the value is dropped while the ring has room. Those want `try_push`.
    ///
    /// ```
    /// use pc_core::{PushError, Ring};
    ///
    /// // A ring of 16: after a `Full`, the next push waits for the slot 16 / 8 = 2 past the
    /// // tail, so for three free slots.
    /// let ring = Ring::<u8, 16>::new();
    /// assert_eq!(ring.try_push_batch(&mut (0..16)), Ok(16));
    /// assert_eq!(ring.try_push_spinning(16), Err(PushError::Full(16)));
    /// ring.try_pop().unwrap();
    /// ring.try_pop().unwrap();
    /// assert_eq!(ring.try_push_spinning(16), Err(PushError::Full(16)), "two free");
    /// assert_eq!(ring.try_push(16), Ok(()), "try_push is exact");
    /// ring.try_pop().unwrap();
    /// ring.try_pop().unwrap();
    /// assert_eq!(ring.try_push_spinning(17), Ok(()), "three free: the run is");
    /// ```
    #[inline]
    pub fn try_push_spinning(&self, value: T) -> Result<(), PushError<T>> {
        // Relaxed, here and in the stores below: the word only decides whether to look at the
        // tail; nothing is published or acquired through it, and a store lost to another
        // producer's only shortens or lengthens one wait (the 64th look bounds it).
        let waiting = self.run_wait().load(Ordering::Relaxed);
        if self.keeps_waiting(waiting) {
            // Relaxed: as above.
            self.run_wait().store(waiting + 1, Ordering::Relaxed);
            return Err(PushError::Full(value));
        }
        let pushed = self.try_push(value);
        let now = u32::from(matches!(pushed, Err(PushError::Full(_))));
        if now != waiting {
            // Relaxed: as above.
            self.run_wait().store(now, Ordering::Relaxed);
        }
        pushed
    }

    /// Ends a `try_push_spinning` wait (for `wait_space`, after which a push goes to the
    /// first free slot). Writes the tail's line only if a wait is on.
    #[cfg(any(feature = "std", loom))]
    #[inline]
    pub(super) fn end_run_wait(&self) {
        // Relaxed: as in `try_push_spinning`.
        if self.run_wait().load(Ordering::Relaxed) != 0 {
            // Relaxed: as above.
            self.run_wait().store(0, Ordering::Relaxed);
        }
    }

    /// Whether a `try_push_spinning` whose wait has counted `waiting` calls (0: no wait) says
    /// `Full` without looking at the tail: a wait is on, this is not its 64th call, and the
    /// run past the tail is not free. A blocking push's wait asks the same of its own count
    /// (blocking.rs, `push_waiting`).
    #[inline(always)]
    pub(super) fn keeps_waiting(&self, waiting: u32) -> bool {
        waiting != 0 && waiting < RUN_WAIT_LOOKS && !self.has_run_free()
    }

    /// [`try_pop_batch`](Self::try_pop_batch) for a caller that, on `Empty`, tries again at
    /// once (a spin loop): after an `Empty`, it waits for a run of values rather than take each
    /// batch the moment a producer publishes it.
    ///
    /// Once a `try_pop_batch_spinning` has returned `Empty`, the ring's
    /// `try_pop_batch_spinning` calls (from any consumer: the ring keeps one state for all of
    /// them, in the consumers' cache line) return `Empty` without looking at the head until
    /// the slot `capacity / 8` positions past the head is published (with one producer pushing
    /// single values, which it publishes in order: until `capacity / 8 + 1` values are ready; a
    /// batch push publishes its run's first slot last, so the wait can end a little early, and
    /// a look that finds the head not yet ready starts it again), except every 64th call,
    /// which looks at the head and pops what is there. A consumer that keeps up with its
    /// producer and tries again at once takes each run as soon as it is published, reading
    /// lines the producer has just written while it writes the next ones; on some CPUs the
    /// two then slow each other down (README, "A consumer that spins on `Empty`", measures
    /// it). A `try_pop_batch_spinning` that pops ends the wait (the other pops leave it as it
    /// is), and so does a [`wait_ready`](Self::wait_ready) (or its timed form) that returns
    /// `Ok`. Rings of fewer than 8 slots look at the head itself.
    /// [`try_pop_batch`](Self::try_pop_batch) is exact, whatever this call last saw, and
    /// leaves the wait as it is; so does a call with a `max` of 0, which is never held by it.
    /// Each call that waits writes the count into the consumers' own cache line (a
    /// read-modify-write): with several consumers spinning at once that costs them line
    /// transfers among themselves (not measured). A split ring's consumers keep this state
    /// each in its handle
    /// ([`Consumer::try_pop_batch_spinning`](super::Consumer::try_pop_batch_spinning)).
    ///
    /// # Errors
    /// [`PopError::Empty`] if no value is ready at the head, or, after an `Empty`, while the
    /// run past it is not published (so `Empty` while [`is_empty`](Self::is_empty) is false:
    /// for at most 63 calls in a row from one consumer, about that many from several, whose
    /// racing counts can lengthen it);
    /// [`PopError::Closed`] once the ring is closed and drained (never hidden by the wait).
    ///
    /// Not for a caller that stops calling on `Empty` and waits for a signal that a producer
    /// sends once: the call after the signal can be one of the 63, and then no signal comes.
    /// That caller wants `try_pop_batch`.
    ///
    /// ```
    /// use pc_core::{PopError, Ring};
    ///
    /// let ring = Ring::<u32, 16>::new(); // looks 16 / 8 = 2 past the head
    /// let mut out = Vec::new();
    /// assert_eq!(ring.try_pop_batch_spinning(&mut out, 8), Err(PopError::Empty));
    /// ring.try_push_batch(&mut (0..2)).unwrap();
    /// assert_eq!(ring.try_pop_batch_spinning(&mut out, 8), Err(PopError::Empty), "two ready");
    /// ring.try_push(2).unwrap();
    /// assert_eq!(ring.try_pop_batch_spinning(&mut out, 8), Ok(3), "three ready: the run is");
    /// assert_eq!(out, [0, 1, 2]);
    /// ring.try_push(3).unwrap();
    /// assert_eq!(ring.try_pop_batch_spinning(&mut out, 8), Ok(1), "no wait after a pop");
    /// ```
    pub fn try_pop_batch_spinning<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
    ) -> Result<usize, PopError> {
        if max == 0 {
            return self.try_pop_batch(out, 0);
        }
        let waiting = self.pop_run_wait();
        if self.keeps_waiting_for_values(waiting) {
            self.set_pop_run_wait(waiting + 1);
            return Err(PopError::Empty);
        }
        let popped = self.try_pop_batch_prefetching(out, max);
        let now = u32::from(matches!(popped, Err(PopError::Empty)));
        if now != waiting {
            self.set_pop_run_wait(now);
        }
        popped
    }

    /// Ends a `try_pop_batch_spinning` wait (for `wait_ready`, after which a pop takes what is
    /// ready). Writes the head's line only if a wait is on.
    #[cfg(any(feature = "std", loom))]
    #[inline]
    pub(super) fn end_pop_run_wait(&self) {
        if self.pop_run_wait() != 0 {
            self.set_pop_run_wait(0);
        }
    }

    /// Whether a `try_pop_batch_spinning` whose wait has counted `waiting` calls (0: no wait)
    /// says `Empty` without looking at the head: a wait is on, this is not its 64th call, the
    /// run past the head is not published, and the ring is not closed.
    #[inline(always)]
    pub(super) fn keeps_waiting_for_values(&self, waiting: u32) -> bool {
        waiting != 0 && waiting < RUN_WAIT_LOOKS && !self.has_run_ready()
    }

    /// Whether a consumer that found the ring empty may try again: the slot
    /// [`run_len`](Self::run_len) positions past the head is published for its position (a
    /// value or a hole; so, with one producer pushing single values, a run of that many more
    /// is ready), or the head has moved past it, or the ring is closed (the pop then drains
    /// it, or says so).
    #[inline(always)]
    fn has_run_ready(&self) -> bool {
        // Relaxed: this only decides whether to try; the pop that follows reads the head again
        // and loads its slots' stamps with Acquire before it reads a value.
        if self.closed_copy().load(Ordering::Relaxed) & CLOSED_COPY != 0 {
            return true;
        }
        // Relaxed, as above.
        let head = self.head.index.load(Ordering::Relaxed);
        let ahead = head.wrapping_add(self.run_len() * ONE);
        // Relaxed, as above: a look, not a claim.
        let stamp = self.slot(ahead).load_stamp(Ordering::Relaxed);
        classify(stamp, ahead.wrapping_add(ONE)) != Seen::Behind
    }

    /// How many slots past the tail [`has_run_free`](Self::has_run_free), or the head
    /// [`has_run_ready`](Self::has_run_ready), looks: an eighth of the capacity (0, looking at
    /// the index itself, below 8 slots).
    #[inline(always)]
    fn run_len(&self) -> usize {
        (self.storage.mask() + 1) / 8
    }

    /// Whether a producer that found the ring full may try again: the slot
    /// [`run_len`](Self::run_len) positions past the tail is free for its position (so,
    /// with one consumer, which frees slots in order, a run of that many more is free), or the
    /// tail has moved past it, or the ring is closed (the push then says so).
    #[inline(always)]
    fn has_run_free(&self) -> bool {
        // Relaxed: this only decides whether to try; the push that follows reads the tail
        // again and loads its slot's stamp with Acquire before it writes.
        let tail = self.tail.index.load(Ordering::Relaxed);
        if tail & MARK != 0 {
            return true;
        }
        let ahead = tail.wrapping_add(self.run_len() * ONE);
        // Relaxed, as above: a look, not a claim; nothing is read or written on its strength.
        let stamp = self.slot(ahead).load_stamp(Ordering::Relaxed);
        classify(stamp, ahead) != Seen::Behind
    }
}
