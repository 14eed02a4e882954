//! A consumer of a scaled run retiring: only between batches, after what it took is committed.

use std::sync::atomic::Ordering;

use super::*;
use crate::position::{FileKey, Resume};
use crate::sink::{Policy, RunEnd, SinkError};
use crate::telemetry::ProducerStats;

/// A sink that keeps the seqs it committed.
#[derive(Debug, Default)]
struct Keep(Vec<u64>);

impl Sink for Keep {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        self.0.extend(records.iter().map(|r| r.seq));
        Ok(())
    }

    fn register(&mut self, _: Option<&FileKey>) -> Result<Resume, SinkError> {
        Ok(Resume::default())
    }

    fn commit_position(&mut self, _: Resume) -> anyhow::Result<()> {
        Ok(())
    }

    fn count_stored(&mut self) -> anyhow::Result<u64> {
        Ok(self.0.len() as u64)
    }

    fn finish_run(&mut self, _: &RunEnd<'_>) -> Result<(), crate::sink::SinkError> {
        Ok(())
    }
}

/// Closes the queue when dropped, also while unwinding.
struct CloseOnDrop<'a>(&'a Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn record(seq: u64) -> Record {
    Record {
        seq,
        text: format!("m{seq}"),
        ..Record::default()
    }
}

/// A queue of 16 slots holding the records with `seqs`.
fn queue_of(seqs: std::ops::Range<u64>) -> Queue {
    let queue = Queue::ring(16).unwrap();
    let mut records: Vec<Record> = seqs.map(record).collect();
    queue.push_all(0, &mut records, &ProducerStats::default());
    queue
}

/// Runs one consumer of a scaled run on `ring` until it ends; returns the seqs committed.
fn run_scaled(ring: &Queue, scaling: &scaler::Shared, stats: &ConsumerStats) -> Vec<u64> {
    let sink = GroupCommit::new(vec![Keep::default()], 100, Policy::default());
    let clock = Clock::new();
    consumer(ring, &sink, &clock, stats, Some(scaling)).run();
    sink.into_writer().0
}

/// A consumer of `ring` into `sink` with batches of up to 100 and no batch wait.
fn consumer<'a>(
    ring: &'a Queue,
    sink: &'a GroupCommit<Keep>,
    clock: &'a Clock,
    stats: &'a ConsumerStats,
    scaling: Option<&'a scaler::Shared>,
) -> Consumer<'a, Keep> {
    fn no_failure() {}
    Consumer {
        ring,
        sink,
        clock,
        batch_size: 100,
        batch_wait: Duration::ZERO,
        batch_wait_fixed: false,
        warmup_end_ns: 0,
        stats,
        gate: None,
        on_sink_failure: &no_failure,
        acks: None,
        scaling,
    }
}

#[test]
fn a_consumer_asked_to_retire_commits_the_batch_it_took_then_ends_with_the_ring_open() {
    let ring = queue_of(0..5);
    let scaling = scaler::Shared::default();
    scaling.retire_one();
    let stats = ConsumerStats::default();
    assert_eq!(run_scaled(&ring, &scaling, &stats), [0, 1, 2, 3, 4]);
    assert_eq!(stats.stored.load(Ordering::Relaxed), 5);
    assert!(!ring.is_closed() && ring.is_empty());
    assert!(!scaling.take_retirement(), "the retirement was taken once");
}

#[test]
fn an_idle_consumer_of_a_scaled_run_can_retire_without_a_record() {
    let ring = queue_of(0..0);
    let scaling = scaler::Shared::default();
    scaling.retire_one();
    let stats = ConsumerStats::default();
    assert_eq!(run_scaled(&ring, &scaling, &stats), Vec::<u64>::new());
}

#[test]
fn a_consumer_not_asked_to_retire_runs_until_the_ring_is_closed_and_drained() {
    let ring = queue_of(0..3);
    ring.close();
    let scaling = scaler::Shared::default();
    let stats = ConsumerStats::default();
    assert_eq!(run_scaled(&ring, &scaling, &stats), [0, 1, 2]);
}

/// Consumers wait for records outside the hand-over turn, so several can wake for the same
/// records and all but one find them taken (they wait again). However that falls, every record
/// commits once, in ring order (one producer, one writer: seq order).
#[test]
fn consumers_waiting_outside_the_turn_commit_each_record_once_in_ring_order() {
    let ring = Queue::ring(16).unwrap();
    let sink = GroupCommit::new(vec![Keep::default()], 100, Policy::default());
    let clock = Clock::new();
    let stats = ConsumerStats::default();
    std::thread::scope(|s| {
        // A panic on either side closes the ring, so the other side ends and the scope
        // reports the panic instead of waiting for threads blocked on it.
        for _ in 0..3 {
            s.spawn(|| {
                let _close = CloseOnDrop(&ring);
                consumer(&ring, &sink, &clock, &stats, None).run()
            });
        }
        let _close = CloseOnDrop(&ring);
        let produced = ProducerStats::default();
        for start in (0..3000).step_by(3) {
            let mut records: Vec<Record> = (start..start + 3).map(record).collect();
            assert_eq!(ring.push_all(0, &mut records, &produced), 3);
        }
    });
    assert_eq!(sink.into_writer().0, (0..3000).collect::<Vec<u64>>());
    assert_eq!(stats.stored.load(Ordering::Relaxed), 3000);
}
