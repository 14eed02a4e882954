//! The split ring's handles (`RingCore::split`): every value once and in order whether a side
//! has one handle (plain-store claims) or several (compare-and-swap), across the switches
//! between the two as handles are cloned and dropped; the last producer's drop closes. The
//! threads use `try_push` and `try_pop`, the calls that claim with the plain store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use pc_core::ring::{Consumer, Producer, Storage};
use pc_core::{Closed, HeapRing, PopError, PushError, Ring};

/// A value encodes (producer, sequence).
fn encode(producer: u64, seq: u64) -> u64 {
    producer << 32 | seq
}

/// Pops one value with `try_pop` (the call that claims with a plain store when the consumer
/// is alone), yielding while the ring is empty; `None` once it is closed and drained.
fn pop_one<S: Storage<u64>>(consumer: &Consumer<'_, u64, S>) -> Option<u64> {
    loop {
        match consumer.try_pop() {
            Ok(v) => return Some(v),
            Err(PopError::Empty) => thread::yield_now(),
            Err(PopError::Closed) => return None,
        }
    }
}

/// Pushes `v` with `try_push`, yielding while the ring is full.
fn push_one<S: Storage<u64>>(producer: &Producer<'_, u64, S>, v: u64) {
    let mut v = v;
    loop {
        match producer.try_push(v) {
            Ok(()) => return,
            Err(PushError::Full(back)) => {
                v = back;
                thread::yield_now();
            }
            Err(PushError::Closed(_)) => unreachable!("closed only by the last producer's drop"),
        }
    }
}

/// Pops until `Closed`; returns what it popped. (It checks nothing itself: a consumer that
/// panicked would leave the producers waiting on a full ring for good.)
fn consume<S: Storage<u64>>(consumer: &Consumer<'_, u64, S>) -> Vec<u64> {
    let mut got = Vec::new();
    while let Some(v) = pop_one(consumer) {
        got.push(v);
    }
    got
}

/// Sets its flag when dropped, also while unwinding from a panic.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Asserts that each producer's values in `got` (one consumer's, in pop order) come in the
/// order they were pushed.
fn assert_fifo_per_producer(got: &[u64]) {
    let mut last = std::collections::HashMap::new();
    for &v in got {
        let (p, seq) = (v >> 32, v & 0xffff_ffff);
        if let Some(before) = last.insert(p, seq) {
            assert!(seq > before, "producer {p}: {seq} popped after {before}");
        }
    }
}

/// Pushes `n` values of producer `p`.
fn produce<S: Storage<u64>>(producer: &Producer<'_, u64, S>, p: u64, n: u64) {
    for seq in 0..n {
        push_one(producer, encode(p, seq));
    }
}

#[test]
fn a_sole_producer_and_consumer_deliver_every_value_once_in_order() {
    let mut ring = Ring::<u64, 64>::new();
    let (producer, consumer) = ring.split();
    let got = thread::scope(|s| {
        s.spawn(move || produce(&producer, 0, 200_000));
        consume(&consumer)
    });
    assert_eq!(got, (0..200_000).collect::<Vec<_>>());
}

#[test]
fn cloned_handles_on_many_threads_lose_and_duplicate_nothing() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 50_000;
    let mut ring = HeapRing::<u64>::with_capacity(16);
    let (producer, consumer) = ring.split();
    let mut all: Vec<u64> = thread::scope(|s| {
        for p in 0..PRODUCERS {
            let producer = producer.clone();
            s.spawn(move || produce(&producer, p, PER_PRODUCER));
        }
        // The original goes too: once the clones are dropped the ring closes.
        drop(producer);
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let consumer = consumer.clone();
                s.spawn(move || consume(&consumer))
            })
            .collect();
        let mut all = consume(&consumer);
        assert_fifo_per_producer(&all);
        for c in consumers {
            let got = c.join().unwrap();
            assert_fifo_per_producer(&got);
            all.extend(got);
        }
        all
    });
    all.sort_unstable();
    let expected: Vec<u64> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |seq| encode(p, seq)))
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn handles_switch_between_plain_and_compare_and_swap_claims_without_loss() {
    // Rounds of: the sole producer pushes alone (plain stores), then beside a clone pushing on
    // another thread (compare-and-swap), the clone dropped there; the consumers likewise. So
    // each side switches between the two claims mid-stream, hundreds of times.
    const ROUNDS: u64 = 200;
    const TURN: u64 = 100;
    let mut ring = Ring::<u64, 8>::new();
    let (producer, consumer) = ring.split();
    let mut all = thread::scope(|s| {
        s.spawn(move || {
            let mut seq = 0;
            for round in 0..ROUNDS {
                for _ in 0..2 * TURN {
                    if seq % (2 * TURN) == TURN {
                        // Halfway through the round: a second producer for a while.
                        let clone = producer.clone();
                        thread::scope(|inner| {
                            inner.spawn(move || produce(&clone, 1 + round, TURN));
                            for _ in 0..TURN {
                                push_one(&producer, encode(0, seq));
                                seq += 1;
                            }
                        });
                        break;
                    }
                    push_one(&producer, encode(0, seq));
                    seq += 1;
                }
            }
            // The last producer's drop closes the ring.
        });
        let pop_up_to = |consumer: &Consumer<'_, u64, _>, n: usize, got: &mut Vec<u64>| {
            for _ in 0..n {
                match pop_one(consumer) {
                    Some(v) => got.push(v),
                    None => return false,
                }
            }
            true
        };
        let mut all = Vec::new();
        while pop_up_to(&consumer, 50, &mut all) {
            let clone = consumer.clone();
            let theirs = thread::scope(|inner| {
                let theirs = inner.spawn(move || {
                    let mut got = Vec::new();
                    pop_up_to(&clone, 50, &mut got);
                    got
                });
                pop_up_to(&consumer, 50, &mut all);
                theirs.join().unwrap()
            });
            all.extend(theirs);
        }
        all
    });
    all.sort_unstable();
    let mut expected: Vec<u64> = (0..ROUNDS * 2 * TURN).map(|seq| encode(0, seq)).collect();
    for round in 0..ROUNDS {
        expected.extend((0..TURN).map(|seq| encode(1 + round, seq)));
    }
    expected.sort_unstable();
    assert_eq!(all, expected);
}

/// The blocking push and pop deliver every value in order and end at the close; so does
/// `for v in &consumer` (its pops), whose iterator then stays ended and shows its consumer.
#[test]
fn blocking_calls_on_handles_deliver_every_value_and_end_at_the_close() {
    let mut ring = Ring::<u64, 8>::new();
    let (producer, consumer) = ring.split();
    let got = thread::scope(|s| {
        s.spawn(move || {
            for v in 0..10_000 {
                producer.push(v).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 5_000 {
            got.push(consumer.pop().unwrap());
        }
        for v in &consumer {
            got.push(v);
        }
        got
    });
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    assert_eq!(consumer.pop(), Err(Closed(())));
    let mut after = consumer.iter();
    assert_eq!((after.next(), after.next()), (None, None));
    let shown = format!("{after:?}");
    assert!(shown.starts_with("Iter { consumer: Consumer {"), "{shown}");
}

#[test]
fn dropping_the_last_producer_closes_the_ring() {
    let mut ring = Ring::<u8, 4>::new();
    let (producer, consumer) = ring.split();
    let other = producer.clone();
    other.try_push(1).unwrap();
    drop(producer);
    assert!(!consumer.is_closed(), "a producer is left");
    other.try_push(2).unwrap();
    drop(other);
    assert!(consumer.is_closed());
    assert_eq!(consumer.try_pop(), Ok(1));
    assert_eq!(consumer.try_pop(), Ok(2));
    assert_eq!(consumer.try_pop(), Err(PopError::Closed));
    drop(consumer);
    // The split is over: the ring is reachable again, closed.
    assert!(ring.is_closed());
    assert_eq!(ring.try_push(3), Err(PushError::Closed(3)));
}

#[test]
fn dropping_every_consumer_closes_nothing() {
    let mut ring = Ring::<u8, 2>::new();
    let (producer, consumer) = ring.split();
    drop(consumer);
    assert!(!producer.is_closed());
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    assert_eq!(producer.try_push(3), Err(PushError::Full(3)));
}

#[test]
fn a_producer_closes_for_every_producer() {
    let mut ring = Ring::<u8, 4>::new();
    let (producer, consumer) = ring.split();
    let other = producer.clone();
    producer.try_push(1).unwrap();
    assert!(other.close());
    assert!(!producer.close(), "already closed");
    assert_eq!(producer.try_push(2), Err(PushError::Closed(2)));
    assert_eq!(consumer.pop(), Ok(1));
    assert_eq!(consumer.pop(), Err(Closed(())));
}

#[test]
fn a_split_ring_can_be_split_again_after_its_handles_are_gone() {
    let mut ring = Ring::<u8, 4>::new();
    let (producer, consumer) = ring.split();
    producer.try_push(1).unwrap();
    drop(consumer);
    let kept = producer.clone();
    drop(producer);
    drop(kept);
    let (producer, consumer) = ring.split();
    assert!(producer.is_closed(), "the last producer's drop closed it");
    assert_eq!(consumer.try_pop(), Ok(1));
    assert_eq!(consumer.try_pop(), Err(PopError::Closed));
}

#[test]
fn handles_report_their_side_and_count_in_debug() {
    let mut ring = Ring::<u8, 4>::new();
    let (producer, consumer) = ring.split();
    let second = consumer.clone();
    let shown = format!("{producer:?} {consumer:?}");
    assert!(shown.contains("Producer"), "{shown}");
    assert!(shown.contains("producers: 1"), "{shown}");
    assert!(shown.contains("consumers: 2"), "{shown}");
    assert!(shown.contains("sole: true"), "the producer: {shown}");
    assert!(format!("{consumer:?}").contains("sole: false"));
    drop(second);
    assert!(format!("{consumer:?}").contains("consumers: 1"));
    // Alone again: the consumer finds out at its next look at the count.
    for _ in 0..64 {
        let _ = consumer.try_pop();
    }
    assert!(format!("{consumer:?}").contains("sole: true"));
}

#[test]
fn timed_waits_on_handles_time_out_and_hand_values_back() {
    use std::time::Duration;
    let mut ring = Ring::<u8, 2>::new();
    let (producer, consumer) = ring.split();
    assert_eq!(
        consumer.pop_timeout(Duration::from_millis(1)),
        Err(PopError::Empty)
    );
    producer.push_timeout(1, Duration::ZERO).unwrap();
    producer.push_timeout(2, Duration::ZERO).unwrap();
    assert_eq!(
        producer.push_timeout(3, Duration::from_millis(1)),
        Err(PushError::Full(3))
    );
    let mut out = Vec::new();
    assert_eq!(consumer.pop_batch(&mut out, 8), Ok(2));
    assert_eq!(out, [1, 2]);
}

#[test]
fn a_spinning_sole_producer_delivers_every_value_once_in_order() {
    let mut ring = Ring::<u64, 64>::new();
    let (producer, consumer) = ring.split();
    // Set when the consumer's side ends, panicking or not: a producer still trying then gives
    // up (a split ring still says Full, not Closed, once its consumers are gone).
    let consumer_gone = AtomicBool::new(false);
    let got = thread::scope(|s| {
        s.spawn(|| {
            for v in 0..200_000u64 {
                let mut v = v;
                while let Err(e) = producer.try_push_spinning(v) {
                    assert!(!e.is_closed(), "closed before every value was pushed");
                    assert!(
                        !consumer_gone.load(Ordering::Relaxed),
                        "the consumer stopped before every value was pushed"
                    );
                    v = e.into_inner();
                    // Yield, not spin: on one core (or a loaded machine) a spinning producer
                    // holds the consumer off for a whole time slice each time the ring fills.
                    thread::yield_now();
                }
            }
            drop(producer);
        });
        let _gone = SetOnDrop(&consumer_gone);
        consume(&consumer)
    });
    assert_eq!(got, (0..200_000).collect::<Vec<_>>());
}
