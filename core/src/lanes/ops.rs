//! Non-blocking push and pops: the scan order (priority and the starvation guard) and the
//! rule that a pop reports `Closed` only when every lane does.

use super::{LaneSet, LanesCore};
use crate::ring::{PopError, PushError, RunFetch};
use crate::sync::Ordering;

/// The lanes a pop looks at, in order. An ordinary pop (`first` 0): lane 0, then down in
/// priority. A guard pop (`first >= 1`): `first`, then down in priority, wrapping round to
/// lane 1, and lane 0 last, so that it goes to lane 0 only when no lower lane has a value.
#[derive(Clone, Copy, Debug)]
struct Scan {
    first: usize,
    lanes: usize,
}

impl Scan {
    fn order(self) -> impl Iterator<Item = usize> {
        (0..self.lanes).map(move |i| {
            if self.first == 0 {
                return i;
            }
            if i == self.lanes - 1 {
                return 0;
            }
            // Lanes `1..lanes` in turn from `first`.
            let lane = self.first + i;
            if lane >= self.lanes {
                lane - self.lanes + 1
            } else {
                lane
            }
        })
    }
}

/// The lane guard pop `j` looks at first: `1 + j % (lanes - 1)` (lanes >= 2).
#[inline]
fn guard_lane(j: usize, lanes: usize) -> usize {
    1 + j % (lanes - 1)
}

/// Whether pop number `ticket` is a guard pop under guard `guard >= 1`, and if so which
/// (`Some(j)`). See the module docs of `lanes`.
#[inline]
fn guard_pop(ticket: usize, guard: u32) -> Option<usize> {
    // Saturating: where `guard + 1` does not fit a `usize` (`u32::MAX` on a 32-bit target, any
    // guard from `2^16` on a 16-bit one), the period is `usize::MAX`, one guard pop per
    // `usize::MAX` pops: as good as never, as asked.
    let period = usize::try_from(guard).map_or(usize::MAX, |g| g.saturating_add(1));
    let is_guard_pop = if cfg!(pc_mutant = "lanes_guard_first_pop") {
        // Deliberately broken (an off-by-one: pop 0 is a guard pop): the loom suite must
        // reject it (see `.ci/run`).
        ticket.is_multiple_of(period)
    } else {
        ticket % period == period - 1
    };
    is_guard_pop.then_some(ticket / period)
}

/// Wakes a consumer asleep on the lanes when dropped: held across a batch push into a lane and
/// forgotten once it returns (`waking_on_unwind`), so it acts only if the push unwinds (its
/// iterator panicked), leaving what it yielded published in the lane.
struct WakeOnUnwind<'a, T, L: LaneSet<T>>(&'a LanesCore<T, L>);

impl<T, L: LaneSet<T>> Drop for WakeOnUnwind<'_, T, L> {
    fn drop(&mut self) {
        self.0.batch_published(1);
    }
}

impl<T, L: LaneSet<T>> LanesCore<T, L> {
    /// Pushes `value` to lane `lane` if it has a free slot. Never waits for another thread.
    ///
    /// # Errors
    /// [`PushError::Full`] if the lane's slot at its tail still holds a value;
    /// [`PushError::Closed`] once the lanes are closed. Both hand `value` back.
    ///
    /// # Panics
    /// If `lane >= self.lanes()`.
    ///
    /// ```
    /// use pc_core::{Lanes, PushError};
    ///
    /// let lanes = Lanes::<u8, 2, 2>::new();
    /// lanes.try_push(1, 1).unwrap();
    /// lanes.try_push(1, 2).unwrap();
    /// assert_eq!(lanes.try_push(1, 3), Err(PushError::Full(3)));
    /// assert_eq!(lanes.try_push(0, 3), Ok(())); // each lane has its own slots
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_push(&self, lane: usize, value: T) -> Result<(), PushError<T>> {
        self.lane(lane).try_push(value)?;
        self.parking.pushed();
        Ok(())
    }

    /// Pushes items of `items` to lane `lane`, as many as it has free slots for, in order, as
    /// the ring's [`try_push_batch`](crate::ring::RingCore::try_push_batch) does (one claim for
    /// the run; an item is taken from `items` only once a slot is claimed for it). Never
    /// waits for another thread.
    ///
    /// Returns how many were pushed (0 only if `items` was empty).
    ///
    /// # Errors
    /// [`PushError::Full`] if the lane had no free slot, [`PushError::Closed`] once the lanes
    /// are closed (also for an empty `items`); both carry `()`, and nothing was taken from
    /// `items` in either case, so the same iterator can be offered again (after
    /// [`wait_space`](Self::wait_space), say).
    ///
    /// # Panics
    /// If `lane >= self.lanes()` (before `items` is touched), or if `items` panics, as the
    /// ring's `try_push_batch` says.
    ///
    /// ```
    /// use pc_core::{Lanes, PushError};
    ///
    /// let lanes = Lanes::<u32, 2, 4>::new();
    /// let mut items = 10..16;
    /// assert_eq!(lanes.try_push_batch(1, &mut items), Ok(4));
    /// assert_eq!(items, 14..16); // the rest stay in the iterator
    /// assert_eq!(lanes.try_push_batch(1, &mut items), Err(PushError::Full(())));
    /// assert_eq!(lanes.try_push_batch(0, &mut items), Ok(2));
    /// assert_eq!(lanes.try_pop(), Ok(14)); // lane 0 first
    /// ```
    #[track_caller]
    pub fn try_push_batch<I>(&self, lane: usize, items: &mut I) -> Result<usize, PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        let ring = self.lane(lane);
        // Each claim wakes the consumers as soon as it is published, not once the whole
        // batch is: the iterator may take its time to yield the next item.
        self.waking_on_unwind(|| ring.try_push_batch_then(items, &mut |n| self.batch_published(n)))
    }

    /// Runs `push`, a batch push into a lane, waking a consumer asleep on the lanes if it
    /// unwinds (see `WakeOnUnwind`).
    #[inline]
    pub(super) fn waking_on_unwind<R>(&self, push: impl FnOnce() -> R) -> R {
        let unwinding = WakeOnUnwind(self);
        let result = push();
        core::mem::forget(unwinding);
        result
    }

    /// A batch push published `n` values in some lane (0: holes only): wakes up to `n` sleeping
    /// consumers, at least one (see `Parking::published`).
    #[inline]
    pub(super) fn batch_published(&self, n: usize) {
        if cfg!(pc_mutant = "lanes_batch_no_wake") {
            // Deliberately broken (the run's consumers left asleep): the loom suite must
            // reject it (see `.ci/run`).
            return;
        }
        self.parking.published(n);
    }

    /// Pops a value from the highest-priority lane that has one ready (subject to the
    /// starvation guard, see the [module docs](crate::lanes)). Never waits for another thread.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no lane has a value ready; [`PopError::Closed`] once every lane
    /// is closed and drained.
    ///
    /// ```
    /// use pc_core::{Lanes, PopError};
    ///
    /// let lanes = Lanes::<u32, 3, 4>::new();
    /// lanes.try_push(2, 30).unwrap();
    /// lanes.try_push(1, 20).unwrap();
    /// assert_eq!(lanes.try_pop(), Ok(20));
    /// assert_eq!(lanes.try_pop(), Ok(30));
    /// assert_eq!(lanes.try_pop(), Err(PopError::Empty));
    /// ```
    #[inline]
    pub fn try_pop(&self) -> Result<T, PopError> {
        self.try_pop_lane().map(|(_, value)| value)
    }

    /// Like [`try_pop`](Self::try_pop), and says which lane the value came from.
    ///
    /// # Errors
    /// As [`try_pop`](Self::try_pop).
    ///
    /// ```
    /// use pc_core::Lanes;
    ///
    /// let lanes = Lanes::<char, 2, 4>::new();
    /// lanes.try_push(1, 'x').unwrap();
    /// assert_eq!(lanes.try_pop_lane(), Ok((1, 'x')));
    /// ```
    pub fn try_pop_lane(&self) -> Result<(usize, T), PopError> {
        self.try_pop_lane_or(&mut || {})
    }

    /// [`try_pop_lane`](Self::try_pop_lane), calling `lost_race` each time another consumer
    /// claims the position this one was about to claim (the blocking pops yield there).
    #[inline]
    pub(super) fn try_pop_lane_or(
        &self,
        lost_race: &mut impl FnMut(),
    ) -> Result<(usize, T), PopError> {
        let mut drained = DrainedLanes::default();
        for lane in self.scan().order() {
            match self.rings()[lane].try_pop_or(lost_race) {
                Ok(value) => return Ok((lane, value)),
                Err(e) => drained.saw(e)?,
            }
        }
        Err(drained.verdict())
    }

    /// Pops up to `max` values into `out`, lane by lane in this pop's scan order (so normally
    /// lane 0's ready values first, then lane 1's, ..): one ring batch pop per lane it takes
    /// from. Never waits for another thread. Returns how many values `out` took (at least 1
    /// when it takes all it is given; 0 if `max` is 0: then nothing is popped, and the lanes
    /// are only asked whether they are all closed and drained). A batch pop counts as one pop
    /// for the starvation guard.
    ///
    /// As for the ring, each lane's run is freed once the last `out.extend` call for it
    /// returns ([`RingCore::try_pop_batch`](crate::ring::RingCore::try_pop_batch) says when
    /// there are two), and the values of it that `out` did not take are dropped, so `out`
    /// must take all it is given and must not wait for a producer of these lanes.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no lane has a value ready; [`PopError::Closed`] once every lane
    /// is closed and drained (also with `max == 0`).
    ///
    /// ```
    /// use pc_core::Lanes;
    ///
    /// let lanes = Lanes::<u32, 2, 8>::new();
    /// for i in 0..3 {
    ///     lanes.try_push(1, 10 + i).unwrap();
    ///     lanes.try_push(0, i).unwrap();
    /// }
    /// let mut out = Vec::new();
    /// assert_eq!(lanes.try_pop_batch(&mut out, 5), Ok(5));
    /// assert_eq!(out, [0, 1, 2, 10, 11]);
    /// ```
    pub fn try_pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, PopError> {
        self.try_pop_batch_or(out, max, &mut || {})
    }

    /// [`try_pop_batch`](Self::try_pop_batch), calling `lost_race` as
    /// [`try_pop_lane_or`](Self::try_pop_lane_or) does.
    pub(super) fn try_pop_batch_or<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        lost_race: &mut impl FnMut(),
    ) -> Result<usize, PopError> {
        if max == 0 {
            // Pops nothing; `Closed` once every lane is closed and drained, as for a ring.
            let drained = self.rings().iter().all(|ring| {
                ring.try_pop_batch_or(out, 0, lost_race)
                    .is_err_and(|e| e == PopError::Closed)
            });
            return if drained {
                Err(PopError::Closed)
            } else {
                Ok(0)
            };
        }
        let mut drained = DrainedLanes::default();
        // `max` is spent, and empty told from closed, by the values popped; what `out` took
        // of them is the answer.
        let (mut popped, mut taken) = (0, 0);
        for lane in self.scan().order() {
            match self.rings()[lane].try_pop_batch_counted(
                out,
                max - popped,
                RunFetch::Not,
                lost_race,
            ) {
                Ok(n) => {
                    popped += n.popped;
                    taken += n.taken;
                }
                Err(e) => drained.saw(e)?,
            }
            if popped == max {
                break;
            }
        }
        if popped > 0 {
            Ok(taken)
        } else {
            Err(drained.verdict())
        }
    }

    /// This pop's scan order: takes a number for the starvation guard (module docs) when the
    /// guard is on and there is more than one lane.
    #[inline]
    fn scan(&self) -> Scan {
        let lanes = self.lanes();
        if self.guard == 0 || lanes == 1 {
            return Scan { first: 0, lanes };
        }
        // Relaxed: a number in the guard's count, and nothing else; it publishes no data (the
        // rings order the values themselves).
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let first = guard_pop(ticket, self.guard).map_or(0, |j| guard_lane(j, lanes));
        Scan { first, lanes }
    }
}

/// What the lanes a pop found no value in said: `Closed` only if every one of them was closed
/// and drained. (A drained closed lane stays so: nothing can be pushed to it again, so once
/// every lane has said `Closed` all of them are closed and drained at once.)
#[derive(Default)]
struct DrainedLanes {
    /// Some lane said `Empty`.
    open: bool,
}

impl DrainedLanes {
    /// Notes one lane's answer. `Err` ends the scan early: only the deliberately broken
    /// variant does that (see `.ci/run`), taking one drained lane for all.
    #[inline]
    fn saw(&mut self, e: PopError) -> Result<(), PopError> {
        match e {
            PopError::Empty => self.open = true,
            PopError::Closed if cfg!(pc_mutant = "lanes_closed_early") => {
                return Err(PopError::Closed);
            }
            PopError::Closed => {}
        }
        Ok(())
    }

    #[inline]
    fn verdict(&self) -> PopError {
        if self.open {
            PopError::Empty
        } else {
            PopError::Closed
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::{Scan, guard_lane, guard_pop};

    #[test]
    fn guard_pops_come_after_every_guard_ordinary_pops() {
        let pops: Vec<Option<usize>> = (0..8).map(|t| guard_pop(t, 3)).collect();
        assert_eq!(pops, [None, None, None, Some(0), None, None, None, Some(1)]);
        assert!((0..10).all(|t| guard_pop(t, 1) == (t % 2 == 1).then_some(t / 2)));
    }

    #[test]
    fn guard_pops_rotate_over_the_lower_lanes() {
        let firsts: Vec<usize> = (0..6).map(|j| guard_lane(j, 4)).collect();
        assert_eq!(firsts, [1, 2, 3, 1, 2, 3]);
        assert!((0..5).all(|j| guard_lane(j, 2) == 1));
    }

    #[test]
    fn a_guard_scan_looks_at_every_lower_lane_before_lane_0() {
        let order = |first, lanes| Scan { first, lanes }.order().collect::<Vec<usize>>();
        assert_eq!(order(2, 4), [2, 3, 1, 0]);
        assert_eq!(order(1, 4), [1, 2, 3, 0]);
        assert_eq!(order(3, 4), [3, 1, 2, 0]);
        assert_eq!(order(1, 2), [1, 0]);
        assert_eq!(order(0, 3), [0, 1, 2]);
    }

    /// Where the pop counter wraps, the rotation restarts: a lower lane can wait longer than
    /// its bound `(G + 1) * (K - 1)`, but less than twice it, and guard pops stay at least
    /// `G + 1` apart (lane 0's bound), as the module docs say.
    #[test]
    fn across_the_counter_wrap_a_lower_lane_waits_less_than_twice_its_bound() {
        let mut exceeded = false;
        for guard in 1..=12u32 {
            for lanes in 2..=6usize {
                let period = guard as usize + 1;
                let bound = period * (lanes - 1);
                let window = 4 * bound;
                let tickets = (usize::MAX - window + 1..=usize::MAX).chain(0..window);
                let served: Vec<(usize, usize)> = tickets
                    .enumerate()
                    .filter_map(|(i, t)| guard_pop(t, guard).map(|j| (i, guard_lane(j, lanes))))
                    .collect();
                for pair in served.windows(2) {
                    assert!(pair[1].0 - pair[0].0 >= period, "G {guard} K {lanes}");
                }
                for lane in 1..lanes {
                    let at: Vec<usize> =
                        served.iter().filter(|s| s.1 == lane).map(|s| s.0).collect();
                    for pair in at.windows(2) {
                        let wait = pair[1] - pair[0];
                        assert!(wait < 2 * bound, "G {guard} K {lanes} lane {lane}: {wait}");
                        exceeded |= wait > bound;
                    }
                }
            }
        }
        assert!(exceeded, "the wrap does stretch some wait past the bound");
    }

    #[test]
    fn largest_guard_does_not_overflow() {
        assert_eq!(guard_pop(0, u32::MAX), None);
        assert_eq!(
            guard_pop(u32::MAX as usize, u32::MAX),
            (usize::BITS == 64).then_some(0)
        );
    }
}
