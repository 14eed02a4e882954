//! Where the slots live: inline in the ring (for `static`s, no allocator) or on the heap (sized
//! at run time). The algorithm in `ring/mod.rs` and its siblings is written once against
//! [`Storage`].

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
    /// The type name `Debug` shows for a ring (and lanes) on this storage.
    #[doc(hidden)]
    const NAMES: (&'static str, &'static str);
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
    const NAMES: (&'static str, &'static str) = ("Ring", "Lanes");
    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        &self.0
    }
    #[inline(always)]
    fn mask(&self) -> usize {
        N - 1
    }
}

/// Slots on the heap, sized at run time, in one allocation aligned to 128 bytes.
/// Used by [`HeapRing`](crate::HeapRing).
#[cfg(feature = "alloc")]
pub struct Boxed<T> {
    /// Invariant: points to `len` initialised slots, slot `i` at `ptr + i`, in an allocation
    /// of `Self::layout(len)` that this value owns (freed by its `Drop`); `len` is a power of
    /// two in `2..=MAX_CAPACITY`.
    ptr: core::ptr::NonNull<Slot<T>>,
    len: usize,
    /// Owns the slots (for drop check).
    _owns: core::marker::PhantomData<Slot<T>>,
}

/// The alignment of a heap ring's slots: 128 bytes, a pair of 64-byte lines on x86-64 (which
/// its adjacent-line prefetcher fetches together), as [`CachePadded`](crossbeam_utils::CachePadded)
/// uses there and on aarch64.
/// With the slots aligned, a batch of whole lines never shares a line with the batches beside
/// it (faster in the 1P1C batch rows: `docs/performance-log.md`, "What closed the gap").
#[cfg(feature = "alloc")]
pub(crate) const HEAP_ALIGN: usize = 128;

#[cfg(feature = "alloc")]
impl<T> Boxed<T> {
    /// The allocation for `len` slots, or `None` if its size overflows `isize`.
    fn layout(len: usize) -> Option<core::alloc::Layout> {
        core::alloc::Layout::array::<Slot<T>>(len)
            .ok()?
            .align_to(HEAP_ALIGN)
            .ok()
    }

    /// `capacity` free slots.
    ///
    /// # Errors
    /// [`CapacityError::Invalid`](super::CapacityError::Invalid) unless `capacity` is a power
    /// of two in `2..=MAX_CAPACITY`; [`CapacityError::Alloc`](super::CapacityError::Alloc) if
    /// the allocation fails (or could not be described).
    pub(crate) fn try_new(capacity: usize) -> Result<Self, super::CapacityError> {
        if !super::is_valid_capacity(capacity) {
            return Err(super::CapacityError::Invalid(capacity));
        }
        let layout = Self::layout(capacity).ok_or(super::CapacityError::Alloc(capacity))?;
        // SAFETY: the layout's size is not zero: `capacity >= 2` and a slot holds a stamp.
        let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<Slot<T>>();
        let ptr = core::ptr::NonNull::new(raw).ok_or(super::CapacityError::Alloc(capacity))?;
        for i in 0..capacity {
            // SAFETY: `i < capacity`, so `ptr + i` is inside the allocation, which is aligned
            // for `Slot<T>` (HEAP_ALIGN is at least its alignment, as `align_to` never lowers
            // it), and holds no slot yet.
            unsafe { Slot::init_in_place(ptr.as_ptr().add(i), i * ONE) };
        }
        Ok(Self {
            ptr,
            len: capacity,
            _owns: core::marker::PhantomData,
        })
    }
}

#[cfg(feature = "alloc")]
impl<T> Drop for Boxed<T> {
    fn drop(&mut self) {
        let slots = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: the slots are initialised and owned by us (type invariant), and nothing uses
        // them after this. Dropping a slot drops no `T` (it holds a `MaybeUninit<T>`; the ring
        // drops the values left in it before its storage), only the stamp and cell.
        unsafe { core::ptr::drop_in_place(slots) };
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: `ptr` came from `alloc` with this same layout (type invariant: `layout`
            // is a pure function of `len`), and is freed once, here.
            unsafe { alloc::alloc::dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

// SAFETY: `Boxed<T>` owns its slots like a `Box<[Slot<T>]>`, which is `Send` exactly when
// `Slot<T>` is, i.e. when `T: Send`. (It is not `Sync`, like that box: a slot's cell is not.)
#[cfg(feature = "alloc")]
unsafe impl<T: Send> Send for Boxed<T> {}

// As for the `Box<[Slot<T>]>` this replaced: unwind-safe when `T` is. (`NonNull` would make it
// so only for `RefUnwindSafe` slots, which a slot's cell is not.)
#[cfg(feature = "alloc")]
impl<T: core::panic::UnwindSafe> core::panic::UnwindSafe for Boxed<T> {}

#[cfg(feature = "alloc")]
impl<T> sealed::Sealed for Boxed<T> {}

#[cfg(feature = "alloc")]
impl<T> Storage<T> for Boxed<T> {
    const NAMES: (&'static str, &'static str) = ("HeapRing", "HeapLanes");
    #[inline(always)]
    fn slots(&self) -> &[Slot<T>] {
        // SAFETY: `len` initialised slots at `ptr`, owned by `self` and never moved or freed
        // while `self` lives (type invariant); the borrow is tied to `&self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    #[inline(always)]
    fn mask(&self) -> usize {
        self.len - 1
    }
}
