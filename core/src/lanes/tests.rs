//! Unit tests of the lanes: priority, the starvation guard's bound, close-and-drain across
//! lanes, and (with `std`) the one wait on all lanes.

use alloc::vec::Vec;

use super::{HeapLanes, Lanes};
use crate::ring::{CapacityError, PopError, PushError};

/// Fills every lane of `lanes` with `per_lane` values `lane * 1000 + i`.
fn fill(lanes: &HeapLanes<usize>, per_lane: usize) {
    for lane in 0..lanes.lanes() {
        for i in 0..per_lane {
            lanes.try_push(lane, lane * 1000 + i).unwrap();
        }
    }
}

#[test]
fn pops_take_the_highest_priority_lane_with_a_value() {
    let lanes = Lanes::<u32, 3, 4>::new().with_starvation_guard(0);
    lanes.try_push(2, 20).unwrap();
    lanes.try_push(1, 10).unwrap();
    lanes.try_push(2, 21).unwrap();
    assert_eq!(lanes.try_pop_lane(), Ok((1, 10)));
    lanes.try_push(0, 0).unwrap();
    assert_eq!(lanes.try_pop_lane(), Ok((0, 0)));
    assert_eq!(lanes.try_pop_lane(), Ok((2, 20)));
    assert_eq!(lanes.try_pop_lane(), Ok((2, 21)));
    assert_eq!(lanes.try_pop_lane(), Err(PopError::Empty));
}

#[test]
fn strict_priority_without_guard_never_serves_a_lower_lane_while_lane_0_has_values() {
    let lanes = HeapLanes::with_capacities(&[64, 64]).with_starvation_guard(0);
    fill(&lanes, 64);
    for _ in 0..64 {
        assert_eq!(lanes.try_pop_lane().unwrap().0, 0);
    }
    assert_eq!(lanes.try_pop_lane().unwrap().0, 1);
}

#[test]
fn guard_serves_every_lower_lane_within_guard_plus_one_times_lanes_minus_one_pops() {
    for (guard, k) in [(1u32, 2usize), (3, 2), (2, 4), (7, 3)] {
        let lanes = HeapLanes::with_capacities(&[256; 4][..k]).with_starvation_guard(guard);
        fill(&lanes, 256);
        let bound = (guard as usize + 1) * (k - 1);
        let served: Vec<usize> = (0..4 * bound)
            .map(|_| lanes.try_pop_lane().unwrap().0)
            .collect();
        for window in served.windows(bound) {
            for lane in 1..k {
                assert!(
                    window.contains(&lane),
                    "guard {guard}, {k} lanes: lane {lane} not served in {window:?}"
                );
            }
        }
        // Lane 0 loses exactly one pop in guard + 1 while every lane has values.
        let from_lane_0 = served.iter().filter(|&&lane| lane == 0).count();
        assert_eq!(
            from_lane_0,
            served.len() / (guard as usize + 1) * guard as usize
        );
    }
}

/// The guard pops that start at an empty lane serve a busy lower lane before lane 0: with
/// lanes 0 and 1 busy and lane 2 empty, lane 1 still gets one pop in `G + 1`.
#[test]
fn the_lower_lanes_together_get_one_pop_in_guard_plus_one_while_any_has_values() {
    let guard = 7;
    let lanes = HeapLanes::with_capacities(&[256, 256, 4]).with_starvation_guard(guard);
    for i in 0..256 {
        lanes.try_push(0, i).unwrap();
        lanes.try_push(1, 1000 + i).unwrap();
    }
    let served: Vec<usize> = (0..128).map(|_| lanes.try_pop_lane().unwrap().0).collect();
    let from_lane_1 = served.iter().filter(|&&lane| lane == 1).count();
    assert_eq!(from_lane_1, served.len() / (guard as usize + 1));
}

#[test]
fn guard_pop_falls_through_to_the_next_lane_with_a_value_wrapping_to_lane_0() {
    let lanes = Lanes::<u32, 3, 4>::new().with_starvation_guard(1);
    lanes.try_push(0, 0).unwrap();
    lanes.try_push(0, 1).unwrap();
    assert_eq!(lanes.try_pop_lane(), Ok((0, 0))); // pop 0: ordinary
    assert_eq!(lanes.try_pop_lane(), Ok((0, 1))); // pop 1: guard, lanes 1 and 2 empty
}

#[test]
fn batch_pop_takes_lane_by_lane_in_scan_order_up_to_max() {
    let lanes = Lanes::<u32, 3, 8>::new().with_starvation_guard(1);
    for i in 0..3 {
        lanes.try_push(0, i).unwrap();
        lanes.try_push(1, 10 + i).unwrap();
        lanes.try_push(2, 20 + i).unwrap();
    }
    let mut out = Vec::new();
    assert_eq!(lanes.try_pop_batch(&mut out, 4), Ok(4)); // ordinary: lane 0, then lane 1
    assert_eq!(out, [0, 1, 2, 10]);
    out.clear();
    assert_eq!(lanes.try_pop_batch(&mut out, 3), Ok(3)); // guard: lane 1 first
    assert_eq!(out, [11, 12, 20]);
    out.clear();
    assert_eq!(lanes.try_pop_batch(&mut out, 0), Ok(0));
    assert_eq!(lanes.try_pop_batch(&mut out, 9), Ok(2));
    assert_eq!(out, [21, 22]);
    assert_eq!(lanes.try_pop_batch(&mut out, 9), Err(PopError::Empty));
}

#[test]
fn pops_report_closed_only_once_every_lane_is_closed_and_drained() {
    let lanes = Lanes::<u32, 3, 4>::new();
    lanes.try_push(2, 2).unwrap();
    assert!(lanes.close());
    assert!(lanes.is_closed());
    assert_eq!(lanes.try_push(1, 9), Err(PushError::Closed(9)));
    let mut out = Vec::new();
    assert_eq!(lanes.try_pop_batch(&mut out, 4), Ok(1));
    assert_eq!(lanes.try_pop(), Err(PopError::Closed));
    assert_eq!(lanes.try_pop_batch(&mut out, 4), Err(PopError::Closed));
}

#[test]
fn a_batch_pop_of_zero_says_closed_only_once_every_lane_is_drained() {
    let lanes = Lanes::<u32, 2, 4>::new();
    let mut out = Vec::new();
    lanes.try_push(1, 7).unwrap();
    assert_eq!(lanes.try_pop_batch(&mut out, 0), Ok(0));
    assert!(lanes.close());
    assert_eq!(
        lanes.try_pop_batch(&mut out, 0),
        Ok(0),
        "lane 1 still holds 7"
    );
    assert_eq!(lanes.try_pop(), Ok(7));
    assert_eq!(lanes.try_pop_batch(&mut out, 0), Err(PopError::Closed));
    assert!(out.is_empty());
}

#[test]
fn a_closed_drained_lane_does_not_end_the_others() {
    // Close lane 0 alone, as a close under way does, with a value left in lane 1.
    let lanes = Lanes::<u32, 2, 4>::new();
    lanes.try_push(1, 7).unwrap();
    lanes.rings()[0].close();
    assert!(!lanes.is_closed());
    assert_eq!(lanes.try_pop(), Ok(7));
    assert_eq!(lanes.try_pop(), Err(PopError::Empty));
}

#[test]
fn close_returns_true_for_exactly_one_call() {
    let lanes = Lanes::<u8, 2, 2>::new();
    let closers = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| lanes.close())).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&closed| closed)
            .count()
    });
    assert_eq!(closers, 1);
}

#[test]
#[should_panic(expected = "lane 2 is out of range: there are 2 lanes")]
fn a_lane_out_of_range_panics() {
    let _ = Lanes::<u8, 2, 2>::new().try_push(2, 0);
}

#[test]
fn heap_lanes_take_one_lane_per_capacity_and_reject_bad_ones() {
    let lanes = HeapLanes::<u8>::try_with_capacities(&[2, 8, 1024]).unwrap();
    assert_eq!(lanes.lanes(), 3);
    assert_eq!((lanes.capacity(0), lanes.capacity(2)), (2, 1024));
    assert_eq!(
        HeapLanes::<u8>::try_with_capacities(&[]).unwrap_err(),
        CapacityError::NoLanes
    );
    assert_eq!(
        HeapLanes::<u8>::try_with_capacities(&[4, 1, 8]).unwrap_err(),
        CapacityError::Invalid(1)
    );
}

#[test]
#[should_panic(expected = "at least one lane")]
fn heap_lanes_with_no_capacities_panic() {
    let _ = HeapLanes::<u8>::with_capacities(&[]);
}

#[test]
fn len_counts_every_lane_and_debug_says_so() {
    let lanes = Lanes::<u8, 2, 4>::new();
    assert!(lanes.is_empty());
    lanes.try_push(0, 1).unwrap();
    lanes.try_push(1, 2).unwrap();
    lanes.try_push(1, 3).unwrap();
    assert_eq!(
        (lanes.len(), lanes.lane_len(0), lanes.lane_len(1)),
        (3, 1, 2)
    );
    let debug = alloc::format!("{lanes:?}");
    assert!(
        debug.contains("lanes: 2") && debug.contains("len: 3"),
        "{debug}"
    );
}

#[test]
fn lanes_are_send_and_sync_when_values_are_send() {
    fn shareable<X: Send + Sync>() {}
    shareable::<Lanes<core::cell::Cell<u8>, 2, 2>>();
    shareable::<HeapLanes<core::cell::Cell<u8>>>();
}

#[test]
fn dropping_lanes_drops_the_values_left_in_every_lane() {
    use alloc::sync::Arc;
    let token = Arc::new(());
    let lanes = HeapLanes::with_capacities(&[4, 4]);
    lanes.try_push(0, Arc::clone(&token)).unwrap();
    lanes.try_push(1, Arc::clone(&token)).unwrap();
    assert_eq!(Arc::strong_count(&token), 3);
    drop(lanes);
    assert_eq!(Arc::strong_count(&token), 1);
}

#[cfg(feature = "std")]
mod blocking {
    use alloc::vec::Vec;
    use core::time::Duration;
    use std::thread;

    use super::super::{HeapLanes, Lanes};
    use crate::ring::{Closed, PopError};

    /// Waits (yielding) until `n` consumers are asleep on `lanes`; fails, rather than hangs,
    /// if that has not happened within a minute: it closes the lanes first, so the consumers
    /// that never slept end and the test's scope can report the failure.
    fn until_parked<T, L: super::super::LaneSet<T>>(
        lanes: &super::super::LanesCore<T, L>,
        n: usize,
    ) {
        if !crate::test_support::within_a_minute(|| lanes.parking.registered() >= n) {
            lanes.close();
            panic!("{n} parked consumers never came");
        }
    }

    /// What a consumer thread sent on `rx`, within a minute; if nothing came, closes `lanes`
    /// first (ending the consumer's sleep), so a lost wake-up fails the test instead of
    /// hanging it.
    fn within_a_minute<T, L: super::super::LaneSet<T>, R>(
        lanes: &super::super::LanesCore<T, L>,
        rx: &std::sync::mpsc::Receiver<R>,
    ) -> Result<R, std::sync::mpsc::RecvTimeoutError> {
        let got = rx.recv_timeout(Duration::from_secs(60));
        if got.is_err() {
            lanes.close();
        }
        got
    }

    #[test]
    fn a_parked_pop_wakes_on_a_push_to_any_lane() {
        for lane in 0..3 {
            let lanes = Lanes::<u32, 3, 4>::new();
            thread::scope(|s| {
                let consumer = s.spawn(|| lanes.pop_lane());
                until_parked(&lanes, 1);
                lanes.push(lane, 7).unwrap();
                assert_eq!(consumer.join().unwrap(), Ok((lane, 7)));
            });
        }
    }

    #[test]
    fn a_parked_pop_wakes_on_a_try_push_a_timed_push_or_a_batch_push_to_any_lane() {
        for how in ["try_push", "push_timeout", "try_push_batch"] {
            for lane in 0..2 {
                let lanes = Lanes::<u32, 2, 4>::new();
                let (tx, rx) = std::sync::mpsc::channel();
                thread::scope(|s| {
                    s.spawn(|| tx.send(lanes.pop_lane()).unwrap());
                    until_parked(&lanes, 1);
                    match how {
                        "try_push" => lanes.try_push(lane, 7).unwrap(),
                        "push_timeout" => lanes.push_timeout(lane, 7, Duration::ZERO).unwrap(),
                        _ => assert_eq!(lanes.try_push_batch(lane, &mut (7..9)), Ok(2)),
                    }
                    let woke = within_a_minute(&lanes, &rx);
                    assert_eq!(woke, Ok(Ok((lane, 7))), "lane {lane}, {how}");
                });
            }
        }
    }

    /// A `close` half way through its lanes (lane 0 closed and drained, lane 1 open): a
    /// blocking pop sleeps rather than spin until the close is done, and a push to the open
    /// lane wakes it.
    #[test]
    fn a_pop_sleeps_while_a_closed_drained_lane_waits_for_the_others() {
        let lanes = Lanes::<u32, 2, 4>::new();
        lanes.rings()[0].close();
        thread::scope(|s| {
            let consumer = s.spawn(|| lanes.pop());
            until_parked(&lanes, 1);
            lanes.push(1, 7).unwrap();
            assert_eq!(consumer.join().unwrap(), Ok(7));
        });
    }

    #[test]
    fn wait_ready_wakes_on_a_push_to_any_lane_and_leaves_the_value() {
        for lane in 0..3 {
            let lanes = Lanes::<u32, 3, 4>::new();
            thread::scope(|s| {
                let waiting = s.spawn(|| lanes.wait_ready());
                until_parked(&lanes, 1);
                lanes.push(lane, 7).unwrap();
                assert_eq!(waiting.join().unwrap(), Ok(()));
                assert_eq!(
                    lanes.try_pop_lane(),
                    Ok((lane, 7)),
                    "wait_ready took the value"
                );
            });
        }
    }

    #[test]
    fn wait_ready_says_closed_only_once_every_lane_is_closed_and_drained() {
        let lanes = Lanes::<u32, 2, 4>::new();
        let long = Duration::from_secs(60);
        assert_eq!(
            lanes.wait_ready_timeout(Duration::from_millis(1)),
            Err(PopError::Empty)
        );
        lanes.push(1, 7).unwrap();
        lanes.close();
        assert_eq!(lanes.wait_ready_timeout(long), Ok(()), "lane 1 not drained");
        assert_eq!(lanes.try_pop(), Ok(7));
        assert_eq!(lanes.wait_ready_timeout(long), Err(PopError::Closed));
        let other = Lanes::<u32, 2, 4>::new();
        thread::scope(|s| {
            let waiting = s.spawn(|| other.wait_ready());
            until_parked(&other, 1);
            other.close();
            assert_eq!(waiting.join().unwrap(), Err(Closed(())));
        });
    }

    #[test]
    fn parked_pops_end_with_closed_when_the_lanes_close() {
        let lanes = Lanes::<u32, 2, 4>::new();
        let lanes = &lanes;
        thread::scope(|s| {
            let a = s.spawn(|| lanes.pop());
            let b = s.spawn(|| lanes.pop_batch(&mut Vec::new(), 8));
            until_parked(lanes, 2);
            lanes.close();
            assert_eq!(a.join().unwrap(), Err(Closed(())));
            assert_eq!(b.join().unwrap(), Err(Closed(())));
        });
    }

    #[test]
    fn a_blocking_push_to_a_full_lane_completes_once_a_pop_frees_a_slot() {
        let lanes = Lanes::<u32, 2, 2>::new();
        lanes.push(1, 1).unwrap();
        lanes.push(1, 2).unwrap();
        thread::scope(|s| {
            let producer = s.spawn(|| lanes.push(1, 3));
            assert_eq!(lanes.pop(), Ok(1));
            producer.join().unwrap().unwrap();
        });
        assert_eq!((lanes.try_pop(), lanes.try_pop()), (Ok(2), Ok(3)));
    }

    #[test]
    fn timeouts_report_empty_or_full_and_hand_the_value_back() {
        let lanes = HeapLanes::with_capacities(&[2]);
        assert_eq!(lanes.pop_timeout(Duration::ZERO), Err(PopError::Empty));
        let mut out = Vec::new();
        assert_eq!(
            lanes.pop_batch_timeout(&mut out, 4, Duration::from_millis(1)),
            Err(PopError::Empty)
        );
        lanes.push_timeout(0, 1, Duration::ZERO).unwrap();
        lanes.push_timeout(0, 2, Duration::ZERO).unwrap();
        assert_eq!(
            lanes.push_timeout(0, 3, Duration::ZERO),
            Err(crate::ring::PushError::Full(3))
        );
        assert_eq!(lanes.pop_timeout(Duration::ZERO), Ok(1));
    }

    /// Two consumers waiting until ready (which, unlike a pop, passes no wake-up on): a batch
    /// of two wakes both, as the ring's batch push wakes as many as it published.
    #[test]
    fn a_batch_push_wakes_as_many_waiting_consumers_as_it_published() {
        let lanes = Lanes::<u32, 2, 4>::new();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::scope(|s| {
            for _ in 0..2 {
                let (tx, lanes) = (tx.clone(), &lanes);
                s.spawn(move || tx.send(lanes.wait_ready()).unwrap());
            }
            until_parked(&lanes, 2);
            assert_eq!(lanes.try_push_batch(1, &mut (7..9)), Ok(2));
            for waiter in 0..2 {
                assert_eq!(within_a_minute(&lanes, &rx), Ok(Ok(())), "waiter {waiter}");
            }
        });
    }

    /// A batch push whose iterator panics after yielding a value leaves that value published,
    /// and the consumer asleep on the lanes is woken for it.
    #[test]
    fn a_batch_push_whose_iterator_panics_still_wakes_a_consumer_for_what_it_pushed() {
        let lanes = Lanes::<u32, 2, 4>::new();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::scope(|s| {
            s.spawn(|| tx.send(lanes.pop_lane()).unwrap());
            until_parked(&lanes, 1);
            let mut items = (7..10).map(|v| if v == 8 { panic!("item 8") } else { v });
            let pushed = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
                lanes.try_push_batch(1, &mut items)
            }));
            assert!(pushed.is_err(), "the iterator's panic went through");
            assert_eq!(within_a_minute(&lanes, &rx), Ok(Ok((1, 7))));
        });
    }

    /// A batch push from an iterator slow to yield its next item (no size hint: one claim per
    /// item): each claim wakes the consumer asleep on the lanes once it is published, not
    /// once the whole batch is. (Woken only at the batch's end, the consumer would sleep while
    /// the iterator waits for it: the test fails after its minute.)
    #[test]
    fn a_batch_push_wakes_a_sleeping_consumer_before_its_iterator_yields_the_next_item() {
        for how in ["try_push_batch", "push_batch"] {
            let lanes = Lanes::<u32, 2, 8>::new();
            let (tx, rx) = std::sync::mpsc::channel();
            thread::scope(|s| {
                s.spawn(|| {
                    tx.send(lanes.pop_lane()).unwrap();
                    tx.send(lanes.pop_lane()).unwrap();
                });
                until_parked(&lanes, 1);
                let mut next = 6;
                let mut items = core::iter::from_fn(|| {
                    next += 1;
                    match next {
                        7 => Some(7),
                        8 => {
                            let woke = within_a_minute(&lanes, &rx);
                            assert_eq!(woke, Ok(Ok((1, 7))), "{how}");
                            Some(8)
                        }
                        _ => None,
                    }
                });
                let pushed = match how {
                    "try_push_batch" => lanes.try_push_batch(1, &mut items).ok(),
                    _ => lanes.push_batch(1, &mut items).ok(),
                };
                assert_eq!(pushed, Some(2), "{how}");
                assert_eq!(within_a_minute(&lanes, &rx), Ok(Ok((1, 8))), "{how}");
            });
        }
    }

    /// A blocking batch push far larger than its lane, into a consumer asleep on the lanes:
    /// every run it publishes wakes the consumer (were only the last woken, the two would wait
    /// on each other as soon as the lane filled), and everything arrives once, in order.
    #[test]
    fn a_blocking_batch_push_larger_than_its_lane_reaches_a_sleeping_consumer_whole() {
        const N: u32 = 10_000;
        let lanes = Lanes::<u32, 2, 4>::new();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::scope(|s| {
            s.spawn(|| {
                let mut got = Vec::new();
                while lanes.pop_batch(&mut got, 3).is_ok() {}
                tx.send(got).unwrap();
            });
            until_parked(&lanes, 1);
            let mut items = 0..N;
            // Timed (a minute), so that a lost wake-up fails the test instead of hanging it.
            let pushed = lanes.push_batch_timeout(1, &mut items, Duration::from_secs(60));
            lanes.close();
            assert_eq!(pushed, Ok(N as usize));
            assert_eq!(items.next(), None);
            assert_eq!(within_a_minute(&lanes, &rx), Ok((0..N).collect::<Vec<_>>()));
        });
    }

    /// A lane's wait for space looks at that lane only: a full lane 0 times out while lane 1
    /// has room, a pop from lane 0 ends its wait, and the close ends every wait.
    #[test]
    fn wait_space_waits_on_its_own_lane() {
        let lanes = HeapLanes::with_capacities(&[2, 2]);
        assert_eq!(lanes.try_push_batch(0, &mut (1..3)), Ok(2));
        assert_eq!(lanes.wait_space_timeout(1, Duration::ZERO), Ok(()));
        assert_eq!(
            lanes.wait_space_timeout(0, Duration::from_millis(1)),
            Err(crate::ring::PushError::Full(()))
        );
        thread::scope(|s| {
            let waiting = s.spawn(|| lanes.wait_space(0));
            assert_eq!(lanes.pop(), Ok(1));
            assert_eq!(waiting.join().unwrap(), Ok(()));
        });
        lanes.close();
        assert_eq!(lanes.wait_space(1), Err(Closed(())));
        assert_eq!(
            lanes.wait_space_timeout(0, Duration::from_secs(60)),
            Err(crate::ring::PushError::Closed(()))
        );
    }

    #[test]
    fn batch_pushes_to_a_full_or_closed_lane_take_nothing_from_the_iterator() {
        let lanes = HeapLanes::with_capacities(&[2, 2]);
        let mut items = 1..10;
        assert_eq!(lanes.try_push_batch(0, &mut items), Ok(2));
        assert_eq!(
            lanes.try_push_batch(0, &mut items),
            Err(crate::ring::PushError::Full(()))
        );
        assert_eq!(
            lanes.push_batch_timeout(0, &mut items, Duration::from_millis(1)),
            Err(crate::ring::PushError::Full(0))
        );
        assert_eq!(
            lanes.push_batch_timeout(1, &mut items, Duration::from_millis(1)),
            Err(crate::ring::PushError::Full(2)),
            "lane 1 takes two, then the time runs out"
        );
        assert_eq!(items.clone().next(), Some(5));
        lanes.close();
        assert_eq!(
            lanes.try_push_batch(1, &mut items),
            Err(crate::ring::PushError::Closed(()))
        );
        assert_eq!(lanes.push_batch(0, &mut items), Err(Closed(0)));
        assert_eq!(items, 5..10, "a refused batch took items");
        let mut out = Vec::new();
        while lanes.try_pop_batch(&mut out, 8).is_ok() {}
        assert_eq!(out, [1, 2, 3, 4]);
    }

    #[test]
    fn producers_on_every_lane_and_batch_consumers_lose_nothing_and_keep_lane_fifo() {
        const PER: u32 = 20_000;
        const K: usize = 3;
        let lanes = HeapLanes::with_capacities(&[8, 16, 32]);
        let got: Vec<Vec<(usize, u32)>> = thread::scope(|s| {
            let producers: Vec<_> = (0..K)
                .map(|lane| {
                    let lanes = &lanes;
                    s.spawn(move || (0..PER).for_each(|i| lanes.push(lane, (lane, i)).unwrap()))
                })
                .collect();
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut seen = Vec::new();
                        while lanes.pop_batch(&mut seen, 16).is_ok() {}
                        seen
                    })
                })
                .collect();
            // Close even if a producer panicked, so the consumers end and the scope reports it.
            let produced: Vec<_> = producers.into_iter().map(|p| p.join()).collect();
            lanes.close();
            for result in produced {
                if let Err(panic) = result {
                    std::panic::resume_unwind(panic);
                }
            }
            consumers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        for seen in &got {
            for lane in 0..K {
                let order: Vec<u32> = seen.iter().filter(|v| v.0 == lane).map(|v| v.1).collect();
                assert!(
                    order.windows(2).all(|w| w[0] < w[1]),
                    "lane {lane} out of order"
                );
            }
        }
        let mut all: Vec<(usize, u32)> = got.concat();
        all.sort_unstable();
        let expected: Vec<(usize, u32)> = (0..K)
            .flat_map(|lane| (0..PER).map(move |i| (lane, i)))
            .collect();
        assert_eq!(all, expected, "values lost or duplicated");
    }
}

/// As the ring's test of the same name: a lanes pop reports a lost race only for a position
/// another consumer took, single and batch, so a blocking lanes pop yields only then.
#[test]
fn a_lost_race_is_reported_only_when_the_other_consumer_took_the_position() {
    const EACH: usize = if cfg!(miri) { 1 << 6 } else { 1 << 13 };
    let lanes = HeapLanes::with_capacities(&[2 * EACH, 2 * EACH]);
    fill(&lanes, 2 * EACH);
    let taken: Vec<(usize, usize, usize)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let (mut lost, mut sum, mut popped) = (0, 0, 0);
                    for _ in 0..EACH {
                        let (_, v) = lanes.try_pop_lane_or(&mut || lost += 1).unwrap();
                        sum += v;
                        popped += 1;
                    }
                    let mut out = Vec::new();
                    while popped < 2 * EACH {
                        let max = (2 * EACH - popped).min(4);
                        popped += lanes
                            .try_pop_batch_or(&mut out, max, &mut || lost += 1)
                            .unwrap();
                    }
                    (lost, sum + out.iter().sum::<usize>(), popped)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let all: usize = (0..2 * EACH).map(|i| i + 1000 + i).sum();
    assert_eq!(taken.iter().map(|t| t.1).sum::<usize>(), all);
    assert_eq!(lanes.try_pop(), Err(PopError::Empty));
    for (lost, _, _) in &taken {
        assert!(
            *lost <= 2 * EACH,
            "{lost} lost races against {} pops by the other",
            2 * EACH
        );
    }
}

/// A batch pop into an `Extend` that takes nothing still popped (and dropped) values: the
/// lanes are neither `Closed` nor `Empty` then, and `max` is spent by what was popped.
#[test]
fn a_batch_pop_whose_extend_takes_nothing_is_not_closed_and_spends_max_by_values_popped() {
    struct TakeNone;
    impl Extend<usize> for TakeNone {
        fn extend<I: IntoIterator<Item = usize>>(&mut self, _: I) {}
    }
    let lanes = HeapLanes::<usize>::with_capacities(&[8, 8]);
    fill(&lanes, 3);
    assert_eq!(lanes.try_pop_batch(&mut TakeNone, 4), Ok(0));
    assert!(!lanes.is_closed());
    assert_eq!(lanes.len(), 2, "popped 4 of the 6, no more");
}
