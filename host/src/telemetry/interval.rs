//! Per-interval figures: what happened between two report ticks, for the progress line, the
//! `run_intervals` table and the latency log. Latency percentiles are of the messages settled
//! in the interval (not since the start), so a late stall shows in its own interval.

use hdrhistogram::Histogram;

use super::{Counts, Stats, histogram};

/// One report interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// The interval's end, seconds into the run, and its length.
    pub t_s: f64,
    pub len_s: f64,
    /// The run's counts at the interval's end (one snapshot: see `Counts`).
    pub counts: Counts,
    /// Records accepted, committed and rejected in the interval.
    pub produced: u64,
    pub stored: u64,
    pub rejected: u64,
    /// Ring length at the interval's end.
    pub queue_depth: u64,
    /// Of the messages settled in the interval (ns); `None` when none was.
    pub latency_p50: Option<u64>,
    pub latency_p99: Option<u64>,
    pub latency_max: Option<u64>,
    /// Of the commits in the interval (ns).
    pub commit_p99: Option<u64>,
    /// Consumers running at the interval's end.
    pub consumers: u64,
}

impl Interval {
    /// Records per second over the interval.
    pub fn rate(&self, n: u64) -> f64 {
        n as f64 / self.len_s.max(1e-9)
    }
}

/// The counters and histograms at the previous tick.
#[derive(Debug)]
pub struct Intervals {
    last_s: f64,
    produced: u64,
    stored: u64,
    rejected: u64,
    latency: Histogram<u64>,
    commit: Histogram<u64>,
    /// The last interval's latency histogram, for the latency log.
    pub last_latency: Histogram<u64>,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            last_s: 0.0,
            produced: 0,
            stored: 0,
            rejected: 0,
            latency: histogram(),
            commit: histogram(),
            last_latency: histogram(),
        }
    }
}

impl Intervals {
    /// The interval ending `t_s` seconds into the run.
    pub fn tick(&mut self, t_s: f64, stats: &Stats, queue_depth: usize) -> Interval {
        let (counts, latency) = stats.counts_and_latency();
        let (produced, stored, rejected) = (counts.produced, counts.stored, counts.rejected);
        let commit = stats.commit();
        let lat = since(&latency, &self.latency);
        let com = since(&commit, &self.commit);
        let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        let interval = Interval {
            t_s,
            len_s: t_s - self.last_s,
            counts,
            produced: produced - self.produced,
            stored: stored - self.stored,
            rejected: rejected - self.rejected,
            queue_depth: queue_depth as u64,
            latency_p50: q(&lat, 0.5),
            latency_p99: q(&lat, 0.99),
            latency_max: (!lat.is_empty()).then(|| lat.max()),
            commit_p99: q(&com, 0.99),
            consumers: stats.consumers_now(),
        };
        *self = Self {
            last_s: t_s,
            produced,
            stored,
            rejected,
            latency,
            commit,
            last_latency: lat,
        };
        interval
    }
}

/// `now - before`: the values recorded since `before` (a snapshot of the same histogram).
fn since(now: &Histogram<u64>, before: &Histogram<u64>) -> Histogram<u64> {
    let mut d = now.clone();
    // A snapshot is never ahead of a later one; if it were, the interval shows nothing.
    if d.subtract(before).is_err() {
        d.reset();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_holds_only_what_was_recorded_in_it() {
        let stats = Stats::new(1, 1);
        let mut iv = Intervals::default();
        stats
            .consumer(0)
            .latency
            .lock()
            .unwrap()
            .record(1_000_000)
            .unwrap();
        let first = iv.tick(1.0, &stats, 3);
        // Values read back within the histogram's 3 significant digits.
        assert_eq!(first.latency_max.map(|v| v / 100_000), Some(10));
        // A slow message in the second interval: its max is that one, the first is gone.
        stats
            .consumer(0)
            .latency
            .lock()
            .unwrap()
            .record(5_000_000_000)
            .unwrap();
        let second = iv.tick(2.0, &stats, 0);
        assert_eq!(second.latency_p50.map(|v| v / 100_000_000), Some(50));
        assert_eq!(second.queue_depth, 0);
        let third = iv.tick(3.0, &stats, 0);
        assert_eq!(third.latency_p99, None, "nothing settled in the third");
    }
}
