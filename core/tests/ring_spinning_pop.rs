//! `try_pop_batch_spinning`, on the shared ring and on its split handles alike: after an
//! `Empty`, it waits for a run of values (the slot `capacity / 8` past the head published)
//! before it looks at the head again, except every 64th call; `try_pop_batch` stays exact and
//! leaves the wait as it is; `wait_ready` and a pop end the wait; a close is never hidden. Each
//! such property runs on both forms (the modules `shared_ring` and `split_handles`); then the
//! forms' own cases, and a stream that loses and duplicates nothing.

use std::thread;
use std::time::Duration;

use pc_core::ring::{Consumer, Producer, Storage};
use pc_core::{Closed, HeapRing, PopError, RingCore};

/// A producer's and a consumer's calls, on the shared ring or on a pair of split handles.
trait Ends {
    fn try_push(&self, v: u64);
    fn spinning(&self, out: &mut Vec<u64>, max: usize) -> Result<usize, PopError>;
    fn try_pop_batch(&self, out: &mut Vec<u64>, max: usize) -> Result<usize, PopError>;
    fn wait_ready(&self) -> Result<(), Closed>;
    fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), PopError>;
    fn close(&self) -> bool;
}

impl<S: Storage<u64>> Ends for RingCore<u64, S> {
    fn try_push(&self, v: u64) {
        RingCore::try_push(self, v).expect("room");
    }
    fn spinning(&self, out: &mut Vec<u64>, max: usize) -> Result<usize, PopError> {
        self.try_pop_batch_spinning(out, max)
    }
    fn try_pop_batch(&self, out: &mut Vec<u64>, max: usize) -> Result<usize, PopError> {
        RingCore::try_pop_batch(self, out, max)
    }
    fn wait_ready(&self) -> Result<(), Closed> {
        RingCore::wait_ready(self)
    }
    fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), PopError> {
        RingCore::wait_ready_timeout(self, timeout)
    }
    fn close(&self) -> bool {
        RingCore::close(self)
    }
}

impl<S: Storage<u64>> Ends for (Producer<'_, u64, S>, Consumer<'_, u64, S>) {
    fn try_push(&self, v: u64) {
        self.0.try_push(v).expect("room");
    }
    fn spinning(&self, out: &mut Vec<u64>, max: usize) -> Result<usize, PopError> {
        self.1.try_pop_batch_spinning(out, max)
    }
    fn try_pop_batch(&self, out: &mut Vec<u64>, max: usize) -> Result<usize, PopError> {
        self.1.try_pop_batch(out, max)
    }
    fn wait_ready(&self) -> Result<(), Closed> {
        self.1.wait_ready()
    }
    fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), PopError> {
        self.1.wait_ready_timeout(timeout)
    }
    fn close(&self) -> bool {
        self.0.close()
    }
}

/// Has `try_pop_batch_spinning` find `ends`' (empty) ring empty.
fn found_empty<E: Ends>(ends: E) -> E {
    assert_eq!(ends.spinning(&mut Vec::new(), 64), Err(PopError::Empty));
    ends
}

/// Runs each named property (a function of `&impl Ends`) as a test on a ring of the given
/// capacity whose spinning pop found it empty, once shared and once split into handles.
macro_rules! on_both_forms {
    ($($property:ident: $capacity:literal),* $(,)?) => {
        mod shared_ring {
            $(#[test]
            fn $property() {
                super::$property(&super::found_empty(pc_core::Ring::<u64, $capacity>::new()));
            })*
        }
        mod split_handles {
            $(#[test]
            fn $property() {
                let mut ring = pc_core::Ring::<u64, $capacity>::new();
                super::$property(&super::found_empty(ring.split()));
            })*
        }
    };
}

on_both_forms! {
    after_empty_a_spinning_pop_waits_until_an_eighth_of_the_ring_and_one_more_value_are_ready: 64,
    a_ring_of_eight_waits_for_two_values: 8,
    a_ring_of_fewer_than_eight_slots_pops_the_first_value: 4,
    after_empty_every_64th_spinning_pop_looks_at_the_head: 64,
    try_pop_batch_is_exact_whatever_the_spinning_pop_last_saw: 64,
    try_pop_batch_and_a_max_of_zero_leave_the_wait_after_empty_as_it_is: 64,
    the_wait_after_empty_never_hides_a_close: 64,
    the_wait_after_empty_never_hides_the_close_of_a_drained_ring: 64,
    a_64th_look_that_finds_nothing_starts_the_wait_again: 64,
    wait_ready_and_its_timed_form_end_the_wait_after_empty: 64,
    a_wait_ready_that_times_out_leaves_the_wait_after_empty_as_it_is: 64,
}

fn after_empty_a_spinning_pop_waits_until_an_eighth_of_the_ring_and_one_more_value_are_ready(
    ends: &impl Ends,
) {
    let mut out = Vec::new();
    for v in 0..8 {
        ends.try_push(v);
        assert_eq!(
            ends.spinning(&mut out, 64),
            Err(PopError::Empty),
            "{} ready: the slot 8 past the head is not yet",
            v + 1
        );
    }
    ends.try_push(8);
    // Nine ready: the slot 8 past the head is, and the consumer takes the run.
    assert_eq!(ends.spinning(&mut out, 64), Ok(9));
    assert_eq!(out, (0..9).collect::<Vec<_>>());
    ends.try_push(9);
    assert_eq!(ends.spinning(&mut out, 64), Ok(1), "no wait after a pop");
}

fn a_ring_of_eight_waits_for_two_values(ends: &impl Ends) {
    let mut out = Vec::new();
    ends.try_push(0);
    assert_eq!(ends.spinning(&mut out, 8), Err(PopError::Empty));
    ends.try_push(1);
    assert_eq!(ends.spinning(&mut out, 8), Ok(2));
}

fn a_ring_of_fewer_than_eight_slots_pops_the_first_value(ends: &impl Ends) {
    let mut out = Vec::new();
    ends.try_push(0);
    assert_eq!(ends.spinning(&mut out, 4), Ok(1));
}

fn after_empty_every_64th_spinning_pop_looks_at_the_head(ends: &impl Ends) {
    let mut out = Vec::new();
    // One value, never a run: a producer that sends one and waits for its answer would wait
    // on this consumer for good if it never looked at the head.
    ends.try_push(7);
    for call in 1..64 {
        assert_eq!(
            ends.spinning(&mut out, 64),
            Err(PopError::Empty),
            "call {call}"
        );
    }
    assert_eq!(
        ends.spinning(&mut out, 64),
        Ok(1),
        "the 64th call looks at the head"
    );
    assert_eq!(out, [7]);
}

fn try_pop_batch_is_exact_whatever_the_spinning_pop_last_saw(ends: &impl Ends) {
    let mut out = Vec::new();
    ends.try_push(7);
    assert_eq!(ends.spinning(&mut out, 64), Err(PopError::Empty));
    assert_eq!(
        ends.try_pop_batch(&mut out, 64),
        Ok(1),
        "one ready, and taken"
    );
}

fn try_pop_batch_and_a_max_of_zero_leave_the_wait_after_empty_as_it_is(ends: &impl Ends) {
    let mut out = Vec::new();
    ends.try_push(7);
    ends.try_push(8);
    assert_eq!(ends.try_pop_batch(&mut out, 1), Ok(1), "exact");
    assert_eq!(ends.spinning(&mut out, 0), Ok(0), "a max of 0 pops nothing");
    assert_eq!(
        ends.spinning(&mut out, 64),
        Err(PopError::Empty),
        "still waiting for the run, though a value is ready"
    );
    assert_eq!(out, [7]);
}

fn the_wait_after_empty_never_hides_a_close(ends: &impl Ends) {
    let mut out = Vec::new();
    ends.try_push(7);
    assert!(ends.close());
    assert_eq!(
        ends.spinning(&mut out, 64),
        Ok(1),
        "closed: drained at once"
    );
    assert_eq!(ends.spinning(&mut out, 64), Err(PopError::Closed));
    assert_eq!(out, [7]);
}

fn the_wait_after_empty_never_hides_the_close_of_a_drained_ring(ends: &impl Ends) {
    assert!(ends.close());
    assert_eq!(ends.spinning(&mut Vec::new(), 64), Err(PopError::Closed));
}

fn a_64th_look_that_finds_nothing_starts_the_wait_again(ends: &impl Ends) {
    let mut out = Vec::new();
    for call in 1..=64 {
        assert_eq!(
            ends.spinning(&mut out, 64),
            Err(PopError::Empty),
            "call {call}"
        );
    }
    // The 64th looked and found nothing: the wait starts again, so one value is held.
    ends.try_push(7);
    assert_eq!(ends.spinning(&mut out, 64), Err(PopError::Empty));
    assert_eq!(ends.try_pop_batch(&mut out, 64), Ok(1));
}

fn wait_ready_and_its_timed_form_end_the_wait_after_empty(ends: &impl Ends) {
    let mut out = Vec::new();
    ends.try_push(7);
    // The documented pair: on `Empty`, wait for a value, then pop it.
    assert_eq!(ends.wait_ready(), Ok(()));
    assert_eq!(ends.spinning(&mut out, 64), Ok(1));
    assert_eq!(ends.spinning(&mut out, 64), Err(PopError::Empty));
    ends.try_push(8);
    assert_eq!(ends.wait_ready_timeout(Duration::ZERO), Ok(()));
    assert_eq!(ends.spinning(&mut out, 64), Ok(1));
    assert_eq!(out, [7, 8]);
}

fn a_wait_ready_that_times_out_leaves_the_wait_after_empty_as_it_is(ends: &impl Ends) {
    let mut out = Vec::new();
    assert_eq!(
        ends.wait_ready_timeout(Duration::ZERO),
        Err(PopError::Empty),
        "empty: the wait times out"
    );
    ends.try_push(7);
    assert_eq!(
        ends.spinning(&mut out, 64),
        Err(PopError::Empty),
        "one ready: still waiting for the run"
    );
}

#[test]
fn a_clone_of_a_consumer_starts_without_its_wait_after_empty() {
    let mut ring = pc_core::Ring::<u64, 64>::new();
    let (producer, consumer) = found_empty(ring.split());
    let second = consumer.clone();
    producer.try_push(7).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        consumer.try_pop_batch_spinning(&mut out, 64),
        Err(PopError::Empty),
        "still waiting"
    );
    assert_eq!(
        second.try_pop_batch_spinning(&mut out, 64),
        Ok(1),
        "a new handle looks at the head"
    );
    assert!(format!("{consumer:?}").contains("run_wait: true"));
    assert!(format!("{second:?}").contains("run_wait: false"));
}

#[test]
fn the_shared_rings_wait_after_empty_is_not_a_split_consumers() {
    let mut ring = HeapRing::<u64>::with_capacity(64);
    assert_eq!(
        ring.try_pop_batch_spinning(&mut Vec::new(), 64),
        Err(PopError::Empty)
    );
    let (producer, consumer) = ring.split();
    producer.try_push(7).unwrap();
    assert_eq!(
        consumer.try_pop_batch_spinning(&mut Vec::new(), 64),
        Ok(1),
        "the handle keeps its own state"
    );
}

/// A producer streams values in batches and closes; a consumer pops with
/// `try_pop_batch_spinning` until `Closed`: it gets every value once, in order, including the
/// last ones, fewer than a run (the 64th look, and the close, reach them).
#[test]
fn a_spinning_consumer_gets_every_value_once_in_order_to_the_end_of_the_stream() {
    const VALUES: u64 = 100_003;
    let ring = HeapRing::<u64>::with_capacity(64);
    thread::scope(|s| {
        s.spawn(|| {
            let mut items = 0..VALUES;
            while !items.is_empty() {
                if ring.try_push_batch(&mut items.by_ref().take(5)).is_err() {
                    thread::yield_now();
                }
            }
            ring.close();
        });
        let mut out = Vec::new();
        loop {
            match ring.try_pop_batch_spinning(&mut out, 16) {
                Ok(_) => {}
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => break,
            }
        }
        assert_eq!(out, (0..VALUES).collect::<Vec<_>>());
    });
}
