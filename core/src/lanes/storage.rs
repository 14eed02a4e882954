//! How the rings of a [`LanesCore`](super::LanesCore) are stored: an inline array (for
//! `static`s, no allocator) or a boxed slice (lanes and capacities chosen at run time).

#[cfg(feature = "alloc")]
use crate::ring::{Boxed, HeapRing};
use crate::ring::{Inline, Ring, RingCore, Storage};

mod sealed {
    pub trait Sealed {}
}

/// The rings of a lanes structure, lane 0 first. Sealed: implemented only by
/// `[Ring<T, N>; K]` (for [`Lanes`](crate::Lanes)) and `Box<[HeapRing<T>]>` (for
/// [`HeapLanes`](crate::HeapLanes)).
///
/// Implementations hold at least one ring, and always the same rings, for their whole life.
pub trait LaneSet<T>: sealed::Sealed {
    /// Where each ring's slots live.
    #[doc(hidden)]
    type Storage: Storage<T>;
    /// The rings, lane 0 first.
    #[doc(hidden)]
    fn rings(&self) -> &[RingCore<T, Self::Storage>];
}

impl<T, const K: usize, const N: usize> sealed::Sealed for [Ring<T, N>; K] {}

impl<T, const K: usize, const N: usize> LaneSet<T> for [Ring<T, N>; K] {
    type Storage = Inline<T, N>;
    #[inline(always)]
    fn rings(&self) -> &[RingCore<T, Self::Storage>] {
        self
    }
}

#[cfg(feature = "alloc")]
impl<T> sealed::Sealed for alloc::boxed::Box<[HeapRing<T>]> {}

#[cfg(feature = "alloc")]
impl<T> LaneSet<T> for alloc::boxed::Box<[HeapRing<T>]> {
    type Storage = Boxed<T>;
    #[inline(always)]
    fn rings(&self) -> &[RingCore<T, Self::Storage>] {
        self
    }
}
