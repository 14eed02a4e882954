//! Blocking push and pop (feature `std`; also built under loom, without the timed variants,
//! so the loom suite checks the wake-ups): the non-blocking operations in an adaptive wait.
//!
//! A blocked thread spins briefly, then yields, then sleeps until woken (wait.rs); a timed
//! wait whose deadline is less than a scheduler slice away sleeps instead of yielding. A thread
//! whose recent waits spun in vain spins less (`sync::Backoff`). A waiting `push` looks at
//! the tail again only once there is room for a run, as `try_push_spinning` does, until it
//! first re-checks before sleeping. While nobody sleeps, the other side pays one plain load
//! per operation and makes no syscall.
//! Once an operation has lost the race for a position to a thread of its own side, it yields
//! before each later look after a lost race (`sync::LostRaces` says why); the `try_` operations
//! never yield.

#![cfg(any(feature = "std", loom))]

use core::cell::Cell;
#[cfg(not(loom))]
use core::time::Duration;

use super::single::{Seen, classify};
use super::slot::{MARK, ONE, stamp_of};
use super::wait::Step;
use super::{Closed, PopError, PushError, RingCore, Storage};
use crate::sync::{Instant, LostRaces, Ordering};

/// Whether a waiting push looks at the consumers' count: only a split ring's `Producer` does,
/// to close the ring rather than wait for good once every `Consumer` is gone (split.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consumers {
    /// The ring's own calls: the count means nothing to a ring used directly, nor once a
    /// split has ended (with a handle forgotten, it stays where it was).
    Unwatched,
    /// A `Producer`'s calls.
    Watched,
}

impl<T, S: Storage<T>> RingCore<T, S> {
    /// Pushes `value`, waiting while the ring is full (or the slot at the tail is still held
    /// by a pop): spins briefly (127 pause hints at most: fewer while this thread's recent
    /// waits spun in vain), yields (up to 58 times: fewer while this side's recent waits slept
    /// anyway; README, "The ring"), then sleeps until a pop frees a slot or the ring closes.
    /// While it spins and yields it tries again only once the slot `capacity / 8` past the
    /// tail is free (at most 63 of its looks skip the tail for that; the 64th and all later
    /// ones look at it), as [`try_push_spinning`](Self::try_push_spinning) does, so that it does not take each freed slot's cache line from a consumer in the
    /// middle of its work; before it sleeps it looks at the tail itself, and from then on
    /// takes any free slot. While other producers keep claiming the tail
    /// first, it retries at once the first time and yields before each later try, so that
    /// with more threads than cores its core goes to a consumer.
    ///
    /// # Errors
    /// [`Closed`] with the value if the ring is or becomes closed before a slot frees up.
    ///
    /// ```
    /// let ring = pc_core::HeapRing::with_capacity(4);
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.pop(), Ok(1));
    /// ```
    pub fn push(&self, value: T) -> Result<(), Closed<T>> {
        match self.push_until(value, None, Consumers::Unwatched) {
            Ok(()) => Ok(()),
            Err(e) => Err(Closed(e.into_inner())),
        }
    }

    /// Pushes `value`, waiting at most `timeout` while the ring is full, as
    /// [`push`](Self::push) waits (waiting for room for a run while it spins and yields). If
    /// the time runs out while it was waiting for a run, it looks at the tail once more: it
    /// never says `Full` while the slot at its tail is free.
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] if the ring is or becomes
    /// closed; both hand the value back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PushError, Ring};
    ///
    /// let ring = Ring::<u8, 2>::new();
    /// ring.push_timeout(1, Duration::ZERO).unwrap();
    /// ring.push_timeout(2, Duration::ZERO).unwrap();
    /// assert_eq!(ring.push_timeout(3, Duration::from_millis(1)), Err(PushError::Full(3)));
    /// ```
    #[cfg(not(loom))]
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        let deadline = Some(crate::sync::deadline_after(timeout));
        self.push_until(value, deadline, Consumers::Unwatched)
    }

    /// `push` and `push_timeout`, watching the consumers' count if `consumers` says so.
    ///
    /// The first try is inlined where the caller calls; the wait is one function out of line
    /// (`push_waiting`), so that every caller runs the same code for it whatever the
    /// compiler inlines around the call.
    #[inline]
    pub(super) fn push_until(
        &self,
        value: T,
        deadline: Option<Instant>,
        consumers: Consumers,
    ) -> Result<(), PushError<T>> {
        let mut races = LostRaces::new();
        match self.try_push_or(value, &mut || races.lost()) {
            Err(PushError::Full(value)) => self.push_waiting(value, deadline, consumers, races),
            done => done,
        }
    }

    /// [`push_until`](Self::push_until) after its first try found the ring full: the wait,
    /// which tries again first (`races`: what that try's claim lost).
    #[inline(never)]
    pub(super) fn push_waiting(
        &self,
        value: T,
        deadline: Option<Instant>,
        consumers: Consumers,
        mut races: LostRaces,
    ) -> Result<(), PushError<T>> {
        let mut value = Some(value);
        let abandoned = Cell::new(false);
        // The wait for room for a run (spinning.rs): the looks taken, 1 after the `Full` that
        // started it, as `try_push_spinning` counts them; but where that call starts again
        // after a look that finds `Full`, this wait goes on counting, so it takes at most 63
        // such looks in all. Ended for good (0) by the first re-check before a sleep, which
        // looks at the tail itself: a wait never sleeps, nor re-checks again and again, while
        // the slot at the tail is free.
        let run_wait = Cell::new(1);
        let outcome = self.head.waiters.wait_for(
            deadline,
            || {
                run_wait.set(0);
                self.producer_blocked(&abandoned, consumers)
            },
            || {
                let waiting = run_wait.get();
                if self.keeps_waiting(waiting) {
                    run_wait.set(waiting + 1);
                    return Step::Blocked;
                }
                let v = value.take().expect("value is put back on every retry");
                match self.try_push_or(v, &mut || races.lost()) {
                    Ok(()) => Step::Done(Ok(())),
                    Err(PushError::Closed(v)) => Step::Done(Err(PushError::Closed(v))),
                    // Every consumer is gone (`producer_blocked`): close rather than wait.
                    Err(PushError::Full(v)) if abandoned.get() => {
                        self.close();
                        Step::Done(Err(PushError::Closed(v)))
                    }
                    Err(PushError::Full(v)) => {
                        value = Some(v);
                        Step::Blocked
                    }
                }
            },
        );
        let value = value.take();
        match outcome {
            Some(result) => result,
            // Out of time while the run wait was on: look at the tail itself once, so that a
            // timed push never says `Full` while the slot at its tail is free.
            None if run_wait.get() != 0 => {
                self.try_push_or(value.expect("value was put back"), &mut || races.lost())
            }
            None => Err(PushError::Full(value.expect("value was put back"))),
        }
    }

    /// Pushes every item of `items`, waiting while the ring is full. Items go in batches of up
    /// to the free space, as [`try_push_batch`](Self::try_push_batch) does them (so `items`
    /// must not wait for a consumer of this ring, and an item is taken from it only once a
    /// slot is claimed for it). Returns how many were pushed, once `items` is exhausted: it
    /// stops at the first sign of that (an upper size bound of 0, or `next()` returning
    /// `None`), with no further call on the exhausted iterator.
    ///
    /// An iterator that cannot tell it is exhausted without being asked (no upper size bound,
    /// or a size hint that is not exact) is asked only once a slot is claimed for its next
    /// item: on a full ring this waits for room even if it then turns out to be exhausted.
    ///
    /// # Errors
    /// [`Closed`] carrying how many were pushed if the ring is or becomes closed (`Closed(0)`
    /// also for an `items` that says it is empty); the items not pushed stay in the iterator.
    ///
    /// ```
    /// let ring = pc_core::Ring::<u32, 4>::new();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| ring.push_batch(&mut (0..100)).unwrap());
    ///     let mut out = Vec::new();
    ///     while out.len() < 100 {
    ///         ring.pop_batch(&mut out, 64).unwrap();
    ///     }
    ///     assert_eq!(out, (0..100).collect::<Vec<_>>());
    /// });
    /// ```
    pub fn push_batch<I>(&self, items: &mut I) -> Result<usize, Closed<usize>>
    where
        I: Iterator<Item = T>,
    {
        self.push_batch_until(items, None, Consumers::Unwatched)
            .map_err(|e| Closed(e.into_inner()))
    }

    /// [`push_batch`](Self::push_batch), waiting at most `timeout` in all (one deadline for
    /// the whole call, however many times the ring fills).
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] if the ring is or
    /// becomes closed; each carries how many were pushed, and the items not pushed stay in the
    /// iterator.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PushError, Ring};
    ///
    /// let ring = Ring::<u32, 4>::new();
    /// let mut items = 0..6;
    /// assert_eq!(ring.push_batch_timeout(&mut items, Duration::from_millis(1)), Err(PushError::Full(4)));
    /// assert_eq!(items, 4..6); // the rest stay in the iterator
    /// let mut out = Vec::new();
    /// ring.try_pop_batch(&mut out, 4).unwrap();
    /// assert_eq!(ring.push_batch_timeout(&mut items, Duration::from_secs(60)), Ok(2));
    /// ```
    #[cfg(not(loom))]
    pub fn push_batch_timeout<I>(
        &self,
        items: &mut I,
        timeout: Duration,
    ) -> Result<usize, PushError<usize>>
    where
        I: Iterator<Item = T>,
    {
        let deadline = Some(crate::sync::deadline_after(timeout));
        self.push_batch_until(items, deadline, Consumers::Unwatched)
    }

    /// `push_batch` and `push_batch_timeout`, watching the consumers' count if `consumers`
    /// says so.
    pub(super) fn push_batch_until<I>(
        &self,
        items: &mut I,
        deadline: Option<Instant>,
        consumers: Consumers,
    ) -> Result<usize, PushError<usize>>
    where
        I: Iterator<Item = T>,
    {
        self.push_batch_until_then(items, deadline, consumers, &mut |_| {})
    }

    /// [`push_batch_until`](Self::push_batch_until), calling `published(n)` after each claim
    /// it published, as [`push_batch_step`](Self::push_batch_step) does.
    pub(crate) fn push_batch_until_then<I>(
        &self,
        items: &mut I,
        deadline: Option<Instant>,
        consumers: Consumers,
        published: &mut impl FnMut(usize),
    ) -> Result<usize, PushError<usize>>
    where
        I: Iterator<Item = T>,
    {
        if self.refuse_empty_if_closed(items).is_err() {
            return Err(PushError::Closed(0));
        }
        let mut pushed = 0;
        let mut races = LostRaces::new();
        let abandoned = Cell::new(false);
        loop {
            let step = self.head.waiters.wait_for(
                deadline,
                || self.producer_blocked(&abandoned, consumers),
                || match self.push_batch_step(items, &mut || races.lost(), &mut *published) {
                    Ok(done) => Step::Done(Ok(done)),
                    Err(PushError::Closed(())) => Step::Done(Err(())),
                    Err(PushError::Full(())) if abandoned.get() => {
                        self.close();
                        Step::Done(Err(()))
                    }
                    Err(PushError::Full(())) => Step::Blocked,
                },
            );
            match step {
                Some(Ok((n, exhausted))) => {
                    pushed += n;
                    if exhausted {
                        return Ok(pushed);
                    }
                }
                Some(Err(())) => return Err(PushError::Closed(pushed)),
                None => return Err(PushError::Full(pushed)),
            }
        }
    }

    /// Pops a value, waiting while the ring is empty (or the slot at the head is still held by
    /// a push): spins briefly, yields, then sleeps until a push publishes a value or the ring
    /// closes, as [`push`](Self::push) waits, but looking at the head itself at every try (a
    /// waiting pop takes the first value published; like a push, it yields after its second
    /// race lost to another consumer).
    ///
    /// # Errors
    /// [`Closed`] once the ring is closed and drained: the signal for a consumer to finish.
    ///
    /// ```
    /// let ring = pc_core::Ring::<u32, 4>::new();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         for i in 0..10 {
    ///             ring.push(i).unwrap();
    ///         }
    ///         ring.close();
    ///     });
    ///     let mut sum = 0;
    ///     while let Ok(v) = ring.pop() {
    ///         sum += v;
    ///     }
    ///     assert_eq!(sum, 45);
    /// });
    /// ```
    pub fn pop(&self) -> Result<T, Closed> {
        match self.pop_until(None) {
            Ok(v) => Ok(v),
            Err(_) => Err(Closed(())),
        }
    }

    /// Pops a value, waiting at most `timeout` while the ring is empty.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PopError, Ring};
    ///
    /// let ring = Ring::<u8, 2>::new();
    /// assert_eq!(ring.pop_timeout(Duration::from_millis(1)), Err(PopError::Empty));
    /// ring.close();
    /// assert_eq!(ring.pop_timeout(Duration::from_secs(60)), Err(PopError::Closed));
    /// ```
    #[cfg(not(loom))]
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        self.pop_until(Some(crate::sync::deadline_after(timeout)))
    }

    /// `pop` and `pop_timeout`: the first try inlined, the wait out of line (as
    /// [`push_until`](Self::push_until)).
    #[inline]
    fn pop_until(&self, deadline: Option<Instant>) -> Result<T, PopError> {
        let mut races = LostRaces::new();
        match self.try_pop_or(&mut || races.lost()) {
            Err(PopError::Empty) => self.pop_waiting(deadline, races),
            done => done,
        }
    }

    /// [`pop_until`](Self::pop_until) after its first try found the ring empty.
    #[inline(never)]
    fn pop_waiting(&self, deadline: Option<Instant>, mut races: LostRaces) -> Result<T, PopError> {
        let outcome = self.tail.waiters.wait_for(
            deadline,
            || self.consumer_blocked(),
            || match self.try_pop_or(&mut || races.lost()) {
                Err(PopError::Empty) => Step::Blocked,
                done => Step::Done(done),
            },
        );
        outcome.unwrap_or(Err(PopError::Empty))
    }

    /// Pops up to `max` values into `out`, waiting until at least one is ready, as
    /// [`pop`](Self::pop) waits. Returns how many values `out` took (0 only if `max` is 0,
    /// which returns at once, or if `out` takes none of a batch). Each batch is one
    /// [`try_pop_batch`](Self::try_pop_batch): `out` must not wait for a producer of this ring.
    ///
    /// # Errors
    /// [`Closed`] once the ring is closed and drained.
    ///
    /// ```
    /// let ring = pc_core::Ring::<u32, 8>::new();
    /// ring.try_push_batch(&mut (1..=3)).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(ring.pop_batch(&mut out, 8), Ok(3));
    /// assert_eq!(out, [1, 2, 3]);
    /// ```
    pub fn pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, Closed> {
        self.pop_batch_until(out, max, None).map_err(|_| Closed(()))
    }

    /// Pops up to `max` values into `out`, waiting at most `timeout` until at least one is
    /// ready. Returns how many values `out` took, as [`pop_batch`](Self::pop_batch) does.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PopError, Ring};
    ///
    /// let ring = Ring::<u32, 8>::new();
    /// let mut out = Vec::new();
    /// assert_eq!(ring.pop_batch_timeout(&mut out, 8, Duration::from_millis(1)), Err(PopError::Empty));
    /// ring.try_push(5).unwrap();
    /// assert_eq!(ring.pop_batch_timeout(&mut out, 8, Duration::from_secs(60)), Ok(1));
    /// assert_eq!(out, [5]);
    /// ```
    #[cfg(not(loom))]
    pub fn pop_batch_timeout<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, PopError> {
        self.pop_batch_until(out, max, Some(crate::sync::deadline_after(timeout)))
    }

    fn pop_batch_until<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, PopError> {
        let mut races = LostRaces::new();
        let outcome = self.tail.waiters.wait_for(
            deadline,
            || self.consumer_blocked(),
            || match self.try_pop_batch_or(out, max, &mut || races.lost()) {
                Err(PopError::Empty) => Step::Blocked,
                done => Step::Done(done),
            },
        );
        outcome.unwrap_or(Err(PopError::Empty))
    }

    /// Waits, popping nothing, until a pop would find something at the head: a value, or a
    /// slot to skip. For a consumer that must do something first once there is work (take a
    /// lock, say) and would rather not hold it while it waits.
    ///
    /// # Guarantees
    /// - Woken like a blocking pop: by the push that publishes the head slot, with no timeout
    ///   involved, and by `close`.
    /// - Takes a wake-up without passing one on: the slot it was woken for is still there, for
    ///   the caller's pop (which, if it pops a batch, takes every value ready).
    ///
    /// Because of that, the caller owes the ring a look: after `Ok`, pop until the ring says
    /// `Empty` (or call `wait_ready` again) before other long work or stopping. A wake-up may
    /// have been for a later slot, published while the head was still held, so one wake-up
    /// can stand for two values; a thread that pops one and walks away can leave the other
    /// ready with every other consumer asleep. (The blocking pops pass such a wake-up on.)
    ///
    /// # Non-guarantees
    /// - Another consumer may pop the value first: the caller's pop can still find the ring
    ///   empty (or, where the head was a slot to skip, find nothing behind it), and should
    ///   then wait again.
    ///
    /// # Errors
    /// [`Closed`] once the ring is closed and drained.
    ///
    /// ```
    /// use pc_core::{Closed, Ring};
    ///
    /// let ring = Ring::<u32, 4>::new();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| ring.push(7).unwrap());
    ///     assert_eq!(ring.wait_ready(), Ok(()));
    ///     assert_eq!(ring.try_pop(), Ok(7)); // the only consumer: nobody took it first
    /// });
    /// ring.close();
    /// assert_eq!(ring.wait_ready(), Err(Closed(())));
    /// ```
    pub fn wait_ready(&self) -> Result<(), Closed> {
        let waited = self.wait_ready_until(None);
        if waited.is_ok() {
            self.end_pop_run_wait();
        }
        waited.map_err(|_| Closed(()))
    }

    /// [`wait_ready`](Self::wait_ready), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PopError, Ring};
    ///
    /// let ring = Ring::<u8, 2>::new();
    /// assert_eq!(ring.wait_ready_timeout(Duration::from_millis(1)), Err(PopError::Empty));
    /// ring.try_push(1).unwrap();
    /// assert_eq!(ring.wait_ready_timeout(Duration::from_secs(60)), Ok(()));
    /// assert_eq!(ring.try_pop(), Ok(1));
    /// ring.close();
    /// assert_eq!(ring.wait_ready_timeout(Duration::from_secs(60)), Err(PopError::Closed));
    /// ```
    #[cfg(not(loom))]
    pub fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), PopError> {
        let waited = self.wait_ready_until(Some(crate::sync::deadline_after(timeout)));
        if waited.is_ok() {
            self.end_pop_run_wait();
        }
        waited
    }

    pub(super) fn wait_ready_until(&self, deadline: Option<Instant>) -> Result<(), PopError> {
        let outcome = self.tail.waiters.wait_until_ready(
            deadline,
            || self.consumer_blocked(),
            || match self.head_state() {
                Err(PopError::Empty) => Step::Blocked,
                done => Step::Done(done),
            },
        );
        outcome.unwrap_or(Err(PopError::Empty))
    }

    /// Waits, pushing nothing, until a push would find room at the tail: the producers'
    /// [`wait_ready`](Self::wait_ready). For a producer that claims with `try_push` (a sole
    /// [`Producer`](super::Producer), whose `try_push` claims with a plain store where its
    /// `push` does not) and waits only when the ring is full.
    ///
    /// # Guarantees
    /// - Woken like a blocking push: by the pop that frees the tail slot, with no timeout
    ///   involved, and by `close`. (On a split ring, [`Producer::wait_space`](super::Producer::wait_space) also closes the
    ///   ring and says `Closed` once its consumers are all gone, as a waiting push does.)
    /// - Takes a wake-up without passing one on: the slot it was woken for is still free, for
    ///   the caller's push. So the caller owes the ring a push after `Ok` (or another wait),
    ///   as [`wait_ready`](Self::wait_ready)'s caller owes it a pop.
    ///
    /// # Non-guarantees
    /// - Another producer may take the slot first: the caller's push can still find the ring
    ///   full, and should then wait again.
    ///
    /// # Errors
    /// [`Closed`] if the ring is or becomes closed.
    ///
    /// ```
    /// use pc_core::{Closed, PushError, Ring};
    ///
    /// let ring = Ring::<u32, 2>::new();
    /// ring.try_push_batch(&mut (1..3)).unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert_eq!(ring.try_pop(), Ok(1)));
    ///     let mut v = 3;
    ///     while let Err(PushError::Full(back)) = ring.try_push(v) {
    ///         v = back;
    ///         ring.wait_space().unwrap();
    ///     }
    /// });
    /// ring.close();
    /// assert_eq!(ring.wait_space(), Err(Closed(())));
    /// ```
    pub fn wait_space(&self) -> Result<(), Closed> {
        let waited = self.wait_space_until(None, Consumers::Unwatched);
        if waited.is_ok() {
            self.end_run_wait();
        }
        waited.map_err(|_| Closed(()))
    }

    /// [`wait_space`](Self::wait_space), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] if the ring is or
    /// becomes closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PushError, Ring};
    ///
    /// let ring = Ring::<u8, 2>::new();
    /// assert_eq!(ring.wait_space_timeout(Duration::from_secs(60)), Ok(()));
    /// ring.try_push_batch(&mut (1..3)).unwrap();
    /// assert_eq!(ring.wait_space_timeout(Duration::from_millis(1)), Err(PushError::Full(())));
    /// ring.close();
    /// assert_eq!(ring.wait_space_timeout(Duration::from_secs(60)), Err(PushError::Closed(())));
    /// ```
    #[cfg(not(loom))]
    pub fn wait_space_timeout(&self, timeout: Duration) -> Result<(), PushError<()>> {
        let deadline = Some(crate::sync::deadline_after(timeout));
        let waited = self.wait_space_until(deadline, Consumers::Unwatched);
        if waited.is_ok() {
            self.end_run_wait();
        }
        waited
    }

    /// `wait_space` and `wait_space_timeout`, watching the consumers' count if `consumers`
    /// says so.
    pub(super) fn wait_space_until(
        &self,
        deadline: Option<Instant>,
        consumers: Consumers,
    ) -> Result<(), PushError<()>> {
        let abandoned = Cell::new(false);
        let outcome = self.head.waiters.wait_until_ready(
            deadline,
            || self.producer_blocked(&abandoned, consumers),
            || match self.tail_state() {
                Err(PushError::Full(())) if abandoned.get() => {
                    self.close();
                    Step::Done(Err(PushError::Closed(())))
                }
                Err(PushError::Full(())) => Step::Blocked,
                done => Step::Done(done),
            },
        );
        outcome.unwrap_or(Err(PushError::Full(())))
    }

    /// Sleep re-check for producers: the slot at the tail still holds the previous lap's value
    /// (the ring is full there, or a pop has claimed the slot and not yet freed it), the ring
    /// is open, and someone may still free it. Anything else ends the sleep: the next attempt
    /// then pushes, fails with `Closed`, or finds the tail moved on and looks again; if every
    /// consumer of a split ring is gone, it sets `abandoned`, and the attempt that finds the
    /// ring full closes it (not this check: it runs holding this side's waiters' lock, which
    /// `close` takes).
    fn producer_blocked(&self, abandoned: &Cell<bool>, consumers: Consumers) -> bool {
        if self.tail_state() != Err(PushError::Full(())) {
            return false;
        }
        if consumers == Consumers::Watched && self.consumers_gone() {
            abandoned.set(true);
            return false;
        }
        true
    }

    /// What a push would find at the tail now: `Ok` for a free slot (or a tail that has moved
    /// on: a push looks again), else `Full`, or `Closed`.
    fn tail_state(&self) -> Result<(), PushError<()>> {
        // Relaxed: ordered after every waker's progress by the heavy fence after registering
        // (wait.rs); a stale value only makes the check below say "not blocked".
        self.tail_state_from(self.tail.index.load(Ordering::Relaxed))
    }

    /// [`tail_state`](Self::tail_state) from `tail`, a value the tail index held (tests pass
    /// one from long ago: an index gone stale).
    pub(super) fn tail_state_from(&self, tail: usize) -> Result<(), PushError<()>> {
        if tail & MARK != 0 {
            return Err(PushError::Closed(()));
        }
        // Acquire pairs with the consumer's Release free (pop/drain), as in try_push, so a
        // wake-up passed on from here carries it (wait.rs).
        let stamp = self.slot(tail).load_stamp(Ordering::Acquire);
        if classify(stamp, tail) == Seen::Behind && Self::moved(&self.tail.index, tail).is_none() {
            Err(PushError::Full(()))
        } else {
            Ok(())
        }
    }

    /// Whether every `Consumer` of this split ring is gone (split.rs), so no pop will ever
    /// free a slot again. Asked only for a `Producer`'s waits (`Consumers::Watched`): the
    /// count means nothing to a ring used directly, nor once a split has ended.
    fn consumers_gone(&self) -> bool {
        if cfg!(pc_mutant = "split_abandon_unseen") {
            return false;
        }
        // Relaxed: the count is set by `split` (ordered before any handle's use by the send
        // that moves the handle) and only falls, to 0 for good, by the last consumer's drop;
        // in a sleep re-check the heavy fence orders this load after that decrement, which
        // the drop follows with a wake-up (wait.rs).
        self.head.handles.load(Ordering::Relaxed) == 0
    }

    /// Sleep re-check for consumers: the slot at the head holds neither a value nor a hole yet
    /// (the ring is empty there, or a push has claimed the slot and not yet published it), and
    /// the ring is not both closed and drained.
    pub(crate) fn consumer_blocked(&self) -> bool {
        self.head_state() == Err(PopError::Empty)
    }

    /// What a pop would find at the head now: `Ok` for a value or a slot to skip (or a head
    /// that has moved on: a pop looks again), else `Empty`, or `Closed` once closed and drained.
    pub(crate) fn head_state(&self) -> Result<(), PopError> {
        // Relaxed: as in `tail_state`.
        self.head_state_from(self.head.index.load(Ordering::Relaxed))
    }

    /// [`head_state`](Self::head_state) from `head`, a value the head index held (tests pass
    /// one from long ago: an index gone stale).
    pub(super) fn head_state_from(&self, head: usize) -> Result<(), PopError> {
        // Acquire pairs with the producer's Release publish, as in try_pop.
        let stamp = self.slot(head).load_stamp(Ordering::Acquire);
        let expected = head.wrapping_add(ONE);
        if stamp == stamp_of(expected | MARK)
            || classify(stamp, expected) != Seen::Behind
            || Self::moved(&self.head.index, head).is_some()
        {
            return Ok(());
        }
        // Closed and drained? Asked exactly as `try_pop` asks it (the closed flag, then the
        // tail), so the re-check never says "done" while the attempt still says `Empty`.
        Err(self.empty_or_closed(head))
    }
}
