//! One slot of the ring and the stamp protocol that hands it between producers and consumers.
//!
//! Positions are counted in steps of [`ONE`] (= 2) so that bit 0 is free: in the tail index it
//! marks the ring closed, in a stamp it marks a hole. A position `p` maps to the slot
//! `(p / ONE) % capacity`. Every counter wraps modulo `usize::MAX + 1`; because the capacity
//! divides `2^(usize::BITS - 1)`, consecutive positions map to consecutive slots across the wrap,
//! and comparisons use the wrapping difference read as a signed number.
//!
//! Each slot has two stamps, each written by one side only:
//! - the **publish stamp**, beside the value in [`Slot`]: producers write it (and the value),
//!   consumers only read it;
//! - the **free stamp**, in an array of its own ([`Storage::free_stamps`](super::Storage)):
//!   consumers write it, producers only read it.
//!
//! So a cache line of slots moves one way, from the producers' core to the consumers', and a
//! line of free stamps the other way; with one stamp per slot, which consumers wrote to free
//! the slot and producers wrote to fill it, every line of slots travelled both ways on every
//! lap. A consumer still finds a value in the same line as the stamp that publishes it. The
//! cost shows when one side waits on the other at the same slots (a full or an empty ring,
//! polled): a message then moves two lines, the slot and its free stamp, where it moved one.
//! (Measured in the 1P1C batch rows and ping-pong of `benches/`, and the cost in the 2P2C
//! row; the README has the figures.)

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

/// The ordering of a free-stamp store that hands a slot to the next lap's producer: `Release`,
/// pairing with their `Acquire` free-stamp load so the consumer's read of the value
/// happens-before the producer's next write to it.
///
/// `--cfg pc_mutant="ring_relaxed_free"` weakens it to `Relaxed`, a deliberately broken
/// variant the loom suite must reject (see `.ci/run`).
pub(crate) const FREE: Ordering = if cfg!(pc_mutant = "ring_relaxed_free") {
    Ordering::Relaxed
} else {
    Ordering::Release
};

/// A slot: the publish stamp, and room for one value.
pub struct Slot<T> {
    /// For the position `p` this slot serves next, the publish stamp says whether the push at
    /// `p` has happened:
    /// - `p + ONE`: holds the value pushed at `p`; the consumer that claims `p` may read it;
    /// - `p + ONE + MARK`: a hole; the consumer that claims `p` skips it;
    /// - anything else (what the previous lap left, `p - lap + ONE` or `p - lap + ONE + MARK`,
    ///   or `p` in a new ring): not yet published.
    ///
    /// The slot's free stamp (a separate array) says whether the value of the previous lap has
    /// been moved out: it is `p` once the consumer of `p - lap` is done with the slot (and in
    /// a new ring), and that consumer is the only thread that changes it, to `p`.
    /// Invariant: only the thread that owns position `p` (won the index CAS for it) changes
    /// either stamp: the producer the publish stamp, once, to `p + ONE` or `p + ONE + MARK`;
    /// the consumer the free stamp, once, to `p + capacity * ONE`.
    pub(crate) stamp: AtomicUsize,
    /// Initialised from the write of the push that owns `p` until the consumer that owns `p`
    /// moves it out: so whenever the publish stamp is `p + ONE` and no consumer owns `p` yet.
    /// (A write happens before its stamp store; a batch pop moves values out before it stores
    /// the free stamps, and a pop that owns `p` never reads it twice.)
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    crate::sync::const_fn_unless_loom! {
        /// A slot not yet published for the push at position `stamp` (its free stamp, kept
        /// apart, says it is free: see [`free_stamp`]).
        pub(crate) fn new(stamp: usize) -> Self {
            Self { stamp: AtomicUsize::new(stamp), value: UnsafeCell::new(MaybeUninit::uninit()) }
        }
    }

    /// Moves `value` into the slot.
    ///
    /// # Safety
    /// The caller owns this slot's current position (won the tail CAS for it) and has seen the
    /// slot's free stamp say "free" with `Acquire`, so no other thread reads or writes the value
    /// now.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: the caller has exclusive access to the contents (see above).
        self.value.with_mut(|p| unsafe { (*p).write(value) });
    }

    /// Moves the value out of the slot, leaving it logically uninitialised.
    ///
    /// # Safety
    /// The caller owns this slot's current position (won the head CAS for it) and has seen its
    /// publish stamp say "holds a value" with `Acquire`, so the value is initialised and no
    /// other thread touches it now. The caller must not read it twice.
    #[inline(always)]
    pub(crate) unsafe fn read(&self) -> T {
        // SAFETY: initialised and exclusively ours (see above); the caller reads it once, and
        // the free stamp (stored after this, at once or when its batch ends) hands the slot,
        // logically uninitialised, to the next lap's producer.
        self.value.with(|p| unsafe { (*p).assume_init_read() })
    }
}

crate::sync::const_fn_unless_loom! {
    /// The free stamp of a new ring's slot `index`: free for the push at position
    /// `index * ONE`.
    pub(crate) fn free_stamp(index: usize) -> AtomicUsize {
        AtomicUsize::new(index * ONE)
    }
}
