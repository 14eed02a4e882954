//! Non-blocking batch push and pop: up to `k` positions claimed with one CAS.
//!
//! A batch scans the stamps of the slots it wants (each with `Acquire`, as a single operation
//! would), then claims all the ready ones at once by moving its index past them. Because the
//! index had not moved when the CAS succeeded, nobody else can have claimed those positions, so
//! the slots are still as the scan saw them.

use core::iter::FusedIterator;

use super::single::{after_lost_claim, classify};
use super::slot::{MARK, ONE, PUBLISH, Slot, stamp_of};
use super::{PopError, PushError, RingCore, Storage};
use crate::sync::{Ordering, StampWord};

impl<T, S: Storage<T>> RingCore<T, S> {
    /// Pushes items from `items` into free slots, up to one ring's worth, claiming each run of
    /// slots with one atomic operation. Never waits for another thread.
    ///
    /// # Guarantees
    /// - **Nothing is taken from `items` without a slot to put it in.** Items that did not fit
    ///   stay in the iterator, in order; so no item is ever lost or reordered by a full or
    ///   closed ring. (A generic iterator cannot take an item back, and this call cannot wait
    ///   for room: so an item is taken only once a slot is claimed for it, never before.)
    /// - **A claim is no bigger than `items` promises to fill.** Each run claims as many slots
    ///   as the iterator's lower size bound (what it promises to yield; an exact-size iterator
    ///   such as a range, a slice iterator or a `Vec` drain is pushed with one claim; but a
    ///   drain drops what it still holds when it is dropped, as `&mut v.drain(..)` is at the
    ///   end of the statement, so drain no more than fits or keep a `v.into_iter()` across
    ///   calls). Where
    ///   the iterator promises nothing more but may still yield (`iter::from_fn`, `filter`, a
    ///   `chain` of those), one slot is claimed for its next item, and if `next()` then returns
    ///   `None`, that slot is given back (the tail moves back over it).
    /// - **No holes from honest iterators, but for one race.** A slot claimed and not filled
    ///   can be given back only while it is the last one claimed: if another claim is made
    ///   behind it first (another producer's, or a push from inside the iterator itself), or
    ///   the ring is closed, it becomes a *hole* instead, which consumers skip; it occupies a
    ///   slot (and `len`) until then. So exact-size iterators never make
    ///   holes; an iterator with no exact size makes at most one per call, and only when that
    ///   race is lost; one whose lower size bound overstates what it yields (a bug by
    ///   `Iterator`'s contract) makes them for the shortfall under the same race.
    /// - **A run is published at once.** Each value is published as it is written, except the
    ///   first slot's, published last: a consumer waiting at the first slot then finds the whole
    ///   run ready (faster: `docs/performance-log.md`, "What closed the gap"). So none of a
    ///   run can be popped before the iterator has produced all of it: the iterator must not
    ///   wait for a consumer of this ring (with an iterator that blocks on one, that is a
    ///   deadlock).
    ///
    /// Returns how many were pushed (0 only if `items` was empty: an iterator that says so,
    /// an upper size bound of 0, returns `Ok(0)` at once, even from a full ring).
    ///
    /// # Errors
    /// [`PushError::Full`] if no slot was free, [`PushError::Closed`] if the ring is closed
    /// (also for an empty `items`); nothing was taken from `items` in either case.
    ///
    /// # Panics
    /// Only if `items` panics (its `next` or `size_hint`), with its panic. The items it yielded
    /// before stay in the ring, in order and poppable; the slots claimed and not filled are
    /// given back, or, if a claim was made behind them meanwhile, become holes (so an
    /// exact-size iterator that panics can leave holes); the ring stays usable.
    ///
    /// ```
    /// use pc_core::Ring;
    ///
    /// let ring = Ring::<u32, 4>::new();
    /// let mut items = [1, 2, 3, 4, 5, 6].into_iter();
    /// assert_eq!(ring.try_push_batch(&mut items), Ok(4));
    /// assert_eq!(items.next(), Some(5)); // the rest stay in the iterator
    /// assert!(ring.try_push_batch(&mut items).unwrap_err().is_full());
    ///
    /// // An iterator with no size bound: only what it yields is claimed.
    /// let ring = Ring::<u32, 8>::new();
    /// let mut left = 2;
    /// let mut two = std::iter::from_fn(|| (left > 0).then(|| { left -= 1; left }));
    /// assert_eq!(ring.try_push_batch(&mut two), Ok(2));
    /// assert_eq!(ring.len(), 2);
    /// ```
    pub fn try_push_batch<I>(&self, items: &mut I) -> Result<usize, PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        self.try_push_batch_then(items, &mut |_| {})
    }

    /// [`try_push_batch`](Self::try_push_batch), calling `published(n)` after each claim it
    /// published (`n` values; 0 if it published holes only, or gave the claim back), as
    /// [`push_batch_step`](Self::push_batch_step) does.
    #[inline]
    pub(crate) fn try_push_batch_then<I>(
        &self,
        items: &mut I,
        published: &mut impl FnMut(usize),
    ) -> Result<usize, PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        self.refuse_empty_if_closed(items)?;
        self.push_batch_step(items, &mut || {}, published)
            .map(|(pushed, _)| pushed)
    }

    /// `Closed` for an `items` that says it is empty (an upper size bound of 0) if the ring is
    /// closed, so a batch push reports a closed ring whatever it is given; `push_batch_step`
    /// returns `Ok` for such an iterator without looking at the ring.
    #[inline]
    pub(super) fn refuse_empty_if_closed<I>(&self, items: &I) -> Result<(), PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        if items.size_hint().1 == Some(0) && self.is_closed() {
            return Err(PushError::Closed(()));
        }
        Ok(())
    }

    /// `try_push_batch`, also saying whether `items` was seen exhausted (an upper size bound
    /// of 0, or `next()` returned `None`), so `push_batch` never calls it again on an exhausted
    /// iterator; `lost_race` as in `try_push_or`. Calls `published(n)` after each claim, once
    /// it is published (`n` values filled): the lanes wake their own sleeping consumers there
    /// (their pops sleep on the lanes, not on this ring, whose consumers each claim wakes), so
    /// that an iterator slow to yield its next item does not keep them asleep meanwhile.
    pub(super) fn push_batch_step<I>(
        &self,
        items: &mut I,
        lost_race: &mut impl FnMut(),
        published: &mut impl FnMut(usize),
    ) -> Result<(usize, bool), PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        let mut pushed = 0;
        // At most one ring's worth per call, so an endless iterator cannot keep it here.
        let mut budget = self.capacity();
        while budget > 0 {
            let (promised, most) = items.size_hint();
            if most == Some(0) {
                return Ok((pushed, true));
            }
            // What the iterator promises, or one slot to find out whether it has another item.
            let want = promised.max(1).min(most.unwrap_or(usize::MAX)).min(budget);
            let (start, count) = match self.claim_free(want, lost_race) {
                Ok(claim) => claim,
                Err(e) if pushed == 0 => return Err(e),
                Err(_) => return Ok((pushed, false)),
            };
            let filled = self.fill(start, count, items);
            published(filled);
            pushed += filled;
            if filled < count {
                return Ok((pushed, true));
            }
            budget -= count;
        }
        Ok((pushed, false))
    }

    /// Claims up to `want` (>= 1) consecutive free positions at the tail with one CAS.
    /// Returns the first and how many. Calls `lost_race` as `try_push_or` does.
    fn claim_free(
        &self,
        want: usize,
        lost_race: &mut impl FnMut(),
    ) -> Result<(usize, usize), PushError<()>> {
        self.claim_free_from(self.look_at(&self.tail.index), want, lost_race)
    }

    /// [`claim_free`](Self::claim_free) from `tail`, a value the tail index held (tests pass
    /// one from long ago: an index gone stale).
    pub(super) fn claim_free_from(
        &self,
        mut tail: usize,
        want: usize,
        lost_race: &mut impl FnMut(),
    ) -> Result<(usize, usize), PushError<()>> {
        loop {
            if tail & MARK != 0 {
                return Err(PushError::Closed(()));
            }
            let (count, first) = self.scan_free(tail, want);
            if count == 0 {
                tail = self
                    .look_again(&self.tail.index, tail, classify(first, tail))
                    .ok_or(PushError::Full(()))?;
                continue;
            }
            // Release: claims `count` positions at once, and hands on what it saw of the slots,
            // as in try_push (Acquire on failure, as there); the values are ordered by the slot
            // stamps.
            match self.tail.index.compare_exchange_weak(
                tail,
                tail.wrapping_add(count * ONE),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok((tail, count)),
                Err(current) => tail = after_lost_claim(tail, current, lost_race),
            }
        }
    }

    /// Fills the `count` positions claimed from `start` on from `items`; returns how many it
    /// filled (fewer than `count` only if `items` ran out).
    pub(super) fn fill<I>(&self, start: usize, count: usize, items: &mut I) -> usize
    where
        I: Iterator<Item = T>,
    {
        // We own positions `start .. start + count * ONE`, all seen free. Each value is published
        // as soon as it is written, but for the first position's: the guard publishes that one
        // last (after giving back or holing any positions not filled, even if `items.next()`
        // panics, so consumers never stall on a position nobody will publish), so a consumer
        // waiting at the first slot finds the whole run at once. (Faster than writing every
        // value first and then storing the stamps: `docs/performance-log.md`, "What closed
        // the gap".)
        let mut claim = Claim {
            ring: self,
            start,
            count,
            filled: 0,
        };
        let mut position = start;
        'fill: for run in self.runs(start, count) {
            for slot in run {
                let Some(value) = items.next() else {
                    break 'fill;
                };
                // SAFETY: we won this slot's position and saw it free (Acquire) in the scan.
                unsafe { slot.write(value) };
                if claim.filled != 0 {
                    // Release publishes the value; pairs with the Acquire stamp load in pop.
                    slot.store_stamp(position.wrapping_add(ONE), PUBLISH);
                }
                claim.filled += 1;
                position = position.wrapping_add(ONE);
            }
        }
        let filled = claim.filled;
        drop(claim);
        filled
    }

    /// Pops up to `max` ready values into `out`, claiming them all with one atomic operation.
    /// Never waits for another thread. Returns how many values `out` took (at least 1 when it
    /// takes all it is given, as `Vec` and the other collections do; 0 if `max` is 0: then
    /// nothing is popped, and the ring is only asked whether it is closed and drained).
    ///
    /// `out` takes the values one by one, in one `out.extend` call; or, where the run holds no
    /// holes and wraps past the ring's last slot, in two, one per part, the second only if
    /// the first took every value of the first part (so an `Extend` that takes at most `k` a
    /// call may take up to `2k` in one pop). The slots are freed together once the last
    /// `out.extend` call returns (or panics), the run's first slot last of all: producers see
    /// none of the batch's slots free before then. The values of the claimed run that `out`
    /// did not take, because it panicked or returned early (an `Extend` that stops after a
    /// few), are dropped, and not counted. `out.extend` must not wait for a producer of this
    /// ring: a blocking push into a full ring from inside it waits for the very slots this pop
    /// holds, forever.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no value is ready at the head, [`PopError::Closed`] once the ring
    /// is closed and drained (also with `max == 0`; but a hole left at the head, see
    /// [the module docs](crate::ring), is passed only by a pop with `max > 0`: until one
    /// comes, `max == 0` says `Ok(0)`).
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
        self.try_pop_batch_or(out, max, &mut || {})
    }

    /// [`try_pop_batch`](Self::try_pop_batch), calling `lost_race` as `try_pop_or` does.
    pub(crate) fn try_pop_batch_or<E>(
        &self,
        out: &mut E,
        max: usize,
        lost_race: &mut impl FnMut(),
    ) -> Result<usize, PopError>
    where
        E: Extend<T>,
    {
        self.try_pop_batch_counted(out, max, RunFetch::Not, lost_race)
            .map(|p| p.taken)
    }

    /// [`try_pop_batch`](Self::try_pop_batch), prefetching the run it claims (see
    /// [`RunFetch`]): for `try_pop_batch_spinning`, whose consumer waits for a run after an
    /// `Empty` instead of taking each one the moment it is published.
    pub(super) fn try_pop_batch_prefetching<E>(
        &self,
        out: &mut E,
        max: usize,
    ) -> Result<usize, PopError>
    where
        E: Extend<T>,
    {
        self.try_pop_batch_counted(out, max, RunFetch::Prefetch, &mut || {})
            .map(|p| p.taken)
    }

    /// [`try_pop_batch_or`](Self::try_pop_batch_or), saying both how many values it popped
    /// and how many of them `out` took: the lanes' batch pop spends its `max`, and tells
    /// empty from closed, by the first.
    pub(crate) fn try_pop_batch_counted<E>(
        &self,
        out: &mut E,
        max: usize,
        fetch: RunFetch,
        lost_race: &mut impl FnMut(),
    ) -> Result<Popped, PopError>
    where
        E: Extend<T>,
    {
        if max == 0 {
            // Relaxed: the head only says which position to ask about; `empty_or_closed`
            // acquires what decides the answer. An older head is at most the tail too.
            let head = self.head.index.load(Ordering::Relaxed);
            return match self.empty_or_closed(head) {
                PopError::Closed => Err(PopError::Closed),
                PopError::Empty => Ok(Popped::default()),
            };
        }
        loop {
            let mut drain = self.claim_ready(max.min(self.capacity()), fetch, lost_race)?;
            let popped = drain.len();
            if popped == 0 {
                // Only holes were claimed: freed, `out` not called, and look again.
                drain.free();
                continue;
            }
            drain.move_into(out);
            // What `out` took: an `Extend` may return before the drain is exhausted.
            let taken = popped - drain.len();
            // Drops the values `out` left, if any, and frees the run's slots.
            drain.free();
            return Ok(Popped { popped, taken });
        }
    }

    /// Counts the consecutive free slots from position `tail` (at most `want`, each stamp read
    /// with Acquire). Returns the count and the stamp that stopped the scan (if any).
    #[inline(always)]
    fn scan_free(&self, tail: usize, want: usize) -> (usize, StampWord) {
        // Acquire: as below.
        let first = self.slot(tail).load_stamp(Ordering::Acquire);
        if first != stamp_of(tail) {
            return (0, first);
        }
        // Consumers free a run's first slot last (`stamp_run`), so behind a free first slot the
        // rest of the run is most likely free too: start fetching all its lines now.
        self.prefetch_run(tail, want);
        // The count is how far `expected` got: one counter, not two, in the loop.
        let counted = |expected: usize| expected.wrapping_sub(tail) / ONE;
        let mut expected = tail;
        for run in self.runs(tail, want) {
            for slot in run {
                // Acquire pairs with the consumer's Release that freed the slot, as in try_push.
                let stamp = slot.load_stamp(Ordering::Acquire);
                if stamp != stamp_of(expected) {
                    return (counted(expected), stamp);
                }
                expected = expected.wrapping_add(ONE);
            }
        }
        (counted(expected), stamp_of(expected))
    }

    /// Counts the consecutive published slots (values or holes) from position `head` (at most
    /// `want`, each stamp read with Acquire), prefetching their lines first if `fetch` says so.
    /// Returns the count, how many of them are holes, and the stamp that stopped the scan (if
    /// any).
    #[inline(always)]
    fn scan_published(
        &self,
        head: usize,
        want: usize,
        fetch: RunFetch,
    ) -> (usize, usize, StampWord) {
        // Acquire: as below.
        let first = self.slot(head).load_stamp(Ordering::Acquire);
        if first | stamp_of(MARK) != stamp_of(head.wrapping_add(ONE) | MARK) {
            return (0, 0, first);
        }
        if fetch == RunFetch::Prefetch {
            self.prefetch_published(head, want);
        }
        // A value is stamped `position + ONE`, a hole `position + ONE + MARK` (ONE is even).
        let mut expected = head.wrapping_add(ONE);
        // The count is how far `expected` got: one counter, not two, in the loop.
        let counted = |expected: usize| expected.wrapping_sub(head.wrapping_add(ONE)) / ONE;
        let mut holes = 0;
        for run in self.runs(head, want) {
            for slot in run {
                // Acquire pairs with the producer's Release publish, as in try_pop.
                let stamp = slot.load_stamp(Ordering::Acquire);
                if stamp != stamp_of(expected) {
                    if stamp != stamp_of(expected | MARK) {
                        return (counted(expected), holes, stamp);
                    }
                    holes += 1;
                }
                expected = expected.wrapping_add(ONE);
            }
        }
        (counted(expected), holes, stamp_of(expected))
    }

    /// Prefetches the lines of the run of up to `want` positions from `head` (whose first slot
    /// is published), as many as [`prefetch_run`](Self::prefetch_run) takes, if the run's last
    /// slot is published too: then its producers have written every slot of the run (one
    /// producer publishes in order, a batch its first slot last), and the prefetch takes no
    /// line a producer is still writing, except the one holding the run's last slot and the
    /// next. Otherwise nothing: the scan reads the stamps one by one.
    #[inline(always)]
    fn prefetch_published(&self, head: usize, want: usize) {
        let last = head.wrapping_add((want.min(Self::PREFETCH_SLOTS) - 1) * ONE);
        // Relaxed: decides only whether to prefetch; the scan loads every stamp with Acquire
        // before a value is read.
        let stamp = self.slot(last).load_stamp(Ordering::Relaxed);
        if stamp | stamp_of(MARK) == stamp_of(last.wrapping_add(ONE) | MARK) {
            self.prefetch_run(head, want);
        }
    }

    /// Claims up to `want` (>= 1) consecutive ready positions at the head with one CAS. Calls
    /// `lost_race` as `try_pop_or` does.
    fn claim_ready(
        &self,
        want: usize,
        fetch: RunFetch,
        lost_race: &mut impl FnMut(),
    ) -> Result<Drain<'_, T, S>, PopError> {
        self.claim_ready_from(self.look_at(&self.head.index), want, fetch, lost_race)
    }

    /// [`claim_ready`](Self::claim_ready) from `head`, a value the head index held (tests pass
    /// one from long ago: an index gone stale).
    pub(super) fn claim_ready_from(
        &self,
        mut head: usize,
        want: usize,
        fetch: RunFetch,
        lost_race: &mut impl FnMut(),
    ) -> Result<Drain<'_, T, S>, PopError> {
        loop {
            let (count, holes, first) = self.scan_published(head, want, fetch);
            if count == 0 {
                // Not a value nor a hole: the ring is empty here, or `head` is stale.
                let seen = classify(first, head.wrapping_add(ONE));
                head = self
                    .look_again(&self.head.index, head, seen)
                    .ok_or_else(|| self.empty_or_closed(head))?;
                continue;
            }
            // Release: claims `count` positions at once; pairs with `look_at` and `len`, as in
            // try_pop (Acquire on failure, as there).
            match self.head.index.compare_exchange_weak(
                head,
                head.wrapping_add(count * ONE),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let [first, rest] = self.runs(head, count);
                    return Ok(Drain {
                        ring: self,
                        start: head,
                        count,
                        unread: first.iter(),
                        rest,
                        holes,
                    });
                }
                Err(current) => head = after_lost_claim(head, current, lost_race),
            }
        }
    }
}

/// Stores `stamp(position)` into the slot of each of the `count` positions from `start` on, in
/// order but for the first, which is stored last: a thread waiting at the first position then
/// finds the whole run ready at once, instead of chasing this one slot by slot through cache
/// lines it is still writing. (Faster than storing the run last slot first:
/// `docs/performance-log.md`, "What closed the gap".) Every store is `order`.
#[inline(always)]
fn stamp_run<T, S: Storage<T>>(
    ring: &RingCore<T, S>,
    start: usize,
    count: usize,
    order: Ordering,
    stamp: impl Fn(usize) -> usize,
) {
    let [first_run, rest] = ring.runs(start, count);
    let Some((first, others)) = first_run.split_first() else {
        return;
    };
    // Two plain loops rather than a chain: a chained iterator tests which half it is in at
    // every slot.
    let mut position = start;
    for slot in others {
        position = position.wrapping_add(ONE);
        slot.store_stamp(stamp(position), order);
    }
    for slot in rest {
        position = position.wrapping_add(ONE);
        slot.store_stamp(stamp(position), order);
    }
    first.store_stamp(stamp(start), order);
}

/// Positions claimed by a batch push whose first position is not yet published. Dropping it
/// gives back the positions not filled (or, if it cannot, publishes them as holes), then
/// publishes the first one last, so a short or panicking iterator cannot stall the ring.
struct Claim<'a, T, S: Storage<T>> {
    ring: &'a RingCore<T, S>,
    /// Invariant: the `count` (>= 1) positions from `start` on (in steps of ONE) are owned by
    /// us and were seen free; the first `filled` hold values, all published but the first;
    /// the rest are unwritten and unpublished.
    start: usize,
    count: usize,
    filled: usize,
}

impl<T, S: Storage<T>> Drop for Claim<'_, T, S> {
    // Inlined, and the rare part out of line taking copies of the fields: no call ever sees the
    // claim's address, so the fill loop keeps `filled` in a register instead of storing it at
    // every value.
    #[inline(always)]
    fn drop(&mut self) {
        debug_assert!(self.count >= 1 && self.filled <= self.count);
        let (ring, start, count, filled) = (self.ring, self.start, self.count, self.filled);
        let published = if filled < count {
            give_back_unfilled(ring, start, count, filled)
        } else {
            count
        };
        if published == 0 {
            return; // the whole claim was given back
        }
        let first = start.wrapping_add(if filled > 0 { ONE } else { ONE | MARK });
        // Release publishes the first value (or hole), last; pairs with the Acquire stamp
        // load in pop.
        ring.slot(start).store_stamp(first, PUBLISH);
        ring.tail.waiters.notify(published);
    }
}

/// For a [`Claim`] of `count` positions from `start` of which only the first `filled` hold
/// values: gives back the positions not filled, if nobody has claimed behind them (and the
/// ring is not closed: the mark makes the expected value wrong), else publishes them as holes
/// (never the first position: `Claim::drop` publishes that one, last). Returns how many
/// positions remain claimed, to be published.
#[cold]
#[inline(never)]
fn give_back_unfilled<T, S: Storage<T>>(
    ring: &RingCore<T, S>,
    start: usize,
    count: usize,
    filled: usize,
) -> usize {
    let end = start.wrapping_add(count * ONE);
    let kept = start.wrapping_add(filled * ONE);
    // Relaxed: the positions given back were never written, so there is nothing to publish;
    // producers that now find room are woken below.
    if ring
        .tail
        .index
        .compare_exchange(end, kept, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        // The room given back is freed slots to a producer that found the ring full.
        ring.head.waiters.notify(count - filled);
        return filled;
    }
    for k in filled.max(1)..count {
        let position = start.wrapping_add(k * ONE);
        // Release publishes the hole; pairs with the Acquire stamp load in pop.
        ring.slot(position)
            .store_stamp(position.wrapping_add(ONE | MARK), PUBLISH);
    }
    count
}

/// What a batch pop moved: the values it popped, and how many of them its `Extend` took (the
/// rest were dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Popped {
    pub(crate) popped: usize,
    pub(crate) taken: usize,
}

/// Whether a batch pop prefetches the lines of the run it finds published before it reads
/// their stamps (a batch push always prefetches its free run: `scan_free`).
///
/// Only `try_pop_batch_spinning` prefetches, and only a run whose last slot is published
/// (`prefetch_published`). A consumer that tries again at once and keeps up with its producer
/// takes each run the moment it is published; on Intel Xeon its prefetch of the run's lines
/// (then as many as it asked for, published or not) slowed the producer filling the next run
/// (`docs/performance-log.md`, "The consumer's regime on Intel"), so `try_pop_batch` and the
/// blocking pops do not prefetch. The spinning pop, after an `Empty`, waits until the slot an
/// eighth of the ring past the head is published before it looks again, and then fetches only
/// lines its producers have finished writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunFetch {
    /// Prefetch the run's lines (at most [`super::PREFETCH_LINES`]).
    Prefetch,
    /// Read the stamps one by one.
    Not,
}

/// The values of a batch claimed at the head, moved out one by one as the iterator is advanced.
///
/// The slots are freed for producers together, by [`free`](Drain::free) once the consumer's
/// `Extend` has returned, or when the drain is dropped (see [`stamp_run`]): no atomic operation
/// stands between two values, so the consumer's own loop state stays in registers. Dropping the
/// drain drops whatever it did not yield and frees the slots, so a claim is never left
/// half-done. (Leaking it with `mem::forget` leaves its slots claimed: safe, but producers
/// stall there.)
pub struct Drain<'a, T, S: Storage<T>> {
    ring: &'a RingCore<T, S>,
    /// Invariant: the `count` positions from `start` on (in steps of ONE) are owned by us and
    /// were seen published (a value or a hole) with Acquire; `count` is 0 once they are freed,
    /// or handed on to another drain (`Drop`), and a drain is forgotten once `free` has freed
    /// them.
    start: usize,
    count: usize,
    /// The slots of the claim not yet read, in order: `unread`, then `rest`. The values of the
    /// slots before them have been moved out.
    unread: core::slice::Iter<'a, Slot<T>>,
    rest: &'a [Slot<T>],
    /// How many of the unread slots are holes (usually 0: then no stamp needs re-reading).
    holes: usize,
}

impl<T, S: Storage<T>> Iterator for Drain<'_, T, S> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        loop {
            // Taking the slot from the iterator first means a panic later can never read it
            // twice.
            let Some(slot) = self.unread.next() else {
                if self.rest.is_empty() {
                    return None;
                }
                self.unread = core::mem::take(&mut self.rest).iter();
                continue;
            };
            // Relaxed: we already acquired this stamp in the claim scan, and only we change it
            // until we free the slot. Read only if the claim has holes at all.
            if self.holes != 0 && slot.load_stamp(Ordering::Relaxed) & stamp_of(MARK) != 0 {
                self.holes -= 1;
                continue;
            }
            // SAFETY: we own this slot's position, saw its value published (Acquire, in the
            // scan), and it is read once (it has left `unread`).
            return Some(unsafe { slot.read() });
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let values = self.unread.len() + self.rest.len() - self.holes;
        (values, Some(values))
    }
}

impl<T, S: Storage<T>> ExactSizeIterator for Drain<'_, T, S> {}
impl<T, S: Storage<T>> FusedIterator for Drain<'_, T, S> {}

impl<T, S: Storage<T>> Drain<'_, T, S> {
    /// Moves the values into `out` (as many as its `extend` takes). Where the claim has no
    /// holes, `out` is given each part of the run (one, or two where it wraps) as a plain
    /// iterator of the slots' values, the second part only if `out` took all of the first:
    /// with neither the drain's switch between parts nor its hole check (an atomic load) in
    /// the loop, the caller's `extend` loop can keep its own state (a running sum, a length)
    /// in registers, where with the drain the compiler stored it to memory and loaded it back
    /// at every value. (The cost: the caller's loop is inlined here up to three times, and a
    /// `Vec` reserves once per part.)
    #[inline(always)]
    fn move_into<E: Extend<T>>(&mut self, out: &mut E) {
        if self.holes != 0 {
            out.extend(self);
            return;
        }
        out.extend(Values(&mut self.unread));
        if self.unread.len() == 0 && !self.rest.is_empty() {
            self.unread = core::mem::take(&mut self.rest).iter();
            out.extend(Values(&mut self.unread));
        }
    }

    /// Frees the claim's slots for producers (and wakes them), dropping first the values not
    /// moved out, if `T` has drop glue (else they are left, as bits nobody reads again).
    ///
    /// Inlined, and the drain is forgotten before the wake-up call: no call that could unwind
    /// sees the drain's address, so the loop that moved the values out could keep its
    /// position in registers.
    #[inline(always)]
    pub(super) fn free(self) {
        if core::mem::needs_drop::<T>() && self.len() != 0 {
            return; // dropping `self` drops the values left and frees the slots
        }
        let this = core::mem::ManuallyDrop::new(self);
        free_slots(this.ring, this.start, this.count);
    }

    /// Drops the values not yet moved out (if `T` has drop glue) and frees the claim's slots,
    /// even if dropping one of the values panics (a second panic aborts, as in `Vec`'s drain).
    #[cold]
    #[inline(never)]
    fn finish(mut self) {
        // Values without drop glue need no reading: free the slots at once.
        if !core::mem::needs_drop::<T>() {
            free_slots(self.ring, self.start, core::mem::take(&mut self.count));
            return;
        }
        /// Drops what is left, then frees the slots (and wakes producers for them).
        struct Finish<'d, 'a, T, S: Storage<T>>(&'d mut Drain<'a, T, S>);
        impl<T, S: Storage<T>> Drop for Finish<'_, '_, T, S> {
            fn drop(&mut self) {
                self.0.by_ref().for_each(drop);
                let drain = &mut *self.0;
                free_slots(drain.ring, drain.start, core::mem::take(&mut drain.count));
            }
        }
        let finish = Finish(&mut self);
        finish.0.by_ref().for_each(drop);
    }
}

/// The values of a drain's unread slots, moved out as it is advanced: a drain without holes,
/// one part of its run at a time ([`Drain::move_into`]). The slots it has passed are the
/// drain's no longer.
///
/// Invariant: built only by `Drain::move_into`, over the `unread` slots of a drain whose
/// claim has no holes (every slot holds a value the drain owns and has not moved out).
struct Values<'d, 'a, T>(&'d mut core::slice::Iter<'a, Slot<T>>);

impl<T> Iterator for Values<'_, '_, T> {
    type Item = T;

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        // SAFETY: the drain owns this slot's position and saw its value published (Acquire, in
        // the claim's scan); the claim has no holes, so every slot holds a value; and the slot
        // has left the drain's unread slots, so its value is read once.
        self.0.next().map(|slot| unsafe { slot.read() })
    }

    #[inline(always)]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T> ExactSizeIterator for Values<'_, '_, T> {}

/// Frees the `count` slots claimed by a batch pop from `start` on, and wakes producers for them.
#[inline(always)]
fn free_slots<T, S: Storage<T>>(ring: &RingCore<T, S>, start: usize, count: usize) {
    if count == 0 {
        return;
    }
    let lap = ring.lap();
    // Release frees each slot (our read of its value happens-before the next write to it);
    // pairs with the Acquire stamp load in push.
    stamp_run(ring, start, count, Ordering::Release, |position| {
        position.wrapping_add(lap)
    });
    ring.head.waiters.notify(count);
}

impl<T, S: Storage<T>> Drop for Drain<'_, T, S> {
    // Inlined, with the rest out of line on a copy of the fields: no call sees the drain's
    // address (as in `free`).
    #[inline(always)]
    fn drop(&mut self) {
        if self.count != 0 {
            let rest = Drain {
                ring: self.ring,
                start: self.start,
                count: core::mem::take(&mut self.count),
                unread: core::mem::take(&mut self.unread),
                rest: core::mem::take(&mut self.rest),
                holes: core::mem::take(&mut self.holes),
            };
            rest.finish();
        }
    }
}

impl<T, S: Storage<T>> core::fmt::Debug for Drain<'_, T, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.size_hint().0)
            .finish_non_exhaustive()
    }
}
