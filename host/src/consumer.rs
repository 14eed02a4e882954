//! A consumer: pop a batch from the ring (outside any lock), hand it to the shared writer
//! (group commit, see `sink.rs`), and record the latency of every message it committed.
//!
//! A batch is closed when it holds `batch_size` messages or `batch_wait` has passed since its
//! first message arrived, whichever is first; a closed and drained ring ends the consumer after
//! it commits what it holds.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use pc_core::{Clock, HeapRing, PopError};

use crate::producer::Msg;
use crate::report::{ConsumerStats, bump};
use crate::sink::{Commit, SharedWriter};

#[derive(Debug)]
pub struct Consumer<'a> {
    pub ring: &'a HeapRing<Msg>,
    pub sink: &'a SharedWriter,
    pub clock: &'a Clock,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Messages intended before this instant are left out of the latency histogram.
    pub warmup_end_ns: u64,
    pub stats: &'a ConsumerStats,
}

impl Consumer<'_> {
    /// Runs until the ring is closed and drained; an error is a failed commit (its messages
    /// are lost, and the caller must stop the run).
    pub fn run(self) -> anyhow::Result<()> {
        loop {
            let mut batch = self.sink.spare();
            let closed = self.fill(&mut batch);
            self.sink
                .submit(batch, self.clock, |commit| self.record(commit))?;
            if closed {
                return Ok(());
            }
        }
    }

    /// Fills `batch`; returns `true` once the ring is closed and drained.
    fn fill(&self, batch: &mut Vec<Msg>) -> bool {
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

    /// Counts a transaction this consumer committed, and each message's latency.
    fn record(&self, c: &Commit<'_>) {
        let rows: usize = c.batches.iter().map(Vec::len).sum();
        let bytes: usize = c.batches.iter().flatten().map(|m| m.text.len()).sum();
        bump(&self.stats.stored, rows as u64);
        bump(&self.stats.bytes, bytes as u64);
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
