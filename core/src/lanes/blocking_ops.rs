//! Blocking push and pop (feature `std`). A push waits on its own lane (the lane's ring's
//! blocking push, woken by the pops, every lanes pop being a ring pop); a pop waits on all
//! lanes at once (`blocking.rs`). Under loom (its model checks) the operations without a
//! timeout only.

#![cfg(any(feature = "std", loom))]

#[cfg(not(loom))]
use core::time::Duration;

use super::{LaneSet, LanesCore};
#[cfg(not(loom))]
use crate::ring::PopError;
use crate::ring::{Closed, Consumers, PushError};

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
    #[cfg(not(loom))]
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

    /// Pushes every item of `items` to lane `lane`, waiting while that lane is full, as the
    /// ring's [`push_batch`](crate::ring::RingCore::push_batch) does: in batches of up to the
    /// lane's free space, each batch waking up to as many consumers asleep on the lanes as it
    /// holds values as soon as it is published (so `items` must not wait for a consumer of
    /// these lanes). Returns how many were pushed, once `items` is exhausted.
    ///
    /// # Errors
    /// [`Closed`] carrying how many this call pushed before the lanes were closed (`Closed(0)`
    /// also for an `items` that says it is empty, if they are closed already); the items not
    /// pushed stay in the iterator.
    ///
    /// # Panics
    /// If `lane >= self.lanes()` (before `items` is touched), or if `items` panics.
    ///
    /// ```
    /// let lanes = pc_core::HeapLanes::with_capacities(&[4, 4]);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| lanes.push_batch(1, &mut (0..100)).unwrap());
    ///     let mut out = Vec::new();
    ///     while out.len() < 100 {
    ///         lanes.pop_batch(&mut out, 64).unwrap();
    ///     }
    ///     assert_eq!(out, (0..100).collect::<Vec<_>>());
    /// });
    /// ```
    #[track_caller]
    pub fn push_batch<I>(&self, lane: usize, items: &mut I) -> Result<usize, Closed<usize>>
    where
        I: Iterator<Item = T>,
    {
        self.push_batch_until(lane, items, None)
            .map_err(|e| Closed(e.into_inner()))
    }

    /// [`push_batch`](Self::push_batch), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] once the lanes are
    /// closed; each carries how many were pushed, and the items not pushed stay in the
    /// iterator.
    ///
    /// # Panics
    /// As [`push_batch`](Self::push_batch).
    #[cfg(not(loom))]
    #[track_caller]
    pub fn push_batch_timeout<I>(
        &self,
        lane: usize,
        items: &mut I,
        timeout: Duration,
    ) -> Result<usize, PushError<usize>>
    where
        I: Iterator<Item = T>,
    {
        self.push_batch_until(lane, items, Some(crate::sync::deadline_after(timeout)))
    }

    /// Waits until lane `lane` has a free slot, pushing nothing: the lane's ring's
    /// [`wait_space`](crate::ring::RingCore::wait_space), for a producer that pushes with
    /// [`try_push`](Self::try_push) or [`try_push_batch`](Self::try_push_batch) and waits
    /// between its tries. Another producer may take the slot first: the caller's push can still
    /// find the lane full, and should then wait again.
    ///
    /// # Errors
    /// [`Closed`] once the lanes are closed.
    ///
    /// # Panics
    /// If `lane >= self.lanes()`.
    ///
    /// ```
    /// use pc_core::{Lanes, PushError};
    ///
    /// let lanes = Lanes::<u32, 2, 2>::new();
    /// let mut items = 0..5;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let mut got = Vec::new();
    ///         while got.len() < 5 {
    ///             lanes.pop_batch(&mut got, 2).unwrap();
    ///         }
    ///         assert_eq!(got, [0, 1, 2, 3, 4]);
    ///     });
    ///     while items.len() > 0 {
    ///         match lanes.try_push_batch(1, &mut items) {
    ///             Ok(_) => {}
    ///             Err(PushError::Full(())) => lanes.wait_space(1).unwrap(),
    ///             Err(PushError::Closed(())) => unreachable!("nobody closes them"),
    ///         }
    ///     }
    /// });
    /// ```
    #[track_caller]
    pub fn wait_space(&self, lane: usize) -> Result<(), Closed> {
        self.lane(lane).wait_space()
    }

    /// [`wait_space`](Self::wait_space), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] once the lanes are
    /// closed.
    ///
    /// # Panics
    /// If `lane >= self.lanes()`.
    #[cfg(not(loom))]
    #[track_caller]
    pub fn wait_space_timeout(&self, lane: usize, timeout: Duration) -> Result<(), PushError<()>> {
        self.lane(lane).wait_space_timeout(timeout)
    }

    /// `push_batch` and `push_batch_timeout`: the lane's ring's blocking batch push (which
    /// sleeps on that ring's producers, woken by the pops), waking the lanes' consumers after
    /// each run it publishes.
    #[track_caller]
    fn push_batch_until<I>(
        &self,
        lane: usize,
        items: &mut I,
        deadline: Option<crate::sync::Instant>,
    ) -> Result<usize, PushError<usize>>
    where
        I: Iterator<Item = T>,
    {
        let ring = self.lane(lane);
        self.waking_on_unwind(|| {
            ring.push_batch_until_then(items, deadline, Consumers::Unwatched, &mut |n| {
                self.batch_published(n);
            })
        })
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
        self.parking
            .wait(self.rings(), None, |races| {
                self.try_pop_lane_or(&mut || races.lost())
            })
            .map_err(|_| Closed(()))
    }

    /// Pops as [`try_pop`](Self::try_pop) does, waiting at most `timeout` on all lanes.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once every lane is
    /// closed and drained.
    #[cfg(not(loom))]
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        self.parking.wait(
            self.rings(),
            Some(crate::sync::deadline_after(timeout)),
            |races| {
                self.try_pop_lane_or(&mut || races.lost())
                    .map(|(_, value)| value)
            },
        )
    }

    /// Pops up to `max` values into `out` as [`try_pop_batch`](Self::try_pop_batch) does,
    /// waiting on all lanes at once until at least one is ready. Returns how many values
    /// `out` took (0 only if `max` is 0, or if `out` takes none of a batch).
    ///
    /// # Errors
    /// [`Closed`] once every lane is closed and drained.
    pub fn pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, Closed> {
        self.parking
            .wait(self.rings(), None, |races| {
                self.try_pop_batch_or(out, max, &mut || races.lost())
            })
            .map_err(|_| Closed(()))
    }

    /// Pops up to `max` values into `out`, waiting at most `timeout` until at least one is
    /// ready. Returns how many values `out` took, as [`pop_batch`](Self::pop_batch) does.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once every lane is
    /// closed and drained.
    #[cfg(not(loom))]
    pub fn pop_batch_timeout<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, PopError> {
        self.parking.wait(
            self.rings(),
            Some(crate::sync::deadline_after(timeout)),
            |races| self.try_pop_batch_or(out, max, &mut || races.lost()),
        )
    }

    /// Waits, popping nothing, until a pop would find something in some lane, as
    /// [`RingCore::wait_ready`](crate::RingCore::wait_ready) does for one ring: woken by the
    /// pushes and the close, passing no wake-up on, so after `Ok` pop until `Empty` (or wait
    /// again) before other long work. Another consumer may pop it first.
    ///
    /// # Errors
    /// [`Closed`] once every lane is closed and drained.
    ///
    /// ```
    /// use pc_core::{Closed, HeapLanes};
    ///
    /// let lanes = HeapLanes::<u32>::with_capacities(&[4, 4]);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| lanes.push(1, 7).unwrap());
    ///     assert_eq!(lanes.wait_ready(), Ok(()));
    ///     assert_eq!(lanes.try_pop(), Ok(7));
    /// });
    /// lanes.close();
    /// assert_eq!(lanes.wait_ready(), Err(Closed(())));
    /// ```
    pub fn wait_ready(&self) -> Result<(), Closed> {
        self.parking
            .wait_ready(self.rings(), None)
            .map_err(|_| Closed(()))
    }

    /// [`wait_ready`](Self::wait_ready), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once every lane is
    /// closed and drained.
    #[cfg(not(loom))]
    pub fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), PopError> {
        self.parking
            .wait_ready(self.rings(), Some(crate::sync::deadline_after(timeout)))
    }
}
