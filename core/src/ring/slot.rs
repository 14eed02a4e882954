//! One slot of the ring and the stamp protocol that hands it between producers and consumers.
//!
//! Positions are counted in steps of [`ONE`] (= 2) so that bit 0 is free: in the tail index it
//! marks the ring closed, in a stamp it marks a hole. A position `p` maps to the slot
//! `(p / ONE) % capacity`. Every counter wraps modulo `usize::MAX + 1`; because the capacity
//! divides `2^(usize::BITS - 1)`, consecutive positions map to consecutive slots across the wrap,
//! and comparisons use the wrapping difference read as a signed number.
//!
//! **A stamp keeps a position's low bits only**: [`StampWord`] is `u32` where `usize` is 64
//! bits. That tells apart every stamp a thread can meet: it compares a slot's stamp with the
//! position its side's index held when it looked (`RingCore::look_at`, whose Acquire also keeps
//! the stamp load from reading a state older than the previous lap's), and while that index
//! stays put, the slot holds one of the states of that position or of the one a lap before (see
//! [`Slot::stamp`]), at most a lap plus 3 apart: under `2^31`, since
//! [`MAX_CAPACITY`](super::MAX_CAPACITY) keeps a lap at most `2^30`. A thread whose index went
//! stale by half the stamps' range or more (`2^31` in index value, `2^30` pushes or pops)
//! could misread a later lap's stamp: its claim's CAS then
//! fails (the index moved), and before it answers `Full` or `Empty` on a stamp it reads the
//! index again and looks again if it moved (`RingCore::moved`). Other looks use a Relaxed
//! index: `try_push_spinning`'s look a run ahead of the tail and the spinning pop's
//! `has_run_ready` (a misread costs a spin); the blocking waits' sleep re-checks (ordered by
//! the waiters' fence, wait.rs, and by `moved`; a misread costs a sleep that the next wake-up
//! ends); and the looks that answer without claiming, `try_pop_batch` with `max == 0` and
//! `wait_ready`'s attempt (`head_state`). These answer `Closed` only where the ring is closed
//! and its tail (Acquire) equals the head they read, which an older head cannot make up (the
//! tail is never behind the head): an older head can only turn `Closed` into `Empty` or `Ok`,
//! which their docs allow.
//!
//! **Where the stamp is 32 bits, the slot is packed** (`repr(C, packed(4))`; not under loom,
//! whose cells cannot be packed): the stamp at offset 0, the value at offset 4 whatever its
//! alignment, so a slot of a `u64` takes 12 bytes where an unpacked one with a `usize` stamp
//! takes 16, and a batch crosses a quarter fewer cache lines (`docs/performance-log.md`, "Packed slots"). A value whose type asks for
//! more than 4-byte alignment may then sit misaligned: it is only ever moved in and out of its
//! slot (unaligned reads and writes), never referenced where it lies misaligned; dropping one
//! left in a dropped ring moves it out first ([`Slot::drop_value`]).

use core::mem::MaybeUninit;

use crate::sync::{Ordering, StampCell, StampWord, UnsafeCell};

/// The distance between two consecutive positions.
pub(crate) const ONE: usize = 2;
/// Bit 0: in the tail index, "closed"; in a stamp, "hole" (a claimed position with no value).
pub(crate) const MARK: usize = 1;

/// The ordering of a stamp store that publishes a value (or a hole) to consumers: `Release`,
/// pairing with their `Acquire` stamp load so the write of the value happens-before its read.
///
/// `--cfg pc_mutant="ring_relaxed_publish"` weakens it to `Relaxed`, a deliberately broken
/// variant the loom suite must reject (see `.ci/run`).
pub(crate) const PUBLISH: Ordering = if cfg!(pc_mutant = "ring_relaxed_publish") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// Whether slots are packed, the value right after a 32-bit stamp (the module docs).
#[cfg(not(loom))]
pub(crate) const PACKED: bool = cfg!(target_pointer_width = "64");

/// The stamp that says `state` (a position, or a position plus [`ONE`] and maybe [`MARK`]):
/// its low bits (the module docs).
#[inline(always)]
#[allow(clippy::unnecessary_cast)] // the identity where a stamp is a `usize`
pub(crate) const fn stamp_of(state: usize) -> StampWord {
    state as StampWord
}

/// A slot: a stamp saying whose turn it is, and room for one value.
#[cfg_attr(all(not(loom), target_pointer_width = "64"), repr(C, packed(4)))]
#[cfg_attr(not(all(not(loom), target_pointer_width = "64")), repr(C))]
pub struct Slot<T> {
    /// For the position `p` this slot serves next (one of `p`, `p + ONE`, `p + ONE + MARK`):
    /// - `p`: free; the producer that claims position `p` may write it;
    /// - `p + ONE`: holds the value pushed at `p`; the consumer that claims `p` may read it;
    /// - `p + ONE + MARK`: a hole; the consumer that claims `p` skips it;
    ///
    /// after which that consumer stores `p + capacity * ONE`: free for the next lap. (Each
    /// as [`stamp_of`] it.)
    /// Invariant: only the thread that owns position `p` (won the index CAS for it) changes
    /// the stamp, and it moves it forward exactly one of these steps.
    stamp: StampCell,
    /// Initialised from the write of the push that owns `p` until the consumer that owns `p`
    /// moves it out: so whenever `stamp == p + ONE` and no consumer owns `p` yet. (A write
    /// happens before its stamp store; a batch pop moves values out before it stores the
    /// free stamps, and a pop that owns `p` never reads it twice.)
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    crate::sync::const_fn_unless_loom! {
        /// A free slot awaiting the push at position `stamp`.
        pub(crate) fn new(stamp: usize) -> Self {
            Self {
                stamp: StampCell::new(stamp_of(stamp)),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            }
        }
    }

    /// Makes the memory at `slot` a free slot awaiting the push at position `stamp`, in place:
    /// only the stamp is written, so no temporary of `T`'s size passes through the stack (a
    /// heap ring of values larger than a thread's stack). Under loom, whose cells carry state,
    /// the whole slot is written.
    ///
    /// # Safety
    /// `slot` is valid for writes of a `Slot<T>` and aligned for it; whatever it held is
    /// overwritten, not dropped.
    #[cfg(feature = "alloc")]
    pub(crate) unsafe fn init_in_place(slot: *mut Self, stamp: usize) {
        #[cfg(not(loom))]
        // SAFETY: `slot` is valid and aligned (the caller's contract), so is its `stamp`
        // field's place (offset 0, and a slot is aligned at least as a stamp). The value is a
        // `MaybeUninit` (in an `UnsafeCell`, which adds no validity requirement), valid with
        // any bytes, uninitialised ones included: the slot is a valid `Slot<T>` once its stamp
        // is written.
        unsafe {
            core::ptr::addr_of_mut!((*slot).stamp).write(StampCell::new(stamp_of(stamp)));
        }
        #[cfg(loom)]
        // SAFETY: `slot` is valid and aligned (the caller's contract); `write` neither reads
        // nor drops the old bytes.
        unsafe {
            slot.write(Self::new(stamp));
        }
    }

    /// Loads the stamp.
    #[inline(always)]
    pub(crate) fn load_stamp(&self, order: Ordering) -> StampWord {
        self.stamp.load(order)
    }

    /// Stores the stamp that says `state` ([`stamp_of`]).
    #[inline(always)]
    pub(crate) fn store_stamp(&self, state: usize, order: Ordering) {
        self.stamp.store(stamp_of(state), order);
    }

    /// The value's place; misaligned for `T` if the slot is packed and `T` asks for more than
    /// 4-byte alignment. No reference to the field is made (a packed field may be misaligned).
    #[cfg(not(loom))]
    #[inline(always)]
    fn value_ptr(&self) -> *mut T {
        // The cell is `repr(transparent)` down to the `MaybeUninit<T>`, so its address is the
        // value's; writing through a pointer from `&self` is what the `UnsafeCell` allows.
        core::ptr::addr_of!(self.value).cast::<T>().cast_mut()
    }

    /// Moves `value` into the slot.
    ///
    /// # Safety
    /// The caller owns this slot's current position (won the tail CAS for it) and has seen its
    /// stamp say "free" with `Acquire`, so no other thread reads or writes the value now.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
        #[cfg(not(loom))]
        // SAFETY: the place is valid for a `T` and the caller has exclusive access to it (see
        // above); where it may be misaligned (`PACKED`), the write is unaligned.
        unsafe {
            if PACKED {
                self.value_ptr().write_unaligned(value);
            } else {
                self.value_ptr().write(value);
            }
        }
        #[cfg(loom)]
        // SAFETY: the caller has exclusive access to the contents (see above).
        self.value.with_mut(|p| unsafe { (*p).write(value) });
    }

    /// Moves the value out of the slot, leaving it logically uninitialised.
    ///
    /// # Safety
    /// The caller owns this slot's current position (won the head CAS for it) and has seen its
    /// stamp say "holds a value" with `Acquire`, so the value is initialised and no other thread
    /// touches it now. The caller must not read it twice.
    #[inline(always)]
    pub(crate) unsafe fn read(&self) -> T {
        #[cfg(not(loom))]
        // SAFETY: initialised and exclusively ours (see above); the caller reads it once, and
        // its free stamp (stored after this, at once or when its batch ends) hands the slot,
        // logically uninitialised, to the next lap's producer. Where the place may be
        // misaligned (`PACKED`), the read is unaligned.
        let value = unsafe {
            if PACKED {
                self.value_ptr().read_unaligned()
            } else {
                self.value_ptr().read()
            }
        };
        #[cfg(loom)]
        // SAFETY: as above.
        let value = self.value.with(|p| unsafe { (*p).assume_init_read() });
        value
    }

    /// Drops the value, leaving the slot logically uninitialised: in place, so that nothing of
    /// `T`'s size passes through the stack (a ring of values larger than the dropping thread's
    /// stack), wherever the place is aligned for `T`. In a packed slot of a type that asks for
    /// more than 4-byte alignment it may not be: such a value is moved out to be dropped, into
    /// a heap allocation of its own if it is large (with `alloc`), else onto the stack.
    ///
    /// # Safety
    /// As for [`read`](Self::read), which this stands for: the value is initialised and
    /// exclusively the caller's, and the caller does not read or drop it again.
    pub(crate) unsafe fn drop_value(&self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        #[cfg(not(loom))]
        {
            // A packed slot is aligned to 4 and holds its value at offset 4.
            if !PACKED || core::mem::align_of::<T>() <= 4 {
                // SAFETY: initialised, exclusively ours, dropped once (see above), and the
                // place is aligned for `T` (not packed, or `T` asks for at most what offset 4
                // of a 4-aligned slot gives).
                unsafe { core::ptr::drop_in_place(self.value_ptr()) };
            } else {
                // SAFETY: the caller's contract, passed on.
                unsafe { self.drop_misaligned() };
            }
        }
        #[cfg(loom)]
        // SAFETY: initialised and exclusively ours, dropped once (see above).
        self.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
    }

    /// [`drop_value`](Self::drop_value) for a place that may be misaligned for `T`. Out of line
    /// (and each way in a function of its own), so that no frame on the in-place path reserves
    /// room for a `T`, as a debug build's frame would for every local of the function.
    ///
    /// # Safety
    /// As for [`drop_value`](Self::drop_value).
    #[cfg(not(loom))]
    #[cold]
    #[inline(never)]
    unsafe fn drop_misaligned(&self) {
        /// Values up to this size are moved onto the stack to be dropped; larger ones into the
        /// heap, where the allocator allows.
        #[cfg(feature = "alloc")]
        const ON_THE_STACK: usize = 4096;
        #[cfg(feature = "alloc")]
        if core::mem::size_of::<T>() > ON_THE_STACK {
            // SAFETY: the caller's contract, passed on.
            if unsafe { self.drop_through_heap() } {
                return;
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { self.drop_through_stack() };
    }

    /// Moves the value onto the stack and drops it there.
    ///
    /// # Safety
    /// As for [`drop_value`](Self::drop_value).
    #[cfg(not(loom))]
    #[inline(never)]
    unsafe fn drop_through_stack(&self) {
        // SAFETY: as for `read`, whose contract this one is; the value moved out is dropped
        // once, here.
        drop(unsafe { self.read() });
    }

    /// Moves the value into a heap allocation aligned for `T` and drops it there; `false`
    /// (nothing moved) if the allocation fails.
    ///
    /// # Safety
    /// As for [`drop_value`](Self::drop_value), and `T` is not zero-sized (the allocator takes
    /// no empty layout); on `false` the value is still in the slot.
    #[cfg(all(not(loom), feature = "alloc"))]
    #[inline(never)]
    unsafe fn drop_through_heap(&self) -> bool {
        let layout = core::alloc::Layout::new::<T>();
        // SAFETY: `T` is not zero-sized (the caller's contract), so neither is the layout.
        let heap = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
        if heap.is_null() {
            return false;
        }
        // SAFETY: the slot's value is initialised and exclusively ours (the caller's contract);
        // `heap` is valid for a `T`, aligned for it and apart from the slot; the bytes are
        // moved, not duplicated: the slot's copy is never read or dropped again. The value is
        // then dropped once, in place in the allocation, which is freed with its own layout.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.value_ptr().cast::<u8>(),
                heap.cast::<u8>(),
                core::mem::size_of::<T>(),
            );
            core::ptr::drop_in_place(heap);
            alloc::alloc::dealloc(heap.cast::<u8>(), layout);
        }
        true
    }
}
