//! The bounded MPMC ring: per-slot stamps, cache-padded indices, batch claims, close-and-drain.
//!
//! # Guarantees
//! - **No loss, no duplication.** Every value pushed is popped exactly once, or dropped with the
//!   ring.
//! - **FIFO per producer.** Values are popped in the order of the positions their pushes claimed;
//!   so one producer's values come out in its push order, and one consumer sees each producer's
//!   values in that order. Calls that overlap on one thread (a push made from inside a batch
//!   push's iterator) are ordered by their claims: the nested push's value comes out before
//!   the batch's values still to be claimed.
//! - **Close-and-drain.** After [`close`](RingCore::close), every push fails with `Closed` and
//!   pops return what is left, then `Closed`. A value whose push returned `Ok` is never lost to a
//!   close.
//! - **Memory.** A push's write of the value *happens-before* the pop that returns it (`Release`
//!   on the slot stamp, `Acquire` when reading it). No allocation by a push or a pop: a ring
//!   allocates when it is made ([`HeapRing`]) or split into owned handles
//!   ([`into_split`](RingCore::into_split)'s `Arc`, which moves an inline ring onto the heap),
//!   and, with `std`, where std's `Mutex` and `Condvar` are not built on futexes, perhaps the
//!   first time a thread sleeps in a blocking call.
//! - **Batch pushes take only what they can place.** An item is taken from the iterator only
//!   once a slot is claimed for it, and a claim is no bigger than what the iterator promises
//!   (its lower size bound), so nothing is ever lost or reordered by a full or closed ring.
//! - **Blocked threads are woken, one per slot** (feature `std`). A blocking push or pop that
//!   sleeps (full or empty ring, or a slot held by the other side's batch in progress) is woken
//!   by the operation that frees or publishes the slot it waits for, with no timeout involved;
//!   each slot published or freed wakes at most one sleeper, a woken thread that succeeds and
//!   finds the next slot ready too wakes one more (slots are published out of order, so a
//!   wake-up can go to a thread whose slot is not yet ready), and `close` wakes them all
//!   (wait.rs; model-checked by `loom-tests/tests/waiters.rs`).
//!
//! # Non-guarantees
//! - **Not strictly lock-free.** A producer preempted between claiming a position (the tail CAS)
//!   and publishing its slot stalls consumers at that slot: they see [`PopError::Empty`] (or
//!   wait, in the blocking API) until it resumes, even if later slots are full. Likewise a
//!   consumer preempted mid-pop makes pushes to that slot report [`PushError::Full`]. The
//!   non-blocking operations never spin on another thread: they only retry a CAS someone else
//!   won. (Every ring of the per-slot-sequence design, Vyukov's, crossbeam's `ArrayQueue` and
//!   `heapless::mpmc`, shares this property.)
//! - **A batch holds each run it claims until it is done with it.** A batch push's run (one
//!   claim: as many slots as its iterator promises; one call may claim several in turn, and
//!   an earlier one is poppable while a later one is filled) becomes poppable
//!   only when its iterator has produced all of it, and a batch pop's run becomes free only
//!   when its `Extend` has returned (or panicked), even if it took the last value long before.
//!   So an iterator must not wait for a consumer of the same ring, nor an `Extend` for a
//!   producer of it (a blocking push from inside the `Extend` of a pop on a full ring waits
//!   for the very slots that pop holds: forever).
//! - **Holes, rarely.** A batch push from an iterator with no exact size claims one slot on
//!   speculation to ask it for its next item; if it has none, the slot is given back, unless
//!   another claim was made behind it (another producer's, or a push from inside the iterator
//!   itself) or the ring was closed in between: then it is a
//!   *hole*, which consumers skip, and which occupies a slot (and counts in `len`) until then.
//!   At most one per call; never with exact-size iterators. A closed ring whose last position
//!   is a hole is not yet drained: `len()` counts it and `wait_ready` returns `Ok`, and the
//!   pop that comes next skips it and reports `Closed`.
//! - **No fairness** between producers or between consumers.
//! - **A timeout is a deadline, not a bound on the return** (the `_timeout` operations,
//!   feature `std`). The wait looks at the deadline between its steps: a spin, a
//!   `yield_now`, a sleep on a condition variable until the deadline. It waits by yielding
//!   only while the deadline is more than a scheduler slice away (a yield can hand the core
//!   to another runnable thread for that long), then sleeps until the deadline; the call
//!   returns once the operating system runs the thread again after that: on an idle machine
//!   the timer's slack later (tens of microseconds, which is also the least a short timeout
//!   that sleeps takes), on one with more runnable threads than cores up to a scheduler
//!   slice (milliseconds) later. A call that loses the race for a slot to a thread of its own
//!   side still yields before it looks again, whatever its deadline.
//! - **Positions wrap on 32-bit targets.** A position is a `usize` that advances by 2 per slot,
//!   so on a 32-bit target it comes back to the same value after 2^31 positions. A thread of
//!   the shared ring preempted between reading the tail (or head) and its compare-and-swap
//!   while exactly a multiple of 2^31 positions go by would claim a slot of another lap,
//!   as it would in crossbeam's `ArrayQueue`. On 64-bit targets that takes centuries; a split
//!   side with one handle never claims from a stale index.
//! - `len` and `is_empty` are snapshots, stale as soon as they return.
//!
//! # Design
//! The head and tail indices are each alone in a 128-byte cache line. A push touches only the
//! tail line and its slot; a pop only the head line and its slot. The slot stamp plays the part
//! of a cached copy of the opposite index: an empty or full check reads the one slot it needs,
//! never the other side's index line (crossbeam's `ArrayQueue` reads the tail on every empty
//! check). Batch operations claim up to `k` positions with one CAS and hand the run over whole:
//! its first slot is published (or freed) last, so the other side takes the run at once.
//! [`HeapRing`]'s slots start on a 128-byte boundary, so a run of whole lines shares none with
//! its neighbours. A slot is a sequence stamp and room for the value; on 64-bit targets the
//! stamp keeps the low 32 bits of a position (enough, slot.rs shows why) and the slot is
//! packed, the value right after the stamp: a `u64` slot takes 12 bytes where a `usize` stamp
//! beside it would take 16, so a run crosses fewer cache lines. Two costs: one slot in eight
//! of a `u64` straddles two cache lines, which a single push or pop then touches both of; and
//! a value may lie misaligned in its slot, so it is only moved in and out whole, and dropping
//! a ring that still holds values of a type aligned past 4 bytes moves each out to be dropped
//! (onto the stack, or, with `alloc`, into a heap allocation of its own past 4 KiB; without
//! `alloc`, or if that allocation fails, a large one crosses the stack). A ring
//! [split](RingCore::split) into [`Producer`] and [`Consumer`] handles claims with a plain
//! store on a side that has one handle (split.rs).

mod batch;
mod blocking;
mod error;
mod iter;
mod link;
mod single;
mod slot;
mod spinning;
mod split;
mod storage;
mod wait;

#[cfg(test)]
mod tests;

use core::fmt;
use core::marker::PhantomData;

use crossbeam_utils::CachePadded;

pub use error::{CapacityError, Closed, PopError, PushError};
#[cfg(any(feature = "std", loom))]
pub use iter::Iter;
pub use slot::Slot;
pub use split::{Consumer, Producer};
#[cfg(feature = "alloc")]
pub use storage::Boxed;
pub use storage::{Inline, Storage};

use crate::sync::{AtomicU32, AtomicUsize, Ordering};
use single::Seen;
use slot::{MARK, ONE, stamp_of};

/// The most cache lines a batch push prefetches ahead of its scan (4 KiB): a batch of 64
/// `u64` values spans 12, one of 64 pc-host records about 90. Past them the scan's own loads,
/// and the CPU's stream prefetcher, take over.
const PREFETCH_LINES: usize = 64;
/// The cache line size [`PREFETCH_LINES`] counts in (64 bytes on the CPUs pc-core is tuned on).
const LINE: usize = 64;
pub(crate) use batch::RunFetch;
#[cfg(any(feature = "std", loom))]
pub(crate) use blocking::Consumers;
#[cfg(any(feature = "std", loom))]
pub(crate) use wait::Step;
pub(crate) use wait::Waiters;

/// The largest capacity a ring can have: `2^29` slots (on 16-bit targets `2^13`).
///
/// A slot's stamp keeps the low 32 bits of a position (on 16-bit targets, all 16), and stamps
/// are compared by their wrapping difference as a signed number, which must stay below half
/// the stamp's range (`2^31`; `2^15` on 16-bit targets): with positions in steps of 2, that
/// leaves one bit fewer, and one more keeps a lap well inside the comparable range.
pub const MAX_CAPACITY: usize = 1 << (crate::sync::StampWord::BITS - 3);

/// Whether a ring can have `capacity` slots: a power of two in `2..=MAX_CAPACITY`.
#[must_use]
pub const fn is_valid_capacity(capacity: usize) -> bool {
    capacity >= 2 && capacity.is_power_of_two() && capacity <= MAX_CAPACITY
}

/// A bounded ring with `N` slots stored inline: `const`-constructible, no allocator needed.
///
/// `N` must be a power of two, at least 2 (checked at compile time). See [`RingCore`] for every
/// operation and the [module docs](crate::ring) for the guarantees.
///
/// ```
/// use pc_core::{PopError, Ring};
///
/// static QUEUE: Ring<u32, 8> = Ring::new();
///
/// QUEUE.try_push(1).unwrap();
/// QUEUE.try_push(2).unwrap();
/// assert_eq!(QUEUE.try_pop(), Ok(1));
/// QUEUE.close();
/// assert_eq!(QUEUE.try_pop(), Ok(2));
/// assert_eq!(QUEUE.try_pop(), Err(PopError::Closed));
/// ```
///
/// A capacity that is not a power of two does not compile:
///
/// ```compile_fail
/// let ring = pc_core::Ring::<u8, 6>::new();
/// ```
///
/// nor does a capacity of 1 (the stamp protocol needs two slots):
///
/// ```compile_fail
/// let ring = pc_core::Ring::<u8, 1>::new();
/// ```
pub type Ring<T, const N: usize> = RingCore<T, Inline<T, N>>;

/// A bounded ring whose capacity is chosen at run time; its slots are one heap allocation.
///
/// ```
/// use pc_core::{HeapRing, PushError};
///
/// let ring = HeapRing::with_capacity(2);
/// assert_eq!(ring.capacity(), 2);
/// ring.try_push("a").unwrap();
/// ring.try_push("b").unwrap();
/// assert_eq!(ring.try_push("c"), Err(PushError::Full("c")));
/// ```
#[cfg(feature = "alloc")]
pub type HeapRing<T> = RingCore<T, Boxed<T>>;

/// The producing handle of a split [`HeapRing`]: `HeapProducer<'static, T>` for one from
/// [`into_split`](RingCore::into_split), to name in a struct or a thread's signature.
///
/// ```
/// use pc_core::{HeapConsumer, HeapProducer, HeapRing};
///
/// struct Stage {
///     input: HeapConsumer<'static, u32>,
///     output: HeapProducer<'static, u32>,
/// }
/// let (tx, input) = HeapRing::with_capacity(8).into_split();
/// let (output, rx) = HeapRing::with_capacity(8).into_split();
/// let stage = Stage { input, output };
/// tx.try_push(20).unwrap();
/// let v = stage.input.try_pop().unwrap();
/// stage.output.try_push(v + 1).unwrap();
/// assert_eq!(rx.try_pop(), Ok(21));
/// ```
#[cfg(feature = "alloc")]
pub type HeapProducer<'a, T> = Producer<'a, T, Boxed<T>>;

/// The consuming handle of a split [`HeapRing`] (see [`HeapProducer`]).
#[cfg(feature = "alloc")]
pub type HeapConsumer<'a, T> = Consumer<'a, T, Boxed<T>>;

/// The ring algorithm, generic over where its slots live. Use it through [`Ring`] (inline,
/// `const`) or [`HeapRing`] (heap, run-time capacity).
pub struct RingCore<T, S: Storage<T>> {
    /// The next position consumers will claim (a multiple of `ONE`), and the producers asleep
    /// until a slot is freed (woken by the consumers that free slots: their wake-up check is
    /// in the line they have just written).
    /// Invariant: `head <= tail` (wrapping), and `tail - head <= capacity * ONE`.
    head: CachePadded<Side>,
    /// The next position producers will claim, with bit 0 (`MARK`) set once the ring is closed;
    /// and the consumers asleep until a slot is published (woken by the producers).
    /// Invariants: once `MARK` is set, the index never changes again. It moves back only when
    /// a batch push gives back the unfilled end of its own claim, which no one else has
    /// claimed behind (batch.rs, `Claim`); positions at or above it are owned by nobody.
    tail: CachePadded<Side>,
    /// The slots. Invariant (from `Storage`): a power-of-two count in `2..=MAX_CAPACITY`.
    storage: S,
    /// The ring owns `T`s (for drop check and auto traits).
    _owns: PhantomData<T>,
}

/// The bit of the head's `word` that copies the tail's closed mark ([`RingCore::closed_copy`]).
const CLOSED_COPY: u32 = 1 << 31;

/// One index and the threads of the *other* side waiting for it to move.
struct Side {
    index: AtomicUsize,
    waiters: Waiters,
    /// A word each side uses for its own purpose, reached only through the `RingCore` accessor
    /// named for it, which picks the side: `closed_copy` (the head's, which also holds the
    /// consumers' spinning state, `pop_run_wait`) and `run_wait` (the tail's). One field rather
    /// than two keeps the `Side` within one cache line.
    word: AtomicU32,
    /// While the ring is split (split.rs): how many handles of this side (`Producer`s on the
    /// tail, `Consumer`s on the head) exist; 0 otherwise. Invariant: while the ring is split,
    /// no thread without a handle of this side moves its index. 32 bits, as `word`: the two
    /// fit in 8 bytes, and the `Side` stays within one cache line.
    handles: AtomicU32,
}

// The consumers' empty-ring poll reads `index` and `word` (`closed_copy`) of the head's `Side`:
// both in one cache line while the whole `Side` fits one (where its size is known: Linux's
// 64-bit std mutex and condition variable; test builds add counters to `Waiters`).
#[cfg(all(
    feature = "std",
    not(loom),
    not(test),
    target_os = "linux",
    target_pointer_width = "64"
))]
const _: () = assert!(core::mem::size_of::<Side>() <= 64);

impl Side {
    crate::sync::const_fn_unless_loom! {
        fn new(index: usize) -> Self {
            Self {
                index: AtomicUsize::new(index),
                waiters: Waiters::new(),
                word: AtomicU32::new(0),
                handles: AtomicU32::new(0),
            }
        }
    }
}

// SAFETY: a `RingCore` hands each value from the thread that pushed it to the one thread that
// pops it (the stamp protocol gives each slot one owner at a time), so sharing the ring only
// ever moves `T`s between threads; it never shares a `&T`. That is sound for `T: Send`.
unsafe impl<T: Send, S: Storage<T>> Sync for RingCore<T, S> {}

// SAFETY: as above; sending the ring sends the `T`s it holds, which is sound for `T: Send`.
unsafe impl<T: Send, S: Storage<T>> Send for RingCore<T, S> {}

// A shared ring may cross `catch_unwind` (as crossbeam's `ArrayQueue` may): a call that panics
// midway (a batch push's iterator, a batch pop's `Extend`, a value's destructor) finishes or
// gives back its claim on the way out, so the ring is consistent afterwards (`ring_drops`
// tests each case), and it never lends out a `&T` that a caller could observe half-changed.
impl<T, S: Storage<T>> core::panic::RefUnwindSafe for RingCore<T, S> {}

impl<T, const N: usize> RingCore<T, Inline<T, N>> {
    crate::sync::const_fn_unless_loom! {
        /// An empty ring with `N` slots, built at compile time if you like: it can be a
        /// `static`, and needs no allocator.
        ///
        /// In a `static`, the slots are initialised data: every slot starts with its own
        /// stamp, so the ring sits in the binary's data section (on a microcontroller, in flash
        /// as well as RAM), not in zeroed memory. Building it writes every stamp at compile
        /// time, and from about `2^18` slots that trips rustc's `long_running_const_eval` lint
        /// (an error by default): put `#[allow(long_running_const_eval)]` on the `static`, or
        /// use a `HeapRing` (feature `alloc`) for a ring that large.
        ///
        /// Built at run time, a `Ring` is a value like any other, slots and all: it is made on
        /// the stack (even as the argument of `Box::new`) and moved from there, so a large one
        /// (`Ring<u64, 131072>` is 1.5 MiB) can overflow a thread's stack. Outside a `static`, give
        /// a large ring its memory with `HeapRing::with_capacity` (feature `alloc`) instead.
        ///
        /// # Panics
        /// Never at run time: an `N` that is not a power of two in `2..=MAX_CAPACITY` fails to
        /// compile (a constant evaluation error, raised where the call is compiled to code:
        /// `cargo check` does not report it, nor does a build in which the call is never used;
        /// a `static` always does).
        #[must_use]
        pub fn new() -> Self {
            const {
                assert!(
                    is_valid_capacity(N),
                    "Ring capacity N must be a power of two from 2 to pc_core::ring::MAX_CAPACITY \
                     (536870912 on 32- and 64-bit targets)"
                )
            };
            Self::from_storage(Inline::new())
        }
    }
}

impl<T, const N: usize> Default for RingCore<T, Inline<T, N>> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl<T> RingCore<T, Boxed<T>> {
    /// An empty ring with `capacity` slots on the heap.
    ///
    /// # Panics
    /// If `capacity` is not a power of two in `2..=MAX_CAPACITY`, or the allocation fails. Use
    /// [`try_with_capacity`](Self::try_with_capacity) to get an error instead.
    #[must_use]
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        match Self::try_with_capacity(capacity) {
            Ok(ring) => ring,
            Err(e) => panic!("{e}"),
        }
    }

    /// An empty ring with `capacity` slots on the heap.
    ///
    /// The slots are made in place, and the values a ring still holds when dropped are dropped
    /// without passing through the stack, whatever `T`'s size: in place, or, for a type aligned
    /// past 4 bytes that a packed slot may hold misaligned (the module docs, Design), moved into
    /// a heap allocation of their own if larger than 4 KiB (onto the stack if smaller, or if
    /// that allocation fails). A push and a pop move their value, as any by-value call does;
    /// box values that come near a thread's stack size.
    ///
    /// With `std` on Linux, the first heap ring (or lanes) built in a process also registers the
    /// process for the `membarrier` system call that blocking waits use, a one-time cost of
    /// milliseconds, so that no push or pop pays it later. A [`Ring`] in a `static` registers
    /// at its first operation instead.
    ///
    /// # Errors
    /// [`CapacityError::Invalid`] unless `capacity` is a power of two in `2..=MAX_CAPACITY`;
    /// [`CapacityError::Alloc`] if the allocator cannot provide the slots.
    ///
    /// ```
    /// use pc_core::{CapacityError, HeapRing};
    ///
    /// assert!(HeapRing::<u8>::try_with_capacity(1024).is_ok());
    /// assert_eq!(HeapRing::<u8>::try_with_capacity(1000).unwrap_err(), CapacityError::Invalid(1000));
    /// assert_eq!(HeapRing::<u8>::try_with_capacity(1).unwrap_err(), CapacityError::Invalid(1));
    /// ```
    pub fn try_with_capacity(capacity: usize) -> Result<Self, CapacityError> {
        let ring = Boxed::try_new(capacity).map(Self::from_storage)?;
        #[cfg(all(feature = "std", not(loom)))]
        crate::sync::prepare_fences();
        Ok(ring)
    }
}

impl<T, S: Storage<T>> RingCore<T, S> {
    crate::sync::const_fn_unless_loom! {
        fn from_storage(storage: S) -> Self {
            Self {
                head: CachePadded::new(Side::new(0)),
                tail: CachePadded::new(Side::new(0)),
                storage,
                _owns: PhantomData,
            }
        }
    }

    /// The number of slots.
    #[must_use]
    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.mask() + 1
    }

    /// How many slots are taken: values held, plus pushes in progress (claimed, not yet
    /// written) and holes consumers have not yet skipped. A snapshot.
    ///
    /// So `len() > 0` does not promise that a pop finds a value at once: the push that claimed
    /// the head may still be writing it (see [`PopError::Empty`]).
    ///
    /// ```
    /// let ring = pc_core::Ring::<u8, 4>::new();
    /// ring.try_push(7).unwrap();
    /// assert_eq!(ring.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        // Acquire pairs with the consumers' head CAS, so the tail load below cannot be older
        // than the pushes those consumers popped: `tail >= head`.
        let head = self.head.index.load(Ordering::Acquire);
        // Nothing to acquire: a snapshot.
        let tail = self.tail.index.load(Ordering::Relaxed) & !MARK;
        let diff = tail.wrapping_sub(head) as isize;
        // Head may have moved on after we read it; clamp rather than report more than fits.
        (diff.max(0) as usize / ONE).min(self.capacity())
    }

    /// Whether no slot is taken: a snapshot, see [`len`](Self::len).
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot is taken: a snapshot, see [`len`](Self::len). A full ring may still
    /// answer a pop with `Empty`, while the push that claimed its head is writing.
    #[must_use]
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Closes the ring: from now on every push fails with `Closed`, and pops drain what is
    /// left, then report `Closed`. Wakes every blocked thread. Idempotent.
    ///
    /// Returns `true` if this call closed the ring, `false` if it was already closed.
    ///
    /// ```
    /// use pc_core::{PopError, PushError, Ring};
    ///
    /// let ring = Ring::<u8, 4>::new();
    /// ring.try_push(1).unwrap();
    /// assert!(ring.close());
    /// assert!(!ring.close());
    /// assert_eq!(ring.try_push(2), Err(PushError::Closed(2)));
    /// assert_eq!(ring.try_pop(), Ok(1));
    /// assert_eq!(ring.try_pop(), Err(PopError::Closed));
    /// ```
    pub fn close(&self) -> bool {
        // Release: the mark is the linearization point for every push (their tail CAS now
        // fails); it publishes what the closer did before to whoever sees the ring closed
        // (pairs with the Acquire loads in `is_closed` and `empty_or_closed`).
        let previous = self.tail.index.fetch_or(MARK, Ordering::Release);
        // Release publishes the final tail to consumers polling an empty ring; pairs with the
        // Acquire load in `empty_or_closed`.
        // A read-modify-write: the low bits are the consumers' `pop_run_wait`.
        self.closed_copy().fetch_or(CLOSED_COPY, Ordering::Release);
        // Every sleeper must wake: pushes now fail, and pops either drain or fail.
        self.tail.waiters.notify_all();
        self.head.waiters.notify_all();
        previous & MARK == 0
    }

    /// Whether [`close`](Self::close) has been called.
    #[must_use]
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Acquire pairs with the Release fetch_or in `close`.
        self.tail.index.load(Ordering::Acquire) & MARK != 0
    }

    /// Its [`CLOSED_COPY`] bit is set once the ring is closed: a copy of the tail's mark kept
    /// in the consumers' own cache line (the head's `word`), so that polling an empty ring
    /// never reads the tail line. Invariant: set only after the tail's mark (so a set bit
    /// implies the tail is final). The other bits are [`pop_run_wait`](Self::pop_run_wait)'s,
    /// changed only by read-modify-writes, which keep the bit (and continue the release
    /// sequence of `close`'s `fetch_or`, so an Acquire load that reads one of their values
    /// still synchronizes with the close).
    #[inline(always)]
    fn closed_copy(&self) -> &AtomicU32 {
        &self.head.word
    }

    /// The shared ring's `try_pop_batch_spinning` state, in the low bits of the head's `word`
    /// (beside [`CLOSED_COPY`]): 0, or the calls since one found the ring empty (spinning.rs).
    #[inline(always)]
    fn pop_run_wait(&self) -> u32 {
        // Relaxed: the count only decides whether to look at the head; nothing is published
        // or acquired through it.
        self.closed_copy().load(Ordering::Relaxed) & !CLOSED_COPY
    }

    /// Sets [`pop_run_wait`](Self::pop_run_wait) to `waiting`, keeping the closed bit.
    #[inline]
    fn set_pop_run_wait(&self, waiting: u32) {
        if cfg!(pc_mutant = "pop_wait_store") {
            // The mutant: a plain store, which can overwrite a closed bit set just before.
            self.closed_copy().store(waiting, Ordering::Relaxed);
            return;
        }
        // Relaxed, as above; read-modify-writes, so `close`'s bit is never lost.
        if waiting == 0 {
            self.closed_copy().fetch_and(CLOSED_COPY, Ordering::Relaxed);
        } else {
            let _ = self
                .closed_copy()
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                    Some(word & CLOSED_COPY | waiting)
                });
        }
    }

    /// The shared ring's `try_push_spinning` state (the tail's `word`): 0, or the calls since
    /// one found the ring full (spinning.rs).
    #[inline(always)]
    fn run_wait(&self) -> &AtomicU32 {
        &self.tail.word
    }

    /// The slot that serves `position`.
    #[inline(always)]
    fn slot(&self, position: usize) -> &Slot<T> {
        let index = (position / ONE) & self.storage.mask();
        debug_assert!(index < self.storage.slots().len());
        // SAFETY: `mask() + 1 == slots().len()` (Storage invariant), so `index` is in bounds.
        unsafe { self.storage.slots().get_unchecked(index) }
    }

    /// The slots serving the `count` positions from `position` on, in order, as two contiguous
    /// runs (the second empty unless the positions wrap past the last slot). `count` must not
    /// exceed the capacity (checked in debug builds; release builds clamp it, only so that the
    /// slicing has no panic path). Batch loops walk these slices instead of mapping every
    /// position.
    ///
    /// Without a panic path: `fill` calls this with its claim guard live, and a call that may
    /// unwind there would make the guard's drop glue take its address, which keeps the guard's
    /// counters in memory, stored at every value, instead of in registers.
    #[inline(always)]
    fn runs(&self, position: usize, count: usize) -> [&[Slot<T>]; 2] {
        let slots = self.storage.slots();
        debug_assert!(count <= slots.len());
        let count = count.min(slots.len());
        let first = (position / ONE) & self.storage.mask();
        debug_assert!(first < slots.len());
        // SAFETY: `first <= mask() < mask() + 1 == slots.len()` (Storage invariant), so both
        // ranges are in bounds.
        let (front, back) = unsafe { (slots.get_unchecked(..first), slots.get_unchecked(first..)) };
        match back.get(..count) {
            Some(run) => [run, &[]],
            // SAFETY: `count <= slots.len() == front.len() + back.len()` (the `min` above), so
            // `count - back.len() <= front.len()` (and it does not underflow: this arm is
            // taken only where `back.len() < count`).
            None => [back, unsafe { front.get_unchecked(..count - back.len()) }],
        }
    }

    /// The most slots [`prefetch_run`](Self::prefetch_run) fetches: those that span about
    /// [`PREFETCH_LINES`] lines (at least one; a slot holds its stamp, so it is never empty).
    const PREFETCH_SLOTS: usize = {
        let slots = PREFETCH_LINES * LINE / core::mem::size_of::<Slot<T>>();
        if slots == 0 { 1 } else { slots }
    };

    /// Prefetches the cache lines of the slots serving the `count` positions from `position` on,
    /// about [`PREFETCH_LINES`] of them at most (see [`crate::sync::prefetch`]): a batch push's
    /// scan then finds them arriving together, one round trip to the other core for the run
    /// instead of one per line in turn (faster in the 1P1C batch rows: `docs/performance-log.md`,
    /// "What closed the gap"; of the batch pops only `try_pop_batch_spinning`: `RunFetch` says
    /// why). The cap matters when `count` is what a caller offers rather than what there is
    /// room for: a producer offering 10,000 values where a few slots are free would otherwise
    /// fetch 10,000 slots' lines, most of them still the consumers'.
    #[inline(always)]
    fn prefetch_run(&self, position: usize, count: usize) {
        #[cfg(all(test, not(loom)))]
        let _most = crate::sync::PrefetchRun::start();
        for run in self.runs(position, count.min(Self::PREFETCH_SLOTS)) {
            // A slot bigger than the cap is prefetched only up to it.
            let bytes = core::mem::size_of_val(run).min(PREFETCH_LINES * LINE);
            let base = run.as_ptr().cast::<u8>();
            let mut offset = 0;
            while offset < bytes {
                crate::sync::prefetch(base.wrapping_add(offset));
                offset += LINE;
            }
        }
    }

    /// A claim's look at its side's index: the position to claim next, unless another thread
    /// claims it first (the CAS validates it).
    ///
    /// Acquire pairs with the Release claim CAS of every thread of this side (the index moves
    /// by read-modify-writes, one release sequence; a split side's only handle stores, and the
    /// handoff that makes a second handle orders those stores before it), so whatever the
    /// claimer of this slot's previous lap saw of the slot happens-before this thread's stamp
    /// load: that load reads no state older than the previous lap's. A stamp keeps only a
    /// position's low bits (slot.rs), and this is what keeps a very old one from being read
    /// at all, not merely unlikely; on x86 it costs nothing (every load acquires).
    #[inline(always)]
    fn look_at(&self, index: &AtomicUsize) -> usize {
        index.load(Ordering::Acquire)
    }

    /// After a claim found the slot at `seen` (read from `index`, its side's) not ready: the
    /// index value to look at next, or `None` where the stamp read `seen` behind and the index
    /// still holds it, the one case where the claim answers `Full` or `Empty` (see `moved`).
    #[inline(always)]
    fn look_again(&self, index: &AtomicUsize, seen: usize, stamp: Seen) -> Option<usize> {
        match stamp {
            Seen::Behind => Self::moved(index, seen),
            Seen::Ahead | Seen::Ready => Some(self.look_at(index)),
        }
    }

    /// Before a claim answers `Full` or `Empty` on a stamp that reads as behind the position
    /// `seen` it read from `index` (its side's): `Some(now)` if the index has moved since, and
    /// the claim must look again at `now`. A stamp keeps only a position's low bits
    /// (slot.rs), so "behind" is only to be trusted from a look at a current index.
    #[inline(always)]
    fn moved(index: &AtomicUsize, seen: usize) -> Option<usize> {
        // Acquire, as `look_at`: the claim goes on from `now`. And if the stamp (loaded with
        // Acquire before this) was stored for a later lap, the claims that moved the index past
        // `seen` happened-before that store, so this load cannot read `seen` (write-read
        // coherence). If it reads `seen`, the stamp was this lap's or the last one's.
        let now = index.load(Ordering::Acquire);
        (now != seen).then_some(now)
    }

    /// `capacity * ONE`: the distance from a position to the same slot's next lap.
    #[inline(always)]
    fn lap(&self) -> usize {
        (self.storage.mask() + 1) * ONE
    }

    /// Test and loom support: moves both indices to `start` (so counters can be started near
    /// their wrap point, which no test could reach by counting).
    #[cfg(any(test, loom))]
    #[doc(hidden)]
    pub fn start_at(&mut self, start: usize) {
        let start = start & !MARK;
        assert!(
            self.is_empty() && !self.is_closed(),
            "start_at needs a fresh ring"
        );
        for i in 0..self.capacity() {
            let p = start.wrapping_add(i * ONE);
            // Relaxed: `&mut self` proves no other thread can see the ring.
            self.slot(p).store_stamp(p, Ordering::Relaxed);
        }
        self.head.index.store(start, Ordering::Relaxed);
        self.tail.index.store(start, Ordering::Relaxed);
        // Relaxed, as above.
        self.run_wait().store(0, Ordering::Relaxed);
        self.set_pop_run_wait(0);
    }
}

impl<T, S: Storage<T>> Drop for RingCore<T, S> {
    /// Drops every value still in the ring, each exactly once. If one value's destructor
    /// panics, the rest are still dropped while the panic unwinds (as `Vec` does); a second
    /// panic among them aborts.
    fn drop(&mut self) {
        let head = crate::sync::load_exclusive(&mut self.head.index);
        let tail = crate::sync::load_exclusive(&mut self.tail.index) & !MARK;
        let mut left = Unpopped {
            ring: self,
            position: head,
            tail,
        };
        // A panic in a value's destructor drops `left`, which drops the values after it.
        while left.drop_next() {}
    }
}

/// The values a dropped ring still holds, from `position` to `tail`; dropping it drops those
/// not yet taken, so a panicking destructor in [`RingCore`]'s `drop` leaks none of the rest.
struct Unpopped<'a, T, S: Storage<T>> {
    ring: &'a RingCore<T, S>,
    position: usize,
    tail: usize,
}

impl<T, S: Storage<T>> Unpopped<'_, T, S> {
    /// Drops the next value (skipping holes) without passing it through the stack where it is
    /// large (a ring of values larger than the dropping thread's stack: `Slot::drop_value`);
    /// `false` at the tail.
    fn drop_next(&mut self) -> bool {
        while self.position != self.tail {
            let position = self.position;
            // Past it before the value is dropped, so it is never dropped twice (a panicking
            // destructor leaves the rest to `Unpopped`'s drop).
            self.position = position.wrapping_add(ONE);
            let slot = self.ring.slot(position);
            // Relaxed: the ring is being dropped (`&mut`), so every other thread's access
            // happened-before this.
            let stamp = slot.load_stamp(Ordering::Relaxed);
            // Every claimed position was published (pushes cannot fail between claim and
            // publish; batch pushes publish holes even when unwinding).
            debug_assert!(
                stamp == stamp_of(position.wrapping_add(ONE))
                    || stamp == stamp_of(position.wrapping_add(ONE | MARK))
            );
            if stamp == stamp_of(position.wrapping_add(ONE)) {
                // SAFETY: the stamp says the slot holds the value pushed at `position`, which no
                // consumer claimed (`position >= head`); the ring is being dropped, so we have
                // exclusive access, and `position` moved past it above, so it is dropped once.
                unsafe { slot.drop_value() };
                return true;
            }
        }
        false
    }
}

impl<T, S: Storage<T>> Drop for Unpopped<'_, T, S> {
    fn drop(&mut self) {
        while self.drop_next() {}
    }
}

impl<T, S: Storage<T>> fmt::Debug for RingCore<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(S::NAMES.0)
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Side")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("stamp", &self.load_stamp(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize> fmt::Debug for Inline<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline")
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "alloc")]
impl<T> fmt::Debug for Boxed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Boxed")
            .field("capacity", &self.slots().len())
            .finish_non_exhaustive()
    }
}
