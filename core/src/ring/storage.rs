//! Where the slots live: inline in the ring (for `static`s, no allocator) or on the heap (sized
//! at run time). The algorithm in `ring/mod.rs` and its siblings is written once against
//! [`Storage`].

use core::mem::MaybeUninit;

use super::slot::{ONE, Slot, free_stamp};
use crate::sync::AtomicUsize;

mod sealed {
    pub trait Sealed {}
}

/// The slots of a ring. Sealed: implemented only by [`Inline`] and [`Boxed`].
///
/// Implementations guarantee `slots().len()` is a power of two >= 2, equal to `mask() + 1` and
/// to `free_stamps().len()`, and at most [`MAX_CAPACITY`](super::MAX_CAPACITY), for the
/// storage's whole life.
pub trait Storage<T>: sealed::Sealed {
    /// All slots, in index order.
    #[doc(hidden)]
    fn slots(&self) -> &[Slot<T>];
    /// The free stamp of each slot, in index order (see `slot.rs`).
    #[doc(hidden)]
    fn free_stamps(&self) -> &[AtomicUsize];
    /// `capacity - 1`.
    #[doc(hidden)]
    fn mask(&self) -> usize;
}

/// Slots stored inline: `[Slot<T>; N]` and their free stamps. Used by [`Ring`](crate::Ring).
pub struct Inline<T, const N: usize> {
    slots: [Slot<T>; N],
    free: FreeStamps<N>,
}

/// The free stamps of an inline ring, starting a cache-line pair of their own, as on the heap:
/// aligned to 128 bytes and a multiple of 128 long, so they share no line with the slots,
/// wherever the compiler puts the two fields.
#[repr(align(128))]
struct FreeStamps<const N: usize>([AtomicUsize; N]);

impl<T, const N: usize> Inline<T, N> {
    crate::sync::const_fn_unless_loom! {
        /// `N` free slots, slot `i` awaiting position `i * ONE`.
        pub(crate) fn new() -> Self {
            let mut slots = [const { MaybeUninit::<Slot<T>>::uninit() }; N];
            let mut free = [const { MaybeUninit::<AtomicUsize>::uninit() }; N];
            let mut i = 0;
            while i < N {
                slots[i] = MaybeUninit::new(Slot::new(i * ONE));
                free[i] = MaybeUninit::new(free_stamp(i));
                i += 1;
            }
            // SAFETY: the loop initialised all N elements of both arrays, and `MaybeUninit<X>`
            // has the layout of `X`, so `[MaybeUninit<X>; N]` has the layout of `[X; N]`. The
            // sources are `MaybeUninit` and never dropped, so nothing is dropped twice.
            unsafe {
                Self {
                    slots: core::ptr::read(slots.as_ptr().cast::<[Slot<T>; N]>()),
                    free: FreeStamps(core::ptr::read(free.as_ptr().cast::<[AtomicUsize; N]>())),
                }
            }
        }
    }
}

impl<T, const N: usize> sealed::Sealed for Inline<T, N> {}

impl<T, const N: usize> Storage<T> for Inline<T, N> {
    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        &self.slots
    }
    #[inline(always)]
    fn free_stamps(&self) -> &[AtomicUsize] {
        &self.free.0
    }
    #[inline(always)]
    fn mask(&self) -> usize {
        N - 1
    }
}

/// Slots on the heap, sized at run time: the slots and their free stamps, each in an
/// allocation of its own aligned to 128 bytes. Used by [`HeapRing`](crate::HeapRing).
#[cfg(feature = "alloc")]
pub struct Boxed<T> {
    /// Invariant: `slots.len() == free.len()`, a power of two in `2..=MAX_CAPACITY`.
    slots: HeapArray<Slot<T>>,
    free: HeapArray<AtomicUsize>,
}

/// The alignment of a heap ring's arrays: 128 bytes, a pair of 64-byte lines on x86-64 (which
/// its adjacent-line prefetcher fetches together), as [`CachePadded`](crossbeam_utils::CachePadded)
/// uses there and on aarch64.
/// With the slots aligned, a batch of whole lines never shares a line with the batches beside
/// it (measured, 1P1C batch 64: 215-385 M msg/s with the slots 16 bytes past a 128-byte
/// boundary, 400-410 M msg/s aligned, same machine and run).
#[cfg(feature = "alloc")]
pub(crate) const HEAP_ALIGN: usize = 128;

#[cfg(feature = "alloc")]
impl<T> Boxed<T> {
    /// `capacity` free slots.
    ///
    /// # Errors
    /// [`CapacityError::Invalid`](super::CapacityError::Invalid) unless `capacity` is a power
    /// of two in `2..=MAX_CAPACITY`; [`CapacityError::Alloc`](super::CapacityError::Alloc) if
    /// an allocation fails (or could not be described).
    pub(crate) fn try_new(capacity: usize) -> Result<Self, super::CapacityError> {
        if !super::is_valid_capacity(capacity) {
            return Err(super::CapacityError::Invalid(capacity));
        }
        let alloc_error = super::CapacityError::Alloc(capacity);
        let slots = HeapArray::try_new(capacity, |i| Slot::new(i * ONE)).ok_or(alloc_error)?;
        let free = HeapArray::try_new(capacity, free_stamp).ok_or(alloc_error)?;
        Ok(Self { slots, free })
    }
}

/// `len` elements in one heap allocation aligned to [`HEAP_ALIGN`], owned: a `Box<[E]>` with
/// that alignment.
#[cfg(feature = "alloc")]
struct HeapArray<E> {
    /// Invariant: points to `len` (>= 1) initialised elements, element `i` at `ptr + i`, in an
    /// allocation of `Self::layout(len)` that this value owns (freed by its `Drop`).
    ptr: core::ptr::NonNull<E>,
    len: usize,
    /// Owns the elements (for drop check).
    _owns: core::marker::PhantomData<E>,
}

#[cfg(feature = "alloc")]
impl<E> HeapArray<E> {
    /// The allocation for `len` elements, or `None` if its size overflows `isize`.
    fn layout(len: usize) -> Option<core::alloc::Layout> {
        core::alloc::Layout::array::<E>(len)
            .ok()?
            .align_to(HEAP_ALIGN)
            .ok()
    }

    /// `len` (>= 1) elements, element `i` made by `init(i)`; `None` if the allocation fails.
    fn try_new(len: usize, init: impl Fn(usize) -> E) -> Option<Self> {
        let layout = Self::layout(len)?;
        if layout.size() == 0 {
            return None; // never for our elements: each holds at least an `AtomicUsize`
        }
        // SAFETY: the layout's size is not zero (checked above).
        let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<E>();
        let ptr = core::ptr::NonNull::new(raw)?;
        for i in 0..len {
            // SAFETY: `i < len`, so `ptr + i` is inside the allocation, which is aligned for `E`
            // (HEAP_ALIGN is at least its alignment, as `align_to` never lowers it); `write`
            // initialises the element without reading or dropping the old bytes. (`init` is
            // our own constructors, which do not panic; if one did, the allocation would leak,
            // which is safe.)
            unsafe { ptr.as_ptr().add(i).write(init(i)) };
        }
        Some(Self {
            ptr,
            len,
            _owns: core::marker::PhantomData,
        })
    }

    #[inline(always)]
    fn as_slice(&self) -> &[E] {
        // SAFETY: `len` initialised elements at `ptr`, owned by `self` and never moved or freed
        // while `self` lives (type invariant); the borrow is tied to `&self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(feature = "alloc")]
impl<E> Drop for HeapArray<E> {
    fn drop(&mut self) {
        let elements = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: the elements are initialised and owned by us (type invariant), and nothing
        // uses them after this. (A slot holds a `MaybeUninit<T>`, so this drops no `T`: the
        // ring drops the values left in it before its storage.)
        unsafe { core::ptr::drop_in_place(elements) };
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: `ptr` came from `alloc` with this same layout (type invariant: `layout`
            // is a pure function of `len`), and is freed once, here.
            unsafe { alloc::alloc::dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

// SAFETY: `HeapArray<E>` owns its elements like a `Box<[E]>`, which is `Send` exactly when `E`
// is (for a slot: when `T: Send`). It is not `Sync` (`NonNull` is not), which a box of slots
// would not be either (a slot's cell is not); the ring declares its own `Sync`.
#[cfg(feature = "alloc")]
unsafe impl<E: Send> Send for HeapArray<E> {}

// As for a `Box<[E]>`: unwind-safe when `E` is. (`NonNull` would make it so only for
// `RefUnwindSafe` elements, which a slot's cell is not.)
#[cfg(feature = "alloc")]
impl<E: core::panic::UnwindSafe> core::panic::UnwindSafe for HeapArray<E> {}

#[cfg(feature = "alloc")]
impl<T> sealed::Sealed for Boxed<T> {}

#[cfg(feature = "alloc")]
impl<T> Storage<T> for Boxed<T> {
    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        self.slots.as_slice()
    }
    #[inline(always)]
    fn free_stamps(&self) -> &[AtomicUsize] {
        self.free.as_slice()
    }
    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len - 1
    }
}
