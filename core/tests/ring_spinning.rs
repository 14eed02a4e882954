//! The shared ring's `try_push_spinning`: after a `Full`, it waits for room for a run (the
//! slot `capacity / 8` past the tail free) before it looks at the tail again, except every 64th
//! call; `try_push` stays exact; `wait_space` and a push end the wait; a close is never
//! hidden; threads lose and duplicate nothing. (The split handles' own form: `ring_split.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use pc_core::{PopError, PushError, Ring};

/// A ring of `N` filled, whose `try_push_spinning` has just found it full.
fn full_ring<const N: usize>() -> Ring<u64, N> {
    let ring = Ring::<u64, N>::new();
    assert_eq!(ring.try_push_batch(&mut (0..N as u64)), Ok(N));
    assert_eq!(ring.try_push_spinning(99), Err(PushError::Full(99)));
    ring
}

/// Pushes `v` with `try_push_spinning`, trying again at once while the ring is full.
fn push_spinning<const N: usize>(ring: &Ring<u64, N>, mut v: u64) {
    while let Err(e) = ring.try_push_spinning(v) {
        v = e.into_inner();
        std::hint::spin_loop();
    }
}

/// Pops whatever is in the ring now.
fn drain_now<const N: usize>(ring: &Ring<u64, N>) -> Vec<u64> {
    std::iter::from_fn(|| ring.try_pop().ok()).collect()
}

#[test]
fn after_full_the_ring_waits_until_an_eighth_of_it_and_one_more_slot_are_free() {
    let ring = full_ring::<64>();
    for popped in 0..8 {
        assert_eq!(ring.try_pop(), Ok(popped));
        assert_eq!(
            ring.try_push_spinning(99),
            Err(PushError::Full(99)),
            "{} free",
            popped + 1
        );
    }
    assert_eq!(ring.try_pop(), Ok(8));
    for v in 64..73 {
        assert_eq!(ring.try_push_spinning(v), Ok(()), "value {v}");
    }
    assert_eq!(ring.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(drain_now(&ring), (9..73).collect::<Vec<_>>());
}

#[test]
fn after_full_every_64th_spinning_push_looks_at_the_tail() {
    let ring = full_ring::<64>();
    assert_eq!(ring.try_pop(), Ok(0));
    for call in 1..64 {
        assert_eq!(
            ring.try_push_spinning(99),
            Err(PushError::Full(99)),
            "call {call}"
        );
    }
    assert_eq!(ring.try_push_spinning(64), Ok(()), "the 64th call looks");
}

#[test]
fn try_push_on_the_shared_ring_is_exact_whatever_a_spinning_push_saw() {
    let ring = full_ring::<64>();
    assert_eq!(ring.try_pop(), Ok(0));
    assert_eq!(ring.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(ring.try_push(64), Ok(()));
}

#[test]
fn wait_space_and_its_timed_form_end_the_shared_rings_wait() {
    use std::time::Duration;
    let ring = full_ring::<64>();
    assert_eq!(ring.try_pop(), Ok(0));
    assert_eq!(ring.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(ring.wait_space(), Ok(()));
    assert_eq!(ring.try_push_spinning(64), Ok(()));
    assert_eq!(ring.try_push_spinning(99), Err(PushError::Full(99)));
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.wait_space_timeout(Duration::ZERO), Ok(()));
    assert_eq!(ring.try_push_spinning(65), Ok(()));
}

#[test]
fn the_shared_rings_wait_never_hides_a_close() {
    let ring = full_ring::<64>();
    assert_eq!(ring.try_pop(), Ok(0));
    assert!(ring.close());
    assert_eq!(ring.try_push_spinning(99), Err(PushError::Closed(99)));
}

#[test]
fn a_shared_ring_of_fewer_than_eight_slots_pushes_into_the_first_freed_slot() {
    let ring = full_ring::<4>();
    assert_eq!(ring.try_pop(), Ok(0));
    assert_eq!(ring.try_push_spinning(4), Ok(()));
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
fn a_shared_ring_of_eight_waits_for_two_free_slots() {
    let ring = full_ring::<8>();
    assert_eq!(ring.try_pop(), Ok(0));
    assert_eq!(ring.try_push_spinning(8), Err(PushError::Full(8)));
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.try_push_spinning(8), Ok(()));
}

#[test]
fn try_push_leaves_the_shared_rings_wait_as_it_is() {
    let ring = full_ring::<64>();
    assert_eq!(ring.try_pop(), Ok(0));
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(
        ring.try_push(64),
        Ok(()),
        "exact: one of the two free slots"
    );
    assert_eq!(
        ring.try_push_spinning(99),
        Err(PushError::Full(99)),
        "still waiting for the run, though a slot is free"
    );
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
        while popped.load(Ordering::Relaxed) + ring.len() < total {
            if ring.is_full() {
                ring.try_pop().expect("a full ring has a value");
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
