//! Non-blocking batch push and pop: up to `k` positions claimed with one CAS.
//!
//! A batch scans the stamps of the slots it wants (each with `Acquire`, as a single operation
//! would), then claims all the ready ones at once by moving its index past them. Because the
//! index had not moved when the CAS succeeded, nobody else can have claimed those positions, so
//! the slots are still as the scan saw them.

use core::iter::FusedIterator;

use super::single::{Seen, classify};
use super::slot::{MARK, ONE, PUBLISH};
use super::{PopError, PushError, RingCore, Storage};
use crate::sync::Ordering;

impl<T, S: Storage<T>> RingCore<T, S> {
    /// Pushes items from `items` into as many free slots as there are (up to the iterator's
    /// upper size bound), claiming them all with one atomic operation. Never waits for another
    /// thread. Items that did not fit stay in the iterator: nothing is taken from it without a
    /// slot to put it in.
    ///
    /// Returns how many were pushed (0 only if `items` was empty).
    ///
    /// If the iterator yields fewer items than its size hint promised, the positions claimed
    /// for the missing items become *holes* that consumers skip; they occupy slots (and `len`)
    /// until then. Exact-size iterators never make holes.
    ///
    /// # Errors
    /// [`PushError::Full`] if no slot was free, [`PushError::Closed`] if the ring is closed;
    /// nothing was taken from `items` in either case.
    ///
    /// ```
    /// use pc_core::Ring;
    ///
    /// let ring = Ring::<u32, 4>::new();
    /// let mut items = [1, 2, 3, 4, 5, 6].into_iter();
    /// assert_eq!(ring.try_push_batch(&mut items), Ok(4));
    /// assert_eq!(items.next(), Some(5)); // the rest stay in the iterator
    /// assert!(ring.try_push_batch(&mut items).unwrap_err().is_full());
    /// ```
    pub fn try_push_batch<I>(&self, items: &mut I) -> Result<usize, PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        let want = match items.size_hint() {
            (_, Some(0)) => return Ok(0),
            (_, Some(n)) => n.min(self.capacity()),
            (_, None) => self.capacity(),
        };
        // Relaxed: only a starting guess; the CAS below validates it.
        let mut tail = self.tail.index.load(Ordering::Relaxed);
        let count = loop {
            if tail & MARK != 0 {
                return Err(PushError::Closed(()));
            }
            let (count, first) = self.scan_free(tail, want);
            if count == 0 {
                match classify(first, tail) {
                    Seen::Behind => return Err(PushError::Full(())),
                    // Relaxed: a fresh guess for the CAS.
                    _ => {
                        tail = self.tail.index.load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            // SeqCst: claims `count` positions at once; SeqCst only for the wait handshake.
            match self.tail.index.compare_exchange_weak(
                tail,
                tail.wrapping_add(count * ONE),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break count,
                Err(current) => tail = current,
            }
        };
        // We own positions `tail .. tail + count * ONE`, all seen free. The guard publishes
        // holes for any we do not fill, even if `items.next()` panics, so consumers never stall
        // on a position nobody will publish.
        let mut claim = Claim {
            ring: self,
            next: tail,
            end: tail.wrapping_add(count * ONE),
        };
        let mut pushed = 0;
        while claim.next != claim.end {
            let Some(value) = items.next() else { break };
            let slot = self.slot(claim.next);
            // SAFETY: we won this position and saw its slot free (Acquire) in the scan.
            unsafe { slot.write(value) };
            // Release publishes the value; pairs with the Acquire stamp load in pop.
            slot.stamp.store(claim.next.wrapping_add(ONE), PUBLISH);
            claim.next = claim.next.wrapping_add(ONE);
            pushed += 1;
        }
        drop(claim);
        Ok(pushed)
    }

    /// Pops up to `max` ready values into `out`, claiming them all with one atomic operation.
    /// Never waits for another thread. Returns how many were popped (at least 1, or 0 if `max`
    /// is 0).
    ///
    /// The slots are freed one by one as `out` takes the values; if `out.extend` panics, the
    /// values it did not take are dropped and their slots freed.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no value is ready at the head, [`PopError::Closed`] once the ring
    /// is closed and drained.
    ///
    /// ```
    /// use pc_core::Ring;
    ///
    /// let ring = Ring::<u32, 8>::new();
    /// ring.try_push_batch(&mut (1..=5)).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(ring.try_pop_batch(&mut out, 3), Ok(3));
    /// assert_eq!(ring.try_pop_batch(&mut out, 10), Ok(2));
    /// assert_eq!(out, [1, 2, 3, 4, 5]);
    /// ```
    pub fn try_pop_batch<E>(&self, out: &mut E, max: usize) -> Result<usize, PopError>
    where
        E: Extend<T>,
    {
        if max == 0 {
            return Ok(0);
        }
        loop {
            let drain = self.claim_ready(max.min(self.capacity()))?;
            let count = drain.len();
            out.extend(drain);
            if count > 0 {
                return Ok(count);
            }
            // Only holes were claimed (and skipped): look again.
        }
    }

    /// Counts the consecutive free slots from position `tail` (at most `want`, each stamp read
    /// with Acquire). Returns the count and the stamp that stopped the scan (if any).
    #[inline(always)]
    fn scan_free(&self, tail: usize, want: usize) -> (usize, usize) {
        let mut position = tail;
        for count in 0..want {
            // Acquire pairs with the consumer's Release that freed the slot, as in try_push.
            let stamp = self.slot(position).stamp.load(Ordering::Acquire);
            if stamp != position {
                return (count, stamp);
            }
            position = position.wrapping_add(ONE);
        }
        (want, position)
    }

    /// Counts the consecutive published slots (values or holes) from position `head` (at most
    /// `want`, each stamp read with Acquire). Returns the count, how many of them are holes,
    /// and the stamp that stopped the scan (if any).
    #[inline(always)]
    fn scan_published(&self, head: usize, want: usize) -> (usize, usize, usize) {
        let mut position = head;
        let mut holes = 0;
        for count in 0..want {
            // Acquire pairs with the producer's Release publish, as in try_pop.
            let stamp = self.slot(position).stamp.load(Ordering::Acquire);
            let expected = position.wrapping_add(ONE);
            // A value (`expected`) or a hole (`expected | MARK`; `expected` is even).
            if stamp | MARK != expected | MARK {
                return (count, holes, stamp);
            }
            holes += stamp & MARK;
            position = position.wrapping_add(ONE);
        }
        (want, holes, position)
    }

    /// Claims up to `want` (>= 1) consecutive ready positions at the head with one CAS.
    fn claim_ready(&self, want: usize) -> Result<Drain<'_, T, S>, PopError> {
        // Relaxed: only a starting guess; the CAS below validates it.
        let mut head = self.head.index.load(Ordering::Relaxed);
        loop {
            let (count, holes, first) = self.scan_published(head, want);
            if count == 0 {
                // Not a value nor a hole: the ring is empty here, or `head` is stale.
                match classify(first, head.wrapping_add(ONE)) {
                    Seen::Behind => return Err(self.empty_or_closed(head)),
                    // Relaxed: a fresh guess for the CAS.
                    _ => {
                        head = self.head.index.load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            // SeqCst: claims `count` positions at once; SeqCst only for the wait handshake.
            match self.head.index.compare_exchange_weak(
                head,
                head.wrapping_add(count * ONE),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(Drain {
                        ring: self,
                        next: head,
                        end: head.wrapping_add(count * ONE),
                        values: count - holes,
                        holes,
                    });
                }
                Err(current) => head = current,
            }
        }
    }
}

/// Positions claimed by a batch push and not yet published. Dropping it publishes the rest as
/// holes, so a short or panicking iterator cannot stall the ring.
struct Claim<'a, T, S: Storage<T>> {
    ring: &'a RingCore<T, S>,
    /// Invariant: `next..end` (wrapping, in steps of ONE) are owned by us, seen free, unwritten.
    next: usize,
    end: usize,
}

impl<T, S: Storage<T>> Drop for Claim<'_, T, S> {
    fn drop(&mut self) {
        while self.next != self.end {
            // Release publishes the hole; pairs with the Acquire stamp load in pop.
            self.ring
                .slot(self.next)
                .stamp
                .store(self.next.wrapping_add(ONE | MARK), PUBLISH);
            self.next = self.next.wrapping_add(ONE);
        }
        self.ring.tail.waiters.notify();
    }
}

/// The values of a batch claimed at the head, popped one by one as the iterator is advanced.
///
/// Each slot is freed for producers as soon as its value is taken. Dropping the iterator pops
/// and drops whatever it did not yield, so a claim is never left half-done.
pub struct Drain<'a, T, S: Storage<T>> {
    ring: &'a RingCore<T, S>,
    /// Invariant: `next..end` (wrapping, in steps of ONE) are owned by us and were seen
    /// published (a value or a hole) with Acquire.
    next: usize,
    end: usize,
    /// How many of `next..end` hold values.
    values: usize,
    /// How many of `next..end` are holes (usually 0: then no stamp needs re-reading).
    holes: usize,
}

impl<T, S: Storage<T>> Iterator for Drain<'_, T, S> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        while self.next != self.end {
            let position = self.next;
            let slot = self.ring.slot(position);
            // Relaxed: we already acquired this stamp in the claim scan, and only we change it
            // until we free the slot. Read only if the claim has holes at all.
            let hole = self.holes != 0 && slot.stamp.load(Ordering::Relaxed) & MARK != 0;
            let value = if hole {
                self.holes -= 1;
                None
            } else {
                // SAFETY: we own `position` and saw its value published (Acquire, in the scan).
                Some(unsafe { slot.read() })
            };
            // Advance before freeing, so that a panic later can never free this slot twice.
            self.next = position.wrapping_add(ONE);
            // Release frees the slot; pairs with the Acquire stamp load in push.
            slot.stamp
                .store(position.wrapping_add(self.ring.lap()), Ordering::Release);
            if let Some(v) = value {
                self.values -= 1;
                return Some(v);
            }
        }
        None
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.values, Some(self.values))
    }
}

impl<T, S: Storage<T>> ExactSizeIterator for Drain<'_, T, S> {}
impl<T, S: Storage<T>> FusedIterator for Drain<'_, T, S> {}

impl<T, S: Storage<T>> Drop for Drain<'_, T, S> {
    fn drop(&mut self) {
        /// Finishes the drain even if dropping one of the values panics, so the claimed
        /// slots are always freed (a second panic aborts, as in `Vec`'s drain).
        struct Finish<'d, 'a, T, S: Storage<T>>(&'d mut Drain<'a, T, S>);
        impl<T, S: Storage<T>> Drop for Finish<'_, '_, T, S> {
            fn drop(&mut self) {
                self.0.by_ref().for_each(drop);
                self.0.ring.head.waiters.notify();
            }
        }
        let finish = Finish(self);
        finish.0.by_ref().for_each(drop);
    }
}

impl<T, S: Storage<T>> core::fmt::Debug for Drain<'_, T, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.values)
            .finish_non_exhaustive()
    }
}
