//! A consumer: pop a batch from the ring in its hand-over turn (outside the writer), queue it
//! for group commit (see `sink::group_commit`), commit what is pending, and record the latency
//! of every record it committed.
//!
//! A batch is closed when it holds `batch_size` records or `batch_wait` has passed since its
//! first record arrived, whichever is first; a closed and drained ring ends the consumer after
//! it commits what it holds.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use pc_core::{Clock, HeapRing, PopError};

use crate::flow::ByteGate;
use crate::message::Record;
use crate::sink::{Commit, GroupCommit, Sink};
use crate::telemetry::{ConsumerStats, bump};

#[derive(Debug)]
pub struct Consumer<'a, S> {
    pub ring: &'a HeapRing<Record>,
    pub sink: &'a GroupCommit<S>,
    pub clock: &'a Clock,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Messages intended before this instant are left out of the latency histogram.
    pub warmup_end_ns: u64,
    pub stats: &'a ConsumerStats,
    /// Ingest runs: the in-flight byte budget, given back as records commit.
    pub gate: Option<&'a ByteGate>,
}

impl<S: Sink> Consumer<'_, S> {
    /// Runs until the ring is closed and drained; an error is a failed commit (its records
    /// are not stored, and the caller must stop the run).
    pub fn run(self) -> anyhow::Result<()> {
        loop {
            let closed = self
                .sink
                .hand_over(self.sink.spare(), |batch| self.fill(batch));
            self.sink
                .commit_pending(self.clock, |commit| self.record(commit))?;
            if closed {
                return Ok(());
            }
        }
    }

    /// Fills `batch`; returns `true` once the ring is closed and drained.
    fn fill(&self, batch: &mut Vec<Record>) -> bool {
        if self.ring.pop_batch(batch, self.batch_size).is_err() {
            return true;
        }
        let mut taken = batch.len();
        let mut closed = false;
        if !self.batch_wait.is_zero() && batch.len() < self.batch_size {
            let deadline = Instant::now() + self.batch_wait;
            while batch.len() < self.batch_size {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self
                    .ring
                    .pop_batch_timeout(batch, self.batch_size - batch.len(), left)
                {
                    Ok(n) => taken += n,
                    Err(PopError::Empty) => break,
                    Err(PopError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        bump(&self.stats.consumed, taken as u64);
        closed
    }

    /// Counts a transaction this consumer committed, and each record's latency.
    fn record(&self, c: &Commit<'_>) {
        let rows: usize = c.batches.iter().map(Vec::len).sum();
        let bytes: usize = c.batches.iter().flatten().map(|m| m.text.len()).sum();
        bump(&self.stats.stored, rows as u64);
        bump(&self.stats.bytes, bytes as u64);
        if let Some(gate) = self.gate {
            gate.release(bytes as u64);
        }
        bump(&self.stats.batches, 1);
        self.stats
            .commit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(c.committed.saturating_sub(c.started).max(1));
        let mut latency = self
            .stats
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for m in c.batches.iter().flatten() {
            if m.intended_ns >= self.warmup_end_ns {
                latency.saturating_record(c.committed.saturating_sub(m.intended_ns).max(1));
            }
        }
    }
}
