//! Stress: 4 producers x 4 consumers on a small ring (threads outnumber cores here).
//! Every value popped exactly once, each producer's values popped in push order by every
//! consumer, everything accounted for after close.

use std::sync::Barrier;
use std::thread;

use pc_core::{HeapRing, PopError, PushError, Ring, RingCore};

const PRODUCERS: u64 = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: u64 = 50_000;

/// A value encodes (producer, sequence).
fn encode(producer: u64, seq: u64) -> u64 {
    producer << 32 | seq
}

#[derive(Clone, Copy)]
enum Mode {
    /// try_push / try_pop with a yield on failure.
    NonBlocking,
    /// push / pop.
    Blocking,
    /// push_batch / pop_batch.
    Batch,
}

fn run<S: pc_core::ring::Storage<u64>>(ring: &RingCore<u64, S>, mode: Mode) {
    let start = Barrier::new(PRODUCERS as usize + CONSUMERS);
    let seen: Vec<Vec<u64>> = thread::scope(|s| {
        let mut producers = Vec::new();
        for p in 0..PRODUCERS {
            let (ring, start) = (ring, &start);
            producers.push(s.spawn(move || {
                start.wait();
                match mode {
                    Mode::NonBlocking => {
                        for seq in 0..PER_PRODUCER {
                            let mut v = encode(p, seq);
                            loop {
                                match ring.try_push(v) {
                                    Ok(()) => break,
                                    Err(PushError::Full(back)) => {
                                        v = back;
                                        thread::yield_now();
                                    }
                                    Err(PushError::Closed(_)) => panic!("closed early"),
                                }
                            }
                        }
                    }
                    Mode::Blocking => {
                        for seq in 0..PER_PRODUCER {
                            ring.push(encode(p, seq)).unwrap();
                        }
                    }
                    Mode::Batch => {
                        let mut items = (0..PER_PRODUCER).map(|seq| encode(p, seq));
                        // Varying batch sizes: take chunks of 1..=37 through a by_ref iterator.
                        let mut k = 1;
                        loop {
                            let mut chunk = items.by_ref().take(k);
                            let n = ring.push_batch(&mut chunk).unwrap();
                            if n == 0 {
                                break;
                            }
                            k = k % 37 + 1;
                        }
                    }
                }
            }));
        }
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let (ring, start) = (ring, &start);
                s.spawn(move || {
                    start.wait();
                    let mut got = Vec::new();
                    match mode {
                        Mode::NonBlocking => loop {
                            match ring.try_pop() {
                                Ok(v) => got.push(v),
                                Err(PopError::Empty) => thread::yield_now(),
                                Err(PopError::Closed) => break,
                            }
                        },
                        Mode::Blocking => {
                            while let Ok(v) = ring.pop() {
                                got.push(v);
                            }
                        }
                        Mode::Batch => {
                            let max = 1 + c * 20;
                            while ring.pop_batch(&mut got, max).is_ok() {}
                        }
                    }
                    got
                })
            })
            .collect();
        // Close once every producer is done (or has panicked: the consumers must still end,
        // or the failure would hang the scope); consumers then drain and end on Closed.
        let produced: Vec<_> = producers.into_iter().map(|h| h.join()).collect();
        assert!(ring.close());
        for result in produced {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
        consumers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    check_seen(&seen);
    assert_eq!(ring.try_pop(), Err(PopError::Closed));
}

fn check_seen(seen: &[Vec<u64>]) {
    // Per consumer: each producer's values in increasing sequence order.
    for got in seen {
        let mut last = vec![None; PRODUCERS as usize];
        for &v in got {
            let (p, seq) = ((v >> 32) as usize, v & 0xFFFF_FFFF);
            if let Some(prev) = last[p] {
                assert!(seq > prev, "producer {p}: {seq} popped after {prev}");
            }
            last[p] = Some(seq);
        }
    }
    // Overall: exactly once.
    let mut all: Vec<u64> = seen.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |s| encode(p, s)))
        .collect();
    assert_eq!(all.len(), expected.len(), "values lost or duplicated");
    assert_eq!(all, expected);
}

#[test]
fn no_loss_no_duplicate_fifo_per_producer_nonblocking() {
    run(&Ring::<u64, 64>::new(), Mode::NonBlocking);
}

#[test]
fn no_loss_no_duplicate_fifo_per_producer_blocking() {
    run(&HeapRing::<u64>::with_capacity(16), Mode::Blocking);
}

#[test]
fn no_loss_no_duplicate_fifo_per_producer_batches() {
    run(&HeapRing::<u64>::with_capacity(64), Mode::Batch);
}

#[test]
fn no_loss_no_duplicate_capacity_two() {
    run(&Ring::<u64, 2>::new(), Mode::Blocking);
}

#[test]
fn close_wakes_blocked_consumers_and_producers() {
    let ring = HeapRing::<u64>::with_capacity(2);
    thread::scope(|s| {
        // Consumers block on an empty ring; a close must wake them with Closed.
        let waiting: Vec<_> = (0..3).map(|_| s.spawn(|| ring.pop())).collect();
        // The close races with the consumers at whatever stage they are (spinning, yielding,
        // parked); each must end with Closed. (The parked stage alone is pinned by the unit
        // test `close_wakes_parked_consumers`, which waits until they have registered.)
        ring.close();
        for h in waiting {
            assert!(h.join().unwrap().is_err());
        }
    });
    let ring = HeapRing::<u64>::with_capacity(2);
    ring.push(1).unwrap();
    ring.push(2).unwrap();
    thread::scope(|s| {
        let blocked = s.spawn(|| ring.push(3));
        ring.close();
        assert_eq!(
            blocked.join().unwrap().map_err(|c| c.0),
            Err(3),
            "value handed back"
        );
    });
    assert_eq!(ring.pop(), Ok(1));
    assert_eq!(ring.pop(), Ok(2));
    assert!(ring.pop().is_err());
}
