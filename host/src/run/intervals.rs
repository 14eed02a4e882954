//! What a run does at each report interval: the progress line on stderr, the interval's row
//! kept with the data (`run_intervals`), and its latency histogram in the `--latency-log`.
//!
//! Rows are written through the first writer when it is free, never waiting on a commit or a
//! retry. When it is busy, they are left to the consumer that commits next, which writes them
//! right after its commit (a `Chore`): a sink that is always busy (a server database at a
//! steady rate) still keeps each row within a commit of its tick, so a killed run keeps the
//! rows up to its last seconds. Rows not written yet are kept and written with the next, or at
//! the end.

use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use crate::observe::latency_log::LatencyLog;
use crate::sink::group_commit::Chore;
use crate::sink::{AnySink, GroupCommit, Sink as _};
use crate::telemetry::Stats;
use crate::telemetry::interval::{Interval, Intervals};
use crate::telemetry::progress::Display;

/// The run's report intervals.
#[derive(Debug)]
pub struct Reporter {
    intervals: Intervals,
    /// Rows not written to the sink yet (shared with a posted chore).
    pending: Arc<Mutex<Vec<Interval>>>,
    latency_log: Option<LatencyLog>,
    display: Display,
    /// The first failure to keep rows or the log: said once, then the run goes on.
    warned: bool,
    /// The run is over (what fails now is said without "the run goes on").
    ended: bool,
}

impl Reporter {
    pub fn new(latency_log: Option<LatencyLog>, display: Display) -> Self {
        Self {
            intervals: Intervals::default(),
            pending: Arc::default(),
            latency_log,
            display,
            warned: false,
            ended: false,
        }
    }

    /// The interval ending `t_s` seconds into the run: shows progress, keeps its row and logs
    /// its latency.
    pub fn tick(
        &mut self,
        t_s: f64,
        stats: &Stats,
        (ring_len, capacity): (usize, usize),
        sink: &GroupCommit<AnySink>,
    ) {
        let interval = self.intervals.tick(t_s, stats, ring_len);
        let retrying = sink.health().retrying();
        self.display
            .show(&interval, stats, capacity, retrying.as_deref());
        self.log_latency(&interval);
        lock(&self.pending).push(interval);
        let writer = match sink.writer().try_lock() {
            Ok(w) => Some(w),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        match writer {
            Some(mut writer) => self.write_pending(&mut writer, false),
            None => {
                let pending = Arc::clone(&self.pending);
                sink.post_chore(Chore::new(move |writer: &mut AnySink| {
                    // Written without the rows' lock held, so a tick never waits on this write.
                    let rows = std::mem::take(&mut *lock(&pending));
                    if !rows.is_empty() && writer.record_intervals(&rows, false).is_err() {
                        // Left for the next try, before any row added meanwhile.
                        let mut pending = lock(&pending);
                        let later = std::mem::replace(&mut *pending, rows);
                        pending.extend(later);
                    }
                }));
            }
        }
    }

    /// The last interval (up to the end of the drain), and every row not written yet, through
    /// `writer` (the consumers are done).
    pub fn finish(&mut self, t_s: f64, stats: &Stats, writer: &mut AnySink) {
        self.ended = true;
        let interval = self.intervals.tick(t_s, stats, 0);
        if let Display::Bar(..) = self.display {
            self.display.show(&interval, stats, 0, None);
        }
        self.display.done();
        if interval.len_s > 0.0 {
            self.log_latency(&interval);
            lock(&self.pending).push(interval);
        }
        self.write_pending(writer, true);
    }

    /// Writes the pending rows. During the run (without `wait`) any failure (a lock another
    /// client holds, a lost connection) leaves them pending for the next tick, quietly: only
    /// the final write, which waits, says it failed, and then the rows are lost for good.
    fn write_pending(&mut self, writer: &mut AnySink, wait: bool) {
        let mut rows = lock(&self.pending);
        if rows.is_empty() {
            return;
        }
        match writer.record_intervals(&rows, wait) {
            Ok(()) => rows.clear(),
            Err(_) if !wait => {}
            Err(e) => {
                let n = rows.len();
                drop(rows);
                self.warn(&format!("{n} report intervals were not kept: {e:#}"));
            }
        }
    }

    fn log_latency(&mut self, interval: &Interval) {
        let Some(log) = &mut self.latency_log else {
            return;
        };
        let written = log.write(
            &self.intervals.last_latency,
            interval.t_s - interval.len_s,
            interval.len_s,
        );
        if let Err(e) = written {
            let path = log.path().display().to_string();
            self.warn(&format!("writing the latency log {path} failed: {e}"));
        }
    }

    fn warn(&mut self, what: &str) {
        if !self.warned {
            self.warned = true;
            let goes_on = if self.ended { "" } else { " (the run goes on)" };
            tracing::warn!("{what}{goes_on}");
        }
    }
}

fn lock(rows: &Mutex<Vec<Interval>>) -> std::sync::MutexGuard<'_, Vec<Interval>> {
    rows.lock().unwrap_or_else(PoisonError::into_inner)
}
