//! Loom model checks of the blocking operations: every thread that must wake, wakes.
//!
//! Under loom the ring's waiters are real: loom's `Mutex` and `Condvar` (through pc-core's
//! `sync.rs`), with no timeouts and no spinning (a blocked thread parks at once). A lost
//! wake-up therefore leaves a thread asleep for ever, and loom reports the deadlock. Each model
//! has a thread that can block (on a full ring, an empty one, or behind a slot held by a batch
//! in progress) and the operation that must wake it; loom runs every interleaving of the two,
//! including those where the sleeper registers while the waker is between its index move, its
//! slot store and its wake-up.
//!
//! Mutant checks: with `--cfg pc_mutant="waiter_skip_wake"` no wake-up is delivered, and with
//! `--cfg pc_mutant="waiter_no_fence"` the waker's half of the handshake's fence is dropped (it
//! may then read a sleeper count older than a registration already made); every model here
//! must FAIL against each (loom: "deadlock"); `.ci/run` requires it. With
//! `--cfg pc_mutant="waiter_clear_unregistered"` a waker clears the "must fence" bit although
//! the process is not registered (under loom it never is), so later operations skip the fence;
//! only a model where a waker operates again after its first notify can see that, and
//! `blocking_push_and_pop_hand_over_every_value_in_order` must fail against it:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" PC_CORE_MUTANT=waiter_skip_wake CARGO_TARGET_DIR=target/loom \
//!   cargo test -p pc-loom-tests --release --test waiters     # must fail, every model
//! ```
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pc_core::{Closed, PopError, Ring};

/// Pops everything left, with no other thread running.
fn drain(ring: &Ring<u32, 2>) -> Vec<u32> {
    let mut rest = Vec::new();
    while let Ok(v) = ring.try_pop() {
        rest.push(v);
    }
    rest
}

/// A two-slot ring holding 1 and 2: full.
fn full_ring() -> Arc<Ring<u32, 2>> {
    let ring = Ring::<u32, 2>::new();
    ring.try_push_batch(&mut (1..=2)).unwrap();
    Arc::new(ring)
}

#[test]
fn a_pop_wakes_a_producer_blocked_on_a_full_ring() {
    loom::model(|| {
        let ring = full_ring();
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.push(3))
        };
        assert_eq!(ring.try_pop(), Ok(1));
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(drain(&ring), [2, 3]);
    });
}

#[test]
fn a_push_wakes_a_consumer_blocked_on_an_empty_ring() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.pop())
        };
        ring.try_push(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(7));
        assert!(ring.is_empty());
    });
}

#[test]
fn a_push_wakes_a_consumer_waiting_until_ready_and_leaves_it_the_value() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.wait_ready().map(|()| ring.try_pop()))
        };
        ring.try_push(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(Ok(7)));
    });
}

#[test]
fn close_wakes_a_consumer_waiting_until_ready() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.wait_ready())
        };
        ring.close();
        assert_eq!(consumer.join().unwrap(), Err(Closed(())));
    });
}

#[test]
fn a_batch_push_wakes_a_consumer_blocked_behind_its_run() {
    // The consumer can find the head claimed by the batch but not yet published (a held
    // slot): it must sleep and be woken by the batch's end, not by a timeout (there is none).
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.pop())
        };
        assert_eq!(ring.try_push_batch(&mut (1..=2)), Ok(2));
        assert_eq!(consumer.join().unwrap(), Ok(1));
        assert_eq!(drain(&ring), [2]);
    });
}

#[test]
fn a_batch_pop_wakes_a_producer_blocked_behind_its_run() {
    // The producer can find room by the indices while the batch pop still holds the slot.
    loom::model(|| {
        let ring = full_ring();
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.push(3))
        };
        let mut out = Vec::new();
        assert_eq!(ring.try_pop_batch(&mut out, 2), Ok(2));
        assert_eq!(out, [1, 2]);
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(drain(&ring), [3]);
    });
}

#[test]
fn a_claim_given_back_wakes_a_producer_that_found_the_ring_full() {
    // A batch push from an iterator with no size bound claims one slot to ask it for an item;
    // here it has none, and the slot (the ring's last free one) is given back. A producer that
    // found the ring full meanwhile must be woken for it.
    loom::model(|| {
        let ring = Ring::<u32, 2>::new();
        ring.try_push(1).unwrap();
        let ring = Arc::new(ring);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.push(2))
        };
        // Err(Full) if the producer took the last slot first: then nothing was claimed.
        let pushed = ring.try_push_batch(&mut std::iter::from_fn(|| None::<u32>));
        assert!(matches!(pushed, Ok(0)) || pushed.unwrap_err().is_full());
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(drain(&ring), [1, 2]);
    });
}

#[test]
fn close_wakes_every_blocked_consumer() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.pop())
            })
            .collect();
        assert!(ring.close());
        for consumer in consumers {
            assert_eq!(consumer.join().unwrap(), Err(Closed(())));
        }
        assert_eq!(ring.try_pop(), Err(PopError::Closed));
    });
}

#[test]
fn close_wakes_a_blocked_producer_and_hands_its_value_back() {
    loom::model(|| {
        let ring = full_ring();
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.push(3))
        };
        assert!(ring.close());
        assert_eq!(producer.join().unwrap(), Err(Closed(3)));
        assert_eq!(drain(&ring), [1, 2]);
    });
}

#[test]
fn blocking_push_and_pop_hand_over_every_value_in_order() {
    // Both sides block in turn: three values through two slots.
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                for v in 1..=3 {
                    ring.push(v).unwrap();
                }
            })
        };
        let got: Vec<u32> = (0..3).map(|_| ring.pop().unwrap()).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        assert!(ring.is_empty());
    });
}

#[test]
fn a_pop_wakes_a_producer_waiting_for_space_and_leaves_it_the_slot() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        ring.try_push(1).unwrap();
        ring.try_push(2).unwrap();
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.wait_space().map(|()| ring.try_push(3)))
        };
        assert_eq!(ring.try_pop(), Ok(1));
        assert_eq!(producer.join().unwrap(), Ok(Ok(())));
        assert_eq!(ring.len(), 2);
    });
}
