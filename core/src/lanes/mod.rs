//! Priority lanes: `K` rings, one per priority, popped highest first with a starvation guard.
//!
//! Lane 0 is the highest priority. A push names its lane; a pop takes from the first lane, in
//! its *scan order*, that has a value ready. Each lane is a [`RingCore`], so everything the
//! [ring](crate::ring) guarantees holds per lane.
//!
//! # Guarantees
//! - **No loss, no duplication.** Every value pushed is popped exactly once, or dropped with the
//!   lanes.
//! - **FIFO per producer per lane.** One producer's values to one lane come out in its push
//!   order (the ring's guarantee, lane by lane). Nothing orders values of different lanes.
//! - **Priority.** An ordinary pop looks at lane 0 first, then lane 1, and so on: it returns a
//!   value of lane `i` only if, when it looked at each lane above `i`, that lane had no value
//!   ready. So a value whose push returned `Ok` before an ordinary pop started is not passed
//!   over by that pop for a lower lane, unless an earlier push to its lane is still in
//!   progress: a lane's head slot claimed by a push that has not published it yet makes the
//!   lane look empty, as it makes a ring look empty (the ring's non-guarantees).
//! - **Starvation guard** (`G` = [`with_starvation_guard`](LanesCore::with_starvation_guard),
//!   default [`DEFAULT_STARVATION_GUARD`]). Every look across the lanes (a non-blocking pop,
//!   single or batch, successful or not, or each look a blocking pop takes while it waits)
//!   takes the next number `t = 0, 1, 2, ..` from one counter shared by all consumers. With
//!   `G = 0` every pop is ordinary (strict priority: a busy lane 0 can starve the others).
//!   With `G >= 1` and `K >= 2`, pop `t` is a *guard pop* when `t % (G + 1) == G`: after every
//!   `G` ordinary pops comes one guard pop. The `j`-th guard pop (`j = t / (G + 1)`) looks at
//!   lane `1 + j % (K - 1)` first, then down in priority, wrapping round to lane 1, and at
//!   lane 0 last. Hence a guard pop takes from lane 0 only when it found no lower lane with a
//!   value ready, so the lower lanes together, while any has values, get at least one pop in
//!   `G + 1`; a lane `i >= 1` that has a value ready throughout is served by at least one of
//!   any `(G + 1) * (K - 1)` consecutive pops; and lane 0, while it has values, loses at most
//!   one pop in `G + 1` to lower lanes.
//! - **Close-and-drain across all lanes.** [`close`](LanesCore::close) closes every lane
//!   (lane 0 first) before it returns; then every push fails with `Closed`. A pop reports
//!   `Closed` only once every lane is closed and drained, so nothing whose push returned `Ok`
//!   is left behind.
//! - **One wait.** The blocking pops wait on all lanes at once: a push to any lane (or the
//!   close) wakes them; they never poll the lanes in a sleep loop.
//!
//! # Non-guarantees
//! - Everything the ring does not guarantee, per lane: not strictly lock-free, a batch holds
//!   its run for its whole call, `len` is a snapshot.
//! - **Priority is per look, not global.** A pop looks at the lanes one after another; a value
//!   pushed to a higher lane after the pop looked at that lane may be overtaken by a lower
//!   lane's value. Across consumers, a consumer that takes a lower lane's value may finish
//!   after another took a higher one: there is no total order between lanes.
//! - **The guard counts pop calls, not values.** A batch pop is one pop (it takes up to `max`
//!   values, from its first lane on; one that asks for 0 values takes no number), and a pop
//!   that finds nothing still takes a number. The counter is shared: one more atomic
//!   increment per pop when `G >= 1` and `K >= 2`. It wraps after `2^usize::BITS` pops, which
//!   restarts the rotation once: around that moment a lower lane can wait longer than
//!   `(G + 1) * (K - 1)` pops, up to (less than) twice that (on a 32-bit target, once every
//!   2^32 pops). Lane 0's bound holds across the wrap.
//! - No fairness between producers or consumers; with `G = 0` none between lanes either.

mod blocking;
mod blocking_ops;
mod ops;
mod storage;

#[cfg(test)]
mod tests;

use core::fmt;
use core::marker::PhantomData;

use crossbeam_utils::CachePadded;

#[cfg(feature = "alloc")]
use crate::ring::CapacityError;
#[cfg(feature = "alloc")]
use crate::ring::HeapRing;
use crate::ring::{Ring, RingCore};
use crate::sync::AtomicUsize;
use blocking::Parking;
pub use storage::LaneSet;

/// The starvation guard of new lanes: after every 7 ordinary pops, one guard pop looks at the
/// lower lanes first (so the lower lanes together get at least one pop in 8 while any has
/// values).
pub const DEFAULT_STARVATION_GUARD: u32 = 7;

/// `K` priority lanes of `N` slots each, stored inline: `const`-constructible, no allocator.
///
/// `K` must be at least 1 and `N` a power of two, at least 2 (both checked at compile time).
/// See [`LanesCore`] for every operation and the [module docs](crate::lanes) for the
/// guarantees.
///
/// ```
/// use pc_core::{Lanes, PopError};
///
/// static LANES: Lanes<&str, 2, 8> = Lanes::new();
///
/// LANES.try_push(1, "bulk").unwrap();
/// LANES.try_push(0, "urgent").unwrap();
/// assert_eq!(LANES.try_pop_lane(), Ok((0, "urgent")));
/// assert_eq!(LANES.try_pop(), Ok("bulk"));
/// assert_eq!(LANES.try_pop(), Err(PopError::Empty));
/// ```
///
/// Zero lanes do not compile:
///
/// ```compile_fail
/// let lanes = pc_core::Lanes::<u8, 0, 4>::new();
/// ```
pub type Lanes<T, const K: usize, const N: usize> = LanesCore<T, [Ring<T, N>; K]>;

/// Priority lanes whose count and capacities are chosen at run time (one heap ring per lane).
///
/// ```
/// use pc_core::HeapLanes;
///
/// let lanes = HeapLanes::with_capacities(&[4, 1024]);
/// assert_eq!((lanes.lanes(), lanes.capacity(0), lanes.capacity(1)), (2, 4, 1024));
/// lanes.try_push(1, 'b').unwrap();
/// lanes.try_push(0, 'a').unwrap();
/// assert_eq!(lanes.try_pop(), Ok('a'));
/// ```
#[cfg(feature = "alloc")]
pub type HeapLanes<T> = LanesCore<T, alloc::boxed::Box<[HeapRing<T>]>>;

/// The lanes algorithm, generic over how its rings are stored. Use it through [`Lanes`]
/// (inline, `const`) or [`HeapLanes`] (heap, run-time lanes and capacities).
pub struct LanesCore<T, L: LaneSet<T>> {
    /// The rings, lane 0 first. Invariant: at least one.
    lanes: L,
    /// The starvation guard `G` (module docs); 0 = strict priority.
    guard: u32,
    /// The number the next pop takes (module docs: the guard). Alone in its line: every pop of
    /// every consumer increments it.
    tickets: CachePadded<AtomicUsize>,
    /// Consumers parked on all lanes at once, and how pushes wake them.
    parking: CachePadded<Parking>,
    /// The values live in the rings (which own them); this only names `T`.
    _values: PhantomData<fn() -> T>,
}

impl<T, const K: usize, const N: usize> LanesCore<T, [Ring<T, N>; K]> {
    /// `K` empty lanes of `N` slots, built at compile time if you like: they can be a `static`,
    /// and need no allocator. The starvation guard is [`DEFAULT_STARVATION_GUARD`].
    ///
    /// Built at run time, `Lanes` are a value like any other, `K` rings and their slots: made on
    /// the stack and moved from there, as [`Ring::new`] says, so large ones can overflow a
    /// thread's stack. Outside a `static`, give large lanes their memory with
    /// `HeapLanes::with_capacities` (feature `alloc`) instead.
    ///
    /// # Panics
    /// Never at run time: `K == 0`, or an `N` that is not a power of two in
    /// `2..=MAX_CAPACITY`, fails to compile (a constant evaluation error, raised where the
    /// call is compiled to code: `cargo check` does not report it, nor does a build in which
    /// the call is never used; a `static` always does).
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        const { assert!(K >= 1, "Lanes need at least one lane (K >= 1)") };
        Self::from_lanes([const { Ring::new() }; K])
    }

    /// `K` empty lanes of `N` slots (loom build: its atomics have no `const` constructors).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        const { assert!(K >= 1, "Lanes need at least one lane (K >= 1)") };
        Self::from_lanes(core::array::from_fn(|_| Ring::new()))
    }
}

impl<T, const K: usize, const N: usize> Default for LanesCore<T, [Ring<T, N>; K]> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl<T> LanesCore<T, alloc::boxed::Box<[HeapRing<T>]>> {
    /// One empty lane per entry of `capacities` (lane 0 first), each a heap ring of that many
    /// slots. The starvation guard is [`DEFAULT_STARVATION_GUARD`].
    ///
    /// # Panics
    /// If `capacities` is empty, if a capacity is not a power of two in `2..=MAX_CAPACITY`, or
    /// if an allocation fails. Use [`try_with_capacities`](Self::try_with_capacities) to get an
    /// error instead.
    #[must_use]
    #[track_caller]
    pub fn with_capacities(capacities: &[usize]) -> Self {
        match Self::try_with_capacities(capacities) {
            Ok(lanes) => lanes,
            Err(e) => panic!("{e}"),
        }
    }

    /// One empty lane per entry of `capacities` (lane 0 first), each a heap ring of that many
    /// slots.
    ///
    /// # Errors
    /// [`CapacityError::NoLanes`] if `capacities` is empty; for the first unusable entry,
    /// [`CapacityError::Invalid`] unless it is a power of two in `2..=MAX_CAPACITY`; and
    /// [`CapacityError::Alloc`] if the allocator cannot provide a lane's slots, and
    /// [`CapacityError::AllocLanes`] if it cannot provide the table of lanes. Lanes allocated
    /// before a failure are freed.
    ///
    /// ```
    /// use pc_core::{CapacityError, HeapLanes};
    ///
    /// assert!(HeapLanes::<u8>::try_with_capacities(&[8, 64]).is_ok());
    /// assert_eq!(HeapLanes::<u8>::try_with_capacities(&[]).unwrap_err(), CapacityError::NoLanes);
    /// assert_eq!(
    ///     HeapLanes::<u8>::try_with_capacities(&[8, 6]).unwrap_err(),
    ///     CapacityError::Invalid(6)
    /// );
    /// ```
    pub fn try_with_capacities(capacities: &[usize]) -> Result<Self, CapacityError> {
        if capacities.is_empty() {
            return Err(CapacityError::NoLanes);
        }
        let mut rings = alloc::vec::Vec::new();
        rings
            .try_reserve_exact(capacities.len())
            .map_err(|_| CapacityError::AllocLanes(capacities.len()))?;
        for &capacity in capacities {
            rings.push(HeapRing::try_with_capacity(capacity)?);
        }
        Ok(Self::from_lanes(rings.into_boxed_slice()))
    }
}

impl<T, L: LaneSet<T>> LanesCore<T, L> {
    crate::sync::const_fn_unless_loom! {
        fn from_lanes(lanes: L) -> Self {
            Self {
                lanes,
                guard: DEFAULT_STARVATION_GUARD,
                tickets: CachePadded::new(AtomicUsize::new(0)),
                parking: CachePadded::new(Parking::new()),
                _values: PhantomData,
            }
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// The same lanes with starvation guard `guard`: after every `guard` ordinary pops, one
        /// guard pop looks at a lower lane first (rotating over lanes `1..K`); `0` turns the
        /// guard off (strict priority). The exact rule and what it guarantees are in the
        /// [module docs](crate::lanes).
        ///
        /// ```
        /// use pc_core::Lanes;
        ///
        /// // One pop in 4 looks at lane 1 first.
        /// static LANES: Lanes<u32, 2, 16> = Lanes::new().with_starvation_guard(3);
        ///
        /// for i in 0..8 {
        ///     LANES.try_push(0, i).unwrap();
        ///     LANES.try_push(1, 100 + i).unwrap();
        /// }
        /// let order: Vec<usize> = (0..8).map(|_| LANES.try_pop_lane().unwrap().0).collect();
        /// assert_eq!(order, [0, 0, 0, 1, 0, 0, 0, 1]);
        /// ```
        #[must_use]
        pub fn with_starvation_guard(mut self, guard: u32) -> Self {
            self.guard = guard;
            self
        }
    }

    /// The starvation guard: how many ordinary pops come between two guard pops (0: none).
    #[must_use]
    #[inline]
    pub fn starvation_guard(&self) -> u32 {
        self.guard
    }

    /// The rings, lane 0 first.
    #[inline(always)]
    fn rings(&self) -> &[RingCore<T, L::Storage>] {
        self.lanes.rings()
    }

    /// Lane `lane`'s ring.
    ///
    /// # Panics
    /// If `lane >= self.lanes()`.
    #[inline(always)]
    #[track_caller]
    fn lane(&self, lane: usize) -> &RingCore<T, L::Storage> {
        let lanes = self.rings();
        match lanes.get(lane) {
            Some(ring) => ring,
            None => panic!(
                "lane {lane} is out of range: there are {} lanes",
                lanes.len()
            ),
        }
    }

    /// The number of lanes (`K`).
    #[must_use]
    #[inline]
    pub fn lanes(&self) -> usize {
        self.rings().len()
    }

    /// The number of slots of lane `lane`.
    ///
    /// # Panics
    /// If `lane >= self.lanes()`.
    #[must_use]
    #[inline]
    #[track_caller]
    pub fn capacity(&self, lane: usize) -> usize {
        self.lane(lane).capacity()
    }

    /// How many values all lanes hold together: a snapshot (each lane's
    /// [`len`](RingCore::len), read one after another).
    #[must_use]
    pub fn len(&self) -> usize {
        self.rings().iter().map(RingCore::len).sum()
    }

    /// How many values lane `lane` holds: a snapshot.
    ///
    /// # Panics
    /// If `lane >= self.lanes()`.
    #[must_use]
    #[inline]
    #[track_caller]
    pub fn lane_len(&self, lane: usize) -> usize {
        self.lane(lane).len()
    }

    /// Whether every lane is empty: a snapshot, see [`len`](Self::len).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rings().iter().all(RingCore::is_empty)
    }

    /// Closes every lane, lane 0 first: from now on every push fails with `Closed`, and pops
    /// drain what is left in all lanes, then report `Closed`. Wakes every blocked thread.
    /// Idempotent; every call returns only once all lanes are closed.
    ///
    /// Returns `true` for exactly one call: the one that closed lane 0.
    ///
    /// ```
    /// use pc_core::{Lanes, PopError, PushError};
    ///
    /// let lanes = Lanes::<u8, 2, 4>::new();
    /// lanes.try_push(1, 7).unwrap();
    /// assert!(lanes.close());
    /// assert!(!lanes.close());
    /// assert_eq!(lanes.try_push(0, 8), Err(PushError::Closed(8)));
    /// assert_eq!(lanes.try_pop(), Ok(7));
    /// assert_eq!(lanes.try_pop(), Err(PopError::Closed));
    /// ```
    pub fn close(&self) -> bool {
        let mut first = true;
        let mut closed_lane_0 = false;
        for ring in self.rings() {
            // Each ring's close is its own Release fetch_or on its tail: the linearization point
            // for that lane's pushes, and what sleeping consumers re-check after the wake-up
            // below (`Parking::closed`).
            let closed = ring.close();
            if first {
                closed_lane_0 = closed;
                first = false;
            }
        }
        self.parking.closed();
        closed_lane_0
    }

    /// Whether every lane is closed (a call to [`close`](Self::close) has returned, or is
    /// about to).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.rings().iter().all(RingCore::is_closed)
    }
}

impl<T, L: LaneSet<T>> fmt::Debug for LanesCore<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(<L::Storage as crate::ring::Storage<T>>::NAMES.1)
            .field("lanes", &self.lanes())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .field("starvation_guard", &self.guard)
            .finish_non_exhaustive()
    }
}
