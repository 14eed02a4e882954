//! Group commit: many consumers, one sink writer, commits in ring order.
//!
//! Consumers fill batches from the ring one at a time (the hand-over turn) and queue them on a
//! pending list in the order they were popped; then each consumer takes the writer and commits
//! everything pending (its own batch and any that arrived meanwhile) in transactions of at most
//! `batch_size` rows, until nothing is pending. So:
//! - transactions commit records in ring order, so each input's rows are committed in its line
//!   order and a committed position never passes an uncommitted line (exactly-once resume);
//! - there is one write transaction at a time, and the number of commits per second adapts to
//!   the load instead of growing with the number of consumers;
//! - popping (outside the writer) overlaps with the previous commit;
//! - after a failed commit nothing more is committed by this process: the failed transaction's
//!   records are lost to this run, and a later commit would move a file's committed position
//!   past them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::anyhow;

use pc_core::Clock;

use super::Sink;
use crate::message::Record;
use crate::position::{FileKey, Positions, Resume};

/// One sink shared by the consumers (see the module docs).
#[derive(Debug)]
pub struct GroupCommit<S> {
    writer: Mutex<S>,
    /// Held while a consumer fills a batch and queues it: pending is in ring order.
    turn: Mutex<()>,
    /// Batches handed over and not yet taken by a committer, oldest first.
    pending: Mutex<VecDeque<Vec<Record>>>,
    /// Emptied batch vectors, kept for reuse (a batch vector can be large).
    spares: Mutex<Vec<Vec<Record>>>,
    batch_size: usize,
    /// A commit failed: no more commits. Set and read with the writer held (the mutex orders
    /// them); atomic only so that it can live beside it.
    failed: AtomicBool,
}

/// One committed transaction, as reported to the consumer that committed it.
#[derive(Debug)]
pub struct Commit<'a> {
    pub batches: &'a [Vec<Record>],
    /// Clock ns when the writer was taken, and when the commit returned.
    pub started: u64,
    pub committed: u64,
}

impl<S: Sink> GroupCommit<S> {
    pub fn new(writer: S, batch_size: usize) -> Self {
        Self {
            writer: Mutex::new(writer),
            turn: Mutex::new(()),
            pending: Mutex::new(VecDeque::new()),
            spares: Mutex::new(Vec::new()),
            batch_size,
            failed: AtomicBool::new(false),
        }
    }

    /// An empty batch vector with room for `batch_size` records.
    pub fn spare(&self) -> Vec<Record> {
        lock(&self.spares)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.batch_size))
    }

    /// Runs `fill` (which pops a batch from the ring) in the hand-over turn and queues the
    /// batch it filled: batches are queued in the order they were popped.
    pub fn hand_over<R>(&self, batch: Vec<Record>, fill: impl FnOnce(&mut Vec<Record>) -> R) -> R {
        let mut batch = batch;
        let _turn = lock(&self.turn);
        let result = fill(&mut batch);
        if batch.is_empty() {
            lock(&self.spares).push(batch);
        } else {
            lock(&self.pending).push_back(batch);
        }
        result
    }

    /// Commits until nothing is pending, reporting each transaction to `committed` (called
    /// without the writer held). When it returns `Ok`, every batch this thread handed over is
    /// committed, by this call or by another consumer's (a failure in that other call makes
    /// every later call fail).
    ///
    /// # Errors
    /// The sink's: that transaction's records are not stored. After any failure, every call
    /// fails without writing.
    pub fn commit_pending(
        &self,
        clock: &Clock,
        mut committed: impl FnMut(&Commit<'_>),
    ) -> anyhow::Result<()> {
        let mut take = Vec::new();
        loop {
            let mut writer = lock(&self.writer);
            // Holding the writer: whatever a previous holder took is committed (or failed).
            if self.failed.load(Ordering::Relaxed) {
                return Err(anyhow!(
                    "not committed: an earlier commit of this run failed"
                ));
            }
            self.take_pending(&mut take);
            if take.is_empty() {
                return Ok(());
            }
            let started = clock.now();
            let result = writer.write(&take);
            let committed_at = clock.now();
            if result.is_err() {
                self.failed.store(true, Ordering::Relaxed);
            }
            drop(writer);
            result?;
            committed(&Commit {
                batches: &take,
                started,
                committed: committed_at,
            });
            // Drop the records before taking the pool's lock: freeing them takes a while.
            take.iter_mut().for_each(Vec::clear);
            lock(&self.spares).append(&mut take);
        }
    }

    /// Moves pending batches into `take`, oldest first: at least one, and no more than
    /// `batch_size` rows.
    fn take_pending(&self, take: &mut Vec<Vec<Record>>) {
        let mut pending = lock(&self.pending);
        let mut rows = 0;
        while let Some(next) = pending.front() {
            if !take.is_empty() && rows + next.len() > self.batch_size {
                break;
            }
            rows += next.len();
            take.extend(pending.pop_front());
        }
    }

    /// The writer itself (holding it keeps commits out).
    pub fn writer(&self) -> &Mutex<S> {
        &self.writer
    }

    pub fn into_writer(self) -> S {
        self.writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Sink> Positions for GroupCommit<S> {
    fn register(&self, file: Option<&FileKey>) -> anyhow::Result<Resume> {
        lock(&self.writer).register(file)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose first write fails; it records every batch it is asked to write.
    #[derive(Debug, Default)]
    struct FailsOnce {
        writes: Vec<Vec<u64>>,
    }

    impl Sink for FailsOnce {
        fn write(&mut self, batches: &[Vec<Record>]) -> anyhow::Result<()> {
            self.writes
                .push(batches.iter().flatten().map(|r| r.seq).collect());
            if self.writes.len() == 1 {
                return Err(anyhow!("disk on fire"));
            }
            Ok(())
        }

        fn register(&mut self, _: Option<&FileKey>) -> anyhow::Result<Resume> {
            Ok(Resume::default())
        }
    }

    fn record(seq: u64) -> Record {
        Record {
            intended_ns: 0,
            created_at: 0,
            producer: 1,
            seq,
            end_offset: seq + 1,
            tail: 0,
            replaces: false,
            text: String::new(),
        }
    }

    #[test]
    fn after_a_failed_commit_nothing_later_is_committed() {
        let clock = Clock::new();
        let sink = GroupCommit::new(FailsOnce::default(), 1);
        sink.hand_over(Vec::new(), |b| b.push(record(0)));
        sink.hand_over(Vec::new(), |b| b.push(record(1)));
        // One row per transaction: the first (line 0) fails.
        assert!(sink.commit_pending(&clock, |_| {}).is_err());
        // Line 1 is still pending; committing it would move the file's position past line 0.
        let again = sink.commit_pending(&clock, |_| {});
        assert!(again.is_err(), "a commit after a failure must fail");
        assert_eq!(
            sink.into_writer().writes,
            [vec![0]],
            "line 1 reached the sink"
        );
    }
}
