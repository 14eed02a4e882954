//! `try_push_spinning`, on the shared ring and on its split handles alike: after a `Full`, it
//! waits for room for a run (the slot `capacity / 8` past the tail free) before it looks at the
//! tail again, except every 64th call; `try_push` stays exact and leaves the wait as it is;
//! `wait_space` and a push end the wait; a close is never hidden. Each such property runs on
//! both forms (the modules `shared_ring` and `split_handles`); then the forms' own cases, and
//! threads that lose and duplicate nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use pc_core::ring::{Consumer, Producer, Storage};
use pc_core::{Closed, PopError, PushError, Ring, RingCore};

/// A producer's and a consumer's calls, on the shared ring or on a pair of split handles.
trait Ends {
    fn try_push_spinning(&self, v: u64) -> Result<(), PushError<u64>>;
    fn try_push(&self, v: u64) -> Result<(), PushError<u64>>;
    fn try_pop(&self) -> Result<u64, PopError>;
    fn wait_space(&self) -> Result<(), Closed>;
    fn wait_space_timeout(&self, timeout: Duration) -> Result<(), PushError<()>>;
    fn close(&self) -> bool;
    fn is_full(&self) -> bool;
    fn capacity(&self) -> usize;
}

impl<S: Storage<u64>> Ends for RingCore<u64, S> {
    fn try_push_spinning(&self, v: u64) -> Result<(), PushError<u64>> {
        RingCore::try_push_spinning(self, v)
    }
    fn try_push(&self, v: u64) -> Result<(), PushError<u64>> {
        RingCore::try_push(self, v)
    }
    fn try_pop(&self) -> Result<u64, PopError> {
        RingCore::try_pop(self)
    }
    fn wait_space(&self) -> Result<(), Closed> {
        RingCore::wait_space(self)
    }
    fn wait_space_timeout(&self, timeout: Duration) -> Result<(), PushError<()>> {
        RingCore::wait_space_timeout(self, timeout)
    }
    fn close(&self) -> bool {
        RingCore::close(self)
    }
    fn is_full(&self) -> bool {
        RingCore::is_full(self)
    }
    fn capacity(&self) -> usize {
        RingCore::capacity(self)
    }
}

impl<S: Storage<u64>> Ends for (Producer<'_, u64, S>, Consumer<'_, u64, S>) {
    fn try_push_spinning(&self, v: u64) -> Result<(), PushError<u64>> {
        self.0.try_push_spinning(v)
    }
    fn try_push(&self, v: u64) -> Result<(), PushError<u64>> {
        self.0.try_push(v)
    }
    fn try_pop(&self) -> Result<u64, PopError> {
        self.1.try_pop()
    }
    fn wait_space(&self) -> Result<(), Closed> {
        self.0.wait_space()
    }
    fn wait_space_timeout(&self, timeout: Duration) -> Result<(), PushError<()>> {
        self.0.wait_space_timeout(timeout)
    }
    fn close(&self) -> bool {
        self.0.close()
    }
    fn is_full(&self) -> bool {
        self.0.is_full()
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

/// Fills `ends`' ring and has `try_push_spinning` find it full.
fn full<E: Ends>(ends: E) -> E {
    for v in 0..ends.capacity() as u64 {
        assert_eq!(ends.try_push(v), Ok(()));
    }
    assert_eq!(ends.try_push_spinning(99), Err(PushError::Full(99)));
    ends
}

/// Pops whatever is in the ring now.
fn drain_now(ends: &impl Ends) -> Vec<u64> {
    std::iter::from_fn(|| ends.try_pop().ok()).collect()
}

/// Runs each named property (a function of `&impl Ends`) as a test on a full ring of the given
/// capacity, once shared and once split into handles.
macro_rules! on_both_forms {
    ($($property:ident: $capacity:literal),* $(,)?) => {
        mod shared_ring {
            $(#[test]
            fn $property() {
                super::$property(&super::full(pc_core::Ring::<u64, $capacity>::new()));
            })*
        }
        mod split_handles {
            $(#[test]
            fn $property() {
                let mut ring = pc_core::Ring::<u64, $capacity>::new();
                super::$property(&super::full(ring.split()));
            })*
        }
    };
}

on_both_forms! {
    after_full_a_spinning_push_waits_until_an_eighth_of_the_ring_and_one_more_slot_are_free: 64,
    a_ring_of_eight_waits_for_two_free_slots: 8,
    a_ring_of_fewer_than_eight_slots_pushes_into_the_first_freed_slot: 4,
    after_full_every_64th_spinning_push_looks_at_the_tail: 64,
    try_push_is_exact_whatever_try_push_spinning_last_saw: 64,
    try_push_leaves_the_wait_after_full_as_it_is: 64,
    the_wait_after_full_never_hides_a_close: 64,
    wait_space_and_its_timed_form_end_the_wait_after_full: 64,
    a_wait_space_that_times_out_leaves_the_wait_after_full_as_it_is: 64,
}

fn after_full_a_spinning_push_waits_until_an_eighth_of_the_ring_and_one_more_slot_are_free(
    ends: &impl Ends,
) {
    for popped in 0..8 {
        assert_eq!(ends.try_pop(), Ok(popped));
        assert_eq!(
            ends.try_push_spinning(99),
            Err(PushError::Full(99)),
            "{} free: the slot 8 past the tail is not yet",
            popped + 1
        );
        assert!(!ends.is_full(), "Full while a slot is free, as documented");
    }
    assert_eq!(ends.try_pop(), Ok(8));
    // Nine free: the slot 8 past the tail is, and the producer fills the run.
    for v in 64..73 {
        assert_eq!(ends.try_push_spinning(v), Ok(()), "value {v}");
    }
    assert_eq!(ends.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(drain_now(ends), (9..73).collect::<Vec<_>>());
}

fn a_ring_of_eight_waits_for_two_free_slots(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    assert_eq!(ends.try_push_spinning(8), Err(PushError::Full(8)));
    assert_eq!(ends.try_pop(), Ok(1));
    assert_eq!(ends.try_push_spinning(8), Ok(()));
}

fn a_ring_of_fewer_than_eight_slots_pushes_into_the_first_freed_slot(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    assert_eq!(ends.try_push_spinning(4), Ok(()));
}

fn after_full_every_64th_spinning_push_looks_at_the_tail(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    // One free slot, never a run: a consumer that pops only once the ring is nearly full
    // would wait on this producer for good if it never looked at the tail.
    for call in 1..64 {
        assert_eq!(
            ends.try_push_spinning(99),
            Err(PushError::Full(99)),
            "call {call}"
        );
    }
    assert_eq!(
        ends.try_push_spinning(64),
        Ok(()),
        "the 64th call looks at the tail"
    );
    assert_eq!(drain_now(ends), (1..65).collect::<Vec<_>>());
}

fn try_push_is_exact_whatever_try_push_spinning_last_saw(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    assert_eq!(ends.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(
        ends.try_push(64),
        Ok(()),
        "one free slot, and try_push takes it"
    );
}

fn try_push_leaves_the_wait_after_full_as_it_is(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    assert_eq!(ends.try_pop(), Ok(1));
    assert_eq!(
        ends.try_push(64),
        Ok(()),
        "exact: one of the two free slots"
    );
    assert_eq!(
        ends.try_push_spinning(99),
        Err(PushError::Full(99)),
        "still waiting for the run, though a slot is free"
    );
}

fn the_wait_after_full_never_hides_a_close(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    assert!(ends.close());
    assert_eq!(ends.try_push_spinning(99), Err(PushError::Closed(99)));
}

fn wait_space_and_its_timed_form_end_the_wait_after_full(ends: &impl Ends) {
    assert_eq!(ends.try_pop(), Ok(0));
    assert_eq!(
        ends.try_push_spinning(99),
        Err(PushError::Full(99)),
        "one free"
    );
    // The documented pair: on `Full`, wait for space, then push into it.
    assert_eq!(ends.wait_space(), Ok(()));
    assert_eq!(ends.try_push_spinning(64), Ok(()));
    assert_eq!(ends.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(ends.try_pop(), Ok(1));
    assert_eq!(ends.wait_space_timeout(Duration::ZERO), Ok(()));
    assert_eq!(ends.try_push_spinning(65), Ok(()));
    assert_eq!(drain_now(ends), (2..66).collect::<Vec<_>>());
}

fn a_wait_space_that_times_out_leaves_the_wait_after_full_as_it_is(ends: &impl Ends) {
    assert_eq!(
        ends.wait_space_timeout(Duration::ZERO),
        Err(PushError::Full(())),
        "full: the wait times out"
    );
    assert_eq!(ends.try_pop(), Ok(0));
    assert_eq!(
        ends.try_push_spinning(99),
        Err(PushError::Full(99)),
        "one free: still waiting for the run"
    );
}

#[test]
fn a_clone_of_a_producer_starts_without_its_wait_after_full() {
    let mut ring = Ring::<u64, 64>::new();
    let (producer, consumer) = full(ring.split());
    let second = producer.clone();
    assert_eq!(consumer.try_pop(), Ok(0));
    assert_eq!(
        producer.try_push_spinning(99),
        Err(PushError::Full(99)),
        "still waiting"
    );
    assert_eq!(
        second.try_push_spinning(64),
        Ok(()),
        "a new handle looks at the tail"
    );
    assert!(format!("{producer:?}").contains("run_wait: true"));
    assert!(format!("{second:?}").contains("run_wait: false"));
}

/// Pushes `v` with `try_push_spinning`, trying again while the ring is full; gives up once
/// the ring is closed (a test's consumer closes it when it panics, so the producers end and
/// the panic is reported). Between tries it yields rather than spins: the tests' consumers
/// share the cores with it (one core, under load), and a producer that spun out its time
/// slice would hold them off for that long per value.
fn push_spinning<const N: usize>(ring: &Ring<u64, N>, mut v: u64) {
    while let Err(e) = ring.try_push_spinning(v) {
        if e.is_closed() {
            return;
        }
        v = e.into_inner();
        thread::yield_now();
    }
}

/// Closes the ring when dropped: held by a test's consumer, so that a panic in it ends the
/// producers spinning on a full ring instead of leaving the test hung in `thread::scope`.
struct CloseOnDrop<'a, const N: usize>(&'a Ring<u64, N>);

impl<const N: usize> Drop for CloseOnDrop<'_, N> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[test]
fn spinning_producers_on_many_threads_lose_and_duplicate_nothing() {
    const PRODUCERS: u64 = 3;
    const PER_PRODUCER: u64 = 50_000;
    const TOTAL: usize = (PRODUCERS * PER_PRODUCER) as usize;
    let ring = Ring::<u64, 64>::new();
    let popped = AtomicUsize::new(0);
    let mut got: Vec<u64> = thread::scope(|s| {
        for p in 0..PRODUCERS {
            let ring = &ring;
            s.spawn(move || {
                for seq in 0..PER_PRODUCER {
                    push_spinning(ring, p << 32 | seq);
                }
            });
        }
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, popped) = (&ring, &popped);
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut last = [None::<u64>; PRODUCERS as usize];
                    while popped.load(Ordering::Relaxed) < TOTAL {
                        match ring.try_pop() {
                            Ok(v) => {
                                popped.fetch_add(1, Ordering::Relaxed);
                                let (p, seq) = ((v >> 32) as usize, v & 0xffff_ffff);
                                assert!(last[p].is_none_or(|l| seq > l), "FIFO per producer");
                                last[p] = Some(seq);
                                got.push(v);
                            }
                            Err(PopError::Empty) => thread::yield_now(),
                            Err(PopError::Closed) => unreachable!("never closed"),
                        }
                    }
                    got
                })
            })
            .collect();
        consumers
            .into_iter()
            .flat_map(|c| c.join().expect("consumer"))
            .collect()
    });
    got.sort_unstable();
    let mut want: Vec<u64> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |seq| p << 32 | seq))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn spinning_producers_always_get_in_to_a_consumer_that_pops_only_from_a_full_ring() {
    // The consumer takes one value whenever the ring is full, and nothing otherwise: a
    // producer that waited for a run without ever looking at the tail would never get in
    // again after the first pop.
    const PER_PRODUCER: u64 = 2_000;
    let ring = Ring::<u64, 64>::new();
    let popped = AtomicUsize::new(0);
    thread::scope(|s| {
        for p in 0..2u64 {
            let ring = &ring;
            s.spawn(move || {
                for seq in 0..PER_PRODUCER {
                    push_spinning(ring, p << 32 | seq);
                }
            });
        }
        let total = (2 * PER_PRODUCER) as usize;
        let _close_on_panic = CloseOnDrop(&ring);
        // Fails, rather than hangs, if the producers stop getting in.
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        while popped.load(Ordering::Relaxed) + ring.len() < total {
            assert!(
                std::time::Instant::now() < give_up,
                "the producers stopped getting in"
            );
            if ring.is_full() {
                // `is_full` counts pushes still writing: the head's value may not be ready
                // yet, and `try_pop` says Empty until it is.
                while let Err(e) = ring.try_pop() {
                    assert_eq!(e, PopError::Empty, "never closed");
                    thread::yield_now();
                }
                popped.fetch_add(1, Ordering::Relaxed);
            } else {
                thread::yield_now();
            }
        }
    });
    assert_eq!(
        popped.load(Ordering::Relaxed) + ring.len(),
        2 * PER_PRODUCER as usize
    );
}
