//! Loom model checks of the wake-up relay: slots are published (and freed) out of order, so a
//! wake-up can go to a thread that cannot use it yet, and must be passed on once it can.
//!
//! Consumers: position 1 is published while position 0 is still held by a batch push (its
//! iterator is running). The wake-up for position 1 can go to a consumer that finds position 0
//! held and sleeps again; when position 0 is published, its one wake-up brings out one
//! consumer, which must pass a wake-up on for position 1, or the other consumer sleeps for
//! ever (loom: "deadlock"). Producers: the same with slots freed out of order by pops.
//!
//! Mutant checks (`.ci/run`): with `--cfg pc_mutant="waiter_no_relay"` (no wake-up passed on),
//! `waiter_skip_wake` (no wake-up at all), `waiter_no_fence` (the waker's fence dropped) and
//! `waiter_clear_unregistered` (wakers stop fencing although the process is not registered)
//! every model must FAIL.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pc_core::Ring;

#[test]
fn a_wake_up_taken_behind_a_held_slot_is_passed_on() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.pop().unwrap())
            })
            .collect();
        // Claims position 0; while its iterator runs, position 1 is pushed and published.
        let mut first = Some(10);
        let mut held = std::iter::from_fn(|| {
            ring.try_push(20).unwrap();
            first.take()
        });
        assert_eq!(ring.try_push_batch(&mut held.by_ref().take(1)), Ok(1));
        let mut got: Vec<u32> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [10, 20]);
    });
}

#[test]
fn a_wake_up_taken_behind_a_held_free_slot_is_passed_on() {
    /// Takes the batch's values, popping one more (the next position) on the first.
    struct PopInside {
        ring: Arc<Ring<u32, 2>>,
        got: Vec<u32>,
    }
    impl Extend<u32> for PopInside {
        fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
            for v in iter {
                self.got.push(v);
                // Position 0 is claimed and not yet freed: free position 1's slot first.
                self.got.push(self.ring.try_pop().unwrap());
            }
        }
    }
    loom::model(|| {
        let ring = Ring::<u32, 2>::new();
        ring.try_push_batch(&mut (1..=2)).unwrap();
        let ring = Arc::new(ring);
        let producers: Vec<_> = [10, 20]
            .into_iter()
            .map(|v| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.push(v).unwrap())
            })
            .collect();
        let mut out = PopInside {
            ring: Arc::clone(&ring),
            got: Vec::new(),
        };
        assert_eq!(ring.try_pop_batch(&mut out, 1), Ok(1));
        assert_eq!(out.got, [1, 2]);
        for producer in producers {
            producer.join().unwrap();
        }
        let mut rest = vec![ring.try_pop().unwrap(), ring.try_pop().unwrap()];
        rest.sort_unstable();
        assert_eq!(rest, [10, 20]);
    });
}
