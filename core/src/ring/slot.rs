//! One slot of the ring and the stamp protocol that hands it between producers and consumers.
//!
//! Positions are counted in steps of [`ONE`] (= 2) so that bit 0 is free: in the tail index it
//! marks the ring closed, in a stamp it marks a hole. A position `p` maps to the slot
//! `(p / ONE) % capacity`. Every counter wraps modulo `usize::MAX + 1`; because the capacity
//! divides `2^(usize::BITS - 1)`, consecutive positions map to consecutive slots across the wrap,
//! and comparisons use the wrapping difference read as a signed number.

use core::mem::MaybeUninit;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

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

/// A slot: a stamp saying whose turn it is, and room for one value.
pub struct Slot<T> {
    /// For the position `p` this slot serves next (one of `p`, `p + ONE`, `p + ONE + MARK`):
    /// - `p`: free; the producer that claims position `p` may write it;
    /// - `p + ONE`: holds the value pushed at `p`; the consumer that claims `p` may read it;
    /// - `p + ONE + MARK`: a hole; the consumer that claims `p` skips it;
    ///
    /// after which that consumer stores `p + capacity * ONE`: free for the next lap.
    /// Invariant: only the thread that owns position `p` (won the index CAS for it) changes
    /// the stamp, and it moves it forward exactly one of these steps.
    pub(crate) stamp: AtomicUsize,
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
            Self { stamp: AtomicUsize::new(stamp), value: UnsafeCell::new(MaybeUninit::uninit()) }
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
        // field's place. The value is a `MaybeUninit` (in an `UnsafeCell`, which adds no
        // validity requirement), valid with any bytes, uninitialised ones included: the slot is
        // a valid `Slot<T>` once its stamp is written.
        unsafe {
            core::ptr::addr_of_mut!((*slot).stamp).write(AtomicUsize::new(stamp));
        }
        #[cfg(loom)]
        // SAFETY: `slot` is valid and aligned (the caller's contract); `write` neither reads
        // nor drops the old bytes.
        unsafe {
            slot.write(Self::new(stamp));
        }
    }

    /// Moves `value` into the slot.
    ///
    /// # Safety
    /// The caller owns this slot's current position (won the tail CAS for it) and has seen its
    /// stamp say "free" with `Acquire`, so no other thread reads or writes the value now.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
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
        // SAFETY: initialised and exclusively ours (see above); the caller reads it once, and
        // its free stamp (stored after this, at once or when its batch ends) hands the slot,
        // logically uninitialised, to the next lap's producer.
        self.value.with(|p| unsafe { (*p).assume_init_read() })
    }

    /// Drops the value in place, leaving the slot logically uninitialised: nothing of `T`'s
    /// size passes through the stack.
    ///
    /// # Safety
    /// As for [`read`](Self::read), which this stands for: the value is initialised and
    /// exclusively the caller's, and the caller does not read or drop it again.
    pub(crate) unsafe fn drop_value(&self) {
        // SAFETY: initialised and exclusively ours, dropped once (see above).
        self.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
    }
}
