//! Per-lane figures of a `--lanes` run: what each lane produced, and how its records were
//! settled (stored, duplicate, dead-lettered, not stored) with their latency.
//!
//! A producer belongs to one lane (its `lane`), so a lane's produced count is its producers'
//! sum. Each consumer keeps one [`LaneCounters`] per lane, written only by that consumer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

use super::{Stats, histogram};

/// One consumer's counters for one lane.
#[derive(Debug)]
pub struct LaneCounters {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub not_stored: AtomicU64,
    /// Intended send (or read) -> committed or given up, ns, after the warm-up.
    pub latency: Mutex<Histogram<u64>>,
}

impl Default for LaneCounters {
    fn default() -> Self {
        Self {
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            not_stored: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
        }
    }
}

/// One lane's figures, summed over producers and consumers.
#[derive(Debug)]
pub struct LaneFigures {
    pub produced: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub not_stored: u64,
    pub latency: Histogram<u64>,
}

impl LaneFigures {
    /// Every record the lane produced is stored, a duplicate, dead-lettered or not stored.
    pub fn adds_up(&self) -> bool {
        self.produced == self.stored + self.duplicates + self.dead_lettered + self.not_stored
    }
}

impl Stats {
    /// Sets up per-lane counting: producer `i` belongs to lane `producer_lanes[i]`; every
    /// consumer made from now on ([`Stats::consumer`]) gets counters for `lanes` lanes.
    /// Without lanes (`lanes == 0`) nothing changes.
    pub fn set_lanes(&mut self, producer_lanes: &[u8], lanes: usize) {
        if lanes == 0 {
            return;
        }
        debug_assert!(
            self.consumers_made().next().is_none(),
            "lanes set after a consumer's counters were made: it would count no lane"
        );
        for (p, &lane) in self.producers.iter_mut().zip(producer_lanes) {
            p.lane = lane;
        }
        self.lanes = lanes;
    }

    /// Each lane's figures, in lane order; empty without lanes. Read while the run goes on,
    /// each lane's settled counts are at most its produced count, as in [`super::Counts`].
    pub fn lanes(&self) -> Vec<LaneFigures> {
        (0..self.lanes).map(|lane| self.lane(lane)).collect()
    }

    /// One lane's figures; settled counts are read before produced, as in `Stats::counts`.
    fn lane(&self, lane: usize) -> LaneFigures {
        // Acquire: pairs with the Release `bump`s, as in `Stats::counts`.
        let get = |f: fn(&LaneCounters) -> &AtomicU64| {
            self.consumers_made()
                .filter_map(|c| c.lanes.get(lane))
                .map(|l| f(l).load(Ordering::Acquire))
                .sum()
        };
        let (stored, duplicates) = (get(|l| &l.stored), get(|l| &l.duplicates));
        let (dead_lettered, not_stored) = (get(|l| &l.dead_lettered), get(|l| &l.not_stored));
        let mut latency = histogram();
        for c in self.consumers_made().filter_map(|c| c.lanes.get(lane)) {
            let h = c.latency.lock().unwrap_or_else(PoisonError::into_inner);
            latency
                .add(&*h)
                .expect("histograms with the same bounds always add");
        }
        LaneFigures {
            produced: self
                .producers
                .iter()
                .filter(|p| usize::from(p.lane) == lane)
                .map(|p| p.produced.load(Ordering::Acquire))
                .sum(),
            stored,
            duplicates,
            dead_lettered,
            not_stored,
            latency,
        }
    }
}
