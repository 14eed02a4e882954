//! Loom model checks of the lanes' blocking operations: every consumer that must wake, wakes.
//!
//! A blocking lanes pop sleeps on all lanes at once (`lanes/blocking.rs`): it registers, then
//! re-checks every lane's head, and a push to any lane (or the close of the last one) wakes
//! one sleeper (all of them). As in `waiters.rs`, the waiters are loom's `Mutex` and `Condvar`
//! with no timeouts and no spinning, so a lost wake-up leaves a thread asleep for ever and
//! loom reports the deadlock; each model has a thread that can block (a consumer on empty
//! lanes, or a producer on its full lane) and the operation that must wake it, in every
//! interleaving of the two.
//!
//! Mutant checks (`.ci/run`): every model here must FAIL with `--cfg pc_mutant="waiter_skip_wake"`
//! (no wake-up delivered) and with `--cfg pc_mutant="waiter_no_fence"` (the waker's half of the
//! handshake's fence dropped); `a_consumer_sleeps_through_a_close_half_way_and_wakes_at_its_end`
//! must fail with `--cfg pc_mutant="lanes_blocked_on_a_drained_lane"` (a closed, drained lane
//! taken for a ready one: the consumer re-checks for ever instead of sleeping, which loom
//! reports as a model that exceeds its branches).
//! The batch-push models must fail with `--cfg pc_mutant="lanes_batch_no_wake"` (a batch push
//! to a lane that does not wake the lanes' consumers).
//!
//! Under loom the blocking operations without a timeout are built; the timed ones share their
//! wait (`Parking::wait`) and differ only in the deadline, which loom has no clock for.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pc_core::{Closed, Lanes};

type TwoLanes = Lanes<u32, 2, 2>;

/// Empty lanes, shared, and a consumer thread blocked in `op` on them (or about to be).
fn blocked_consumer<R: Send + 'static>(
    op: fn(&TwoLanes) -> R,
) -> (Arc<TwoLanes>, thread::JoinHandle<R>) {
    let lanes = Arc::new(TwoLanes::new());
    let consumer = {
        let lanes = Arc::clone(&lanes);
        thread::spawn(move || op(&lanes))
    };
    (lanes, consumer)
}

#[test]
fn a_push_to_a_lower_lane_wakes_a_consumer_blocked_on_all_lanes() {
    loom::model(|| {
        let (lanes, consumer) = blocked_consumer(|l| l.pop_lane());
        lanes.try_push(1, 7).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok((1, 7)));
        assert!(lanes.is_empty());
    });
}

#[test]
fn a_push_wakes_a_consumer_waiting_until_ready_and_leaves_it_the_value() {
    loom::model(|| {
        let (lanes, consumer) = blocked_consumer(|l| l.wait_ready());
        lanes.try_push(0, 5).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(()));
        assert_eq!(lanes.try_pop(), Ok(5));
    });
}

#[test]
fn a_blocking_push_to_a_lane_wakes_a_blocked_batch_pop() {
    loom::model(|| {
        let (lanes, consumer) = blocked_consumer(|l| {
            let mut out = Vec::new();
            l.pop_batch(&mut out, 2).map(|n| (n, out))
        });
        lanes.push(1, 9).unwrap();
        let (n, out) = consumer.join().unwrap().unwrap();
        assert_eq!((n, out), (1, vec![9]));
    });
}

/// `close` closes the lanes one by one, so for a moment lane 0 is closed and drained while
/// lane 1 is open. A consumer blocked on empty lanes must sleep through that moment (nothing is
/// ready) and wake at the end (everything closed): `Closed`, with no lost wake-up and no
/// endless re-check.
#[test]
fn a_consumer_sleeps_through_a_close_half_way_and_wakes_at_its_end() {
    loom::model(|| {
        let (lanes, consumer) = blocked_consumer(|l| l.pop());
        lanes.close();
        assert_eq!(consumer.join().unwrap(), Err(Closed(())));
        assert!(lanes.is_closed());
    });
}

/// Two consumers asleep on all lanes, one popping and one waiting until ready: the close
/// wakes both (every sleeper, not one), and each sees `Closed`.
#[test]
fn close_wakes_every_blocked_consumer() {
    loom::model(|| {
        let (lanes, popper) = blocked_consumer(|l| l.pop().map(|_| ()));
        let waiter = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || lanes.wait_ready())
        };
        lanes.close();
        assert_eq!(popper.join().unwrap(), Err(Closed(())));
        assert_eq!(waiter.join().unwrap(), Err(Closed(())));
    });
}

#[test]
fn a_batch_push_to_a_lower_lane_wakes_a_consumer_blocked_on_all_lanes() {
    loom::model(|| {
        let (lanes, consumer) = blocked_consumer(|l| l.pop_lane());
        assert_eq!(lanes.try_push_batch(1, &mut (7..8)), Ok(1));
        assert_eq!(consumer.join().unwrap(), Ok((1, 7)));
        assert!(lanes.is_empty());
    });
}

/// A blocking batch push of three values into a lane of two: it publishes a run, then waits
/// for room on the lane's ring while the consumer, asleep on the lanes, must have been woken
/// by that run (not only at the end of the batch: the two would then wait on each other).
#[test]
fn a_blocking_batch_push_wakes_the_consumer_after_each_run_it_publishes() {
    loom::model(|| {
        let (lanes, consumer) = blocked_consumer(|l| {
            let mut got = Vec::new();
            while got.len() < 3 {
                l.pop_batch(&mut got, 3).unwrap();
            }
            got
        });
        assert_eq!(lanes.push_batch(0, &mut (1..4)), Ok(3));
        assert_eq!(consumer.join().unwrap(), [1, 2, 3]);
    });
}

#[test]
fn a_lanes_pop_wakes_a_producer_blocked_on_its_full_lane() {
    loom::model(|| {
        let lanes = Arc::new(TwoLanes::new());
        lanes.try_push(0, 1).unwrap();
        lanes.try_push(0, 2).unwrap();
        let producer = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || lanes.push(0, 3))
        };
        assert_eq!(lanes.try_pop(), Ok(1));
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(lanes.try_pop(), Ok(2));
        assert_eq!(lanes.try_pop(), Ok(3));
    });
}
