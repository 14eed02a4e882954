//! Where the slots live: inline in the ring (for `static`s, no allocator) or on the heap (sized
//! at run time). The algorithm in `ring/core.rs` is written once against [`Storage`].

use core::mem::MaybeUninit;

use super::slot::{ONE, Slot};

mod sealed {
    pub trait Sealed {}
}

/// The slots of a ring. Sealed: implemented only by [`Inline`] and [`Boxed`].
///
/// Implementations guarantee `slots().len()` is a power of two >= 2, equal to `mask() + 1`, and
/// at most [`MAX_CAPACITY`](super::MAX_CAPACITY), for the storage's whole life.
pub trait Storage<T>: sealed::Sealed {
    /// All slots, in index order.
    #[doc(hidden)]
    fn slots(&self) -> &[Slot<T>];
    /// `capacity - 1`.
    #[doc(hidden)]
    fn mask(&self) -> usize;
}

/// Slots stored inline: `[Slot<T>; N]`. Used by [`Ring`](crate::Ring).
pub struct Inline<T, const N: usize>([Slot<T>; N]);

impl<T, const N: usize> Inline<T, N> {
    crate::sync::const_fn_unless_loom! {
        /// `N` free slots, slot `i` awaiting position `i * ONE`.
        pub(crate) fn new() -> Self {
            let mut slots = [const { MaybeUninit::<Slot<T>>::uninit() }; N];
            let mut i = 0;
            while i < N {
                slots[i] = MaybeUninit::new(Slot::new(i * ONE));
                i += 1;
            }
            // SAFETY: the loop initialised all N elements, and `MaybeUninit<X>` has the layout of
            // `X`, so `[MaybeUninit<Slot<T>>; N]` has the layout of `[Slot<T>; N]`. The source is
            // `MaybeUninit` and never dropped, so nothing is dropped twice.
            Self(unsafe { core::ptr::read(slots.as_ptr().cast::<[Slot<T>; N]>()) })
        }
    }
}

impl<T, const N: usize> sealed::Sealed for Inline<T, N> {}

impl<T, const N: usize> Storage<T> for Inline<T, N> {
    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        &self.0
    }
    #[inline(always)]
    fn mask(&self) -> usize {
        N - 1
    }
}

/// Slots on the heap, sized at run time. Used by [`HeapRing`](crate::HeapRing).
#[cfg(feature = "alloc")]
pub struct Boxed<T> {
    /// Invariant: length is a power of two in `2..=MAX_CAPACITY`.
    slots: alloc::boxed::Box<[Slot<T>]>,
}

#[cfg(feature = "alloc")]
impl<T> Boxed<T> {
    /// `capacity` free slots.
    ///
    /// # Errors
    /// [`CapacityError::Invalid`](super::CapacityError::Invalid) unless `capacity` is a power
    /// of two in `2..=MAX_CAPACITY`; [`CapacityError::Alloc`](super::CapacityError::Alloc) if
    /// the allocation fails.
    pub(crate) fn try_new(capacity: usize) -> Result<Self, super::CapacityError> {
        if !super::is_valid_capacity(capacity) {
            return Err(super::CapacityError::Invalid(capacity));
        }
        let mut slots = alloc::vec::Vec::new();
        slots
            .try_reserve_exact(capacity)
            .map_err(|_| super::CapacityError::Alloc(capacity))?;
        slots.extend((0..capacity).map(|i| Slot::new(i * ONE)));
        Ok(Self {
            slots: slots.into_boxed_slice(),
        })
    }
}

#[cfg(feature = "alloc")]
impl<T> sealed::Sealed for Boxed<T> {}

#[cfg(feature = "alloc")]
impl<T> Storage<T> for Boxed<T> {
    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        &self.slots
    }
    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }
}
