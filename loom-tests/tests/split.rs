//! Loom model checks of the split ring's handles (`RingCore::split`): a side with one handle
//! claims its positions with a plain store, a side with several with the compare-and-swap,
//! and a handle left alone after the others' drops sees every claim they made.
//!
//! Loom's `UnsafeCell` tracking turns two producers writing one slot, or a pop reading a slot
//! not ordered after its write, into a failure; the histories are checked as in `ring.rs`
//! (every value pushed is popped once, each producer's in order). Against the mutant
//! `split_always_sole` (every handle claims with the plain store, whatever the count) and
//! `split_clone_keeps_sole` (a cloned handle goes on claiming with it) the models with two
//! handles of a side fail, and against `split_relaxed_count` (the count read without
//! `Acquire`) the models where a producer, or a consumer, is left alone mid-run; against
//! `split_drop_no_wake` (the last consumer's drop wakes no producer) and `split_abandon_unseen`
//! (a waiting push never sees the consumers gone) the model of a push waiting on a ring whose
//! last consumer is dropped; `.ci/run` requires each.
//!
//! Handles borrow their ring and loom's threads must be `'static`, so each execution leaks
//! its ring (a few hundred bytes).
#![cfg(loom)]

use loom::thread;
use pc_core::ring::{Consumer, Inline, Producer};
use pc_core::{Closed, PopError, Ring};
use pc_loom_tests::{check_history, pop_with, push_with};

type Split = (
    Producer<'static, u32, Inline<u32, 2>>,
    Consumer<'static, u32, Inline<u32, 2>>,
);

/// A new two-slot ring, leaked and split.
fn split() -> Split {
    Box::leak(Box::new(Ring::<u32, 2>::new())).split()
}

/// Pushes `values` in order; stops at the first value still refused after `PATIENCE` retries.
/// Returns how many were pushed.
fn push_some(producer: &Producer<'static, u32, Inline<u32, 2>>, values: &[u32]) -> usize {
    push_with(values, |v| producer.try_push(v))
}

/// Pops until `n` values, `Closed`, or `PATIENCE` consecutive `Empty` results.
fn pop_some(consumer: &Consumer<'static, u32, Inline<u32, 2>>, n: usize) -> Vec<u32> {
    pop_with(n, |got| consumer.try_pop().map(|v| got.push(v)))
}

/// Pops everything left, with no other thread running; the ring must be closed by then (every
/// producer dropped), so this ends with `Closed`.
fn drain(consumer: &Consumer<'static, u32, Inline<u32, 2>>) -> Vec<u32> {
    let mut rest = Vec::new();
    loop {
        match consumer.try_pop() {
            Ok(v) => rest.push(v),
            Err(e) => {
                assert_eq!(e, PopError::Closed, "every producer dropped: closed");
                return rest;
            }
        }
    }
}

#[test]
fn a_sole_producer_and_consumer_pass_every_value_once_in_order() {
    loom::model(|| {
        const P: &[u32] = &[1, 2, 3];
        let (producer, consumer) = split();
        // The producer laps the two slots while the consumer frees them: both sides alone,
        // both claiming with plain stores; its drop closes the ring.
        let pushing = thread::spawn(move || push_some(&producer, P));
        let got = pop_some(&consumer, 3);
        let pushed = pushing.join().unwrap();
        check_history(&[(P, pushed)], &[[got, drain(&consumer)].concat()]);
    });
}

#[test]
fn two_producers_claim_by_compare_and_swap() {
    loom::model(|| {
        const A: &[u32] = &[10, 11];
        const B: &[u32] = &[20];
        let (a, consumer) = split();
        let b = a.clone();
        // Both handles live until both threads are joined: two producers throughout.
        let spawn = |producer: Producer<'static, u32, Inline<u32, 2>>, values: &'static [u32]| {
            thread::spawn(move || (push_some(&producer, values), producer))
        };
        let (a, b) = (spawn(a, A), spawn(b, B));
        let got = pop_some(&consumer, 3);
        let ((pushed_a, a), (pushed_b, b)) = (a.join().unwrap(), b.join().unwrap());
        drop((a, b));
        check_history(
            &[(A, pushed_a), (B, pushed_b)],
            &[[got, drain(&consumer)].concat()],
        );
    });
}

#[test]
fn two_producers_left_alone_after_a_drop_see_its_claims() {
    loom::model(|| {
        const A: &[u32] = &[10, 11];
        const B: &[u32] = &[20];
        let (a, consumer) = split();
        let b = a.clone();
        // B pushes and is dropped, on its own thread, while A pushes: A's pushes claim by
        // compare-and-swap until it sees B's drop, then with plain stores, which must start
        // from the tail B's claim left.
        let b = thread::spawn(move || push_some(&b, B));
        let a = thread::spawn(move || push_some(&a, A));
        let got = pop_some(&consumer, 1);
        let pushed = [(A, a.join().unwrap()), (B, b.join().unwrap())];
        check_history(&pushed, &[[got, drain(&consumer)].concat()]);
    });
}

#[test]
fn two_consumers_then_one_pop_every_value_once() {
    loom::model(|| {
        const P: &[u32] = &[1, 2, 3];
        let (producer, first) = split();
        let second = first.clone();
        // The second consumer pops and is dropped while the first pops: the first claims by
        // compare-and-swap, then (alone) with plain stores from the head the other left.
        let other = thread::spawn(move || pop_some(&second, 1));
        let pushed = push_some(&producer, P);
        drop(producer);
        let got = pop_some(&first, 2);
        let other = other.join().unwrap();
        let rest = drain(&first);
        let mut all = [other, got, rest].concat();
        all.sort_unstable();
        assert_eq!(all, P[..pushed], "values lost or duplicated");
    });
}

#[test]
fn two_consumers_then_one_left_alone_after_a_drop_sees_its_claims() {
    loom::model(|| {
        let (producer, first) = split();
        producer.try_push(1).unwrap();
        producer.try_push(2).unwrap();
        drop(producer);
        // The second consumer pops once on its own thread and is dropped there, while the
        // first pops without yielding (after a yield loom shows a thread no stale value): the
        // first claims by compare-and-swap until it sees the drop, then with plain stores,
        // which must start from the head the other's claim left.
        let second = first.clone();
        let other = thread::spawn(move || second.try_pop().ok());
        let mut got = Vec::new();
        for _ in 0..3 {
            if let Ok(v) = first.try_pop() {
                got.push(v);
            }
        }
        got.extend(other.join().unwrap());
        got.extend(drain(&first));
        got.sort_unstable();
        assert_eq!(got, [1, 2], "values lost or duplicated");
    });
}

#[test]
fn a_push_waiting_on_a_full_ring_ends_when_the_last_consumer_is_dropped() {
    loom::model(|| {
        let (producer, consumer) = split();
        producer.try_push(1).unwrap();
        producer.try_push(2).unwrap();
        // The push finds the ring full and waits; the drop races with its spins, its
        // registration and its sleep. Whenever the drop lands, the push must end (loom reports
        // a thread asleep for good as a deadlock), closing the ring and handing 3 back.
        let pushing = thread::spawn(move || {
            let result = producer.push(3);
            (result, producer.is_closed())
        });
        drop(consumer);
        assert_eq!(pushing.join().unwrap(), (Err(Closed(3)), true));
    });
}
