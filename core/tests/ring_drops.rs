//! Drops: every value dropped exactly once - popped, left in the ring, or lost to a panic -
//! including through batch operations.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use pc_core::{HeapRing, Ring};

/// Counts live instances; dropping one twice would drive the count below zero (caught by the
/// checked subtraction) and forgetting one leaves it above zero.
struct Tracked<'a>(&'a AtomicUsize);

impl<'a> Tracked<'a> {
    fn new(live: &'a AtomicUsize) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self(live)
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "double drop");
    }
}

/// An `Extend` that takes one value and leaves the rest of the batch.
struct TakeOne<T>(Vec<T>);

impl<T> Extend<T> for TakeOne<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().next());
    }
}

#[test]
fn no_leak_no_double_drop_with_values_left_in_ring() {
    let live = AtomicUsize::new(0);
    {
        let ring = Ring::<Tracked<'_>, 8>::new();
        for _ in 0..6 {
            assert!(ring.try_push(Tracked::new(&live)).is_ok());
        }
        drop(ring.try_pop().unwrap());
        assert_eq!(live.load(Ordering::Relaxed), 5);
        // A rejected value is handed back, not dropped by the ring.
        ring.close();
        let back = ring.try_push(Tracked::new(&live)).unwrap_err().into_inner();
        assert_eq!(live.load(Ordering::Relaxed), 6);
        drop(back);
    }
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

#[test]
fn no_leak_no_double_drop_with_batches() {
    let live = AtomicUsize::new(0);
    {
        let ring = HeapRing::<Tracked<'_>>::with_capacity(16);
        let mut items = (0..40).map(|_| Tracked::new(&live));
        assert_eq!(ring.try_push_batch(&mut items).unwrap(), 16);
        // Items that did not fit were never created: the iterator is lazy and untouched.
        assert_eq!(live.load(Ordering::Relaxed), 16);
        let mut out = Vec::new();
        assert_eq!(ring.try_pop_batch(&mut out, 10).unwrap(), 10);
        assert_eq!(live.load(Ordering::Relaxed), 16);
        drop(out);
        assert_eq!(live.load(Ordering::Relaxed), 6);
        assert_eq!(ring.try_push_batch(&mut items).unwrap(), 10);
        assert_eq!(live.load(Ordering::Relaxed), 16);
    }
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

/// An `Extend` that panics after taking `limit` values.
struct PanickyExtend<'a, T> {
    kept: Vec<T>,
    limit: usize,
    calls: &'a Cell<usize>,
}

impl<T> Extend<T> for PanickyExtend<'_, T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.calls.set(self.calls.get() + 1);
            assert!(self.kept.len() < self.limit, "extend panics mid-batch");
            self.kept.push(v);
        }
    }
}

/// A batch pop stopped early on a claim that wraps past the last slot and holds holes: the
/// values left, in both parts of the claim, are dropped once, the holes never read as values,
/// and every slot is freed.
#[test]
fn a_pop_stopped_early_on_a_wrapping_claim_with_holes_drops_what_is_left_once() {
    /// Promises three items, yields one, then pushes a value behind its claim (so the two
    /// unfilled positions cannot be given back and become holes) and says it has no more.
    struct OneThenPushBehind<'r, 'a> {
        ring: &'r HeapRing<Tracked<'a>>,
        live: &'a AtomicUsize,
        yielded: bool,
    }
    impl<'a> Iterator for OneThenPushBehind<'_, 'a> {
        type Item = Tracked<'a>;
        fn next(&mut self) -> Option<Tracked<'a>> {
            if self.yielded {
                assert!(self.ring.try_push(Tracked::new(self.live)).is_ok());
                return None;
            }
            self.yielded = true;
            Some(Tracked::new(self.live))
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (3, Some(3))
        }
    }
    let live = AtomicUsize::new(0);
    let ring = HeapRing::<Tracked<'_>>::with_capacity(4);
    // Move both indices to position 2, so the claim below (positions 2, 3, 4) wraps.
    ring.try_push_batch(&mut (0..2).map(|_| Tracked::new(&live)))
        .unwrap();
    ring.try_pop_batch(&mut Vec::new(), 2).unwrap();
    let mut items = OneThenPushBehind {
        ring: &ring,
        live: &live,
        yielded: false,
    };
    assert_eq!(ring.try_push_batch(&mut items), Ok(1));
    assert_eq!(
        ring.len(),
        4,
        "a value, two holes (one past the wrap), a value"
    );
    assert_eq!(live.load(Ordering::Relaxed), 2);
    let mut out = TakeOne(Vec::new());
    assert_eq!(ring.try_pop_batch(&mut out, 4), Ok(1));
    assert_eq!(out.0.len(), 1);
    assert_eq!(
        live.load(Ordering::Relaxed),
        1,
        "the value past the holes and the wrap was dropped, once"
    );
    all_freed_and_nothing_leaked(ring, &live, out);
}

#[test]
fn panicking_extend_frees_the_whole_claim() {
    let live = AtomicUsize::new(0);
    let ring = HeapRing::<Tracked<'_>>::with_capacity(8);
    ring.try_push_batch(&mut (0..8).map(|_| Tracked::new(&live)))
        .unwrap();
    let calls = Cell::new(0);
    let mut out = PanickyExtend {
        kept: Vec::new(),
        limit: 3,
        calls: &calls,
    };
    let result = catch_unwind(AssertUnwindSafe(|| ring.try_pop_batch(&mut out, 6)));
    assert!(result.is_err());
    // 3 kept, the 4th dropped while unwinding, 2 more claimed and dropped by the drain guard.
    assert_eq!(out.kept.len(), 3);
    assert_eq!(live.load(Ordering::Relaxed), 3 + 2);
    // The ring is not stalled: the two unclaimed values are still there, and slots are free.
    assert_eq!(ring.len(), 2);
    ring.try_push_batch(&mut (0..6).map(|_| Tracked::new(&live)))
        .unwrap();
    assert_eq!(ring.len(), 8);
    drop(out);
    drop(ring);
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

#[test]
fn panicking_iterator_in_batch_push_leaves_no_stall() {
    let live = AtomicUsize::new(0);
    let ring = HeapRing::<Tracked<'_>>::with_capacity(8);
    let mut made = 0;
    let mut items = std::iter::from_fn(|| {
        made += 1;
        assert!(made <= 2, "iterator panics on its third item");
        Some(Tracked::new(&live))
    });
    let result = catch_unwind(AssertUnwindSafe(|| ring.try_push_batch(&mut items)));
    assert!(result.is_err());
    // Two values pushed; the slot claimed for the third was given back (had another push
    // claimed behind it, it would have become a hole, which pops skip).
    assert!(ring.try_pop().is_ok());
    assert!(ring.try_pop().is_ok());
    assert_eq!(ring.try_pop().err(), Some(pc_core::PopError::Empty));
    assert!(ring.is_empty());
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

/// A value whose drop panics when it carries `true`.
struct PanicOnDrop(bool);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        assert!(!self.0, "drop panics");
    }
}

#[test]
fn panicking_value_drop_in_batch_pop_still_frees_every_slot() {
    let ring = HeapRing::<PanicOnDrop>::with_capacity(4);
    for fail in [false, true, false, false] {
        assert!(ring.try_push(PanicOnDrop(fail)).is_ok());
    }
    // An `Extend` that takes one value and drops the iterator: the batch's own drop then
    // drops the other three, and the second of them panics.
    let mut out = TakeOne(Vec::new());
    let result = catch_unwind(AssertUnwindSafe(|| ring.try_pop_batch(&mut out, 4)));
    assert_eq!(out.0.len(), 1);
    assert!(result.is_err());
    // All four slots were freed despite the panic: the ring takes four new values.
    assert!(ring.is_empty());
    for _ in 0..4 {
        assert!(ring.try_push(PanicOnDrop(false)).is_ok());
    }
}

/// A value whose destructor panics once and counts the drops of the others.
struct PanicsOnce<'a> {
    panics: bool,
    dropped: &'a AtomicUsize,
}

impl Drop for PanicsOnce<'_> {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        assert!(!self.panics, "this value's destructor panics");
    }
}

#[test]
fn dropping_a_ring_drops_every_value_even_when_one_destructor_panics() {
    for first_panics in [true, false] {
        let dropped = AtomicUsize::new(0);
        let ring = Ring::<PanicsOnce<'_>, 8>::new();
        for i in 0..4 {
            let panics = if first_panics { i == 0 } else { i == 2 };
            let value = PanicsOnce {
                panics,
                dropped: &dropped,
            };
            assert!(ring.try_push(value).is_ok());
        }
        assert!(catch_unwind(AssertUnwindSafe(|| drop(ring))).is_err());
        // All four destructors ran, the panicking one included, none twice.
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            4,
            "first_panics: {first_panics}"
        );
    }
}

/// A batch pop into an `Extend` that stops early counts only what it took; the rest of the
/// claimed run is dropped (once, not leaked) and its slots freed.
#[test]
fn batch_pop_counts_only_what_out_took_and_drops_the_rest() {
    struct TakeTwo<'a>(Vec<Tracked<'a>>);
    impl<'a> Extend<Tracked<'a>> for TakeTwo<'a> {
        fn extend<I: IntoIterator<Item = Tracked<'a>>>(&mut self, iter: I) {
            self.0.extend(iter.into_iter().take(2));
        }
    }
    let live = AtomicUsize::new(0);
    let ring = Ring::<Tracked<'_>, 8>::new();
    for _ in 0..5 {
        assert!(ring.try_push(Tracked::new(&live)).is_ok());
    }
    let mut out = TakeTwo(Vec::new());
    assert_eq!(
        ring.try_pop_batch(&mut out, 8),
        Ok(2),
        "counted values out never took"
    );
    assert_eq!(out.0.len(), 2);
    assert_eq!(
        live.load(Ordering::Relaxed),
        2,
        "the three left were not dropped once each"
    );
    assert!(ring.is_empty());
    // The run's slots were freed: the ring takes a full load again.
    for _ in 0..8 {
        assert!(ring.try_push(Tracked::new(&live)).is_ok());
    }
    drop(out);
    drop(ring);
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

/// A value of a type aligned to 16 bytes, which a packed slot (a 32-bit stamp, then the value)
/// may hold misaligned: it records the drops it sees and whether one was at an address its
/// type does not allow.
#[repr(align(16))]
struct Aligned<'a> {
    value: u64,
    drops: &'a AtomicUsize,
    misaligned: &'a AtomicUsize,
}

impl Drop for Aligned<'_> {
    fn drop(&mut self) {
        if !(self as *mut Self as usize).is_multiple_of(core::mem::align_of::<Self>()) {
            self.misaligned.fetch_add(1, Ordering::Relaxed);
        }
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn values_aligned_past_a_slots_four_bytes_come_out_whole_and_are_dropped_aligned() {
    let (drops, misaligned) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let make = |value| Aligned {
        value,
        drops: &drops,
        misaligned: &misaligned,
    };
    {
        let heap = HeapRing::<Aligned<'_>>::with_capacity(8);
        let inline = Ring::<Aligned<'_>, 8>::new();
        macro_rules! exercise {
            ($ring:expr) => {{
                for v in 0..6 {
                    assert!($ring.try_push(make(v)).is_ok());
                }
                assert_eq!($ring.try_push_batch(&mut (6..8).map(make)), Ok(2));
                assert_eq!($ring.try_pop().map(|a| a.value).ok(), Some(0));
                let mut out = Vec::new();
                assert_eq!($ring.try_pop_batch(&mut out, 2), Ok(2));
                assert_eq!(out.iter().map(|a| a.value).collect::<Vec<_>>(), [1, 2]);
            }};
        }
        exercise!(heap);
        exercise!(inline);
        // Five values are left in each ring, for its drop.
        assert_eq!(drops.load(Ordering::Relaxed), 6);
    }
    assert_eq!(drops.load(Ordering::Relaxed), 16);
    assert_eq!(
        misaligned.load(Ordering::Relaxed),
        0,
        "dropped where it lay, misaligned"
    );
}

/// Values of a type aligned past 4 bytes and larger than 4 KiB, left in a dropped ring, are
/// dropped once each, whole, at an aligned address (a packed slot's value is moved out to be
/// dropped: into a heap allocation of its own, which miri checks here; that it never crosses
/// the stack is ring_api's small-stack test).
#[test]
fn large_values_aligned_past_four_bytes_left_in_a_ring_are_dropped_once_and_aligned() {
    struct Large<'a>([u64; 600], &'a AtomicUsize, &'a AtomicUsize);
    impl Drop for Large<'_> {
        fn drop(&mut self) {
            if !(self as *mut Self as usize).is_multiple_of(core::mem::align_of::<Self>()) {
                self.2.fetch_add(1, Ordering::Relaxed);
            }
            assert_eq!(self.0[599], self.0[0], "moved whole");
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }
    let (drops, misaligned) = (AtomicUsize::new(0), AtomicUsize::new(0));
    {
        let ring = HeapRing::<Large<'_>>::with_capacity(4);
        for v in 0..3 {
            assert!(ring.try_push(Large([v; 600], &drops, &misaligned)).is_ok());
        }
    }
    assert_eq!(drops.load(Ordering::Relaxed), 3);
    assert_eq!(misaligned.load(Ordering::Relaxed), 0);
}

/// A ring of 4 holding `Tracked` values at positions 2 to 5: a run of four that wraps past the
/// last slot, in two parts of two, with no holes.
fn a_wrapping_run_of_four(live: &AtomicUsize) -> HeapRing<Tracked<'_>> {
    let ring = HeapRing::<Tracked<'_>>::with_capacity(4);
    ring.try_push_batch(&mut (0..2).map(|_| Tracked::new(live)))
        .unwrap();
    ring.try_pop_batch(&mut Vec::new(), 2).unwrap();
    assert_eq!(
        ring.try_push_batch(&mut (0..4).map(|_| Tracked::new(live))),
        Ok(4)
    );
    assert_eq!(live.load(Ordering::Relaxed), 4);
    ring
}

/// After a pop from a ring of four (such as [`a_wrapping_run_of_four`]'s): the ring is empty
/// with its four slots free, and once `out` (what the pop handed over) and the ring are
/// dropped, no value is left alive.
fn all_freed_and_nothing_leaked<'a, O>(ring: HeapRing<Tracked<'a>>, live: &'a AtomicUsize, out: O) {
    assert!(ring.is_empty());
    assert_eq!(
        ring.try_push_batch(&mut (0..4).map(|_| Tracked::new(live))),
        Ok(4),
        "every slot freed"
    );
    drop(out);
    drop(ring);
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

/// A batch pop hands a wrapping run to `extend` one part at a time: an `Extend` that stops
/// in the first part is not given the second, whose values are dropped once with the claim.
#[test]
fn an_extend_that_stops_in_the_first_part_of_a_wrapping_run_is_not_given_the_second() {
    let live = AtomicUsize::new(0);
    let ring = a_wrapping_run_of_four(&live);
    let mut out = TakeOne(Vec::new());
    assert_eq!(ring.try_pop_batch(&mut out, 4), Ok(1), "one taken");
    assert_eq!(live.load(Ordering::Relaxed), 1, "the three others dropped");
    all_freed_and_nothing_leaked(ring, &live, out);
}

/// An `extend` that panics on the first value of the second part of a wrapping run: what it
/// took is its own, the value it panicked on and the one after it are dropped once while
/// unwinding, and every slot is freed.
#[test]
fn a_pop_whose_extend_panics_in_the_second_part_of_a_wrapping_run_drops_the_rest_once() {
    let live = AtomicUsize::new(0);
    let ring = a_wrapping_run_of_four(&live);
    let calls = Cell::new(0);
    let mut out = PanickyExtend {
        kept: Vec::new(),
        limit: 2,
        calls: &calls,
    };
    let popped = catch_unwind(AssertUnwindSafe(|| ring.try_pop_batch(&mut out, 4)));
    assert!(popped.is_err());
    assert_eq!(
        calls.get(),
        3,
        "the first part's two, then the second part's first"
    );
    assert_eq!(out.kept.len(), 2);
    assert_eq!(
        live.load(Ordering::Relaxed),
        2,
        "the value it panicked on and the one left in the ring dropped"
    );
    all_freed_and_nothing_leaked(ring, &live, out);
}

/// An `Extend` that stops in the second part of a wrapping run: it takes the first part's two
/// values and one of the second's; the last value is dropped once with the claim, uncounted.
#[test]
fn an_extend_that_stops_in_the_second_part_of_a_wrapping_run_drops_the_rest_once() {
    /// Takes at most three values, over all its calls.
    struct TakeThree<T>(Vec<T>);
    impl<T> Extend<T> for TakeThree<T> {
        fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
            let room = 3 - self.0.len();
            self.0.extend(iter.into_iter().take(room));
        }
    }
    let live = AtomicUsize::new(0);
    let ring = a_wrapping_run_of_four(&live);
    let mut out = TakeThree(Vec::new());
    assert_eq!(ring.try_pop_batch(&mut out, 4), Ok(3), "three taken");
    assert_eq!(live.load(Ordering::Relaxed), 3, "the fourth dropped");
    all_freed_and_nothing_leaked(ring, &live, out);
}
