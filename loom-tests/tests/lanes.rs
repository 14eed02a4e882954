//! Loom model checks of the priority lanes (the non-blocking operations).
//!
//! Each lane is a ring, which `ring.rs` checks; these models check what the lanes add: the
//! order a pop looks at the lanes in, and the rule that a pop says `Closed` only when every
//! lane is closed and drained. Each fails against a deliberately broken variant, which
//! `.ci/run` requires:
//! - `--cfg pc_mutant="lanes_guard_first_pop"` (the starvation guard's off-by-one: pop 0 looks
//!   at a lower lane first) fails `high_priority_push_*`;
//! - `--cfg pc_mutant="lanes_closed_early"` (one closed, drained lane taken for all) fails
//!   `close_racing_*`.
//!
//! As in `ring.rs`, threads that find nothing retry a bounded number of times, then give up,
//! and each model ends by joining every thread and draining single-threaded.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use pc_core::{Lanes, PopError, PushError};

/// How many times a thread retries empty lanes before giving up.
const PATIENCE: usize = 2;

/// Pops everything left, with no other thread running; checks the lanes then say `Closed` if
/// they were closed, and only with nothing left.
fn drain(lanes: &Lanes<u32, 2, 2>) -> Vec<u32> {
    let mut rest = Vec::new();
    loop {
        match lanes.try_pop() {
            Ok(v) => rest.push(v),
            Err(e) => {
                assert_eq!(e == PopError::Closed, lanes.is_closed());
                assert!(lanes.is_empty(), "{e:?} with {} values left", lanes.len());
                return rest;
            }
        }
    }
}

#[test]
fn high_priority_push_is_not_passed_over_by_a_pop_draining_a_low_lane() {
    // The consumer is draining lane 1 while a producer pushes to lane 0. A pop that starts
    // after that push has returned (the `pushed` flag, Release/Acquire) must take the lane-0
    // value, whatever the interleaving. Every pop here is an ordinary one: the default guard
    // makes pop 7 the first guard pop, and the model pops at most 3 times with a value, plus
    // its PATIENCE empty tries and the drain's last look: fewer than 7.
    loom::model(|| {
        let lanes = Arc::new(Lanes::<u32, 2, 2>::new());
        lanes.try_push(1, 10).unwrap();
        lanes.try_push(1, 11).unwrap();
        let pushed = Arc::new(AtomicBool::new(false));
        let producer = {
            let (lanes, pushed) = (Arc::clone(&lanes), Arc::clone(&pushed));
            thread::spawn(move || {
                lanes.try_push(0, 1).unwrap();
                // Release: the push happened-before a consumer that sees the flag.
                pushed.store(true, Ordering::Release);
            })
        };
        let mut got = Vec::new();
        let mut tries = 0;
        while got.len() < 3 {
            // Acquire pairs with the producer's Release store.
            let high_was_pushed = pushed.load(Ordering::Acquire);
            match lanes.try_pop_lane() {
                Ok((lane, v)) => {
                    if high_was_pushed && !got.contains(&1) {
                        assert_eq!((lane, v), (0, 1), "passed over lane 0 for lane {lane}");
                    }
                    got.push(v);
                }
                Err(PopError::Empty) if tries < PATIENCE => {
                    tries += 1;
                    thread::yield_now();
                }
                Err(e) => panic!("lane 1 holds values, yet {e:?}"),
            }
        }
        producer.join().unwrap();
        got.extend(drain(&lanes));
        got.sort_unstable();
        assert_eq!(got, [1, 10, 11], "values lost or duplicated");
    });
}

#[test]
fn close_racing_pushes_to_two_lanes_leaves_nothing_behind_a_closed_pop() {
    // Two producers push to lanes 0 and 1 while another thread closes the lanes and the
    // consumer pops. Every push that returned Ok is popped exactly once, and once a pop has
    // said Closed nothing is left.
    loom::model(|| {
        let lanes = Arc::new(Lanes::<u32, 2, 2>::new());
        let spawn_push = |lane: usize, v: u32| {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || match lanes.try_push(lane, v) {
                Ok(()) => Some(v),
                Err(PushError::Closed(_)) => None,
                Err(PushError::Full(_)) => panic!("a lane of 2 slots took one push"),
            })
        };
        let (a, b) = (spawn_push(0, 1), spawn_push(1, 2));
        let closer = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || lanes.close())
        };
        let mut got = Vec::new();
        let mut tries = 0;
        let saw_closed = loop {
            match lanes.try_pop() {
                Ok(v) => got.push(v),
                Err(PopError::Empty) if tries < PATIENCE => {
                    tries += 1;
                    thread::yield_now();
                }
                Err(e) => break e == PopError::Closed,
            }
        };
        // Once Closed, every lane is closed and drained for good, whatever still runs.
        assert!(
            !saw_closed || lanes.is_empty(),
            "Closed with {} values left",
            lanes.len()
        );
        let accepted: Vec<u32> = [a.join().unwrap(), b.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert!(closer.join().unwrap(), "the only close closes lane 0");
        got.extend(drain(&lanes));
        got.sort_unstable();
        assert_eq!(got, accepted, "values lost or duplicated");
    });
}
