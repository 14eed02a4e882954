//! Blocking push and pop (feature `std`): the non-blocking operations in an adaptive wait.
//!
//! A blocked thread spins briefly, then yields, then parks (wait.rs). While nobody is parked,
//! the other side pays one uncontended load per operation and makes no syscall.

#![cfg(all(feature = "std", not(loom)))]

use core::time::Duration;
use std::time::Instant;

use super::single::{Seen, classify};
use super::slot::{MARK, ONE};
use super::wait::Blocked;
use super::{Closed, PopError, PushError, RingCore, Storage};
use crate::sync::{Backoff, Ordering};

/// The outcome of one attempt inside a wait.
enum Step<R> {
    Done(R),
    Blocked,
}

impl<T, S: Storage<T>> RingCore<T, S> {
    /// Pushes `value`, waiting while the ring is full.
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
        match self.push_until(value, None) {
            Ok(()) => Ok(()),
            Err(e) => Err(Closed(e.into_inner())),
        }
    }

    /// Pushes `value`, waiting at most `timeout` while the ring is full.
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] if the ring is or becomes
    /// closed; both hand the value back.
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        self.push_until(value, Some(deadline(timeout)))
    }

    fn push_until(&self, value: T, deadline: Option<Instant>) -> Result<(), PushError<T>> {
        let mut value = Some(value);
        let outcome = self.wait_for(&self.head.waiters, deadline, Self::producer_blocked, || {
            let v = value.take().expect("value is put back on every retry");
            match self.try_push(v) {
                Ok(()) => Step::Done(Ok(())),
                Err(PushError::Closed(v)) => Step::Done(Err(PushError::Closed(v))),
                Err(PushError::Full(v)) => {
                    value = Some(v);
                    Step::Blocked
                }
            }
        });
        match outcome {
            Some(result) => result,
            None => Err(PushError::Full(value.take().expect("value was put back"))),
        }
    }

    /// Pushes every item of `items`, waiting while the ring is full; items go in batches of up
    /// to the free space, each one [`try_push_batch`](Self::try_push_batch) (so `items` must
    /// not wait for a consumer of this ring). Returns how many were pushed.
    ///
    /// # Errors
    /// [`Closed`] carrying how many were pushed if the ring is or becomes closed; the items not
    /// pushed stay in the iterator.
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
        let mut pushed = 0;
        loop {
            let step = self.wait_for(
                &self.head.waiters,
                None,
                Self::producer_blocked,
                || match self.try_push_batch(items) {
                    Ok(n) => Step::Done(Ok(n)),
                    Err(PushError::Closed(())) => Step::Done(Err(())),
                    Err(PushError::Full(())) => Step::Blocked,
                },
            );
            match step {
                Some(Ok(0)) => return Ok(pushed),
                Some(Ok(n)) => pushed += n,
                _ => return Err(Closed(pushed)),
            }
        }
    }

    /// Pops a value, waiting while the ring is empty.
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
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        self.pop_until(Some(deadline(timeout)))
    }

    fn pop_until(&self, deadline: Option<Instant>) -> Result<T, PopError> {
        let outcome =
            self.wait_for(
                &self.tail.waiters,
                deadline,
                Self::consumer_blocked,
                || match self.try_pop() {
                    Err(PopError::Empty) => Step::Blocked,
                    done => Step::Done(done),
                },
            );
        outcome.unwrap_or(Err(PopError::Empty))
    }

    /// Pops up to `max` values into `out`, waiting until at least one is ready. Returns how
    /// many were popped (0 only if `max` is 0). Each batch is one
    /// [`try_pop_batch`](Self::try_pop_batch): `out` must not wait for a producer of this ring.
    ///
    /// # Errors
    /// [`Closed`] once the ring is closed and drained.
    pub fn pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, Closed> {
        self.pop_batch_until(out, max, None).map_err(|_| Closed(()))
    }

    /// Pops up to `max` values into `out`, waiting at most `timeout` until at least one is
    /// ready. Returns how many were popped (0 only if `max` is 0).
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    pub fn pop_batch_timeout<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, PopError> {
        self.pop_batch_until(out, max, Some(deadline(timeout)))
    }

    fn pop_batch_until<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, PopError> {
        let outcome =
            self.wait_for(
                &self.tail.waiters,
                deadline,
                Self::consumer_blocked,
                || match self.try_pop_batch(out, max) {
                    Err(PopError::Empty) => Step::Blocked,
                    done => Step::Done(done),
                },
            );
        outcome.unwrap_or(Err(PopError::Empty))
    }

    /// Retries `attempt` with the adaptive wait until it is done (`Some`) or `deadline` passes
    /// (`None`). Parks on `waiters` only while `blocked` still says so after registering; naps
    /// (see wait.rs) while it says a slot is held, each of consecutive naps twice the last, from
    /// `NAP_MIN` to `NAP_MAX`.
    fn wait_for<R>(
        &self,
        waiters: &super::Waiters,
        deadline: Option<Instant>,
        blocked: fn(&Self) -> Blocked,
        mut attempt: impl FnMut() -> Step<R>,
    ) -> Option<R> {
        const NAP_MIN: Duration = Duration::from_micros(100);
        const NAP_MAX: Duration = Duration::from_millis(10);
        let mut backoff = Backoff::new();
        let mut nap = NAP_MIN;
        loop {
            if let Step::Done(r) = attempt() {
                return Some(r);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            if !backoff.snooze() {
                nap = if waiters.park(deadline, nap, || blocked(self)) == Blocked::Slot {
                    (nap * 2).min(NAP_MAX)
                } else {
                    NAP_MIN
                };
                backoff.reset();
            }
        }
    }

    /// Parking re-check for producers: blocked by the indices (full, and not closed), or by
    /// the slot at the tail, which a consumer has claimed but not yet freed (a single pop about
    /// to free it, or a batch pop whose `Extend` is still taking its run).
    fn producer_blocked(&self) -> Blocked {
        // SeqCst: the handshake of wait.rs - pairs with the consumers' SeqCst head CAS and the
        // close's SeqCst fetch_or; a move we miss here is one whose waker will see us.
        let tail = self.tail.index.load(Ordering::SeqCst);
        let head = self.head.index.load(Ordering::SeqCst);
        if tail & MARK != 0 {
            return Blocked::No;
        }
        if (tail.wrapping_sub(head) as isize) >= self.lap() as isize {
            return Blocked::Indices;
        }
        // Acquire: as in try_push (pairs with the consumer's Release free).
        let stamp = self.slot(tail).stamp.load(Ordering::Acquire);
        if classify(stamp, tail) == Seen::Behind {
            Blocked::Slot
        } else {
            Blocked::No
        }
    }

    /// Parking re-check for consumers: blocked by the indices (no position claimed beyond the
    /// head, and not closed), or by the slot at the head, which a producer has claimed but not
    /// yet published (a single push about to publish it, or a batch push whose iterator is
    /// still producing its run).
    pub(crate) fn consumer_blocked(&self) -> Blocked {
        // SeqCst: the handshake of wait.rs - pairs with the producers' SeqCst tail CAS and the
        // close's SeqCst fetch_or.
        let tail = self.tail.index.load(Ordering::SeqCst);
        let head = self.head.index.load(Ordering::SeqCst);
        if ((tail & !MARK).wrapping_sub(head) as isize) < ONE as isize {
            // Nothing claimed beyond the head: wait for a push, unless closed (then drained).
            return if tail & MARK == 0 {
                Blocked::Indices
            } else {
                Blocked::No
            };
        }
        // Acquire: as in try_pop (pairs with the producer's Release publish).
        let stamp = self.slot(head).stamp.load(Ordering::Acquire);
        let expected = head.wrapping_add(ONE);
        if stamp != expected | MARK && classify(stamp, expected) == Seen::Behind {
            Blocked::Slot
        } else {
            Blocked::No
        }
    }
}

/// `now + timeout`, saturating far in the future instead of overflowing.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(u32::MAX.into()))
}
