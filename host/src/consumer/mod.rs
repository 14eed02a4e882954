//! A consumer: wait until the ring has a record, pop a batch in its hand-over turn (outside the
//! writer), queue it for group commit (see `sink::group_commit`), commit what is pending, and
//! record the latency of every record it committed.
//!
//! Records the sink did not store are settled too (dead-lettered or counted as not stored,
//! see `sink::group_commit`), and their latency is recorded at the time the run gave up on
//! them, so a stall shows in the figures.
//!
//! A batch is what the ring holds when the consumer comes for it, grown while the sink is busy
//! with another commit, up to `batch_size` records or `batch_wait` (see [`Consumer::fill`]); a
//! closed and drained ring ends the consumer after it commits what it holds.
//!
//! In a scaled run (`--consumers MIN..MAX`, see [`scaler`]) a consumer also ends when asked to
//! retire: between batches, after everything it took is committed, so nothing is lost.

pub mod scaler;

mod lanes;

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use pc_core::{Clock, PopError};

use crate::flow::ByteGate;
use crate::message::{Acknowledge, Record};
use crate::queue::Queue;
use crate::sink::{Fate, GroupCommit, Settled, Sink};
use crate::telemetry::{ConsumerStats, bump};

/// How long a consumer of a scaled run waits for a first record before it looks again whether
/// it is to retire.
const RETIRE_CHECK: Duration = Duration::from_millis(10);

/// How often a consumer gathering records looks again whether the sink is still busy.
const GATHER_SLICE: Duration = Duration::from_micros(50);

/// What [`Consumer::fill`] put in its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filled {
    /// Nothing: another consumer took the records first.
    Nothing,
    /// Records, and the ring is still open (or not yet drained).
    Records,
    /// Records or none, and the ring is closed and drained.
    Closed,
}

pub struct Consumer<'a, S> {
    pub ring: &'a Queue,
    pub sink: &'a GroupCommit<S>,
    pub clock: &'a Clock,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Wait up to `batch_wait` for the batch to fill even while the sink is free
    /// (`--batch-wait-ms` given); otherwise gather only while it is busy.
    pub batch_wait_fixed: bool,
    /// Messages intended before this instant are left out of the latency histogram.
    pub warmup_end_ns: u64,
    pub stats: &'a ConsumerStats,
    /// Ingest runs: the in-flight byte budget, given back as records are settled.
    pub gate: Option<&'a ByteGate>,
    /// Called when this consumer first sees that the sink has failed: stops the run.
    pub on_sink_failure: &'a (dyn Fn() + Sync),
    /// A broker source: told of every record settled (acknowledged once settled).
    pub acks: Option<&'a dyn Acknowledge>,
    /// A scaled run: where retirements are asked for and waits reported.
    pub scaling: Option<&'a scaler::Shared>,
}

impl<S> std::fmt::Debug for Consumer<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("batch_size", &self.batch_size)
            .field("batch_wait", &self.batch_wait)
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Consumer<'_, S> {
    /// Runs until the ring is closed and drained, settling every record it pops (a failed
    /// sink stops the run through `on_sink_failure`; the records are still settled).
    pub fn run(self) {
        let mut told = false;
        loop {
            let closed = match self.wait() {
                Err(PopError::Closed) => true,
                Err(PopError::Empty) => false,
                Ok(()) => match self
                    .sink
                    .hand_over(self.sink.spare(), |batch| self.fill(batch))
                {
                    Filled::Nothing => false,
                    filled => {
                        self.sink
                            .commit_pending(self.clock, |settled| self.record(settled));
                        filled == Filled::Closed
                    }
                },
            };
            if !told && self.sink.has_failed() {
                told = true;
                (self.on_sink_failure)();
            }
            if closed || self.scaling.is_some_and(scaler::Shared::take_retirement) {
                return;
            }
        }
    }

    /// Waits, outside the hand-over turn, until the ring has a record for [`Self::fill`]:
    /// `Empty` in a scaled run after [`RETIRE_CHECK`] with none (an idle consumer may be the one
    /// to retire), `Closed` once closed and drained.
    ///
    /// Waiting here rather than in the turn means a consumer waiting for records does not hold
    /// the turn: the others wait on the ring too, not on the turn's lock, so one push wakes one
    /// consumer, and a consumer done filling wakes nobody. (A consumer waiting in the turn would
    /// make each batch wake the next one to wait in its place: a second wake-up per batch, which
    /// on a VM costs tens of microseconds of CPU.)
    fn wait(&self) -> Result<(), PopError> {
        self.ring
            .wait_ready(self.scaling.is_some().then_some(RETIRE_CHECK))
    }

    /// Fills `batch` in the hand-over turn.
    ///
    /// Takes what the ring holds (nothing, if another consumer took it since [`Self::wait`]
    /// said there was something); then, only while the sink is busy committing someone else's
    /// batch (or checkpointing), gathers more, up to `batch_size` records or `batch_wait`. A
    /// free sink gets the batch at once: batches grow with the load (while commits are in
    /// flight) instead of waiting a fixed time. With `batch_wait_fixed` (`--batch-wait-ms`
    /// given) it gathers up to `batch_wait` regardless.
    fn fill(&self, batch: &mut Vec<Record>) -> Filled {
        match self.ring.try_pop_batch(batch, self.batch_size) {
            Ok(_) => {}
            Err(PopError::Empty) => return Filled::Nothing,
            Err(PopError::Closed) => return Filled::Closed,
        }
        if let Some(scaling) = self.scaling {
            // The longest wait in the batch: FIFO holds only per producer (and per lane; a
            // lanes pop takes the highest lane's records first), so look at all of them.
            if let Some(oldest) = batch.iter().map(|r| r.intended_ns).min() {
                scaling.waited(self.clock.now().saturating_sub(oldest));
            }
        }
        let mut taken = batch.len();
        let mut closed = false;
        let gather = || self.batch_wait_fixed || self.sink.is_busy();
        if !self.batch_wait.is_zero() && batch.len() < self.batch_size && gather() {
            let deadline = Instant::now() + self.batch_wait;
            while batch.len() < self.batch_size && gather() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.ring.pop_batch_timeout(
                    batch,
                    self.batch_size - batch.len(),
                    left.min(GATHER_SLICE),
                ) {
                    Ok(n) => taken += n,
                    Err(PopError::Empty) => {}
                    Err(PopError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        bump(&self.stats.consumed, taken as u64);
        if closed {
            Filled::Closed
        } else {
            Filled::Records
        }
    }

    /// Counts records this consumer settled, and each one's latency.
    fn record(&self, s: &Settled<'_>) {
        let rows = s.records.len() as u64;
        if let Some(gate) = self.gate {
            gate.release(s.records.iter().map(|m| (m.lane, m.text.len() as u64)));
        }
        let st = self.stats;
        if s.fate == Fate::Committed {
            st.commit
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .saturating_record(s.at.saturating_sub(s.started).max(1));
            st.batch_rows
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(rows);
        }
        let latencies = s
            .records
            .iter()
            .filter(|m| m.intended_ns >= self.warmup_end_ns)
            .map(|m| s.at.saturating_sub(m.intended_ns).max(1));
        st.settle(|st| count_settled(st, s), latencies);
        if let Some(acks) = self.acks {
            acks.settled(s.records, !matches!(s.fate, Fate::NotStored { .. }));
        }
        if !st.lanes.is_empty() {
            lanes::record(&st.lanes, s, self.warmup_end_ns);
        }
    }
}

/// Bumps `st`'s settled counters for `s` (under the latency lock: `ConsumerStats::settle`).
fn count_settled(st: &ConsumerStats, s: &Settled<'_>) {
    let rows = s.records.len() as u64;
    match s.fate {
        Fate::Committed => {
            let bytes: u64 = s.records.iter().map(|m| m.text.len() as u64).sum();
            bump(&st.stored, rows - s.duplicates);
            bump(&st.duplicates, s.duplicates);
            bump(&st.bytes, bytes);
            bump(&st.batches, 1);
        }
        Fate::DeadLettered => bump(&st.dead_lettered, rows),
        Fate::NotStored { rereadable } => {
            bump(&st.not_stored, rows);
            if rereadable {
                bump(&st.rereadable, rows);
            }
        }
    }
    if s.unconfirmed && s.fate != Fate::Committed {
        bump(&st.unconfirmed, rows);
    }
}

#[cfg(test)]
mod tests;
