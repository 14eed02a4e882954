//! Unit tests that need the crate's insides: counters started near their wrap point.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::slot::{ONE, Slot};
use super::{HeapRing, PopError, PushError, Ring, RunFetch};
use crate::sync::StampWord;
use crate::test_support::within_a_minute;

/// The points where counters wrap: `usize::MAX + 1` (every index and stamp), and where usize
/// is wider than a stamp, `StampWord::MAX + 1` (the stamps alone, the indices go on).
fn wrap_points() -> [usize; 2] {
    #[allow(clippy::unnecessary_cast)] // the identity where a stamp is a `usize`
    let stamps = (StampWord::MAX as usize).wrapping_add(1);
    [0, stamps]
}

/// Positions a few steps before the wrap point `at`, so the counters it names wrap during
/// the test.
fn near_wrap(steps_before: usize, at: usize) -> usize {
    at.wrapping_sub(steps_before * ONE)
}

/// A stamp of 32 bits and the value right after it: 12 bytes for a `u64` (16 with a `usize`
/// stamp and the value aligned).
#[cfg(target_pointer_width = "64")]
#[test]
fn slots_are_packed_where_stamps_are_32_bits() {
    use core::mem::size_of;
    let sizes = (
        size_of::<Slot<u64>>(),
        size_of::<Slot<u32>>(),
        size_of::<Slot<u8>>(),
    );
    assert_eq!(sizes, (12, 8, 8));
    assert_eq!(size_of::<Slot<u128>>(), 20);
}

#[test]
fn indices_and_stamps_wrap_under_single_ops() {
    for at in wrap_points() {
        let mut ring = Ring::<u64, 4>::new();
        ring.start_at(near_wrap(3, at));
        single_ops_round_trip(&ring);
    }
}

fn single_ops_round_trip(ring: &Ring<u64, 4>) {
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
fn a_spinning_push_waits_for_its_run_across_the_wrap() {
    for at in wrap_points() {
        let mut ring = Ring::<u64, 16>::new();
        // The tail wraps while the producer waits: the slot it looks at (2 past the tail) lies
        // past the wrap point while the tail does not.
        ring.start_at(near_wrap(17, at));
        spinning_push_round_trip(&mut ring);
    }
}

fn spinning_push_round_trip(ring: &mut Ring<u64, 16>) {
    let (producer, consumer) = ring.split();
    let mut next_in = 0u64;
    let mut next_out = 0u64;
    for _ in 0..10 {
        while producer.try_push_spinning(next_in).is_ok() {
            next_in += 1;
        }
        for free in 1..=3 {
            assert_eq!(consumer.try_pop(), Ok(next_out));
            next_out += 1;
            let pushed = producer.try_push_spinning(next_in);
            assert_eq!(pushed.is_ok(), free == 3, "{free} free");
        }
        next_in += 1;
        while let Ok(v) = consumer.try_pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
    }
    assert_eq!(next_out, next_in);
}

#[test]
fn indices_and_stamps_wrap_under_full_rings_and_batches() {
    for at in wrap_points() {
        let mut ring = HeapRing::<u64>::with_capacity(8);
        ring.start_at(near_wrap(5, at));
        batches_round_trip(ring);
    }
}

fn batches_round_trip(ring: HeapRing<u64>) {
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
fn indices_and_stamps_wrap_under_a_drop_that_releases_values() {
    use alloc::sync::Arc;
    for at in wrap_points() {
        let token = Arc::new(());
        {
            let mut ring = Ring::<Arc<()>, 4>::new();
            ring.start_at(near_wrap(1, at));
            for _ in 0..4 {
                ring.try_push(Arc::clone(&token)).unwrap();
            }
            drop(ring.try_pop().unwrap());
            assert_eq!(Arc::strong_count(&token), 4);
        }
        assert_eq!(Arc::strong_count(&token), 1);
    }
}

/// An iterator whose size hint promises four items and which yields two (a bug by
/// `Iterator`'s contract, which the ring must survive); before saying `None` it runs `last`.
struct Liar<F: FnMut()>(u32, F);

impl<F: FnMut()> Iterator for Liar<F> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.0 == 2 {
            (self.1)();
            return None;
        }
        self.0 += 1;
        Some(self.0)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (4, Some(4))
    }
}

#[test]
fn a_short_iterator_gives_back_what_it_did_not_fill() {
    // Four positions claimed on the iterator's word, two filled: the other two go back to
    // the ring (the tail moves back over them), leaving no holes.
    let ring = Ring::<u32, 8>::new();
    assert_eq!(ring.try_push_batch(&mut Liar(0, || ())), Ok(2));
    assert_eq!(ring.len(), 2, "no holes");
    ring.try_push(3).unwrap();
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 8), Ok(3));
    assert_eq!(out, [1, 2, 3]);
    assert_eq!(
        ring.try_push_batch(&mut (0..8)),
        Ok(8),
        "every slot free again"
    );
}

#[test]
fn holes_from_a_lost_give_back_are_skipped() {
    // If another push claims behind the unfilled positions before they are given back, they
    // cannot go back: they become holes, which pops skip.
    let ring = Ring::<u32, 8>::new();
    let behind = || ring.try_push(9).unwrap();
    assert_eq!(ring.try_push_batch(&mut Liar(0, behind)), Ok(2));
    assert_eq!(ring.len(), 5, "two holes occupy slots until popped");
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.try_pop(), Ok(2));
    assert_eq!(ring.try_pop(), Ok(9), "the two holes are skipped");
    assert!(ring.is_empty());
    ring.try_push_batch(&mut Liar(0, || ring.try_push(9).unwrap()))
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 8), Ok(3));
    assert_eq!(out, [1, 2, 9]);
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
}

/// A batch pop whose claim at the head is only a hole (the value behind it pushed after the
/// hole's claim) calls `out.extend` once, with the value: not first with nothing.
#[test]
fn a_batch_pop_meeting_only_a_hole_calls_extend_once_with_the_value_behind_it() {
    struct Calls(Vec<Vec<u32>>);
    impl Extend<u32> for Calls {
        fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
            self.0.push(iter.into_iter().collect());
        }
    }
    let ring = Ring::<u32, 4>::new();
    // Position 0: 1. Position 1 is claimed for the iterator's next item; in that `next`, a
    // push claims position 2 behind it and the iterator ends: position 1 becomes a hole.
    let mut step = 0;
    let mut items = core::iter::from_fn(|| {
        step += 1;
        if step == 1 {
            return Some(1);
        }
        ring.try_push(2).unwrap();
        None
    });
    assert_eq!(ring.try_push_batch(&mut items), Ok(1));
    assert_eq!(ring.len(), 3, "a value, a hole, a value");
    assert_eq!(ring.try_pop(), Ok(1));
    let mut out = Calls(Vec::new());
    assert_eq!(ring.try_pop_batch(&mut out, 1), Ok(1));
    assert_eq!(out.0, [[2]], "one extend call, with the value");
    assert!(ring.is_empty());
}

/// Closes the ring if the test panics while it lives: a failed assertion then ends the
/// test's blocked threads (with `Closed`) instead of leaving it hung in its scope.
struct CloseOnPanic<'r, T, S: super::Storage<T>>(&'r super::RingCore<T, S>);

impl<T, S: super::Storage<T>> Drop for CloseOnPanic<'_, T, S> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.close();
        }
    }
}

/// Spins (yielding) until `n` threads are asleep on `waiters`; fails, rather than hangs, if
/// that has not happened within a minute (a call that should have slept returned instead).
fn until_asleep(waiters: &super::Waiters, n: usize) {
    assert!(
        within_a_minute(|| waiters.asleep() >= n),
        "{n} sleepers never came"
    );
}

/// Spins (yielding) until threads have gone to sleep on `waiters` `n` times in all; fails,
/// rather than hangs, if that has not happened within a minute.
fn until_slept(waiters: &super::Waiters, n: usize) {
    assert!(
        within_a_minute(|| waiters.sleeps() >= n),
        "{n} sleeps never came"
    );
}

#[test]
fn close_wakes_every_sleeping_consumer() {
    let ring = HeapRing::<u64>::with_capacity(4);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let parked: Vec<_> = (0..3).map(|_| s.spawn(|| ring.pop())).collect();
        until_asleep(&ring.tail.waiters, 3);
        ring.close();
        for h in parked {
            assert!(h.join().unwrap().is_err(), "woken with Closed");
        }
    });
}

/// A timed wait whose deadline is nearer than a scheduler slice parks without yielding: a
/// yield can hand the core away for longer than the time left, and the call would return that
/// late. One whose deadline is far off yields first, as an untimed wait does. (Not under
/// miri: the deadline reads the real clock, which miri slows a thousandfold, so no wait gets
/// to park before it.)
#[test]
#[cfg_attr(miri, ignore)]
fn a_timed_wait_near_its_deadline_parks_without_yielding() {
    let ring = HeapRing::<u64>::with_capacity(4);
    let waiters = &ring.tail.waiters;
    let near = crate::sync::YIELD_HORIZON / 4;
    // Until one parks: a wait preempted past its deadline before it registers ends unparked.
    for _ in 0..100 {
        assert_eq!(ring.pop_timeout(near), Err(PopError::Empty));
        assert_eq!(waiters.yields_before_parking(), 0, "without yielding");
        if waiters.sleeps() > 0 {
            break;
        }
    }
    assert!(waiters.sleeps() > 0, "it parked");
    // And a budget it never used up is left as it was.
    assert_eq!(waiters.yield_budget(), 58);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let popping = s.spawn(|| ring.pop_timeout(core::time::Duration::from_secs(60)));
        until_asleep(waiters, 1);
        assert!(
            waiters.yields_before_parking() > 0,
            "a far deadline yields first"
        );
        ring.push(7).unwrap();
        assert_eq!(popping.join().unwrap(), Ok(7));
    });
}

/// A push waiting on a full ring waits for room for a run (an eighth of the ring) before it
/// looks at the tail again, but only until it first re-checks before sleeping: woken for one
/// freed slot, it takes that slot at once. (Were the run wait still on, it would spin and
/// yield its budget again before its next re-check found the slot.) The second round is the
/// one that shows it: its budget, halved by the first sleep, ends before the run wait would.
#[test]
fn a_sleeping_push_takes_the_one_slot_a_pop_frees() {
    let ring = HeapRing::<u64>::with_capacity(16);
    assert_eq!(ring.try_push_batch(&mut (0..16)), Ok(16));
    let waiters = &ring.head.waiters;
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        for (round, budget) in [(0, 58), (1, 29)] {
            assert_eq!(waiters.yield_budget(), budget);
            let ring = &ring;
            let pushing = s.spawn(move || ring.push(16 + round));
            until_asleep(waiters, 1);
            let yielded = waiters.yields_before_parking();
            assert_eq!(ring.try_pop(), Ok(round));
            assert_eq!(pushing.join().unwrap(), Ok(()));
            assert_eq!(
                waiters.yields_before_parking(),
                yielded,
                "round {round}: yielded (and re-checked) again before pushing"
            );
        }
    });
    let left: Vec<u64> = core::iter::from_fn(|| ring.try_pop().ok()).collect();
    assert_eq!(left, (2..18).collect::<Vec<_>>());
}

/// A timed push whose time runs out while it waits for room for a run looks at the tail
/// itself before it says `Full`: here its deadline has passed before its first look, with one
/// slot free at the tail and no run.
#[test]
fn a_timed_push_out_of_time_takes_a_free_slot_rather_than_say_full() {
    let ring = HeapRing::<u64>::with_capacity(16);
    assert_eq!(ring.try_push_batch(&mut (0..16)), Ok(16));
    assert_eq!(ring.try_pop(), Ok(0));
    let passed = crate::sync::deadline_after(core::time::Duration::ZERO);
    let pushed = ring.push_waiting(
        16,
        Some(passed),
        super::blocking::Consumers::Unwatched,
        crate::sync::LostRaces::new(),
    );
    assert_eq!(pushed, Ok(()));
    assert_eq!(ring.try_push(17), Err(PushError::Full(17)));
}

/// The wait loop teaches its thread's spin steps at each of its ends: done after a yield
/// (one step off), done after a spin (back to seven), at its park (one step off), out of time
/// after yielding (one step off); a wait, or a round after a park, whose first look succeeds
/// teaches nothing, nor does one out of time before it yielded. (Not under miri: the
/// time-outs read the real clock, which miri slows a thousandfold.)
#[test]
#[cfg_attr(miri, ignore)]
fn every_end_of_a_wait_teaches_its_thread_whether_spinning_paid() {
    use super::wait::Step;
    use crate::sync::thread_spin_steps as steps;
    let waiters = super::Waiters::new();
    // A new thread: its spin steps start at seven, the producers' budget at 58 yields.
    // `fails` looks fail, then one succeeds; with a deadline, the `fails`-th look waits for
    // it to pass. Returns what the wait returned, and whether the deadline came early
    // (before that look: the thread was held up), in which case the wait taught nothing.
    let wait = |fails: u32, deadline: Option<crate::sync::Instant>| {
        let mut tries = 0;
        let mut early = false;
        let waited = waiters.wait_for(
            deadline,
            || false,
            || {
                tries += 1;
                if tries < fails && deadline.is_some_and(crate::sync::deadline_passed) {
                    early = true;
                }
                if tries == fails && deadline.is_some() {
                    while !deadline.is_some_and(crate::sync::deadline_passed) {
                        core::hint::spin_loop();
                    }
                }
                if tries > fails {
                    Step::Done(())
                } else {
                    Step::Blocked
                }
            },
        );
        (waited, early)
    };
    // A timed wait, tried again (at most 100 times) while its deadline came early.
    let timed = |fails: u32| {
        for _ in 0..100 {
            let soon = crate::sync::deadline_after(core::time::Duration::from_millis(5));
            if let (waited, false) = wait(fails, Some(soon)) {
                return waited;
            }
        }
        panic!("the deadline came early 100 times");
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(steps(), 7);
            // The first look, then one after each of the 7 spins, fail; the one after the
            // first yield succeeds.
            assert_eq!(wait(8, None), (Some(()), false));
            assert_eq!(steps(), 6, "done after a yield");
            assert_eq!(wait(0, None), (Some(()), false));
            assert_eq!(steps(), 6, "done at its first look");
            assert_eq!(wait(1, None), (Some(()), false));
            assert_eq!(steps(), 7, "done after a spin");
            // Every look fails until the park (1 + 7 spins + 58 yields); the park finds the
            // wait need not sleep, and the first look after it succeeds.
            assert_eq!(wait(1 + 7 + 58, None), (Some(()), false));
            assert_eq!(steps(), 6, "parked, then done at once");
            // Out of time at the look after the six spins and the first yield.
            assert_eq!(timed(1 + 6 + 1), None);
            assert_eq!(steps(), 5, "out of time after yielding");
            // Out of time at the look after two spins.
            assert_eq!(timed(3), None);
            assert_eq!(steps(), 5, "out of time while spinning");
        })
        .join()
        .expect("no panic");
    });
}

/// A consumer whose pops on an empty ring yield their whole budget and then sleep anyway (no
/// producer ran meanwhile) halves the budget each time: the next pop yields half as often
/// before it sleeps. The producers' side keeps its own.
#[test]
fn pops_that_sleep_after_yielding_their_budget_yield_less_the_next_time() {
    let ring = HeapRing::<u64>::with_capacity(4);
    let waiters = &ring.tail.waiters;
    assert_eq!(waiters.yield_budget(), 58);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        // The spawned threads are this test's first waits that yield: none is a probe.
        for (asleep_after, budget, yields) in [(58, 29, 58), (29 + 58, 14, 29)] {
            let popping = s.spawn(|| ring.pop());
            until_asleep(waiters, 1);
            assert_eq!(waiters.yields_before_parking(), asleep_after);
            assert_eq!(waiters.yield_budget(), budget, "after {yields} yields");
            ring.try_push(7).unwrap();
            assert_eq!(popping.join().unwrap(), Ok(7));
        }
    });
    assert_eq!(
        ring.head.waiters.yield_budget(),
        58,
        "the producers' budget"
    );
}

/// Waits that take nothing all end on the same ready slot, so one `wait_ready` yields at a
/// time: while another holds the consumers' yield turn, a `wait_ready` parks as soon as its
/// spins are done (and its park teaches the budget nothing, having yielded nothing); a pop
/// yields its budget whoever holds the turn; once the turn is free, a `wait_ready` yields
/// again, and gives the turn back as it parks, or as its time runs out.
#[test]
fn a_wait_ready_parks_without_yielding_while_another_wait_ready_yields() {
    let ring = HeapRing::<u64>::with_capacity(4);
    let waiters = &ring.tail.waiters;
    assert!(waiters.take_yield_turn(), "nobody yields yet");
    assert!(!waiters.take_yield_turn(), "one turn");
    let turn_is_free = || {
        let free = waiters.take_yield_turn();
        if free {
            waiters.give_back_yield_turn();
        }
        free
    };
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        // The spawned threads are this test's first waits that yield: none is a probe.
        let ready = s.spawn(|| ring.wait_ready());
        until_asleep(waiters, 1);
        assert_eq!(
            waiters.yields_before_parking(),
            0,
            "yielded beside the turn's holder"
        );
        assert_eq!(
            waiters.yield_budget(),
            58,
            "a park without yields halved the budget"
        );
        let popping = s.spawn(|| ring.pop());
        until_asleep(waiters, 2);
        assert_eq!(
            waiters.yields_before_parking(),
            58,
            "the pop yielded its budget"
        );
        assert_eq!(waiters.yield_budget(), 29);
        waiters.give_back_yield_turn();
        let ready_again = s.spawn(|| ring.wait_ready());
        until_asleep(waiters, 3);
        assert_eq!(
            waiters.yields_before_parking(),
            58 + 29,
            "the turn was free"
        );
        assert!(turn_is_free(), "given back as it parked");
        ring.close();
        assert_eq!(popping.join().unwrap(), Err(super::Closed(())));
        for w in [ready, ready_again] {
            assert_eq!(w.join().unwrap(), Err(super::Closed(())));
        }
    });
    let open = HeapRing::<u64>::with_capacity(4);
    let waiters = &open.tail.waiters;
    // Long enough to get past the spins into the yields.
    let timeout = core::time::Duration::from_millis(20);
    assert_eq!(open.wait_ready_timeout(timeout), Err(PopError::Empty));
    let free = waiters.take_yield_turn();
    assert!(free, "given back when its time ran out");
}

/// `wait_ready` sleeps like a pop and is woken by the push, but takes nothing: the value is
/// still there for the pop that follows.
#[test]
fn wait_ready_is_woken_by_the_push_and_leaves_the_value_for_the_pop() {
    let ring = HeapRing::<u64>::with_capacity(4);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let waiting = s.spawn(|| ring.wait_ready());
        until_asleep(&ring.tail.waiters, 1);
        ring.try_push(5).unwrap();
        assert_eq!(waiting.join().unwrap(), Ok(()));
        assert_eq!(ring.len(), 1, "wait_ready popped the value");
        assert_eq!(ring.try_pop(), Ok(5));
    });
}

/// A woken pop passes a wake-up on when the next slot is ready too; a woken `wait_ready` never
/// does, since its slot is still ready for its caller's pop (which takes the whole batch): one
/// push wakes one waiter, and the other sleeps on until the close.
#[test]
fn a_woken_wait_ready_passes_no_wake_up_on() {
    let ring = HeapRing::<u64>::with_capacity(4);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let (done, returned) = std::sync::mpsc::channel();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (done, ring) = (done.clone(), &ring);
                s.spawn(move || done.send(ring.wait_ready()).unwrap())
            })
            .collect();
        until_asleep(&ring.tail.waiters, 2);
        ring.try_push(5).unwrap();
        assert_eq!(returned.recv().unwrap(), Ok(()));
        assert_eq!(
            ring.tail.waiters.given(),
            1,
            "the woken waiter woke another"
        );
        assert_eq!(ring.tail.waiters.asleep(), 1);
        assert_eq!(ring.try_pop(), Ok(5));
        ring.close();
        assert_eq!(returned.recv().unwrap(), Err(super::Closed(())));
        waiters.into_iter().for_each(|w| w.join().unwrap());
    });
}

#[test]
fn wait_ready_timeout_says_empty_ready_or_closed_and_pops_nothing() {
    let ring = Ring::<u8, 2>::new();
    let short = core::time::Duration::from_millis(1);
    let long = core::time::Duration::from_secs(60);
    assert_eq!(ring.wait_ready_timeout(short), Err(PopError::Empty));
    ring.try_push(1).unwrap();
    assert_eq!(ring.wait_ready_timeout(long), Ok(()));
    ring.close();
    assert_eq!(ring.wait_ready_timeout(long), Ok(()), "closed, not drained");
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.wait_ready_timeout(long), Err(PopError::Closed));
    assert_eq!(ring.wait_ready(), Err(super::Closed(())));
}

#[test]
fn close_wakes_every_sleeping_producer_and_hands_values_back() {
    let ring = Ring::<u64, 2>::new();
    ring.try_push_batch(&mut (0..2)).unwrap();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let parked: Vec<_> = (10..13)
            .map(|v| {
                let ring = &ring;
                s.spawn(move || (v, ring.push(v)))
            })
            .collect();
        until_asleep(&ring.head.waiters, 3);
        ring.close();
        for h in parked {
            let (v, result) = h.join().unwrap();
            assert_eq!(result, Err(super::Closed(v)), "woken, value handed back");
        }
    });
    let mut out = Vec::new();
    while ring.try_pop_batch(&mut out, 2).is_ok() {}
    assert_eq!(out, [0, 1], "what was in the ring is still drained");
}

#[test]
fn a_waiting_push_closes_the_ring_when_the_last_consumer_is_dropped() {
    let mut ring = Ring::<u64, 2>::new();
    let (producer, consumer) = ring.split();
    let core = producer.borrowed_ring();
    drop(consumer.clone()); // a consumer gone, one left: the push must still wait for it
    producer.try_push_batch(&mut (1..3)).unwrap();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(core);
        let waiting = s.spawn(move || {
            let one = producer.push(3);
            let mut rest = 4..6;
            (one, producer.push_batch(&mut rest), rest)
        });
        while core.head.waiters.asleep() < 1 && !waiting.is_finished() {
            std::thread::yield_now();
        }
        assert!(
            !waiting.is_finished(),
            "asleep, not done, while a consumer is left"
        );
        drop(consumer);
        let (one, batch, rest) = waiting.join().unwrap();
        assert_eq!(
            one,
            Err(super::Closed(3)),
            "woken, closed, value handed back"
        );
        assert_eq!(batch, Err(super::Closed(0)), "and every push after it");
        assert_eq!(rest, 4..6, "nothing taken from the iterator");
    });
    assert!(ring.is_closed());
    assert_eq!(ring.len(), 2, "what was pushed stays in the ring");
}

/// A split that ended with its producer forgotten leaves the producers' count at 1 and the
/// consumers' at 0: the ring's own waiting push must not read that as "every consumer gone".
#[test]
fn a_ring_used_directly_after_a_split_with_a_forgotten_producer_still_waits_for_a_pop() {
    let mut ring = Ring::<u64, 2>::new();
    {
        let (producer, consumer) = ring.split();
        core::mem::forget(producer);
        drop(consumer);
    }
    ring.try_push_batch(&mut (1..3)).unwrap();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let pushing = s.spawn(|| ring.push(3));
        while ring.head.waiters.asleep() < 1 && !pushing.is_finished() {
            std::thread::yield_now();
        }
        assert_eq!(ring.try_pop(), Ok(1));
        assert_eq!(pushing.join().unwrap(), Ok(()), "waited, then pushed");
    });
    assert!(!ring.is_closed());
}

#[test]
fn wait_space_wakes_on_the_pop_that_frees_the_tail_and_leaves_the_slot() {
    let mut ring = Ring::<u64, 2>::new();
    let (producer, consumer) = ring.split();
    let core = producer.borrowed_ring();
    producer.try_push_batch(&mut (1..3)).unwrap();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(core);
        let waiting = s.spawn(move || {
            let waited = producer.wait_space();
            (waited, producer.try_push(3))
        });
        until_asleep(&core.head.waiters, 1);
        assert_eq!(consumer.try_pop(), Ok(1));
        assert_eq!(
            waiting.join().unwrap(),
            (Ok(()), Ok(())),
            "woken, the slot still free"
        );
        assert_eq!(consumer.try_pop(), Ok(2));
        assert_eq!(consumer.try_pop(), Ok(3));
    });
}

#[test]
fn wait_space_ends_closed_on_close_and_on_the_last_consumers_drop() {
    for by_close in [true, false] {
        let mut ring = Ring::<u64, 2>::new();
        let (producer, consumer) = ring.split();
        let core = producer.borrowed_ring();
        producer.try_push_batch(&mut (1..3)).unwrap();
        let waiter = producer.clone();
        std::thread::scope(|s| {
            let _guard = CloseOnPanic(core);
            let waiting = s.spawn(move || waiter.wait_space());
            until_asleep(&core.head.waiters, 1);
            if by_close {
                producer.close();
            } else {
                drop(consumer);
            }
            assert_eq!(
                waiting.join().unwrap(),
                Err(super::Closed(())),
                "{by_close}"
            );
        });
        assert!(producer.is_closed(), "closed ({by_close})");
        assert_eq!(producer.wait_space(), Err(super::Closed(())));
        let zero = core::time::Duration::ZERO;
        assert_eq!(
            producer.wait_space_timeout(zero),
            Err(PushError::Closed(()))
        );
    }
}

/// A value that counts its drops.
struct Counted(alloc::sync::Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn an_owned_split_drops_the_ring_and_what_is_left_with_its_last_handle() {
    let drops = alloc::sync::Arc::new(AtomicUsize::new(0));
    let (producer, consumer) = HeapRing::<Counted>::with_capacity(4).into_split();
    let counter = alloc::sync::Arc::clone(&drops);
    // A thread that outlives nothing it borrows: the handles own the ring.
    let pushing = std::thread::spawn(move || {
        let mut pushed = 0;
        while producer
            .push(Counted(alloc::sync::Arc::clone(&counter)))
            .is_ok()
        {
            pushed += 1;
        }
        pushed // the refused value was handed back and dropped; then the producer
    });
    for _ in 0..3 {
        drop(consumer.pop().unwrap());
    }
    drop(consumer); // the producer fills the ring, then its waiting push closes it
    let pushed = pushing.join().unwrap();
    assert_eq!(pushed, 3 + 4, "three popped, four left in the ring");
    assert_eq!(
        drops.load(Ordering::Relaxed),
        pushed + 1,
        "every value dropped once, the ring's with the last handle"
    );
}

#[test]
fn a_push_with_a_timeout_into_an_abandoned_full_ring_says_closed() {
    let zero = core::time::Duration::ZERO;
    for batch in [false, true] {
        let mut ring = Ring::<u64, 2>::new();
        let (producer, consumer) = ring.split();
        producer.try_push_batch(&mut (1..3)).unwrap();
        assert_eq!(producer.push_timeout(3, zero), Err(PushError::Full(3)));
        drop(consumer);
        assert!(producer.is_abandoned());
        assert_eq!(
            producer.try_push(3),
            Err(PushError::Full(3)),
            "try_push never looks"
        );
        if batch {
            let mut rest = 3..5;
            let pushed = producer.push_batch_timeout(&mut rest, zero);
            assert_eq!(pushed, Err(PushError::Closed(0)));
            assert_eq!(rest, 3..5, "nothing taken from the iterator");
        } else {
            assert_eq!(producer.push_timeout(3, zero), Err(PushError::Closed(3)));
        }
        assert!(producer.is_closed());
    }
}

#[test]
fn push_wakes_parked_consumer_and_pop_wakes_parked_producer() {
    let ring = Ring::<u64, 2>::new();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let consumer = s.spawn(|| ring.pop());
        until_asleep(&ring.tail.waiters, 1);
        ring.try_push(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(7));

        ring.try_push(1).unwrap();
        ring.try_push(2).unwrap();
        let producer = s.spawn(|| ring.push(3));
        until_asleep(&ring.head.waiters, 1);
        assert_eq!(ring.try_pop(), Ok(1));
        assert_eq!(producer.join().unwrap(), Ok(()));
        let mut out = Vec::new();
        ring.try_pop_batch(&mut out, 4).unwrap();
        assert_eq!(out, [2, 3]);
    });
}

#[test]
fn a_published_slot_wakes_one_sleeping_consumer_not_all() {
    // Three consumers asleep on an empty ring. Each published slot hands out one wake-up
    // (before, every push woke all three, and two went back to sleep).
    let ring = Ring::<u64, 4>::new();
    let waiters = &ring.tail.waiters;
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let v = ring.pop();
                    // Release: its pop happens-before the test reading `done`.
                    done.fetch_add(1, Ordering::Release);
                    v
                })
            })
            .collect();
        until_asleep(waiters, 3);
        assert_eq!(waiters.given(), 0);
        ring.try_push(1).unwrap();
        assert_eq!(waiters.given(), 1, "one slot, one wake-up");
        // Acquire: pairs with the Release above, so what that thread did is visible below.
        while done.load(Ordering::Acquire) < 1 {
            std::thread::yield_now();
        }
        until_asleep(waiters, 2);
        assert_eq!(waiters.given(), 1, "the other two still asleep, not woken");
        assert_eq!(ring.try_push_batch(&mut (2..4)), Ok(2));
        assert_eq!(waiters.given(), 3, "two slots, two wake-ups");
        let mut got: Vec<u64> = consumers
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(waiters.given(), 3, "and no more");
    });
}

#[test]
fn a_freed_slot_wakes_one_sleeping_producer_not_all() {
    // Three producers asleep on a full ring. Each freed slot hands out one wake-up.
    let ring = Ring::<u64, 2>::new();
    ring.try_push_batch(&mut (0..2)).unwrap();
    let waiters = &ring.head.waiters;
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let producers: Vec<_> = (10..13)
            .map(|v| {
                let (ring, done) = (&ring, &done);
                s.spawn(move || {
                    ring.push(v).unwrap();
                    // Release: its push happens-before the test reading `done`.
                    done.fetch_add(1, Ordering::Release);
                })
            })
            .collect();
        until_asleep(waiters, 3);
        assert_eq!(ring.try_pop(), Ok(0));
        assert_eq!(waiters.given(), 1, "one slot, one wake-up");
        // Acquire: pairs with the Release above, so what that thread did is visible below.
        while done.load(Ordering::Acquire) < 1 {
            std::thread::yield_now();
        }
        until_asleep(waiters, 2);
        assert_eq!(waiters.given(), 1, "the other two still asleep, not woken");
        let mut out = Vec::new();
        assert_eq!(ring.try_pop_batch(&mut out, 2), Ok(2));
        assert_eq!(waiters.given(), 3, "two slots, two wake-ups");
        for h in producers {
            h.join().unwrap();
        }
        assert_eq!(ring.try_pop_batch(&mut out, 2), Ok(2));
        assert_eq!(out[0], 1);
        out.sort_unstable();
        assert_eq!(out, [1, 10, 11, 12]);
        assert_eq!(waiters.given(), 3, "and no more");
    });
}

#[test]
fn a_wake_up_taken_for_a_slot_behind_a_held_one_is_passed_on() {
    // Positions are published out of order: here position 1 before position 0, whose push is
    // still producing it. The wake-up for position 1 goes to a consumer that finds position 0
    // still held and sleeps again; when position 0 is published, its single wake-up must
    // bring out both values: the consumer that pops position 0 passes a wake-up on. (Without
    // that, the second consumer slept forever: this test hung.)
    let ring = Ring::<u64, 4>::new();
    let waiters = &ring.tail.waiters;
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let consumers: Vec<_> = (0..2).map(|_| s.spawn(|| ring.pop())).collect();
        until_asleep(waiters, 2);
        let mut first = Some(10);
        let mut held = core::iter::from_fn(|| {
            // Position 0 is claimed and not yet published.
            ring.try_push(20).unwrap(); // position 1, published: one wake-up
            assert_eq!(waiters.given(), 1);
            until_slept(waiters, 3); // the woken consumer is asleep again
            first.take()
        });
        assert_eq!(ring.try_push_batch(&mut held.by_ref().take(1)), Ok(1));
        let mut got: Vec<u64> = consumers
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [10, 20]);
    });
}

/// As above, with the woken consumer's `Extend` panicking on the value it took: its wake-up is
/// still passed on, so the other consumer gets the second value. (Without that, the second
/// consumer sleeps for ever: the test hangs.)
#[test]
fn a_woken_batch_pop_whose_extend_panics_passes_its_wake_up_on() {
    /// Takes values, panicking on 10.
    #[derive(Default)]
    struct PanicsOnTen(Vec<u64>);
    impl Extend<u64> for PanicsOnTen {
        fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
            for v in iter {
                assert_ne!(v, 10, "the Extend panics, as asked");
                self.0.push(v);
            }
        }
    }
    let ring = Ring::<u64, 4>::new();
    let waiters = &ring.tail.waiters;
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut out = PanicsOnTen::default();
                    ring.pop_batch(&mut out, 1).map(|_| out.0)
                })
            })
            .collect();
        until_asleep(waiters, 2);
        let mut first = Some(10);
        let mut held = core::iter::from_fn(|| {
            // Position 0 is claimed and not yet published.
            ring.try_push(20).unwrap(); // position 1, published: one wake-up
            until_slept(waiters, 3); // the woken consumer is asleep again
            first.take()
        });
        // Position 0's one wake-up goes to a consumer that takes 10 and panics.
        assert_eq!(ring.try_push_batch(&mut held.by_ref().take(1)), Ok(1));
        let mut outcomes: Vec<Option<Vec<u64>>> = consumers
            .into_iter()
            .map(|h| h.join().ok().map(|popped| popped.unwrap()))
            .collect();
        outcomes.sort_unstable();
        assert_eq!(outcomes, [None, Some(alloc::vec![20])]);
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

#[test]
fn producer_sleeps_while_a_batch_pop_holds_its_slots() {
    // A batch pop frees its run only when its `Extend` is done. A producer that arrives in
    // between finds room by the indices but the slot still held: it must sleep behind that
    // slot (not spin), and be woken by the pop's end (no timeout wakes it: there is none).
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
                    until_asleep(&ring.head.waiters, 1);
                }
                self.got.push(v);
            }
        }
    }
    let ring = Ring::<u32, 2>::new();
    ring.try_push_batch(&mut (0..2)).unwrap();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
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
    // must sleep behind that slot (not spin), and be woken by the push's end.
    let ring = Ring::<u32, 4>::new();
    std::thread::scope(|s| {
        let _guard = CloseOnPanic(&ring);
        let mut consumer = None;
        let mut items = (0..3).inspect(|&i| {
            if i == 1 {
                consumer = Some(s.spawn(|| ring.pop()));
                until_asleep(&ring.tail.waiters, 1);
            }
        });
        assert_eq!(ring.push_batch(&mut items), Ok(3));
        assert_eq!(consumer.take().unwrap().join().unwrap(), Ok(0));
        let mut rest = Vec::new();
        ring.try_pop_batch(&mut rest, 4).unwrap();
        assert_eq!(rest, [1, 2]);
    });
}

/// The membarrier registration (milliseconds: it waits for an RCU grace period) happens when
/// a heap ring is built, not in the first push or pop, where it stalled the first records of
/// a run by as long; a ring in a `static` registers at its first operation instead; and wakers
/// skip the barrier (`MUST_FENCE` cleared) only once the process is registered. Each probe
/// below runs in a process of its own (this test binary, running only that probe), where
/// nothing else has registered first.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn rings_register_the_fences_and_wakers_skip_them_only_after() {
    run_fence_probes(&["fence_probe_heap_ring", "fence_probe_static_ring"]);
}

/// A process that chooses fences before any ring never registers for `membarrier`: every waker
/// keeps fencing, and a sleeper is still woken; chosen too late, the choice has no effect.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn a_process_that_chooses_fences_first_never_registers_and_its_wakers_always_fence() {
    run_fence_probes(&["fence_probe_fences_chosen", "fence_probe_fences_too_late"]);
}

/// A process that registered and then had the kernel refuse `membarrier` (a seccomp filter
/// installed after building its rings): the first sleeper to find out falls back to fences
/// for the process, sets its side's "must fence" bit again so that wakers fence, sleeps that
/// once for at most a millisecond (a wake-up missed meanwhile costs no more), and is then
/// woken as usual.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn a_sleeper_repairs_the_handshake_when_the_kernel_refuses_the_barrier_after_registering() {
    run_fence_probes(&["fence_probe_barrier_refused"]);
}

/// Makes every later `membarrier` call of this thread, and of threads it starts, fail with
/// `EPERM`. Returns false where the kernel refuses the filter.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
fn refuse_membarrier() -> bool {
    let nr = libc::SYS_membarrier as u32;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // The system call's number: the first word of `struct seccomp_data`.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: nr,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prctl` with these options reads only `program`, which points to `filter`; both
    // outlive the calls. The filter refuses one system call that pc-core handles failing.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                core::ptr::from_ref(&program),
            ) == 0
    }
}

/// Run by the test above in a fresh process; does nothing otherwise.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn fence_probe_barrier_refused() {
    if std::env::var_os("PC_FENCE_PROBE").is_none() {
        return;
    }
    if !crate::fence::available() {
        std::println!("SKIP: no expedited membarrier here: nothing to refuse");
        return;
    }
    let ring = HeapRing::<u8>::with_capacity(2);
    ring.try_push(1).unwrap();
    assert_eq!(ring.try_pop(), Ok(1));
    assert!(crate::fence::register(), "not registered");
    assert!(!ring.tail.waiters.must_fence(), "a waker still fences");
    if !refuse_membarrier() {
        std::println!("SKIP: the kernel refused the seccomp filter");
        return;
    }
    std::thread::scope(|s| {
        let _close = CloseOnPanic(&ring);
        let consumer = s.spawn(|| ring.pop());
        until_slept(&ring.tail.waiters, 1);
        assert!(
            !crate::fence::register(),
            "the process still counts on a barrier the kernel refuses"
        );
        assert!(
            ring.tail.waiters.must_fence(),
            "the sleeper did not make the wakers fence again"
        );
        // Nobody wakes it: the capped sleep ends by itself, and the wait sleeps again.
        until_slept(&ring.tail.waiters, 2);
        until_asleep(&ring.tail.waiters, 1);
        ring.push(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(7), "the sleeper was not woken");
    });
}

/// Runs each probe in a process of its own: this test binary, running only that probe.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
fn run_fence_probes(probes: &[&str]) {
    for probe in probes {
        let probe = alloc::format!("ring::tests::{probe}");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                probe.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("PC_FENCE_PROBE", "1")
            .output()
            .unwrap();
        let stdout = alloc::string::String::from_utf8_lossy(&out.stdout);
        let stderr = alloc::string::String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{probe}: {stdout}{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the probe {probe} did not run:\n{stdout}"
        );
    }
}

/// Run by the test above in a fresh process; does nothing otherwise.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn fence_probe_fences_chosen() {
    if std::env::var_os("PC_FENCE_PROBE").is_none() {
        return;
    }
    assert!(!crate::fence::decided(), "decided before the choice");
    if !crate::fence::available() {
        std::println!("SKIP: no expedited membarrier here: fences are in use whatever the choice");
        return;
    }
    assert!(
        crate::use_fence_instructions(),
        "chosen first, not in effect"
    );
    let ring = HeapRing::<u8>::with_capacity(2);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| ring.pop());
        until_asleep(&ring.tail.waiters, 1);
        ring.push(1).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(1), "the sleeper was not woken");
    });
    assert!(
        !crate::fence::register(),
        "registered after choosing fences"
    );
    assert!(
        ring.tail.waiters.must_fence() && ring.head.waiters.must_fence(),
        "a waker stopped fencing although the process never registered"
    );
    assert!(crate::use_fence_instructions(), "the choice did not last");
}

/// Run by the test above in a fresh process; does nothing otherwise.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn fence_probe_fences_too_late() {
    if std::env::var_os("PC_FENCE_PROBE").is_none() {
        return;
    }
    let _ring = HeapRing::<u8>::with_capacity(2);
    let registered = crate::fence::register();
    assert_eq!(
        crate::use_fence_instructions(),
        !registered,
        "after a ring was built the choice must say what is in use, and change nothing"
    );
    assert_eq!(crate::fence::register(), registered, "the strategy changed");
}

/// Run by the test above in a fresh process; does nothing otherwise.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn fence_probe_heap_ring() {
    if std::env::var_os("PC_FENCE_PROBE").is_none() {
        return;
    }
    assert!(
        !crate::fence::decided(),
        "decided before any ring was built"
    );
    let ring = HeapRing::<u8>::with_capacity(2);
    assert!(
        crate::fence::decided(),
        "building a heap ring did not prepare the fences"
    );
    assert!(
        ring.tail.waiters.must_fence() && ring.head.waiters.must_fence(),
        "cleared before any waker looked"
    );
    ring.try_push(1).unwrap();
    assert_eq!(ring.try_pop(), Ok(1));
    let registered = crate::fence::register();
    for waiters in [&ring.tail.waiters, &ring.head.waiters] {
        assert_eq!(
            waiters.must_fence(),
            !registered,
            "wakers must fence exactly while the process is not registered"
        );
    }
}

/// Run by the test above in a fresh process; does nothing otherwise.
#[cfg(all(feature = "std", target_os = "linux", not(miri), not(loom)))]
#[test]
fn fence_probe_static_ring() {
    static RING: crate::Ring<u8, 2> = crate::Ring::new();
    if std::env::var_os("PC_FENCE_PROBE").is_none() {
        return;
    }
    assert!(!crate::fence::decided(), "decided before any operation");
    assert!(
        RING.tail.waiters.must_fence(),
        "a static ring starts fencing"
    );
    RING.try_push(1).unwrap();
    assert!(
        crate::fence::decided(),
        "a static ring's first operation did not register the process"
    );
    assert_eq!(
        RING.tail.waiters.must_fence(),
        !crate::fence::register(),
        "wakers must fence exactly while the process is not registered"
    );
    assert_eq!(RING.try_pop(), Ok(1));
}

/// Every lost race a producer (consumer) reports is a position another producer (consumer)
/// claimed in between: never more reports than the other thread's successes, and every value
/// still goes through exactly once. What the blocking operations yield on (`sync::LostRaces`).
#[test]
fn a_lost_race_is_reported_only_when_the_other_thread_took_the_position() {
    const EACH: u64 = if cfg!(miri) { 1 << 6 } else { 1 << 14 };
    let ring = HeapRing::<u64>::with_capacity(2 * EACH as usize);
    let race = |work: &(dyn Fn(&mut dyn FnMut()) + Sync)| {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut lost = 0u64;
                        work(&mut || lost += 1);
                        lost
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    let next = AtomicUsize::new(0);
    let pushers_lost = race(&|lost_race| {
        for _ in 0..EACH {
            let v = next.fetch_add(1, Ordering::Relaxed) as u64;
            ring.try_push_or(v, &mut || lost_race()).unwrap();
        }
    });
    assert_eq!(ring.len(), 2 * EACH as usize);
    let sums: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
    let which = AtomicUsize::new(0);
    let poppers_lost = race(&|lost_race| {
        let me = which.fetch_add(1, Ordering::Relaxed);
        for _ in 0..EACH {
            let v = ring.try_pop_or(&mut || lost_race()).unwrap();
            sums[me].fetch_add(v as usize, Ordering::Relaxed);
        }
    });
    assert!(ring.is_empty());
    let total: usize = sums.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    assert_eq!(total as u64, (0..2 * EACH).sum::<u64>());
    for lost in pushers_lost.into_iter().chain(poppers_lost) {
        assert!(
            lost <= EACH,
            "{lost} lost races reported against {EACH} claims by the other"
        );
    }
}

/// A batch push offered far more than there is room for (pc-host's producers offer what they
/// have) prefetches a bounded run of lines, not one line per value it was offered; so does a
/// `try_pop_batch_spinning` (on the ring and on a split consumer) asked for more than the cap,
/// where the cap's worth is published, and it prefetches nothing where it is not;
/// `try_pop_batch` prefetches nothing (`RunFetch` says why).
#[test]
fn a_batch_push_and_a_spinning_batch_pop_prefetch_a_bounded_run_and_try_pop_batch_none() {
    use crate::sync::PREFETCH_RUN_MOST;
    let most_in_one_run = |f: &mut dyn FnMut()| {
        PREFETCH_RUN_MOST.with(|n| n.set(0));
        f();
        PREFETCH_RUN_MOST.with(core::cell::Cell::get)
    };
    // The cap in slots, rounded to lines at each end of the two runs a wrap makes.
    let bounded = |n: usize| n > 0 && n <= super::PREFETCH_LINES + 2;
    let mut ring = crate::HeapRing::<[u64; 8]>::with_capacity(1 << 10);
    // 72-byte slots: 1,024 of them span 1,152 lines.
    let mut items = (0..1 << 13).map(|i| [i; 8]);
    let n = (1 << 10) - 2;
    assert_eq!(ring.try_push_batch(&mut items.by_ref().take(n)), Ok(n));
    let mut out = Vec::new();
    assert_eq!(ring.try_pop_batch(&mut out, 2), Ok(2));
    // Four slots free, 1,024 offered: one run of four from the tail.
    let push = most_in_one_run(&mut || {
        assert_eq!(
            ring.try_push_batch(&mut items.by_ref().take(1 << 10)),
            Ok(4)
        );
    });
    assert!(bounded(push), "{push} prefetches for one batch push's run");
    let pop = most_in_one_run(&mut || {
        assert_eq!(ring.try_pop_batch(&mut out, 1 << 10), Ok(1 << 10));
    });
    assert_eq!(pop, 0, "try_pop_batch prefetched");
    let n = 1 << 10;
    assert_eq!(ring.try_push_batch(&mut items.by_ref().take(n)), Ok(n));
    let spinning = most_in_one_run(&mut || {
        assert_eq!(ring.try_pop_batch_spinning(&mut out, 1 << 11), Ok(1 << 10));
    });
    assert!(
        bounded(spinning),
        "{spinning} prefetches for one spinning pop's run"
    );
    // Ten ready, more asked for: the slot the prefetch would reach last is not published.
    assert_eq!(ring.try_push_batch(&mut items.by_ref().take(10)), Ok(10));
    let short = most_in_one_run(&mut || {
        assert_eq!(ring.try_pop_batch_spinning(&mut out, 1 << 11), Ok(10));
    });
    assert_eq!(short, 0, "a spinning pop prefetched past the published run");
    let (producer, consumer) = ring.split();
    assert_eq!(
        producer.try_push_batch(&mut items.by_ref().take(1 << 10)),
        Ok(1 << 10)
    );
    let split = most_in_one_run(&mut || {
        assert_eq!(
            consumer.try_pop_batch_spinning(&mut out, 1 << 11),
            Ok(1 << 10)
        );
    });
    assert!(
        bounded(split),
        "{split} prefetches for a split consumer's spinning pop"
    );
}

/// An index looked at half the stamps' range ago (`2^31` in index value, `2^30` pushes: a thread
/// preempted that long, in principle): a 32-bit stamp then reads "behind" for a free slot, and
/// the claim must look at the index again rather than answer `Full` (`RingCore::moved`).
fn stale_by_half_the_stamps(current: usize) -> usize {
    current.wrapping_sub(1 << 31)
}

#[test]
fn a_push_from_an_index_stale_by_half_the_stamp_range_looks_again_instead_of_saying_full() {
    let ring = Ring::<u64, 4>::new();
    assert_eq!(
        ring.try_push_from(stale_by_half_the_stamps(0), 7, &mut || {}),
        Ok(())
    );
    assert_eq!(ring.try_pop(), Ok(7));
    let mut items = 8..10;
    let (start, count) = ring
        .claim_free_from(stale_by_half_the_stamps(ONE), 2, &mut || {})
        .expect("room for two, not Full");
    assert_eq!((start, count), (ONE, 2));
    assert_eq!(ring.fill(start, count, &mut items), 2);
    assert_eq!((ring.try_pop(), ring.try_pop()), (Ok(8), Ok(9)));
}

/// A blocked thread's sleep re-check from such an index says "look again", not `Full` or
/// `Empty`: else a producer would sleep with the ring's slots free, a consumer with a value
/// ready.
#[test]
fn a_sleep_recheck_from_an_index_stale_by_half_the_stamp_range_does_not_say_blocked() {
    let ring = Ring::<u64, 4>::new();
    assert_eq!(ring.tail_state_from(stale_by_half_the_stamps(0)), Ok(()));
    ring.try_push(7).unwrap();
    assert_eq!(ring.head_state_from(stale_by_half_the_stamps(0)), Ok(()));
    assert_eq!(ring.try_pop(), Ok(7));
}

#[test]
fn a_pop_from_an_index_stale_by_half_the_stamp_range_looks_again_instead_of_saying_empty() {
    let ring = Ring::<u64, 4>::new();
    ring.try_push(7).unwrap();
    assert_eq!(
        ring.try_pop_from(stale_by_half_the_stamps(0), &mut || {}),
        Ok(7)
    );
    ring.try_push_batch(&mut (8..10)).unwrap();
    let drain = ring
        .claim_ready_from(stale_by_half_the_stamps(ONE), 2, RunFetch::Not, &mut || {})
        .expect("two values, not Empty");
    assert_eq!(drain.collect::<Vec<_>>(), [8, 9]);
    assert!(ring.is_empty());
}
