//! # pc-core
//!
//! The lock-free core of pc: a bounded MPMC [`Ring`] that can live in a `static` with no
//! allocator (or [`HeapRing`], sized at run time), and an exact token bucket. `#![no_std]`;
//! feature `alloc` adds `HeapRing`, feature `std` (default) adds blocking operations.
//! [`Lanes`] (and `HeapLanes`) put K rings under one priority pop with a starvation guard,
//! batch and blocking pops across all lanes, and close-and-drain (see [`lanes`]).
//!
//! ## The ring: guarantees first
//! - Every value pushed is popped exactly once, or dropped: with the ring, or by a batch pop
//!   whose `Extend` stopped before taking it (see [`RingCore::try_pop_batch`]).
//! - FIFO per producer: one producer's values are popped in the order it pushed them.
//! - [`close`](RingCore::close) then drain: after a close pushes fail with `Closed`; pops return
//!   what is left, then `Closed`, so consumers end cleanly and nothing accepted is lost.
//! - A push's write happens-before the pop that returns the value (Release/Acquire on the slot).
//! - A batch push takes an item from its iterator only once a slot is claimed for it.
//! - With `std`, a blocked push or pop is woken by the pop or push that frees or publishes its
//!   slot (one sleeper per slot; `close` wakes all), with no timeout involved.
//! - Split into handles ([`RingCore::split`]: a [`Producer`] and a [`Consumer`],
//!   each `Clone` and `Send`), a side with one handle claims its positions with a plain store
//!   instead of a compare-and-swap, with the same guarantees; the last producer's drop closes.
//!
//! ## The ring: non-guarantees
//! - **Not strictly lock-free.** A producer preempted between claiming a slot and publishing it
//!   stalls consumers at that slot (they see `Empty`, or wait) until it runs again; a consumer
//!   preempted mid-pop makes pushes to its slot see `Full`. Non-blocking calls never spin on
//!   another thread; they may just fail early.
//! - **Interrupt and signal handlers: non-blocking calls only, and only on a ring nobody
//!   blocks on.** Without `std` the ring has no blocking calls, and its non-blocking calls
//!   take no lock. With `std`, a successful non-blocking call that finds a thread asleep on
//!   the ring (in `push`, `pop` or their batch and timeout forms) wakes it, which takes the
//!   waiters' lock (a `std` mutex): a handler that interrupted that very thread while it held
//!   the lock would deadlock. A ring whose threads only ever use the non-blocking calls never
//!   takes that lock. (With `std` on Linux the first operation on a `static` ring also
//!   registers the process for `membarrier`, a system call that can take milliseconds: make
//!   that first call outside the handler.)
//! - A batch holds each run it claims until it is done with it: a batch push's run (one claim,
//!   as many slots as its iterator promises; one call may claim several in turn) is poppable
//!   once the iterator has produced all of it, a batch pop's run is free once its `Extend` has
//!   returned (or panicked). An iterator must not wait for a consumer of the same ring, nor an
//!   `Extend` for a producer of it.
//! - A batch push from an iterator with no exact size can leave one *hole* (a claimed slot
//!   with no value, skipped by pops) when it loses a race; see [`ring`].
//! - No fairness between producers or between consumers; `len` is a snapshot.
//!
//! ## Example
//! ```
//! use pc_core::{PopError, Ring};
//!
//! static RING: Ring<u64, 1024> = Ring::new(); // no allocator needed
//!
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         for i in 0..1000 {
//!             RING.push(i).unwrap(); // blocks while full
//!         }
//!         RING.close();
//!     });
//!     let mut batch = Vec::with_capacity(64);
//!     let mut total = 0;
//!     while let Ok(n) = RING.pop_batch(&mut batch, 64) { // Err(Closed) once drained
//!         total += n;
//!         batch.clear();
//!     }
//!     assert_eq!(total, 1000);
//!     assert_eq!(RING.try_pop(), Err(PopError::Closed));
//! });
//! ```
//!
//! ## The token bucket
//! [`TokenBucket`] shares one rate among any number of threads: `rate` tokens per period, at
//! most `burst` at once, state in one padded `AtomicU64`, no lock and no clock read (callers
//! pass `now` in nanoseconds; with `std`, [`Clock`] provides it). Guarantees, proved in
//! [`bucket`] and pinned by tests: it never grants more than `burst + T(t1) - T(t0)` tokens to
//! calls whose `now` lies in `[t0, t1]`, `T` being the exact `floor(t * rate / period)`,
//! whatever the interleaving and however stale or backwards `now` is; no drift at any rate
//! (1 per hour to 10^9 per second and beyond); no burst after idle beyond `burst`; saturating
//! arithmetic that fails closed. Each [`Grant`] (three words, borrowing its bucket) gives the
//! instants its tokens were due, computed only when asked for, so producers can stamp intended
//! send times. Needs 64-bit atomics (or feature
//! `portable-atomic`).
//!
//! ```
//! use pc_core::TokenBucket;
//!
//! static LIMIT: TokenBucket = TokenBucket::per_second(500, 5).starting_empty_at(0);
//!
//! let now = 10_000_000; // 10 ms on the caller's clock: 5 tokens are due
//! let grant = LIMIT.try_acquire_up_to(8, now).unwrap();
//! assert_eq!((grant.count(), grant.first_due(), grant.due()), (5, 2_000_000, 10_000_000));
//! assert_eq!(LIMIT.try_acquire(1, now).unwrap_err().wait_ns(), Some(2_000_000));
//! ```
//!
//! ## Memory orderings
//! Each atomic operation in the source says what it publishes or acquires and what it pairs
//! with. In short: slot stamps carry the data (Release to publish, Acquire to take); index CASes
//! claim positions, Release on success and Acquire on failure (so that a stamp read after an
//! index is no older than that index's previous lap: `ring/slot.rs`; and, for consumers, so
//! that `len` never sees the tail behind the head), as do a sole handle's plain stores (its `Acquire` load of its
//! side's handle count takes the claims of the handles dropped before it: `ring/split.rs`);
//! the blocking layer's sleep/wake handshake is an asymmetric fence
//! (a compiler fence on every operation, a `membarrier` system call by a thread about to sleep:
//! `ring/wait.rs`), so no operation pays a barrier or a `SeqCst` access. A program whose calls
//! are batches and whose threads sleep often can choose a `SeqCst` fence on both sides instead
//! ([`use_fence_instructions`]): a barrier per call, and no system call that interrupts the
//! other CPUs.
//!
//! ## Loom
//! All atomics, cells, spins, and the lock and condition variable blocked threads sleep on go
//! through one facade (`sync.rs`); building with `RUSTFLAGS="--cfg loom"` swaps them for
//! loom's, and the `pc-loom-tests` package model-checks the ring (its non-blocking protocol
//! and its wake-ups), the lanes and the bucket.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
// The docs link the items of `alloc` and `std` (`HeapRing`, `Clock`, the blocking waits) where
// they are the way to do something; built without those features, the items are not there and
// the links stay text. The docs with every link are the default build's (`cargo doc -p
// pc-core`), which describes the `no_std` parts too.
#![cfg_attr(not(feature = "std"), allow(rustdoc::broken_intra_doc_links))]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test, loom))]
extern crate std;

#[cfg(any(loom, feature = "portable-atomic", target_has_atomic = "64"))]
pub mod bucket;
#[cfg(all(feature = "std", not(loom)))]
mod clock;
#[cfg(all(feature = "std", not(loom)))]
mod fence;
pub mod lanes;
pub mod ring;
mod sync;
#[cfg(test)]
mod test_support;

#[cfg(any(loom, feature = "portable-atomic", target_has_atomic = "64"))]
pub use bucket::{Denied, Grant, RateError, Schedule, TokenBucket};
#[cfg(all(feature = "std", not(loom)))]
pub use clock::Clock;
#[cfg(all(feature = "std", not(loom)))]
pub use fence::{prepare_fences, use_fence_instructions};
#[cfg(feature = "alloc")]
pub use lanes::HeapLanes;
pub use lanes::{Lanes, LanesCore};
pub use ring::{CapacityError, Closed, Consumer, PopError, Producer, PushError, Ring, RingCore};
#[cfg(feature = "alloc")]
pub use ring::{HeapConsumer, HeapProducer, HeapRing};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
