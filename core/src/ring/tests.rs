//! Unit tests that need the crate's insides: counters started near their wrap point.

use alloc::vec::Vec;

use super::slot::ONE;
use super::{HeapRing, PopError, Ring};

/// Positions a few steps before `usize::MAX`, so every index and stamp wraps during the test.
fn near_wrap(steps_before: usize) -> usize {
    0usize.wrapping_sub(steps_before * ONE)
}

#[test]
fn wraps_near_usize_max_single_ops() {
    let mut ring = Ring::<u64, 4>::new();
    ring.start_at(near_wrap(3));
    for round in 0..20u64 {
        for i in 0..3 {
            ring.try_push(round * 10 + i).unwrap();
        }
        assert_eq!(ring.len(), 3);
        for i in 0..3 {
            assert_eq!(ring.try_pop(), Ok(round * 10 + i));
        }
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
        assert!(ring.is_empty());
    }
}

#[test]
fn wraps_near_usize_max_full_and_batches() {
    let mut ring = HeapRing::<u64>::with_capacity(8);
    ring.start_at(near_wrap(5));
    let mut next_in = 0u64;
    let mut next_out = 0u64;
    for _ in 0..50 {
        // Fill to the brim across the wrap point, then check it reports full.
        let pushed = ring.try_push_batch(&mut (next_in..next_in + 8)).unwrap();
        assert_eq!(pushed, 8 - ring.len() + pushed);
        next_in += pushed as u64;
        assert!(ring.is_full());
        assert!(ring.try_push(999).unwrap_err().is_full());
        let mut out = Vec::new();
        ring.try_pop_batch(&mut out, 5).unwrap();
        for v in out {
            assert_eq!(v, next_out);
            next_out += 1;
        }
    }
    ring.close();
    let mut out = Vec::new();
    while ring.try_pop_batch(&mut out, 3).is_ok() {}
    assert_eq!(out, (next_out..next_in).collect::<Vec<_>>());
    assert_eq!(ring.try_pop(), Err(PopError::Closed));
}

#[test]
fn wraps_near_usize_max_drop_releases_values() {
    use alloc::sync::Arc;
    let token = Arc::new(());
    {
        let mut ring = Ring::<Arc<()>, 4>::new();
        ring.start_at(near_wrap(1));
        for _ in 0..4 {
            ring.try_push(Arc::clone(&token)).unwrap();
        }
        drop(ring.try_pop().unwrap());
        assert_eq!(Arc::strong_count(&token), 4);
    }
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn holes_from_short_iterators_are_skipped() {
    // An iterator whose size hint promises more than it yields: the claimed positions it
    // cannot fill become holes, which pops skip.
    struct Liar(u32);
    impl Iterator for Liar {
        type Item = u32;
        fn next(&mut self) -> Option<u32> {
            (self.0 < 2).then(|| {
                self.0 += 1;
                self.0
            })
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (4, Some(4))
        }
    }
    let ring = Ring::<u32, 8>::new();
    assert_eq!(ring.try_push_batch(&mut Liar(0)), Ok(2));
    assert_eq!(ring.len(), 4, "holes occupy slots until popped");
    ring.try_push(3).unwrap();
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.try_pop(), Ok(2));
    assert_eq!(ring.try_pop(), Ok(3), "the two holes are skipped");
    assert!(ring.is_empty());
    ring.try_push_batch(&mut Liar(0)).unwrap();
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 8), Ok(2));
    assert_eq!(out, [1, 2]);
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
}

/// Spins (yielding) until `n` threads have registered to park on `waiters`.
fn until_registered(waiters: &super::Waiters, n: usize) {
    while waiters.registered() < n {
        std::thread::yield_now();
    }
}

#[test]
fn close_wakes_parked_consumers() {
    let ring = HeapRing::<u64>::with_capacity(4);
    std::thread::scope(|s| {
        let parked: Vec<_> = (0..3).map(|_| s.spawn(|| ring.pop())).collect();
        until_registered(&ring.tail.waiters, 3);
        ring.close();
        for h in parked {
            assert!(h.join().unwrap().is_err(), "woken with Closed");
        }
    });
}

#[test]
fn push_wakes_parked_consumer_and_pop_wakes_parked_producer() {
    let ring = Ring::<u64, 2>::new();
    std::thread::scope(|s| {
        let consumer = s.spawn(|| ring.pop());
        until_registered(&ring.tail.waiters, 1);
        ring.try_push(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(7));

        ring.try_push(1).unwrap();
        ring.try_push(2).unwrap();
        let producer = s.spawn(|| ring.push(3));
        until_registered(&ring.head.waiters, 1);
        assert_eq!(ring.try_pop(), Ok(1));
        assert_eq!(producer.join().unwrap(), Ok(()));
        let mut out = Vec::new();
        ring.try_pop_batch(&mut out, 4).unwrap();
        assert_eq!(out, [2, 3]);
    });
}

#[test]
fn heap_slots_start_on_a_cache_line_pair() {
    use super::Storage;
    use super::storage::{Boxed, HEAP_ALIGN};
    fn check<T>() {
        for capacity in [2, 8, 1024] {
            // Several allocations, so a lucky allocator does not pass by chance.
            let rings: Vec<Boxed<T>> = (0..8).map(|_| Boxed::try_new(capacity).unwrap()).collect();
            for storage in &rings {
                assert_eq!(storage.slots().len(), capacity);
                assert_eq!(storage.slots().as_ptr() as usize % HEAP_ALIGN, 0);
            }
        }
    }
    check::<u8>();
    check::<u64>();
    check::<[u8; 24]>();
    check::<alloc::string::String>();
}

/// Spins (yielding) until `n` threads are asleep on `waiters`, napping behind a held slot.
fn until_napping(waiters: &super::Waiters, n: usize) {
    while waiters.napping() < n {
        std::thread::yield_now();
    }
}

#[test]
fn producer_sleeps_while_a_batch_pop_holds_its_slots() {
    // A batch pop frees its run only when its `Extend` is done. A producer that arrives in
    // between finds room by the indices but the slot still held: it must sleep behind that
    // slot (not spin), and get its push in once the pop has ended. Before naps it spun and
    // never slept: this test then hung (CI's test step has a timeout for such hangs).
    struct StartProducerThenWait<'s, 'r> {
        scope: &'s std::thread::Scope<'s, 'r>,
        ring: &'r Ring<u32, 2>,
        producer: Option<std::thread::ScopedJoinHandle<'s, Result<(), super::Closed<u32>>>>,
        got: Vec<u32>,
    }
    impl Extend<u32> for StartProducerThenWait<'_, '_> {
        fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
            for v in iter {
                if self.producer.is_none() {
                    let ring = self.ring;
                    self.producer = Some(self.scope.spawn(move || ring.push(7)));
                    until_napping(&ring.head.waiters, 1);
                }
                self.got.push(v);
            }
        }
    }
    let ring = Ring::<u32, 2>::new();
    ring.try_push_batch(&mut (0..2)).unwrap();
    std::thread::scope(|s| {
        let mut out = StartProducerThenWait {
            scope: s,
            ring: &ring,
            producer: None,
            got: Vec::new(),
        };
        assert_eq!(ring.try_pop_batch(&mut out, 2), Ok(2));
        assert_eq!(out.got, [0, 1]);
        assert_eq!(out.producer.take().unwrap().join().unwrap(), Ok(()));
        assert_eq!(ring.try_pop(), Ok(7));
    });
}

#[test]
fn consumer_sleeps_while_a_batch_push_produces_its_run() {
    // A batch push publishes its run's first slot only when its iterator is done. A consumer
    // that arrives in between finds a position claimed but its slot not yet published: it
    // must sleep behind that slot (not spin), and get the value once the push has ended.
    let ring = Ring::<u32, 4>::new();
    std::thread::scope(|s| {
        let mut consumer = None;
        let mut items = (0..3).inspect(|&i| {
            if i == 1 {
                consumer = Some(s.spawn(|| ring.pop()));
                until_napping(&ring.tail.waiters, 1);
            }
        });
        assert_eq!(ring.push_batch(&mut items), Ok(3));
        assert_eq!(consumer.take().unwrap().join().unwrap(), Ok(0));
        let mut rest = Vec::new();
        ring.try_pop_batch(&mut rest, 4).unwrap();
        assert_eq!(rest, [1, 2]);
    });
}
