//! Producer and consumer handles: a ring split into its two sides, each side claiming its
//! positions without a locked instruction while it has one handle. What users are promised is
//! on [`RingCore::split`]; why it holds, here.
//!
//! # Why the plain store is enough
//! Only a `Producer` moves the tail while the ring is split (the ring is borrowed mutably, and
//! `Consumer` has no `close`), and a `Producer` is `Send` but not `Sync`: another thread can
//! reach it only once it is sent there, never while the thread that has it pushes. So a second
//! producer appears only as a clone, made on the thread of an existing producer, and ordered
//! before anything the clone does by the send that moves it. Each handle keeps a flag, `sole`:
//! set when the handle has read its side's handle count as 1, cleared when the handle is
//! cloned (the clone starts without it). While it is set no other handle of the side exists,
//! since the only handle a clone could have been made from is this one, so the plain store is
//! safe, and the flag, in the handle, costs no shared load. A handle without the flag claims by
//! compare-and-swap and reads the count now and then ([`LOOK_EVERY`] operations) to find out
//! whether the others are gone. The count falls when a handle is dropped, on any thread: the
//! drop's `Release` decrement pairs with the `Acquire` count load of the handle that then
//! finds itself alone, so every claim the dropped handle made happens-before that handle's
//! plain load of the index. The same holds for the head and `Consumer`s. Loom checks it
//! (`loom-tests/tests/split.rs`, where a handle looks at every operation; the mutants
//! `split_always_sole`, which claims with the plain store whatever the count,
//! `split_clone_keeps_sole`, whose cloned handle keeps its flag, and `split_relaxed_count`,
//! which reads the count without `Acquire`).

use core::cell::Cell;
use core::fmt;
#[cfg(all(feature = "std", not(loom)))]
use core::time::Duration;

#[cfg(any(feature = "std", loom))]
use super::Closed;
#[cfg(any(feature = "std", loom))]
use super::blocking::Consumers;
use super::link::Link;
use super::single::{Seen, classify};
use super::slot::{MARK, ONE, PUBLISH, stamp_of};
use super::{PopError, PushError, RingCore, Side, Storage};
use crate::sync::Ordering;

impl<T, S: Storage<T>> RingCore<T, S> {
    /// Splits the ring into a [`Producer`] and a [`Consumer`], for as long as they borrow it.
    /// Clone either for more producers or consumers; send them to other threads.
    ///
    /// # Guarantees
    /// - **The ring's guarantees, unchanged.** Handles are a way to use the ring, not another
    ///   queue: no loss, no duplication, FIFO per producer, close-and-drain, one wake-up per
    ///   slot (module docs of [`ring`](crate::ring)), for any number of handles on any threads.
    /// - **A side with one handle claims with a plain store.** A shared ring's push claims its
    ///   position with a compare-and-swap, a locked instruction that on x86 also waits for the
    ///   previous operation's stores to drain, and that sets the pace of a one-producer,
    ///   one-consumer stream (README, "The floor of the 1P1C single row"). While a side has
    ///   exactly one handle, [`Producer::try_push`] and [`Consumer::try_pop`] claim with a
    ///   plain store instead: only that handle moves the side's index. A clone puts the side
    ///   back on the compare-and-swap until it is dropped; the handle left finds out within 64
    ///   of its `try_push` (or `try_pop`) calls, which look at the side's handle count that
    ///   often rather than at every call.
    /// - **Dropping the last `Producer` closes the ring**, as dropping the last sender
    ///   disconnects a channel: consumers drain what is left, then see `Closed`.
    /// - **Dropping the last `Consumer` ends the producers' waits.** A waiting push (`push`,
    ///   `push_batch`, their timeout forms, or [`Producer::wait_space`]) that finds the ring full
    ///   with every consumer gone closes the ring and returns `Closed` (with the value a single
    ///   push could not push, or the count a batch did), and so does every push after it: a
    ///   producer thread never waits for good on a ring nobody reads (a consumer thread that
    ///   panicked, say). [`Producer::is_abandoned`] tells any time.
    /// - **A producer that spins on `Full` can leave the consumer alone.**
    ///   [`Producer::try_push_spinning`], for a caller that tries again at once, waits after a
    ///   `Full` for room for a run instead of pushing into each slot the moment it frees (its
    ///   docs say what that costs); `try_push` is exact.
    /// - **A consumer that spins on `Empty` can leave the producer alone.**
    ///   [`Consumer::try_pop_batch_spinning`], for a caller that tries again at once, waits
    ///   after an `Empty` for a run of values instead of taking each batch the moment it is
    ///   published (its docs say what that costs); `try_pop_batch` is exact.
    ///
    /// # Non-guarantees
    /// - **A forgotten handle counts for good.** A `Producer` passed to `mem::forget` is never
    ///   dropped: the ring then does not close when the others are, and the last one left never
    ///   claims with the plain store again (likewise for a `Consumer`).
    /// - **Consumers cannot close the ring.** A close marks the tail, which a sole producer
    ///   writes with a plain store that a close from another thread would race with: only a
    ///   `Producer` closes (or the last one's drop, or a waiting push that finds every
    ///   consumer gone). So until the ring is full, pushes into a ring whose consumers are
    ///   all gone succeed (the values stay in the ring: dropped with it, or, for a borrowed
    ///   split, there to pop once the handles are gone), and `try_push` and
    ///   `try_push_batch` then say `Full`: they never read the consumers' count,
    ///   which would cost a push a load of the line every pop writes. Ask
    ///   [`Producer::is_abandoned`] when they do.
    /// - **Blocking calls and batches always claim by compare-and-swap**: `push`, `pop`, their
    ///   timeout and batch forms are the shared ring's own calls (with the plain claim
    ///   compiled into them, the blocking calls measured slower, even on the shared path:
    ///   README, "Split into handles"). A sole consumer that wants the plain claim and a wait
    ///   can call `try_pop` and, on `Empty`, [`Consumer::wait_ready`]; a sole producer,
    ///   `try_push` and, on `Full`, [`Producer::wait_space`]. The waiting calls need
    ///   feature `std`; without it a handle has the `try_` calls, batches and `close`.
    /// - **Handles are `Send`, not `Sync`**: each is used from one thread at a time (clone it
    ///   for another thread; the compiler's complaint about a `Cell` in a `Claim` means a
    ///   handle was shared by reference). That is what lets a handle know it is alone.
    /// - **The split lasts for the borrow.** `split` takes `&mut self`, so no thread reaches the
    ///   ring but through the handles. A ring in a `static` splits through a `&'static mut`:
    ///   `static_cell`'s `ConstStaticCell` gives one for a ring built at compile time (its
    ///   `StaticCell::init_with` builds the ring on the stack first, which a large ring
    ///   overflows). A ring in an `Arc` splits only while that `Arc` is the only one
    ///   (`Arc::get_mut`); for handles that own the ring, [`into_split`](Self::into_split).
    ///   Once the handles are gone (the last
    ///   producer's drop closed it), the ring is usable directly again, closed for good: a new
    ///   split hands out handles to a closed ring.
    ///
    /// ```
    /// let mut ring = pc_core::Ring::<u32, 8>::new();
    /// let (producer, consumer) = ring.split();
    /// std::thread::scope(|s| {
    ///     s.spawn(move || {
    ///         for i in 0..100 {
    ///             producer.push(i).unwrap();
    ///         }
    ///         // Dropping the last producer closes the ring.
    ///     });
    ///     let mut sum = 0;
    ///     while let Ok(v) = consumer.pop() {
    ///         sum += v;
    ///     }
    ///     assert_eq!(sum, 4950);
    /// });
    /// drop(consumer); // the split ends with the last handle
    /// assert!(ring.is_closed());
    /// ```
    #[must_use = "the handles' drop closes the ring for good"]
    pub fn split(&mut self) -> (Producer<'_, T, S>, Consumer<'_, T, S>) {
        self.count_one_handle_a_side();
        Self::handles(Link::borrowed(self))
    }

    /// [`split`](Self::split), the handles owning the ring between them (feature `alloc`): it
    /// is dropped with the last of them, so they can go to threads that outlive the caller
    /// (`std::thread::spawn`, async tasks), as a channel's ends do. Everything `split` says
    /// holds, but the borrow: the split lasts until every handle is gone, and then so is the
    /// ring.
    ///
    /// ```
    /// let ring = pc_core::HeapRing::<u64>::with_capacity(64);
    /// let (producer, consumer) = ring.into_split();
    /// let pushing = std::thread::spawn(move || {
    ///     for i in 0..1000 {
    ///         producer.push(i).unwrap();
    ///     }
    ///     // Dropping the last producer closes the ring.
    /// });
    /// let mut sum = 0;
    /// while let Ok(v) = consumer.pop() {
    ///     sum += v;
    /// }
    /// pushing.join().unwrap();
    /// assert_eq!(sum, 499_500);
    /// ```
    #[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
    #[must_use = "the handles own the ring: dropping them drops it"]
    pub fn into_split<'a>(mut self) -> (Producer<'a, T, S>, Consumer<'a, T, S>)
    where
        Self: 'a,
    {
        self.count_one_handle_a_side();
        Self::handles(Link::owned(alloc::sync::Arc::new(self)))
    }

    /// Sets each side's handle count to 1, for the two handles a split starts with.
    fn count_one_handle_a_side(&mut self) {
        // Relaxed: `&mut self` proves no other thread can see the ring; the handles reach
        // other threads only by being sent, which orders these stores before their use.
        self.tail.handles.store(1, Ordering::Relaxed);
        self.head.handles.store(1, Ordering::Relaxed);
    }

    /// The first producer and consumer of a split, both alone on their side.
    fn handles<'a>(link: Link<'a, T, S>) -> (Producer<'a, T, S>, Consumer<'a, T, S>) {
        (
            Producer {
                link: link.clone(),
                claim: Claim::new(true),
                run_wait: Cell::new(0),
            },
            Consumer {
                link,
                claim: Claim::new(true),
                run_wait: Cell::new(0),
            },
        )
    }

    /// [`try_push`](Self::try_push) for a producer that no other thread can race: the one
    /// `Producer` of a split ring (`Claim::sole`). The same stamp protocol, with the position
    /// claimed by a plain store. (A function of its own rather than a flag on `try_push_or`:
    /// so the shared ring's code is compiled exactly as it was.)
    #[inline(always)]
    pub(super) fn try_push_sole(&self, value: T) -> Result<(), PushError<T>> {
        // Relaxed: the last store to the tail is this thread's own, or happened-before this
        // load by the send that brought the handle here, by `split`'s `&mut`, or by the
        // Acquire count load in `Claim::sole` that saw the other producers dropped.
        let tail = self.tail.index.load(Ordering::Relaxed);
        if tail & MARK != 0 {
            return Err(PushError::Closed(value));
        }
        let slot = self.slot(tail);
        // Acquire pairs with the consumer's Release that freed this slot (pop/drain), so its
        // read of the old value happens-before our write.
        let stamp = slot.load_stamp(Ordering::Acquire);
        if classify(stamp, tail) != Seen::Ready {
            // Only this producer claims positions, so no stamp is ahead of its tail: full.
            debug_assert_eq!(classify(stamp, tail), Seen::Behind);
            return Err(PushError::Full(value));
        }
        // Relaxed: the position, nothing more; no other producer handle exists to look at the
        // tail (a clone made later is ordered after this store by the send that hands it over,
        // as `look_at` says). Stored before the stamp's Release, so a consumer that pops this
        // value sees the tail past it, as after a CAS.
        self.tail
            .index
            .store(tail.wrapping_add(ONE), Ordering::Relaxed);
        // SAFETY: no other thread claims positions (`Claim::sole`), and the slot is free (Acquire).
        unsafe { slot.write(value) };
        // Release publishes the value; pairs with the Acquire stamp load in pop.
        slot.store_stamp(tail.wrapping_add(ONE), PUBLISH);
        self.tail.waiters.notify(1);
        Ok(())
    }

    /// [`try_pop`](Self::try_pop) for a consumer that no other thread can race: the one
    /// `Consumer` of a split ring (`Claim::sole`), claiming with a plain store.
    #[inline(always)]
    pub(super) fn try_pop_sole(&self) -> Result<T, PopError> {
        // Relaxed: as the tail load in `try_push_sole`.
        let mut head = self.head.index.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            // Acquire pairs with the producer's Release publish, so its write of the value
            // happens-before our read.
            let stamp = slot.load_stamp(Ordering::Acquire);
            let next = head.wrapping_add(ONE);
            let hole = stamp == stamp_of(next | MARK);
            if !hole && classify(stamp, next) != Seen::Ready {
                // Only this consumer claims positions, so no stamp is ahead of its head.
                debug_assert_eq!(classify(stamp, next), Seen::Behind);
                return Err(self.empty_or_closed(head));
            }
            // Release, as a CAS claim: makes this pop's Acquire of the slot (and so the push's
            // claim of `head`) visible to `len`'s Acquire head load.
            self.head.index.store(next, Ordering::Release);
            let value = if hole {
                None
            } else {
                // SAFETY: no other thread claims positions (`Claim::sole`), and the value is
                // published (Acquire); we read it once, then free the slot.
                Some(unsafe { slot.read() })
            };
            // Release frees the slot for the next lap; pairs with the Acquire stamp load in
            // push, ordering our read before its write.
            slot.store_stamp(head.wrapping_add(self.lap()), Ordering::Release);
            self.head.waiters.notify(1);
            match value {
                Some(v) => return Ok(v),
                None => head = next,
            }
        }
    }
}

/// How many `try_push` (or `try_pop`) calls a handle that shares its side makes between looks
/// at the side's handle count (module docs; the other calls never look). A look loads a cache
/// line the other handles of the side keep writing (their index CASes), so a sharing handle
/// looks now and then rather than at every call. Under loom every call looks, so the models
/// see every moment a handle can find itself alone.
const LOOK_EVERY: u32 = if cfg!(loom) { 1 } else { 64 };

/// What a handle knows of its side: whether it is the only handle (module docs).
struct Claim {
    /// Set only after reading the side's count as 1, cleared by a clone of this handle.
    sole: Cell<bool>,
    /// `try_push` (or `try_pop`) calls since the last look at the count, while `sole` is clear.
    since_look: Cell<u32>,
}

impl Claim {
    fn new(sole: bool) -> Self {
        Self {
            sole: Cell::new(sole),
            since_look: Cell::new(0),
        }
    }

    /// Whether this handle may claim with a plain store: it is its side's only handle.
    #[inline(always)]
    fn sole(&self, side: &Side) -> bool {
        if self.sole.get() || cfg!(pc_mutant = "split_always_sole") {
            return true;
        }
        let since = self.since_look.get() + 1;
        if since < LOOK_EVERY {
            self.since_look.set(since);
            return false;
        }
        self.since_look.set(0);
        // Acquire pairs with the Release decrement of every handle of this side dropped before:
        // their claims happen-before this handle's plain load of the index. (The mutant
        // `split_relaxed_count` weakens it to Relaxed, for the loom models to catch.)
        let acquire = if cfg!(pc_mutant = "split_relaxed_count") {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        let alone = side.handles.load(acquire) == 1;
        self.sole.set(alone);
        alone
    }

    /// A clone of this handle: this one shares its side from now on; the clone starts sharing.
    fn cloned(&self, side: &Side) -> Self {
        add_handle(side);
        // (The mutant `split_clone_keeps_sole` leaves the flag set, for the models to catch.)
        if !cfg!(pc_mutant = "split_clone_keeps_sole") {
            self.sole.set(false);
        }
        Self::new(false)
    }
}

/// The most handles a side can have: far more than threads, and far from the count wrapping
/// (which would make a side with many handles look alone).
const MAX_HANDLES: u32 = u32::MAX / 2;

/// Adds a handle to `side` (a clone, on the thread of the handle cloned).
///
/// # Panics
/// If the side already has [`MAX_HANDLES`] (only `mem::forget`ting clones gets there).
fn add_handle(side: &Side) {
    // Relaxed: the clone happens on the thread of the handle it copies, which reads its own
    // increment from then on; the new handle reaches another thread only by a send.
    let before = side.handles.fetch_add(1, Ordering::Relaxed);
    if before >= MAX_HANDLES {
        // Relaxed: undoes the increment above, as it was made.
        side.handles.fetch_sub(1, Ordering::Relaxed);
        panic!("more than {MAX_HANDLES} handles of one side of a ring");
    }
}

/// Removes a handle from `side`; true if it was the last.
fn remove_handle(side: &Side) -> bool {
    // Release: publishes this handle's claims to the handle that next finds itself alone
    // (pairs with the Acquire load in `Claim::sole`).
    side.handles.fetch_sub(1, Ordering::Release) == 1
}

/// The producing side of a [split](RingCore::split) ring: pushes, and closes.
///
/// `Clone` adds a producer, `Send` moves one to another thread. Dropping the last one closes
/// the ring. It is not `Sync` (a handle that is alone must stay alone while it pushes):
///
/// ```compile_fail,E0277
/// fn shared<T: Sync>(_: &T) {}
/// let mut ring = pc_core::Ring::<u8, 2>::new();
/// let (producer, _consumer) = ring.split();
/// shared(&producer);
/// ```
///
/// # Panics
/// `clone` panics if the side already has `u32::MAX / 2` handles (only `mem::forget`ting
/// clones gets there).
pub struct Producer<'a, T, S: Storage<T>> {
    link: Link<'a, T, S>,
    /// Whether this is the only producer (its `Cell`s make the handle not `Sync`).
    claim: Claim,
    /// 0, or the `try_push_spinning` calls since one found the ring full (1 after that one):
    /// while not 0, `try_push_spinning` looks at the tail only once the ring has room for a
    /// run, or at its 64th call (`RingCore::keeps_waiting`). Cleared by a
    /// `try_push_spinning` that pushes and by a `wait_space` that returns `Ok`; `try_push`
    /// ignores it.
    run_wait: Cell<u32>,
}

/// The consuming side of a [split](RingCore::split) ring: pops.
///
/// `Clone` adds a consumer, `Send` moves one to another thread; it is not `Sync`, as
/// [`Producer`] is not. It cannot close the ring ([`RingCore::split`] says why):
///
/// ```compile_fail,E0599
/// let mut ring = pc_core::Ring::<u8, 2>::new();
/// let (_producer, consumer) = ring.split();
/// consumer.close();
/// ```
///
/// # Panics
/// `clone` panics if the side already has `u32::MAX / 2` handles (only `mem::forget`ting
/// clones gets there).
pub struct Consumer<'a, T, S: Storage<T>> {
    link: Link<'a, T, S>,
    /// Whether this is the only consumer (its `Cell`s make the handle not `Sync`).
    claim: Claim,
    /// 0, or the `try_pop_batch_spinning` calls since one found the ring empty (1 after that
    /// one): while not 0, `try_pop_batch_spinning` looks at the head only once a run is
    /// ready, or at its 64th call (`RingCore::keeps_waiting_for_values`). Cleared by a
    /// `try_pop_batch_spinning` that pops and by a `wait_ready` that returns `Ok`; the other
    /// pops ignore it.
    run_wait: Cell<u32>,
}

impl<T, S: Storage<T>> Producer<'_, T, S> {
    /// The ring this handle pushes into.
    #[inline(always)]
    fn ring(&self) -> &RingCore<T, S> {
        self.link.get()
    }

    /// [`RingCore::try_push`], claiming with a plain store while this is the only producer.
    ///
    /// # Errors
    /// [`PushError::Full`] or [`PushError::Closed`], handing the value back.
    ///
    /// ```
    /// use pc_core::{PushError, Ring};
    ///
    /// let mut ring = Ring::<u8, 2>::new();
    /// let (producer, consumer) = ring.split();
    /// assert_eq!(producer.try_push(1), Ok(()));
    /// assert_eq!(producer.try_push(2), Ok(()));
    /// assert_eq!(producer.try_push(3), Err(PushError::Full(3)));
    /// assert_eq!(consumer.try_pop(), Ok(1));
    /// ```
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        if self.claim.sole(&self.ring().tail) {
            self.ring().try_push_sole(value)
        } else {
            self.ring().try_push(value)
        }
    }

    /// [`try_push`](Self::try_push) for a caller that, on `Full`, tries again at once (a spin
    /// loop): after a `Full`, it waits for room for a run rather than push into each slot the
    /// moment the consumer frees it.
    ///
    /// Once it has returned `Full`, this handle's next `try_push_spinning` calls return `Full`
    /// without looking at the tail until the slot `capacity / 8` positions past the tail is
    /// free (with one consumer, which frees slots in order: until `capacity / 8 + 1` slots
    /// are free), except every 64th call, which looks at the tail and pushes if its slot is
    /// free. A producer that outruns its consumer and tries again the moment one slot frees
    /// reads the very slot the consumer is freeing, taking its cache line from the consumer
    /// mid-work, and the stream then moves that line between the cores several times per
    /// value: on some CPUs this wait is what keeps such a stream fast, on others it changes
    /// nothing (README, "A producer that spins on `Full`", measures both). A
    /// `try_push_spinning` that pushes ends the wait, and so does a
    /// [`wait_space`](Self::wait_space) (or its timed form) that returns `Ok`. Rings of fewer
    /// than 8 slots look at the tail itself.
    /// [`try_push`](Self::try_push) on the same handle is exact, whatever this one last saw,
    /// and leaves the wait as it is.
    ///
    /// # Errors
    /// [`PushError::Full`] if the slot at the tail is not free, or, after a `Full`, while
    /// the run past it is not free (so `Full` while [`is_full`](Self::is_full) is false: for
    /// at most 63 calls in a row, each handing the value back; with several consumers, one
    /// preempted in the middle of popping the slot the wait looks at holds it until then);
    /// [`PushError::Closed`] if the ring is closed (never hidden by the wait).
    ///
    /// Not for a caller that stops calling on `Full` and waits for a signal that the
    /// consumer sends once (when it pops from a full ring, say), nor one that drops its value
    /// on `Full`: the call after the signal can be one of the 63, and then no signal comes,
    /// or the value is dropped while the ring has room. Those want `try_push`.
    ///
    /// ```
    /// use pc_core::{PushError, Ring};
    ///
    /// // A ring of 16: after a `Full`, the next push waits for the slot 16 / 8 = 2 past the
    /// // tail, so for three free slots.
    /// let mut ring = Ring::<u8, 16>::new();
    /// let (producer, consumer) = ring.split();
    /// assert_eq!(producer.try_push_batch(&mut (0..16)), Ok(16));
    /// assert_eq!(producer.try_push_spinning(16), Err(PushError::Full(16)));
    /// consumer.try_pop().unwrap();
    /// consumer.try_pop().unwrap();
    /// assert_eq!(producer.try_push_spinning(16), Err(PushError::Full(16)), "two free");
    /// consumer.try_pop().unwrap();
    /// assert_eq!(producer.try_push_spinning(16), Ok(()), "three free: the run is");
    /// assert_eq!(producer.try_push_spinning(17), Ok(()));
    /// ```
    #[inline]
    pub fn try_push_spinning(&self, value: T) -> Result<(), PushError<T>> {
        let ring = self.ring();
        // First, so that a gated call counts towards the look at the handle count.
        let sole = self.claim.sole(&ring.tail);
        let waiting = self.run_wait.get();
        if ring.keeps_waiting(waiting) {
            self.run_wait.set(waiting + 1);
            return Err(PushError::Full(value));
        }
        let pushed = if sole {
            ring.try_push_sole(value)
        } else {
            ring.try_push(value)
        };
        self.run_wait
            .set(u32::from(matches!(pushed, Err(PushError::Full(_)))));
        pushed
    }

    /// [`RingCore::push`] (feature `std`): waits while the ring is full, claiming as the shared
    /// ring does (see [`RingCore::split`] for why).
    ///
    /// # Errors
    /// [`Closed`] with the value if the ring is or becomes closed, or is full with every
    /// consumer gone (then this call closes it: [`RingCore::split`]).
    #[cfg(any(feature = "std", loom))]
    pub fn push(&self, value: T) -> Result<(), Closed<T>> {
        self.ring()
            .push_until(value, None, Consumers::Watched)
            .map_err(|e| Closed(e.into_inner()))
    }

    /// [`RingCore::push_timeout`] (feature `std`): waits at most `timeout` while the ring is
    /// full, claiming as the shared ring does.
    ///
    /// # Errors
    /// [`PushError::Full`] if the time ran out, [`PushError::Closed`] if the ring is or becomes
    /// closed, or is full with every consumer gone (then this call closes it); both hand the
    /// value back.
    #[cfg(all(feature = "std", not(loom)))]
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        let deadline = Some(crate::sync::deadline_after(timeout));
        self.closed_if_abandoned(self.ring().push_until(value, deadline, Consumers::Watched))
    }

    /// [`RingCore::try_push_batch`] (a compare-and-swap for the run, as on the shared ring).
    ///
    /// # Errors
    /// As [`RingCore::try_push_batch`].
    pub fn try_push_batch<I>(&self, items: &mut I) -> Result<usize, PushError<()>>
    where
        I: Iterator<Item = T>,
    {
        self.ring().try_push_batch(items)
    }

    /// [`RingCore::push_batch`] (feature `std`): waits while the ring is full.
    ///
    /// # Errors
    /// As [`RingCore::push_batch`]; also [`Closed`] once the ring is full with every consumer
    /// gone (then this call closes it).
    #[cfg(any(feature = "std", loom))]
    pub fn push_batch<I>(&self, items: &mut I) -> Result<usize, Closed<usize>>
    where
        I: Iterator<Item = T>,
    {
        self.ring()
            .push_batch_until(items, None, Consumers::Watched)
            .map_err(|e| Closed(e.into_inner()))
    }

    /// [`RingCore::push_batch_timeout`] (feature `std`): waits at most `timeout` in all while
    /// the ring is full.
    ///
    /// # Errors
    /// As [`RingCore::push_batch_timeout`]; also [`PushError::Closed`] once the ring is full
    /// with every consumer gone (then this call closes it).
    #[cfg(all(feature = "std", not(loom)))]
    pub fn push_batch_timeout<I>(
        &self,
        items: &mut I,
        timeout: Duration,
    ) -> Result<usize, PushError<usize>>
    where
        I: Iterator<Item = T>,
    {
        let deadline = Some(crate::sync::deadline_after(timeout));
        self.closed_if_abandoned(
            self.ring()
                .push_batch_until(items, deadline, Consumers::Watched),
        )
    }

    /// [`RingCore::wait_space`] (feature `std`): waits until a push would find room, pushing
    /// nothing. With [`try_push`](Self::try_push), a sole producer's way to wait and still
    /// claim with the plain store.
    ///
    /// # Errors
    /// As [`RingCore::wait_space`]; also [`Closed`] once the ring is full with every consumer
    /// gone (then this call closes it).
    ///
    /// ```
    /// use pc_core::{PushError, Ring};
    ///
    /// let mut ring = Ring::<u32, 2>::new();
    /// let (producer, consumer) = ring.split();
    /// std::thread::scope(|s| {
    ///     s.spawn(move || {
    ///         for i in 0..100 {
    ///             let mut v = i;
    ///             while let Err(PushError::Full(back)) = producer.try_push(v) {
    ///                 v = back;
    ///                 producer.wait_space().unwrap();
    ///             }
    ///         }
    ///     });
    ///     let mut sum = 0;
    ///     while let Ok(v) = consumer.pop() {
    ///         sum += v;
    ///     }
    ///     assert_eq!(sum, 4950);
    /// });
    /// ```
    #[cfg(any(feature = "std", loom))]
    pub fn wait_space(&self) -> Result<(), Closed> {
        let waited = self.ring().wait_space_until(None, Consumers::Watched);
        if waited.is_ok() {
            self.run_wait.set(0);
        }
        waited.map_err(|_| Closed(()))
    }

    /// [`RingCore::wait_space_timeout`] (feature `std`).
    ///
    /// # Errors
    /// As [`RingCore::wait_space_timeout`]; also [`PushError::Closed`] once the ring is full
    /// with every consumer gone (then this call closes it).
    #[cfg(all(feature = "std", not(loom)))]
    pub fn wait_space_timeout(&self, timeout: Duration) -> Result<(), PushError<()>> {
        let deadline = Some(crate::sync::deadline_after(timeout));
        let waited =
            self.closed_if_abandoned(self.ring().wait_space_until(deadline, Consumers::Watched));
        if waited.is_ok() {
            self.run_wait.set(0);
        }
        waited
    }

    /// [`RingCore::close`]: every producer's pushes fail from now on, consumers drain what is
    /// left. Returns `true` if this call closed the ring.
    pub fn close(&self) -> bool {
        self.ring().close()
    }

    /// Whether every [`Consumer`] is gone: nothing will pop from the ring again. Once true,
    /// it stays true (a consumer is made only by cloning one). The waiting pushes and
    /// [`wait_space`](Self::wait_space) close the ring when they find it so and the ring full;
    /// `try_push` never looks (see [`RingCore::split`]).
    ///
    /// ```
    /// use pc_core::{Closed, PushError, Ring};
    ///
    /// let mut ring = Ring::<u8, 2>::new();
    /// let (producer, consumer) = ring.split();
    /// assert!(!producer.is_abandoned());
    /// drop(consumer);
    /// assert!(producer.is_abandoned());
    /// producer.push(1).unwrap(); // room: accepted, and left in the ring
    /// producer.push(2).unwrap();
    /// assert_eq!(producer.try_push(3), Err(PushError::Full(3)));
    /// assert_eq!(producer.push(3), Err(Closed(3))); // closes the ring rather than wait
    /// assert!(producer.is_closed());
    /// ```
    #[must_use]
    pub fn is_abandoned(&self) -> bool {
        // Acquire pairs with the Release decrement of the last consumer's drop: what the
        // consumers did happens-before what the caller does on seeing them gone.
        self.ring().head.handles.load(Ordering::Acquire) == 0
    }

    /// [`RingCore::is_closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    /// [`RingCore::len`]: a snapshot.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ring().len()
    }

    /// [`RingCore::is_empty`]: a snapshot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ring().is_empty()
    }

    /// [`RingCore::is_full`]: a snapshot.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.ring().is_full()
    }

    /// [`RingCore::capacity`].
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring().capacity()
    }
}

impl<'a, T, S: Storage<T>> Consumer<'a, T, S> {
    /// The ring this handle pops from.
    #[inline(always)]
    fn ring(&self) -> &RingCore<T, S> {
        self.link.get()
    }

    /// [`RingCore::try_pop`], claiming with a plain store while this is the only consumer.
    ///
    /// # Errors
    /// [`PopError::Empty`] if no value is ready, [`PopError::Closed`] once closed and drained.
    ///
    /// ```
    /// use pc_core::{PopError, Ring};
    ///
    /// let mut ring = Ring::<u8, 2>::new();
    /// let (producer, consumer) = ring.split();
    /// assert_eq!(consumer.try_pop(), Err(PopError::Empty));
    /// producer.try_push(7).unwrap();
    /// drop(producer); // the last producer: closes the ring
    /// assert_eq!(consumer.try_pop(), Ok(7));
    /// assert_eq!(consumer.try_pop(), Err(PopError::Closed));
    /// ```
    #[inline]
    pub fn try_pop(&self) -> Result<T, PopError> {
        if self.claim.sole(&self.ring().head) {
            self.ring().try_pop_sole()
        } else {
            self.ring().try_pop()
        }
    }

    /// [`RingCore::pop`] (feature `std`): waits while the ring is empty, claiming as the shared
    /// ring does (see [`RingCore::split`] for why).
    ///
    /// # Errors
    /// [`Closed`] once the ring is closed and drained.
    #[cfg(any(feature = "std", loom))]
    pub fn pop(&self) -> Result<T, Closed> {
        self.ring().pop()
    }

    /// [`RingCore::pop_timeout`] (feature `std`): waits at most `timeout` while the ring is
    /// empty, claiming as the shared ring does.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    #[cfg(all(feature = "std", not(loom)))]
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        self.ring().pop_timeout(timeout)
    }

    /// [`RingCore::try_pop_batch`] (a compare-and-swap for the run, as on the shared ring).
    ///
    /// # Errors
    /// As [`RingCore::try_pop_batch`].
    pub fn try_pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, PopError> {
        self.ring().try_pop_batch(out, max)
    }

    /// [`RingCore::try_pop_batch_spinning`], with the wait's state kept in this handle (not
    /// shared with the other consumers, and not with the ring's own
    /// `try_pop_batch_spinning`).
    ///
    /// # Errors
    /// As [`RingCore::try_pop_batch_spinning`].
    ///
    /// ```
    /// use pc_core::{PopError, Ring};
    ///
    /// let mut ring = Ring::<u32, 16>::new(); // looks 16 / 8 = 2 past the head
    /// let (producer, consumer) = ring.split();
    /// let mut out = Vec::new();
    /// assert_eq!(consumer.try_pop_batch_spinning(&mut out, 8), Err(PopError::Empty));
    /// producer.try_push_batch(&mut (0..2)).unwrap();
    /// assert_eq!(consumer.try_pop_batch_spinning(&mut out, 8), Err(PopError::Empty));
    /// assert_eq!(consumer.try_pop_batch(&mut out, 8), Ok(2), "try_pop_batch does not wait");
    /// producer.try_push_batch(&mut (2..5)).unwrap();
    /// assert_eq!(consumer.try_pop_batch_spinning(&mut out, 8), Ok(3), "the run is ready");
    /// assert_eq!(out, [0, 1, 2, 3, 4]);
    /// ```
    pub fn try_pop_batch_spinning<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
    ) -> Result<usize, PopError> {
        let ring = self.ring();
        if max == 0 {
            return ring.try_pop_batch(out, 0);
        }
        let waiting = self.run_wait.get();
        if ring.keeps_waiting_for_values(waiting) {
            self.run_wait.set(waiting + 1);
            return Err(PopError::Empty);
        }
        let popped = ring.try_pop_batch_prefetching(out, max);
        self.run_wait
            .set(u32::from(matches!(popped, Err(PopError::Empty))));
        popped
    }

    /// [`RingCore::pop_batch`] (feature `std`): waits until at least one value is ready.
    ///
    /// # Errors
    /// As [`RingCore::pop_batch`].
    #[cfg(any(feature = "std", loom))]
    pub fn pop_batch<E: Extend<T>>(&self, out: &mut E, max: usize) -> Result<usize, Closed> {
        self.ring().pop_batch(out, max)
    }

    /// [`RingCore::pop_batch_timeout`] (feature `std`).
    ///
    /// # Errors
    /// As [`RingCore::pop_batch_timeout`].
    #[cfg(all(feature = "std", not(loom)))]
    pub fn pop_batch_timeout<E: Extend<T>>(
        &self,
        out: &mut E,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, PopError> {
        self.ring().pop_batch_timeout(out, max, timeout)
    }

    /// The values, each taken with [`pop`](Self::pop) (so waiting while the ring is empty),
    /// until the ring is closed and drained (feature `std`): `for v in consumer.iter()`, or
    /// `for v in &consumer`, as with a channel's receiver.
    ///
    /// ```
    /// let ring = pc_core::HeapRing::<u32>::with_capacity(4);
    /// let (producer, consumer) = ring.into_split();
    /// let pushing = std::thread::spawn(move || (0..10).for_each(|i| producer.push(i).unwrap()));
    /// assert_eq!(consumer.iter().sum::<u32>(), 45); // ends when the producer's drop closes it
    /// pushing.join().unwrap();
    /// let mut more = consumer.iter();
    /// assert_eq!((more.next(), more.next()), (None, None), "closed and drained, for good");
    /// ```
    #[cfg(any(feature = "std", loom))]
    pub fn iter(&self) -> super::Iter<'_, 'a, T, S> {
        super::Iter::new(self)
    }

    /// [`RingCore::wait_ready`] (feature `std`): waits until a pop would find something.
    ///
    /// # Errors
    /// As [`RingCore::wait_ready`].
    #[cfg(any(feature = "std", loom))]
    pub fn wait_ready(&self) -> Result<(), Closed> {
        let waited = self.ring().wait_ready_until(None);
        if waited.is_ok() {
            self.run_wait.set(0);
        }
        waited.map_err(|_| Closed(()))
    }

    /// [`RingCore::wait_ready_timeout`] (feature `std`).
    ///
    /// # Errors
    /// As [`RingCore::wait_ready_timeout`].
    #[cfg(all(feature = "std", not(loom)))]
    pub fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), PopError> {
        let deadline = Some(crate::sync::deadline_after(timeout));
        let waited = self.ring().wait_ready_until(deadline);
        if waited.is_ok() {
            self.run_wait.set(0);
        }
        waited
    }

    /// [`RingCore::is_closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    /// [`RingCore::len`]: a snapshot.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ring().len()
    }

    /// [`RingCore::is_empty`]: a snapshot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ring().is_empty()
    }

    /// [`RingCore::is_full`]: a snapshot.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.ring().is_full()
    }

    /// [`RingCore::capacity`].
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring().capacity()
    }
}

impl<T, S: Storage<T>> Clone for Producer<'_, T, S> {
    /// Another producer: the tail goes back to the compare-and-swap until only one is left.
    fn clone(&self) -> Self {
        Self {
            link: self.link.clone(),
            claim: self.claim.cloned(&self.ring().tail),
            run_wait: Cell::new(0),
        }
    }
}

impl<T, S: Storage<T>> Clone for Consumer<'_, T, S> {
    /// Another consumer: the head goes back to the compare-and-swap until only one is left.
    fn clone(&self) -> Self {
        Self {
            link: self.link.clone(),
            claim: self.claim.cloned(&self.ring().head),
            run_wait: Cell::new(0),
        }
    }
}

impl<T, S: Storage<T>> Producer<'_, T, S> {
    /// A timed wait's `Full`, as `Closed` (closing the ring) if every consumer is gone: a wait
    /// that ran out before it slept has not looked at the consumers.
    #[cfg(all(feature = "std", not(loom)))]
    fn closed_if_abandoned<R, V>(
        &self,
        result: Result<R, PushError<V>>,
    ) -> Result<R, PushError<V>> {
        match result {
            Err(PushError::Full(v)) if self.is_abandoned() => {
                self.ring().close();
                Err(PushError::Closed(v))
            }
            done => done,
        }
    }
}

#[cfg(test)]
impl<'a, T, S: Storage<T>> Producer<'a, T, S> {
    /// Test support: a borrowed split's ring, to watch its waiters while the handles are out.
    pub(super) fn borrowed_ring(&self) -> &'a RingCore<T, S> {
        self.link.borrowed_ring()
    }
}

impl<T, S: Storage<T>> Drop for Producer<'_, T, S> {
    /// Closes the ring if this was the last producer.
    fn drop(&mut self) {
        if remove_handle(&self.ring().tail) {
            self.ring().close();
        }
    }
}

impl<T, S: Storage<T>> Drop for Consumer<'_, T, S> {
    /// Wakes every waiting producer if this was the last consumer: their waits then close the
    /// ring rather than sleep on (`RingCore::producer_blocked`).
    fn drop(&mut self) {
        // The decrement is the progress the producers' sleep re-check looks for; `notify_all`
        // is the waker's half of the handshake after it (wait.rs). (The mutant
        // `split_drop_no_wake` skips the wake-up, for the loom models to catch.)
        if remove_handle(&self.ring().head) && !cfg!(pc_mutant = "split_drop_no_wake") {
            self.ring().head.waiters.notify_all();
        }
    }
}

impl<T, S: Storage<T>> fmt::Debug for Producer<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("ring", self.ring())
            // Relaxed: a snapshot for display.
            .field(
                "producers",
                &self.ring().tail.handles.load(Ordering::Relaxed),
            )
            .field("sole", &self.claim.sole.get())
            .field("run_wait", &(self.run_wait.get() != 0))
            .finish()
    }
}

impl<T, S: Storage<T>> fmt::Debug for Consumer<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", self.ring())
            // Relaxed: a snapshot for display.
            .field(
                "consumers",
                &self.ring().head.handles.load(Ordering::Relaxed),
            )
            .field("sole", &self.claim.sole.get())
            .field("run_wait", &(self.run_wait.get() != 0))
            .finish()
    }
}
