//! How batch operations hand their run of slots to the other side: a whole run at once.
//!
//! A batch push publishes its first slot only once every value is written, and a batch pop
//! frees its slots only once every value is taken, the first slot last: a thread waiting at
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
    /// Takes values, trying a push of `100 + value` before each.
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
            .map(|v| Err(PushError::Full(v)))
            .collect::<Vec<_>>(),
        "no slot of the run is free before the pop returns"
    );
    assert_eq!(
        ring.try_push_batch(&mut (10..14)),
        Ok(4),
        "all four free after it"
    );
}

#[test]
fn drain_stopped_early_drops_the_rest_and_frees_every_slot() {
    /// Takes one value and ignores the rest of the batch.
    struct TakeOne(Vec<String>);
    impl Extend<String> for TakeOne {
        fn extend<I: IntoIterator<Item = String>>(&mut self, iter: I) {
            self.0.extend(iter.into_iter().next());
        }
    }
    let ring = Ring::<String, 4>::new();
    let mut items = ["a", "b", "c", "d"].map(String::from).into_iter();
    assert_eq!(ring.try_push_batch(&mut items), Ok(4));
    let mut out = TakeOne(Vec::new());
    assert_eq!(ring.try_pop_batch(&mut out, 4), Ok(4), "the claim was four");
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

#[test]
fn a_batch_of_only_holes_is_skipped() {
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
    assert_eq!(ring.len(), 3, "three holes, the first one included");
    assert_eq!(ring.try_pop(), Err(PopError::Empty), "holes are not values");
    ring.try_push(7).unwrap();
    assert_eq!(ring.try_pop(), Ok(7));
    assert!(ring.is_empty());
    assert_eq!(
        ring.try_push_batch(&mut (0..4)),
        Ok(4),
        "every slot reusable"
    );
}
