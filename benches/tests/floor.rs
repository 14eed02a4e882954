//! The reference rings of `ring_floor` are correct rings for one producer and one consumer:
//! otherwise the floor they show would be a broken queue's.

use pc_benches::harness::{self, CAPACITY, Flavor, Rx, Tx};
use pc_benches::ring::floor::{StampCas, StampPlain, StampPlainLocked};
use pc_benches::ring::{PcSplit, PcSplitTryPush};

/// Fills the ring, sees it refuse one more, empties it in order, sees it empty; twice, so the
/// second lap reuses every slot.
fn fifo_full_and_empty<F: Flavor>() {
    let (mut tx, mut rx) = F::endpoints();
    for lap in 0..2u64 {
        let base = lap * CAPACITY as u64;
        for v in base..base + CAPACITY as u64 {
            // A CAS claim may fail spuriously: retry as the harness does.
            while tx.try_push(v).is_err() {}
        }
        assert_eq!(tx.try_push(u64::MAX), Err(u64::MAX), "{}: full", F::NAME);
        for v in base..base + CAPACITY as u64 {
            let got = loop {
                if let Some(got) = rx.try_pop() {
                    break got;
                }
            };
            assert_eq!(got, v, "{}: in order", F::NAME);
        }
        assert_eq!(rx.try_pop(), None, "{}: empty", F::NAME);
    }
}

#[test]
fn reference_rings_are_fifo_and_bounded() {
    fifo_full_and_empty::<StampCas>();
    fifo_full_and_empty::<StampPlain>();
    fifo_full_and_empty::<StampPlainLocked>();
    fifo_full_and_empty::<PcSplit>();
    fifo_full_and_empty::<PcSplitTryPush>();
}

/// The two split rows' pushes differ after a `Full`: `PcSplit`'s waits for room for a run
/// (`try_push_spinning`), `PcSplitTryPush`'s takes the first slot that frees.
#[test]
fn split_rows_differ_in_whether_a_push_waits_for_a_run() {
    fn refill_after_one_pop<F: Flavor>() -> Result<(), u64> {
        let (mut tx, mut rx) = F::endpoints();
        for v in 0..CAPACITY as u64 {
            tx.try_push(v).expect("room");
        }
        assert_eq!(tx.try_push(u64::MAX), Err(u64::MAX), "{}: full", F::NAME);
        assert_eq!(rx.try_pop(), Some(0), "{}", F::NAME);
        tx.try_push(CAPACITY as u64)
    }
    assert_eq!(refill_after_one_pop::<PcSplitTryPush>(), Ok(()));
    assert_eq!(
        refill_after_one_pop::<PcSplit>(),
        Err(CAPACITY as u64),
        "one free slot is no run"
    );
}

#[test]
fn reference_rings_deliver_every_message_once_across_threads() {
    // spsc_throughput asserts that the consumer's sum is the sum of what was pushed. Its
    // threads spin; unpinned (no cores), the scheduler can still run them side by side on a
    // loaded machine, where pinned to a shared core each full or empty ring costs a time slice.
    let messages = 16 * CAPACITY as u64;
    harness::spsc_throughput::<StampCas>(&[], messages, 1);
    harness::spsc_throughput::<StampPlain>(&[], messages, 1);
    harness::spsc_throughput::<StampPlainLocked>(&[], messages, 1);
    harness::spsc_throughput::<PcSplit>(&[], messages, 1);
    harness::spsc_throughput::<PcSplitTryPush>(&[], messages, 1);
}

#[test]
fn ring_floor_refuses_bad_arguments_with_one_line_and_status_2() {
    for args in [
        &["--repeats", "0"][..],
        &["--messages", "x"],
        &["--repeats"],
        &["--bogus"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ring_floor"))
            .args(args)
            .output()
            .expect("ring_floor runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("ring_floor: "), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ring_floor"))
        .arg("--help")
        .output()
        .expect("ring_floor runs");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: ring_floor"));
}
