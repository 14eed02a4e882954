//! Counters, histograms, the header and the progress line. The final summary is in
//! `summary.rs`.
//!
//! Each thread writes only its own counters (padded to their own cache lines) and its own
//! histograms; the progress line and the summary read snapshots and merge them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

use crate::config::{Config, Stop};

/// Aligned to 128 bytes so that two threads' counters never share a cache line (or an
/// adjacent-line prefetch pair).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One producer's counters; only that producer writes them.
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Messages accepted into the ring.
    pub produced: AtomicU64,
    /// Nanoseconds spent waiting on a full ring.
    pub blocked_ns: AtomicU64,
}

/// One consumer's counters and histograms; only that consumer writes them.
#[derive(Debug)]
pub struct ConsumerStats {
    /// Messages taken from the ring.
    pub consumed: AtomicU64,
    /// Messages in committed transactions.
    pub stored: AtomicU64,
    /// Message text bytes in committed transactions.
    pub bytes: AtomicU64,
    /// Committed transactions.
    pub batches: AtomicU64,
    /// Intended send -> batch committed, ns, per message (after the warm-up).
    pub latency: Mutex<Histogram<u64>>,
    /// Insert + commit time per transaction, ns.
    pub commit: Mutex<Histogram<u64>>,
}

impl Default for ConsumerStats {
    fn default() -> Self {
        Self {
            consumed: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            commit: Mutex::new(histogram()),
        }
    }
}

/// A histogram of nanoseconds from 1 ns to one hour, 3 significant digits; larger values are
/// recorded as one hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

/// Adds to a counter only this thread writes (readers take snapshots): no read-modify-write.
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// All the counters of a run.
#[derive(Debug)]
pub struct Stats {
    pub producers: Vec<Padded<ProducerStats>>,
    pub consumers: Vec<Padded<ConsumerStats>>,
}

impl Stats {
    pub fn new(producers: usize, consumers: usize) -> Self {
        Self {
            producers: (0..producers).map(|_| Padded::default()).collect(),
            consumers: (0..consumers).map(|_| Padded::default()).collect(),
        }
    }

    pub fn produced(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.produced.load(Ordering::Relaxed))
            .sum()
    }

    pub fn blocked_ns(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.blocked_ns.load(Ordering::Relaxed))
            .sum()
    }

    fn sum(&self, field: impl Fn(&ConsumerStats) -> &AtomicU64) -> u64 {
        self.consumers
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .sum()
    }

    pub fn consumed(&self) -> u64 {
        self.sum(|c| &c.consumed)
    }

    pub fn stored(&self) -> u64 {
        self.sum(|c| &c.stored)
    }

    pub fn bytes(&self) -> u64 {
        self.sum(|c| &c.bytes)
    }

    pub fn batches(&self) -> u64 {
        self.sum(|c| &c.batches)
    }

    /// All consumers' latency histograms merged.
    pub fn latency(&self) -> Histogram<u64> {
        self.merge(|c| &c.latency)
    }

    /// All consumers' commit-time histograms merged.
    pub fn commit(&self) -> Histogram<u64> {
        self.merge(|c| &c.commit)
    }

    fn merge(&self, field: impl Fn(&ConsumerStats) -> &Mutex<Histogram<u64>>) -> Histogram<u64> {
        let mut all = histogram();
        for c in &self.consumers {
            let h = field(c).lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*h)
                .expect("histograms with the same bounds always add");
        }
        all
    }
}

/// The progress line's memory of the previous tick, for per-interval rates.
#[derive(Debug, Default)]
pub struct Progress {
    last_s: f64,
    last_produced: u64,
    last_stored: u64,
}

impl Progress {
    /// One progress line (for stderr) at `t_s` seconds into the run.
    pub fn line(&mut self, t_s: f64, stats: &Stats, ring_len: usize, capacity: usize) -> String {
        let produced = stats.produced();
        let stored = stats.stored();
        let dt = (t_s - self.last_s).max(1e-9);
        let in_rate = (produced - self.last_produced) as f64 / dt;
        let out_rate = (stored - self.last_stored) as f64 / dt;
        *self = Self {
            last_s: t_s,
            last_produced: produced,
            last_stored: stored,
        };
        let lat = stats.latency();
        let p99 = if lat.is_empty() {
            "-".to_string()
        } else {
            ms(lat.value_at_quantile(0.99))
        };
        format!(
            "[{t_s:7.1} s] produced {produced} ({in_rate:.0} msg/s) | stored {stored} \
             ({out_rate:.0} msg/s) | ring {ring_len}/{capacity} | p99 {p99} ms | blocked {:.3} s",
            stats.blocked_ns() as f64 / 1e9
        )
    }
}

/// Milliseconds with 3 decimals, from nanoseconds.
pub fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The header (for stderr): the effective configuration of a run.
pub fn header(cfg: &Config, run_id: i64, burst: u64, pinning: &str) -> String {
    let rate = match cfg.rps {
        0 => "unlimited rate (no bucket)".to_string(),
        r => format!("{r} msg/s in total through one shared token bucket (burst {burst})"),
    };
    let stop = match cfg.stop {
        Stop::After(d) => format!("for {} s", d.as_secs_f64()),
        Stop::Messages(n) => format!("{n} messages in total"),
    };
    let progress = cfg
        .report_interval
        .map_or("no progress lines".to_string(), |d| {
            format!("progress every {} s", d.as_secs_f64())
        });
    format!(
        "pc-host run {run_id} -> {} (WAL, synchronous={})\n  \
         {} producers, {} consumers, {rate}, {stop}\n  \
         ring {} slots; batches of up to {} rows or {} ms; payload {} bytes; warm-up {} s; {progress}\n  \
         pinning: {pinning}",
        cfg.db.display(),
        cfg.synchronous.as_str(),
        cfg.producers,
        cfg.consumers,
        cfg.capacity,
        cfg.batch_size,
        cfg.batch_wait.as_secs_f64() * 1000.0,
        cfg.payload_size,
        cfg.warmup.as_secs_f64(),
    )
}
