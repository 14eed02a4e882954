//! Errors of ring operations. Every error that fails a single push hands the value back; a
//! batch push's says how far it got.

use core::fmt;

/// A push (or a wait for room) failed. A single push hands its value back in it; a batch push
/// puts in it what its docs say (`try_push_batch`: `()`; `push_batch_timeout`: how many items
/// it pushed); `wait_space_timeout`, which pushes nothing, `()`.
///
/// `Debug` prints `Full(..)` or `Closed(..)`, without what it carries (as std's channel errors
/// do), so that `T` need not be `Debug` for a push's result to be unwrapped; match on it, or
/// call [`into_inner`](Self::into_inner), to see it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushError<T> {
    /// No slot was free at the tail. The ring may hold fewer than `capacity()` values if a
    /// consumer has claimed the slot at the tail and is still reading it.
    Full(T),
    /// The ring was closed; nothing more can be pushed.
    Closed(T),
}

impl<T> PushError<T> {
    /// What the error carries: the value that was not pushed, for a single push; for a batch
    /// push, what that call's docs say (`()`, or how many items were pushed).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pc_core::{PushError, Ring};
    ///
    /// let ring = Ring::<usize, 2>::new();
    /// ring.push_batch(&mut (0..2)).unwrap();
    /// assert_eq!(ring.try_push(7).unwrap_err().into_inner(), 7, "the value");
    /// let pushed = ring.push_batch_timeout(&mut (7..9), Duration::ZERO).unwrap_err();
    /// assert_eq!(pushed, PushError::Full(0), "how many items were pushed");
    /// ```
    #[must_use]
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Closed(v) => v,
        }
    }

    /// Whether the ring was full (as opposed to closed).
    #[must_use]
    pub const fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the ring was closed.
    #[must_use]
    pub const fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Said of the ring, not the call: `wait_space_timeout` returns these too, and
            // pushes nothing.
            Self::Full(_) => f.write_str("the ring is full"),
            Self::Closed(_) => f.write_str("the ring is closed"),
        }
    }
}

impl<T> core::error::Error for PushError<T> {}

/// A non-blocking pop found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PopError {
    /// No value was ready at the head. The ring may still report `len() > 0` if a producer has
    /// claimed the slot at the head and not yet published it.
    Empty,
    /// The ring is closed and every value pushed before the close has been popped.
    Closed,
}

impl PopError {
    /// Whether no value was ready (as opposed to the ring closed and drained): a timed pop
    /// whose timeout passed says so too.
    ///
    /// ```
    /// use pc_core::Ring;
    ///
    /// let ring = Ring::<u8, 2>::new();
    /// assert!(ring.try_pop().unwrap_err().is_empty());
    /// ring.close();
    /// assert!(ring.try_pop().unwrap_err().is_closed());
    /// ```
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    /// Whether the ring is closed and every value pushed before the close has been popped.
    #[must_use]
    pub const fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("pop from an empty ring"),
            Self::Closed => f.write_str("pop from a closed and drained ring"),
        }
    }
}

impl core::error::Error for PopError {}

/// A blocking operation ended because the ring is closed.
///
/// For `push` it carries the value back; for `pop` it carries `()`; for `push_batch` it carries
/// how many items were pushed before the ring closed. `Debug` prints `Closed(..)` without it
/// (as [`PushError`]'s does); `.0` is it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Closed<T = ()>(pub T);

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the ring is closed")
    }
}

impl<T> core::error::Error for Closed<T> {}

/// `HeapRing::try_with_capacity` (or `HeapLanes::try_with_capacities`) was given a capacity
/// the ring cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapacityError {
    /// The capacity is below 2, not a power of two, or above [`MAX_CAPACITY`](crate::ring::MAX_CAPACITY).
    Invalid(usize),
    /// The allocator could not provide the slots (of a ring of this many).
    Alloc(usize),
    /// `HeapLanes::try_with_capacities`: the allocator could not provide the table that holds
    /// this many lanes (before any lane's slots were asked for).
    AllocLanes(usize),
    /// `HeapLanes::try_with_capacities` was given no capacities: lanes need at least one lane.
    NoLanes,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(n) => write!(
                f,
                "ring capacity {n} is unusable: it must be a power of two from 2 to {}",
                crate::ring::MAX_CAPACITY
            ),
            Self::Alloc(n) => write!(f, "could not allocate a ring of {n} slots"),
            Self::AllocLanes(n) => write!(f, "could not allocate the table of {n} lanes"),
            Self::NoLanes => f.write_str("lanes need at least one lane (no capacities given)"),
        }
    }
}

impl core::error::Error for CapacityError {}
