//! How batch operations hand their run of slots to the other side: a whole run at once.
//!
//! A batch push publishes its first slot only once every value is written, and a batch pop
//! frees its slots only once its `Extend` has returned, the first slot last: a thread waiting at
//! the first slot sees the whole run at once. The tests look from inside the batch: the
//! iterator of a push and the `Extend` of a pop run on the same thread, mid-batch.

use std::cell::RefCell;

use pc_core::{PopError, PushError, Ring};

#[test]
fn batch_push_publishes_its_run_at_once() {
    let ring = Ring::<u32, 8>::new();
    let seen_during_push = RefCell::new(Vec::new());
    let mut items = (1..=5).inspect(|_| seen_during_push.borrow_mut().push(ring.try_pop()));
    assert_eq!(ring.try_push_batch(&mut items), Ok(5));
    assert_eq!(
        *seen_during_push.borrow(),
        [Err(PopError::Empty); 5],
        "no value of the run can be popped before the push returns"
    );
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 8), Ok(5));
    assert_eq!(out, [1, 2, 3, 4, 5]);
}

#[test]
fn batch_pop_frees_its_run_at_once() {
    /// Takes values, trying a push of `100 + value` before each, and one of 200 once the
    /// iterator is exhausted.
    struct PushWhileTaking<'r> {
        ring: &'r Ring<u32, 4>,
        taken: Vec<u32>,
        pushes: Vec<Result<(), PushError<u32>>>,
    }
    impl Extend<u32> for PushWhileTaking<'_> {
        fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
            for v in iter {
                self.pushes.push(self.ring.try_push(100 + v));
                self.taken.push(v);
            }
            self.pushes.push(self.ring.try_push(200));
        }
    }
    let ring = Ring::<u32, 4>::new();
    assert_eq!(ring.try_push_batch(&mut (0..4)), Ok(4));
    let mut out = PushWhileTaking {
        ring: &ring,
        taken: Vec::new(),
        pushes: Vec::new(),
    };
    assert_eq!(ring.try_pop_batch(&mut out, 4), Ok(4));
    assert_eq!(out.taken, [0, 1, 2, 3]);
    assert_eq!(
        out.pushes,
        (100..104)
            .chain([200])
            .map(|v| Err(PushError::Full(v)))
            .collect::<Vec<_>>(),
        "no slot of the run is free before `extend` returns, even once its iterator is exhausted"
    );
    assert_eq!(
        ring.try_push_batch(&mut (10..14)),
        Ok(4),
        "all four free after it"
    );
}

/// An `Extend` that takes one value and leaves the rest of the batch.
struct TakeOne<T>(Vec<T>);

impl<T> Extend<T> for TakeOne<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().next());
    }
}

#[test]
fn drain_stopped_early_drops_the_rest_and_frees_every_slot() {
    let ring = Ring::<String, 4>::new();
    let mut items = ["a", "b", "c", "d"].map(String::from).into_iter();
    assert_eq!(ring.try_push_batch(&mut items), Ok(4));
    let mut out = TakeOne(Vec::new());
    assert_eq!(
        ring.try_pop_batch(&mut out, 4),
        Ok(1),
        "counts what `out` took"
    );
    assert_eq!(out.0, ["a"]);
    assert!(
        ring.is_empty(),
        "the other three were dropped with the claim"
    );
    let mut items = ["e", "f", "g", "h"].map(String::from).into_iter();
    assert_eq!(
        ring.try_push_batch(&mut items),
        Ok(4),
        "and all four slots freed"
    );
}

/// Values without drop glue take the pop's fast path, which frees the slots after `out`
/// returns instead of through the drain's drop: it must free them all even where `out` left
/// values behind.
#[test]
fn a_batch_pop_of_plain_values_stopped_early_frees_every_slot() {
    let ring = Ring::<u32, 4>::new();
    assert_eq!(ring.try_push_batch(&mut (1..=4)), Ok(4));
    let mut out = TakeOne(Vec::new());
    assert_eq!(
        ring.try_pop_batch(&mut out, 3),
        Ok(1),
        "counts what `out` took"
    );
    assert_eq!(out.0, [1]);
    assert_eq!(ring.len(), 1, "the two left by `out` went with the claim");
    assert_eq!(
        ring.try_push_batch(&mut (5..=8)),
        Ok(3),
        "and their slots are free"
    );
    let mut rest = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut rest, 4), Ok(4));
    assert_eq!(rest, [4, 5, 6, 7]);
}

/// For an `out` that panics, the drain's drop frees the slots of the whole claim while
/// unwinding, without reading the values left (they have no drop glue).
#[test]
fn a_batch_pop_of_plain_values_whose_extend_panics_frees_every_slot() {
    /// Takes two values, then panics.
    struct PanicsAfterTwo(Vec<u32>);
    impl Extend<u32> for PanicsAfterTwo {
        fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
            for v in iter {
                assert!(self.0.len() < 2, "extend panics mid-batch");
                self.0.push(v);
            }
        }
    }
    let ring = Ring::<u32, 4>::new();
    assert_eq!(ring.try_push_batch(&mut (1..=4)), Ok(4));
    let mut out = PanicsAfterTwo(Vec::new());
    let popped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ring.try_pop_batch(&mut out, 3)
    }));
    assert!(popped.is_err());
    assert_eq!(out.0, [1, 2]);
    assert_eq!(ring.len(), 1, "the claim of three is gone");
    assert_eq!(
        ring.try_push_batch(&mut (5..=8)),
        Ok(3),
        "and its slots are free"
    );
}

/// A ring of 4 holding three holes (the first slot's included), then a 7: made by a batch push
/// whose iterator promises three items and yields none, pushing 7 behind its claim before it
/// says so, so that the claim cannot be given back.
fn three_holes_then_a_seven() -> Ring<u32, 4> {
    /// Promises three items and yields none; before saying so, pushes 7 behind its claim.
    struct Empty<'r>(&'r Ring<u32, 4>);
    impl Iterator for Empty<'_> {
        type Item = u32;
        fn next(&mut self) -> Option<u32> {
            self.0.try_push(7).unwrap();
            None
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (3, Some(3))
        }
    }
    let ring = Ring::<u32, 4>::new();
    assert_eq!(ring.try_push_batch(&mut Empty(&ring)), Ok(0));
    assert_eq!(
        ring.len(),
        4,
        "three holes, the first one included, and the 7"
    );
    ring
}

#[test]
fn a_batch_of_only_holes_is_skipped() {
    let ring = three_holes_then_a_seven();
    assert_eq!(ring.try_pop(), Ok(7), "holes are skipped");
    assert!(ring.is_empty());
    assert_eq!(
        ring.try_push_batch(&mut (0..4)),
        Ok(4),
        "every slot reusable"
    );
}

/// A batch pop whose claim is only holes frees them and claims again, so it still returns the
/// value behind them.
#[test]
fn a_batch_pop_whose_claim_is_only_holes_pops_the_value_behind_them() {
    let ring = three_holes_then_a_seven();
    let mut out = Vec::new();
    assert_eq!(
        ring.try_pop_batch(&mut out, 3),
        Ok(1),
        "the holes, then the 7"
    );
    assert_eq!(out, [7]);
    assert!(ring.is_empty());
    assert_eq!(
        ring.try_push_batch(&mut (0..4)),
        Ok(4),
        "every slot reusable"
    );
}

#[test]
fn an_unfilled_claim_is_given_back_whole() {
    /// Promises three items and yields none.
    struct Empty;
    impl Iterator for Empty {
        type Item = u32;
        fn next(&mut self) -> Option<u32> {
            None
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (3, Some(3))
        }
    }
    let ring = Ring::<u32, 4>::new();
    assert_eq!(ring.try_push_batch(&mut Empty), Ok(0));
    assert!(ring.is_empty(), "no holes: nobody claimed behind it");
    assert_eq!(ring.try_push_batch(&mut (0..4)), Ok(4));
}

#[test]
fn batch_push_from_an_unbounded_iterator_leaves_no_holes() {
    // `from_fn` has no upper size bound. Claiming every free slot for it (as before) made
    // holes of all it did not fill: `len() == 8` and other producers saw `Full`.
    let ring = Ring::<u32, 8>::new();
    let mut source = 0..2;
    let mut two = std::iter::from_fn(|| source.next());
    assert_eq!(two.size_hint(), (0, None));
    assert_eq!(ring.try_push_batch(&mut two), Ok(2));
    assert_eq!(ring.len(), 2, "only what the iterator yielded is claimed");
    assert_eq!(ring.try_push(100), Ok(()), "another producer can push");
    // A chain of such iterators, and one after an exact-size part.
    let (mut a, mut b) = (10..12, 20..22);
    let mut chained = std::iter::from_fn(|| a.next()).chain(std::iter::from_fn(|| b.next()));
    assert_eq!(ring.try_push_batch(&mut chained), Ok(4));
    let mut c = 30..31;
    let mut mixed = (40..41).chain(std::iter::from_fn(|| c.next()));
    assert_eq!(ring.try_push_batch(&mut mixed), Ok(1), "one slot was left");
    assert!(ring.is_full());
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 8), Ok(8));
    assert_eq!(out, [0, 1, 100, 10, 11, 20, 21, 40]);
    assert!(ring.is_empty(), "no holes left behind");
    assert_eq!(
        mixed.next(),
        Some(30),
        "what did not fit stays in the iterator"
    );
}

#[test]
fn push_batch_on_an_exhausted_iterator_claims_nothing() {
    let ring = Ring::<u32, 8>::new();
    let mut calls = 0;
    let mut empty = std::iter::from_fn(|| {
        calls += 1;
        None::<u32>
    });
    assert_eq!(ring.push_batch(&mut empty), Ok(0));
    assert_eq!(ring.try_push_batch(&mut empty), Ok(0));
    assert!(ring.is_empty());
    assert_eq!(
        ring.try_push_batch(&mut (0..8)),
        Ok(8),
        "every slot still free"
    );
    assert_eq!(calls, 2);
}

#[test]
fn push_batch_stops_at_the_first_none() {
    // `push_batch` used to end with one more `try_push_batch` on the exhausted iterator,
    // which (with the holes above) filled the ring, and then waited for room forever.
    let ring = Ring::<u32, 8>::new();
    let mut calls = 0;
    let mut source = 0..3;
    let mut three = std::iter::from_fn(|| {
        calls += 1;
        source.next()
    });
    assert_eq!(ring.push_batch(&mut three), Ok(3));
    assert_eq!(calls, 4, "three items and one None, nothing after it");
    assert_eq!(ring.len(), 3);
}

#[test]
fn an_item_is_taken_only_with_a_slot_for_it() {
    // A generic iterator cannot take an item back, and a non-blocking push cannot wait for
    // room: so no item is taken from the iterator unless a slot is claimed for it.
    let ring = Ring::<u32, 4>::new();
    let mut taken = 0;
    let mut endless = std::iter::from_fn(|| {
        taken += 1;
        Some(taken)
    });
    assert_eq!(ring.try_push_batch(&mut endless), Ok(4));
    assert!(ring.try_push_batch(&mut endless).unwrap_err().is_full());
    ring.close();
    assert!(ring.try_push_batch(&mut endless).unwrap_err().is_closed());
    assert_eq!(
        endless.next(),
        Some(5),
        "items 1-4 pushed, nothing else taken"
    );
    let mut out = Vec::new();
    while ring.try_pop_batch(&mut out, 4).is_ok() {}
    assert_eq!(out, [1, 2, 3, 4]);
}

/// A pop of at most 0 values pops nothing, but still says `Closed` once the ring is closed
/// and drained, so a loop that pops until `Closed` ends whatever `max` it passes.
#[test]
fn a_batch_pop_of_zero_says_closed_once_drained() {
    let ring = Ring::<u32, 4>::new();
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 0), Ok(0));
    ring.try_push(1).unwrap();
    ring.close();
    // Closed, not drained: nothing popped, no error.
    assert_eq!(ring.try_pop_batch(&mut out, 0), Ok(0));
    assert_eq!(ring.pop_batch(&mut out, 0), Ok(0));
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.try_pop_batch(&mut out, 0), Err(PopError::Closed));
    assert_eq!(ring.pop_batch(&mut out, 0), Err(pc_core::Closed(())));
    let timeout = std::time::Duration::from_secs(60);
    assert_eq!(
        ring.pop_batch_timeout(&mut out, 0, timeout),
        Err(PopError::Closed)
    );
    assert!(out.is_empty());
}

/// A batch push reports a closed ring whatever it is given, an iterator that says it is empty
/// included; into an open ring, even a full one, an empty iterator pushes nothing, no error.
#[test]
fn a_batch_push_of_nothing_into_a_closed_ring_says_closed() {
    let ring = Ring::<u32, 2>::new();
    ring.try_push_batch(&mut (0..2)).unwrap();
    assert_eq!(ring.try_push_batch(&mut (0..0)), Ok(0));
    assert_eq!(ring.push_batch(&mut (0..0)), Ok(0));
    ring.close();
    assert_eq!(ring.try_push_batch(&mut (0..0)), Err(PushError::Closed(())));
    assert_eq!(ring.push_batch(&mut (0..0)), Err(pc_core::Closed(0)));
    assert_eq!(ring.try_push_batch(&mut (5..7)), Err(PushError::Closed(())));
}

/// A push made from inside a batch push's iterator is ordered by its claim (its value comes
/// out before the batch's values claimed after it), and the slot the batch claimed for an
/// item that never came becomes a hole when such a push claimed behind it: the ring's docs,
/// "FIFO per producer" and "Holes, rarely".
#[test]
fn a_push_from_inside_a_batch_iterator_is_ordered_by_its_claim_and_can_leave_a_hole() {
    let ring = Ring::<u32, 8>::new();
    let mut calls = 0;
    let mut items = std::iter::from_fn(|| {
        calls += 1;
        let (nested, item) = match calls {
            1 => (101, Some(1)),
            2 => (102, Some(2)),
            _ => (103, None),
        };
        assert_eq!(ring.try_push(nested), Ok(()));
        item
    });
    assert_eq!(ring.try_push_batch(&mut items), Ok(2));
    assert_eq!(ring.len(), 6, "1, 101, 2, 102, a hole, 103");
    let popped: Vec<u32> = std::iter::from_fn(|| ring.try_pop().ok()).collect();
    assert_eq!(popped, [1, 101, 2, 102, 103]);
    assert!(ring.is_empty(), "the hole was skipped");
}

/// A batch pop's run that wraps past the ring's last slot reaches `out` in order, its two
/// parts one after the other.
#[test]
fn a_batch_pop_of_a_wrapping_run_hands_the_values_over_in_order() {
    let ring = Ring::<u32, 4>::new();
    assert_eq!(ring.try_push_batch(&mut (0..3)), Ok(3));
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 3), Ok(3));
    // The head is at slot 3: a run of four is slot 3, then slots 0 to 2.
    assert_eq!(ring.try_push_batch(&mut (10..14)), Ok(4));
    out.clear();
    assert_eq!(ring.try_pop_batch(&mut out, 4), Ok(4));
    assert_eq!(out, [10, 11, 12, 13]);
}
