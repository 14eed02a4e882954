//! Loom model checks of the ring's lock-free protocol (the non-blocking operations).
//!
//! Each model is tiny (capacity 2, a handful of values) so loom can explore every interleaving
//! within the preemption bound. Loom's `UnsafeCell` tracking turns any read of a slot that is not
//! ordered after its write into a failure, so these models fail against the mutant
//! `--cfg pc_mutant="ring_relaxed_publish"` (the publish store weakened to Relaxed); `.ci/run`
//! runs them that way too and requires the failure.
//!
//! Threads that find the ring full or empty retry a bounded number of times, then give up: loom
//! cannot schedule several spinning threads fairly (it re-runs the first yielder), so unbounded
//! retry loops blow its branch limit. Each model therefore has a racing phase, then joins every
//! thread and drains what is left single-threaded, and checks the whole history: every value
//! that was pushed is popped exactly once, and each producer's values come out in push order.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pc_core::ring::Storage;
use pc_core::{HeapRing, PopError, Ring, RingCore};
use pc_loom_tests::{PATIENCE, check_history, pop_with, push_with};

/// Pushes `values` in order; stops at the first value still refused after `PATIENCE` retries.
/// Returns how many were pushed.
fn push_some<S: Storage<u32>>(ring: &RingCore<u32, S>, values: &[u32]) -> usize {
    push_with(values, |v| ring.try_push(v))
}

/// Pops until `n` values, Closed, or `PATIENCE` consecutive Empty results.
fn pop_some<S: Storage<u32>>(ring: &RingCore<u32, S>, n: usize) -> Vec<u32> {
    pop_with(n, |got| ring.try_pop().map(|v| got.push(v)))
}

/// Batch pops (up to 2 at a time) until `n` values, Closed, or `PATIENCE` consecutive Empty
/// results.
fn pop_batches<S: Storage<u32>>(ring: &RingCore<u32, S>, n: usize) -> Vec<u32> {
    pop_with(n, |got| {
        ring.try_pop_batch(got, 2)
            .map(|k| assert!(k >= 1, "a successful batch pop takes a value"))
    })
}

/// Batch-pushes `values` in order, trying again (after a yield) while the ring is full, up to
/// `PATIENCE` times. Returns how many were pushed.
fn push_batches<S: Storage<u32>>(ring: &RingCore<u32, S>, values: &[u32]) -> usize {
    let mut items = values.iter().copied();
    for _ in 0..=PATIENCE {
        if items.len() == 0 || ring.try_push_batch(&mut items).is_ok() {
            continue;
        }
        thread::yield_now();
    }
    values.len() - items.len()
}

/// Pops everything left, with no other thread running.
fn drain<S: Storage<u32>>(ring: &RingCore<u32, S>) -> Vec<u32> {
    let mut rest = Vec::new();
    while let Ok(v) = ring.try_pop() {
        rest.push(v);
    }
    rest
}

#[test]
fn two_producers_one_consumer() {
    loom::model(|| {
        const A: &[u32] = &[10, 11];
        const B: &[u32] = &[20];
        let ring = Arc::new(Ring::<u32, 2>::new());
        let spawn_producer = |values: &'static [u32]| {
            let ring = Arc::clone(&ring);
            thread::spawn(move || push_some(&*ring, values))
        };
        let (a, b) = (spawn_producer(A), spawn_producer(B));
        let got = pop_some(&*ring, 3);
        let pushed = [(A, a.join().unwrap()), (B, b.join().unwrap())];
        check_history(&pushed, &[[got, drain(&*ring)].concat()]);
    });
}

#[test]
fn one_producer_two_consumers() {
    loom::model(|| {
        // Three values through two slots: the producer refills a slot that one of the two
        // racing consumers has just freed, while the other may still hold a stale head for it.
        const P: &[u32] = &[1, 2, 3];
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || pop_some(&*ring, 2))
        };
        let other = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || pop_some(&*ring, 2))
        };
        let pushed = push_some(&*ring, P);
        let (c1, c2) = (consumer.join().unwrap(), other.join().unwrap());
        check_history(&[(P, pushed)], &[c1, c2, drain(&*ring)]);
    });
}

#[test]
fn batch_pops_by_two_consumers_race_a_batch_push() {
    // A batch pop frees its slots only at its end, and a batch push publishes its run's first
    // slot only at its end (each the first slot last): two consumers' claims and a producer's
    // claim interleave here across the wrap of a two-slot ring.
    loom::model(|| {
        const P: &[u32] = &[1, 2, 3];
        let ring = Arc::new(HeapRing::<u32>::with_capacity(2));
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || pop_batches(&*ring, 2))
        };
        let other = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || pop_batches(&*ring, 2))
        };
        let mut items = P.iter().copied();
        for _ in 0..=PATIENCE {
            if items.len() == 0 {
                break;
            }
            if ring.try_push_batch(&mut items).is_err() {
                thread::yield_now();
            }
        }
        let pushed = P.len() - items.len();
        let (c1, c2) = (consumer.join().unwrap(), other.join().unwrap());
        check_history(&[(P, pushed)], &[c1, c2, drain(&*ring)]);
    });
}

/// A producer pushing three values into a ring of two, started at index value `start`, races
/// a consumer; every value pushed comes out once, in order.
fn capacity_two_from(start: usize) {
    loom::model(move || {
        const P: &[u32] = &[1, 2, 3];
        let mut ring = Ring::<u32, 2>::new();
        ring.start_at(start);
        let ring = Arc::new(ring);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || push_some(&*ring, P))
        };
        let got = pop_some(&*ring, 3);
        let pushed = producer.join().unwrap();
        check_history(&[(P, pushed)], &[[got, drain(&*ring)].concat()]);
        assert!(ring.is_empty());
    });
}

#[test]
fn capacity_two_wraps_around_near_usize_max() {
    // One step before the counters wrap: the laps cross usize::MAX.
    capacity_two_from(usize::MAX - 1);
}

/// The index value one step (`ONE`) before the low 32 bits, a slot's stamp, wrap while the index
/// itself does not (on 64-bit targets; on 32-bit ones it is the index's own wrap).
const STAMPS_WRAP_SOON: usize = u32::MAX as usize - 1;

#[test]
fn capacity_two_wraps_around_where_the_stamps_wrap() {
    capacity_two_from(STAMPS_WRAP_SOON);
}

#[test]
fn batches_race_where_the_stamps_wrap() {
    loom::model(|| {
        const P: &[u32] = &[1, 2, 3];
        let mut ring = HeapRing::<u32>::with_capacity(2);
        ring.start_at(STAMPS_WRAP_SOON);
        let ring = Arc::new(ring);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || push_batches(&*ring, P))
        };
        let got = pop_batches(&*ring, 3);
        let pushed = producer.join().unwrap();
        check_history(&[(P, pushed)], &[[got, drain(&*ring)].concat()]);
        assert!(ring.is_empty());
    });
}

#[test]
fn close_races_with_push_and_pop() {
    loom::model(|| {
        const P: &[u32] = &[1, 2];
        let ring = Arc::new(Ring::<u32, 2>::new());
        let producer = {
            let ring = Arc::clone(&ring);
            // Each push either lands (and must be popped) or is refused as Closed.
            thread::spawn(move || push_some(&*ring, P))
        };
        let closer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.close())
        };
        // Race a consumer against both; then, once closed, it must drain to Closed.
        let mut got = pop_some(&*ring, 2);
        let pushed = producer.join().unwrap();
        assert!(closer.join().unwrap());
        got.extend(drain(&*ring));
        assert_eq!(ring.try_pop(), Err(PopError::Closed));
        check_history(&[(P, pushed)], &[got]);
        assert!(ring.try_push(3).unwrap_err().is_closed());
    });
}

#[test]
fn batch_push_races_with_pop() {
    loom::model(|| {
        const P: &[u32] = &[1, 2, 3];
        let ring = Arc::new(HeapRing::<u32>::with_capacity(2));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || push_batches(&*ring, P))
        };
        let mut got = Vec::new();
        for _ in 0..=PATIENCE {
            match ring.try_pop_batch(&mut got, 2) {
                Ok(n) => assert!(n >= 1),
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => unreachable!("never closed"),
            }
        }
        let pushed = producer.join().unwrap();
        ring.try_pop_batch(&mut got, 3).ok();
        check_history(&[(P, pushed)], &[got]);
        assert!(ring.is_empty());
    });
}

#[test]
fn unbounded_batch_push_races_push_and_pop() {
    // A batch push from an iterator with no size bound claims one slot per item, and one more
    // to learn the iterator is exhausted, which it gives back, or (if the producer claimed
    // behind it first) publishes as a hole the consumer skips. Either way: every item taken
    // from the iterator is pushed, each value popped once, no hole is ever popped as a value.
    loom::model(|| {
        const B: &[u32] = &[10];
        const P: &[u32] = &[20];
        let ring = Arc::new(Ring::<u32, 2>::new());
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || push_some(&*ring, P))
        };
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || pop_some(&*ring, 2))
        };
        let taken = std::cell::Cell::new(0);
        let mut items = std::iter::from_fn(|| {
            let item = B.get(taken.get()).copied();
            taken.set(taken.get() + usize::from(item.is_some()));
            item
        });
        let mut pushed = 0;
        for _ in 0..=PATIENCE {
            match ring.try_push_batch(&mut items) {
                Ok(n) => pushed += n,
                Err(_) => thread::yield_now(),
            }
            if taken.get() == B.len() {
                break;
            }
        }
        assert_eq!(pushed, taken.get(), "every item taken was pushed");
        let (p, got) = (producer.join().unwrap(), consumer.join().unwrap());
        check_history(&[(B, pushed), (P, p)], &[[got, drain(&*ring)].concat()]);
        assert!(ring.is_empty(), "no hole left behind");
    });
}
