//! Reference rings for the floor of the 1P1C single-message row: the smallest ring with a stamp
//! per slot (the protocol of pc, crossbeam's `ArrayQueue` and heapless's mpmc), in three
//! variants that differ only in how a side claims its position. They are instruments, not
//! queues to use: one producer and one consumer only, no close, no waiting, `u64` values.
//!
//! - [`StampCas`]: the index moved by a compare-and-swap, as every multi-producer
//!   multi-consumer ring with a stamp per slot does (on x86 a `lock`ed instruction, which waits
//!   until every earlier store of the thread has reached the cache);
//! - [`StampPlain`]: the index moved by a plain store (correct only with one thread per side):
//!   the same stamps and cache lines, no locked instruction;
//! - [`StampPlainLocked`]: the plain store, plus a locked add to a counter in a line of the
//!   side's own that no other thread touches: the locked instruction's cost without any
//!   contention on the index.
//!
//! If `StampPlainLocked` runs level with `StampCas` and `StampPlain` well ahead of both, the
//! locked instruction per operation, not the shared index, sets the rate; and no ring that
//! claims each position with one (pc, `ArrayQueue`, crossbeam-channel's array flavour,
//! heapless) can run far ahead of another. `ring_floor` prints the three beside pc's ring.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use super::harness::{CAPACITY, Flavor, Rx, Tx};

/// How a side moves its index after it has seen its slot ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    Cas,
    Plain,
    PlainLocked,
}

/// One slot: the stamp says whose turn it is (free for the push at position `p` when it is
/// `p`; holding that push's value when it is `p + 1`), and the value, an atomic so that no
/// `unsafe` is needed (a relaxed `u64` store or load is a plain move on the usual targets).
#[derive(Debug)]
struct Slot {
    stamp: AtomicUsize,
    value: AtomicU64,
}

/// The ring: each index in its own line, a private line for each side's locked counter.
#[derive(Debug)]
struct Stamped {
    claim: Claim,
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    push_count: CachePadded<AtomicUsize>,
    pop_count: CachePadded<AtomicUsize>,
    slots: Box<[Slot]>,
}

impl Stamped {
    fn new(claim: Claim) -> Self {
        Self {
            claim,
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            push_count: CachePadded::new(AtomicUsize::new(0)),
            pop_count: CachePadded::new(AtomicUsize::new(0)),
            slots: (0..CAPACITY)
                .map(|i| Slot {
                    stamp: AtomicUsize::new(i),
                    value: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Moves `index` from `from` to `from + 1` the variant's way; false if a CAS lost.
    #[inline(always)]
    fn claim(&self, index: &AtomicUsize, count: &AtomicUsize, from: usize) -> bool {
        // Relaxed throughout: the stamps order the values. (pc's ring claims with Release and
        // looks with Acquire, which its 32-bit stamps need and which cost nothing on x86;
        // these references keep 16-byte slots with `usize` stamps.)
        match self.claim {
            Claim::Cas => index
                .compare_exchange_weak(from, from + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok(),
            Claim::Plain => {
                index.store(from + 1, Ordering::Relaxed);
                true
            }
            Claim::PlainLocked => {
                index.store(from + 1, Ordering::Relaxed);
                count.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    #[inline(always)]
    fn try_push(&self, v: u64) -> Result<(), u64> {
        let tail = self.tail.load(Ordering::Relaxed);
        let slot = &self.slots[tail % CAPACITY];
        // Acquire pairs with the pop's Release free stamp: its read came before our write.
        if slot.stamp.load(Ordering::Acquire) != tail
            || !self.claim(&self.tail, &self.push_count, tail)
        {
            return Err(v);
        }
        slot.value.store(v, Ordering::Relaxed);
        // Release publishes the value; pairs with the pop's Acquire stamp load.
        slot.stamp.store(tail + 1, Ordering::Release);
        Ok(())
    }

    #[inline(always)]
    fn try_pop(&self) -> Option<u64> {
        let head = self.head.load(Ordering::Relaxed);
        let slot = &self.slots[head % CAPACITY];
        // Acquire pairs with the push's Release publish: its write came before our read.
        if slot.stamp.load(Ordering::Acquire) != head + 1
            || !self.claim(&self.head, &self.pop_count, head)
        {
            return None;
        }
        let v = slot.value.load(Ordering::Relaxed);
        // Release frees the slot for the next lap; pairs with the push's Acquire stamp load.
        slot.stamp.store(head + CAPACITY, Ordering::Release);
        Some(v)
    }
}

/// Both ends of a reference ring: the ring, shared.
#[derive(Clone, Debug)]
pub struct StampedEnd(Arc<Stamped>);

impl Tx for StampedEnd {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.0.try_push(v)
    }
}

impl Rx for StampedEnd {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.0.try_pop()
    }
}

macro_rules! reference {
    ($flavor:ident, $claim:expr, $name:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $flavor;

        impl Flavor for $flavor {
            const NAME: &'static str = $name;
            const SPSC: bool = true;
            type Tx = StampedEnd;
            type Rx = StampedEnd;
            fn endpoints() -> (StampedEnd, StampedEnd) {
                let ring = Arc::new(Stamped::new($claim));
                (StampedEnd(Arc::clone(&ring)), StampedEnd(ring))
            }
        }
    };
}

reference!(
    StampCas,
    Claim::Cas,
    "stamps, CAS claim",
    "The reference ring claiming each position with a compare-and-swap."
);
reference!(
    StampPlain,
    Claim::Plain,
    "stamps, plain claim",
    "The reference ring claiming each position with a plain store (one thread per side)."
);
reference!(
    StampPlainLocked,
    Claim::PlainLocked,
    "stamps, plain claim + private locked add",
    "The reference ring with the plain claim and a locked add to a line of the side's own."
);
