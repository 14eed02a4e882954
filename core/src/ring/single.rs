//! Non-blocking single-value push and pop.

use super::slot::{MARK, ONE, PUBLISH, stamp_of};
use super::{PopError, PushError, RingCore, Storage};
use crate::sync::{Ordering, StampWord};

/// What a slot's stamp says about the position a thread is looking at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// The slot is ready for this operation at this position (free for a push; a value or a
    /// hole for a pop).
    Ready,
    /// The slot still belongs to the previous lap (push: not yet popped) or is not yet
    /// published (pop): the ring is full, or empty, at this position.
    Behind,
    /// The slot has moved past this position: another thread took it; reload the index.
    Ahead,
}

/// Classifies `stamp` against the stamp of `expected` by their wrapping difference, read as a
/// signed number (negative: its top bit set).
#[inline(always)]
pub(super) fn classify(stamp: StampWord, expected: usize) -> Seen {
    let diff = stamp.wrapping_sub(stamp_of(expected));
    if diff == 0 {
        Seen::Ready
    } else if diff > StampWord::MAX / 2 {
        Seen::Behind
    } else {
        Seen::Ahead
    }
}

/// After a claim's CAS from `expected` failed with `current`: calls `lost_race` if another
/// thread of this side moved the index meanwhile (not for a spurious failure, where `current`
/// is `expected`, nor for `close` marking the tail, where the next look returns `Closed`), and
/// returns `current`, the index to look at next.
#[inline(always)]
pub(super) fn after_lost_claim(
    expected: usize,
    current: usize,
    lost_race: &mut impl FnMut(),
) -> usize {
    if current != expected && current & MARK == 0 {
        lost_race();
    }
    current
}

impl<T, S: Storage<T>> RingCore<T, S> {
    /// Pushes `value` at the tail if a slot is free. Never waits for another thread.
    ///
    /// # Errors
    /// [`PushError::Full`] if the slot at the tail still holds a value (or is being popped);
    /// [`PushError::Closed`] if the ring is closed. Both hand `value` back.
    ///
    /// ```
    /// use pc_core::{PushError, Ring};
    ///
    /// let ring = Ring::<&str, 2>::new();
    /// assert_eq!(ring.try_push("a"), Ok(()));
    /// assert_eq!(ring.try_push("b"), Ok(()));
    /// assert_eq!(ring.try_push("c"), Err(PushError::Full("c")));
    /// ```
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        self.try_push_or(value, &mut || {})
    }

    /// [`try_push`](Self::try_push), calling `lost_race` each time its claim fails because
    /// another producer moved the tail first (claimed the position, or gave back positions a
    /// batch could not fill), before it looks again. A spurious CAS failure, or the ring being
    /// closed meanwhile, is no lost race. The blocking push yields there (`sync::LostRaces`).
    #[inline(always)]
    pub(super) fn try_push_or(
        &self,
        value: T,
        lost_race: &mut impl FnMut(),
    ) -> Result<(), PushError<T>> {
        self.try_push_from(self.look_at(&self.tail.index), value, lost_race)
    }

    /// [`try_push_or`](Self::try_push_or) from `tail`, a value the tail index held (tests pass
    /// one from long ago: an index gone stale).
    #[inline(always)]
    pub(super) fn try_push_from(
        &self,
        mut tail: usize,
        value: T,
        lost_race: &mut impl FnMut(),
    ) -> Result<(), PushError<T>> {
        loop {
            if tail & MARK != 0 {
                return Err(PushError::Closed(value));
            }
            let slot = self.slot(tail);
            // Acquire pairs with the consumer's Release that freed this slot (pop/drain), so its
            // read of the old value happens-before our write.
            let stamp = slot.load_stamp(Ordering::Acquire);
            match classify(stamp, tail) {
                Seen::Ready => {
                    // Release: claims position `tail`, and hands on to the next claim's Acquire
                    // look at the tail what this one saw of the slots (`look_at`). On failure
                    // Acquire, as that look: the claim goes on from the value it read. The
                    // value is ordered by the slot stamp (Acquire above, Release below), and
                    // the wait handshake has its own word (wait.rs).
                    match self.tail.index.compare_exchange_weak(
                        tail,
                        tail.wrapping_add(ONE),
                        Ordering::Release,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            // SAFETY: we won position `tail` and saw its slot free (Acquire).
                            unsafe { slot.write(value) };
                            // Release publishes the value; pairs with the Acquire stamp load in
                            // pop.
                            slot.store_stamp(tail.wrapping_add(ONE), PUBLISH);
                            self.tail.waiters.notify(1);
                            return Ok(());
                        }
                        Err(current) => tail = after_lost_claim(tail, current, lost_race),
                    }
                }
                seen => match self.look_again(&self.tail.index, tail, seen) {
                    None => return Err(PushError::Full(value)),
                    Some(now) => tail = now,
                },
            }
        }
    }

    /// Pops the value at the head if one is ready. Never waits for another thread.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no value is ready at the head (including while the push that
    /// claimed the head is still writing); [`PopError::Closed`] once the ring is closed and
    /// every value pushed before the close has been popped.
    ///
    /// ```
    /// use pc_core::{PopError, Ring};
    ///
    /// let ring = Ring::<u64, 4>::new();
    /// assert_eq!(ring.try_pop(), Err(PopError::Empty));
    /// ring.try_push(42).unwrap();
    /// assert_eq!(ring.try_pop(), Ok(42));
    /// ```
    #[inline]
    pub fn try_pop(&self) -> Result<T, PopError> {
        self.try_pop_or(&mut || {})
    }

    /// [`try_pop`](Self::try_pop), calling `lost_race` each time another consumer claims the
    /// position this one was about to claim (only consumers move the head; a spurious CAS
    /// failure is no lost race), before it looks again.
    #[inline(always)]
    pub(crate) fn try_pop_or(&self, lost_race: &mut impl FnMut()) -> Result<T, PopError> {
        self.try_pop_from(self.look_at(&self.head.index), lost_race)
    }

    /// [`try_pop_or`](Self::try_pop_or) from `head`, a value the head index held (tests pass
    /// one from long ago: an index gone stale).
    #[inline(always)]
    pub(super) fn try_pop_from(
        &self,
        mut head: usize,
        lost_race: &mut impl FnMut(),
    ) -> Result<T, PopError> {
        loop {
            let slot = self.slot(head);
            // Acquire pairs with the producer's Release publish, so its write of the value
            // happens-before our read.
            let stamp = slot.load_stamp(Ordering::Acquire);
            let expected = head.wrapping_add(ONE);
            let hole = stamp == stamp_of(expected | MARK);
            match if hole {
                Seen::Ready
            } else {
                classify(stamp, expected)
            } {
                Seen::Ready => {
                    // Release: claims position `head`; pairs with the next claim's Acquire look
                    // at the head (`look_at`), and makes this pop's Acquire of the slot (and so
                    // the push's claim of `head`) visible to `len`'s Acquire head load, which
                    // then never reads a tail below the head. On failure Acquire, as that look.
                    match self.head.index.compare_exchange_weak(
                        head,
                        head.wrapping_add(ONE),
                        Ordering::Release,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            let value = if hole {
                                None
                            } else {
                                // SAFETY: we won position `head` and saw its value published
                                // (Acquire); we read it once, then free the slot.
                                Some(unsafe { slot.read() })
                            };
                            // Release frees the slot for the next lap; pairs with the Acquire
                            // stamp load in push, ordering our read before its write.
                            slot.store_stamp(head.wrapping_add(self.lap()), Ordering::Release);
                            self.head.waiters.notify(1);
                            match value {
                                Some(v) => return Ok(v),
                                None => head = head.wrapping_add(ONE),
                            }
                        }
                        Err(current) => head = after_lost_claim(head, current, lost_race),
                    }
                }
                seen => match self.look_again(&self.head.index, head, seen) {
                    None => return Err(self.empty_or_closed(head)),
                    Some(now) => head = now,
                },
            }
        }
    }

    /// At `head`, no value is ready: is the ring merely empty, or closed and drained?
    #[inline]
    pub(super) fn empty_or_closed(&self, head: usize) -> PopError {
        // Acquire pairs with the Release `fetch_or` in `close` (and the read-modify-writes of
        // the wait count after it, which continue its release sequence). This reads the
        // consumers' own cache line: an open, empty ring is polled without touching the
        // producers' tail line.
        if self.closed_copy().load(Ordering::Acquire) & super::CLOSED_COPY == 0 {
            return PopError::Empty;
        }
        // Acquire pairs with the Release fetch_or in `close`; once marked, the tail is final.
        let tail = self.tail.index.load(Ordering::Acquire);
        if tail & MARK != 0 && tail & !MARK == head {
            // Closed, and every claimed position is below `head`: consumed or being consumed.
            PopError::Closed
        } else {
            PopError::Empty
        }
    }
}
