//! Dynamic consumers (`--consumers MIN..MAX`): the rule that decides, once per
//! `--scale-interval`, whether to add or remove a consumer, and the shared state consumers read
//! to retire or to report how long records waited.
//!
//! The rule ([`Policy::observe`]) is a pure function of one [`Observation`] per tick and the
//! ticks before it; it reads no clock, so it is tested without time. Per tick:
//! - *pressure*: the queue is past near-empty and deeper than at the last tick, or at least
//!   half the ring is full, or a record popped in the interval had waited in the ring at least
//!   one whole interval;
//! - *idle*: the queue is near empty (at most 1/64 of the ring) and no record popped in the
//!   interval waited a whole interval;
//! - anything else is neither, and restarts both counts.
//!
//! [`UP_TICKS`] pressure ticks in a row add one consumer (up to MAX); [`DOWN_TICKS`] idle
//! ticks in a row remove one (down to MIN). After a change both counts restart, so the next
//! change needs a full run of ticks of its own: the gap between "near empty" and "growing or
//! half full", and the longer run needed to go down, keep it from flapping.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Pressure ticks in a row that add a consumer.
pub const UP_TICKS: u32 = 2;
/// Idle ticks in a row that remove a consumer.
pub const DOWN_TICKS: u32 = 3;
/// The queue is near empty at or below `capacity / NEAR_EMPTY_PART` records.
pub const NEAR_EMPTY_PART: usize = 64;

/// What the scaler sees at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Records queued now (in the ring, plus those consumers popped and have not settled yet:
    /// a batch held through a commit's retries is still backlog), and the ring's capacity.
    pub depth: usize,
    pub capacity: usize,
    /// The longest any record popped since the last tick had waited in the ring (from the time
    /// it was read, or due for a generated one, to its pop), ns; 0 when none was popped. The
    /// ring cannot be peeked, so this is the wait of the oldest record a consumer took, not of
    /// the one still at the head.
    pub waited_ns: u64,
}

/// A change the rule asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub from: usize,
    pub to: usize,
    /// Why, for the event line.
    pub why: String,
}

impl Change {
    pub fn direction(&self) -> &'static str {
        if self.to > self.from { "up" } else { "down" }
    }
}

/// The scaling rule (see the module docs) and its memory of past ticks.
#[derive(Debug)]
pub struct Policy {
    min: usize,
    max: usize,
    interval_ns: u64,
    /// Consumers running (asked to run) now.
    current: usize,
    last_depth: usize,
    pressure: u32,
    idle: u32,
}

impl Policy {
    /// Starts at `min` consumers.
    ///
    /// # Panics
    /// If `min` is 0 or more than `max`.
    pub fn new(min: usize, max: usize, interval_ns: u64) -> Self {
        assert!(0 < min && min <= max, "consumers range {min}..{max}");
        Self {
            min,
            max,
            interval_ns,
            current: min,
            last_depth: 0,
            pressure: 0,
            idle: 0,
        }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// Takes one tick's observation; returns the change to make, if any (already counted as
    /// made: call [`Policy::undo`] if it could not be).
    pub fn observe(&mut self, o: Observation) -> Option<Change> {
        let near_empty = (o.capacity / NEAR_EMPTY_PART).max(1);
        let half = (o.capacity / 2).max(1);
        let growing = o.depth > near_empty && o.depth > self.last_depth;
        let waited = o.waited_ns >= self.interval_ns;
        let reason = if o.depth >= half {
            Some(format!(
                "queue {} records (the ring and consumers' hands; ring {} slots), at least half \
                 full",
                o.depth, o.capacity
            ))
        } else if growing {
            Some(format!(
                "queue grew from {} to {} records",
                self.last_depth, o.depth
            ))
        } else if waited {
            Some(format!(
                "a record waited {:.3} s in the queue",
                o.waited_ns as f64 / 1e9
            ))
        } else {
            None
        };
        self.last_depth = o.depth;
        match reason {
            Some(_) => {
                self.pressure += 1;
                self.idle = 0;
            }
            None if o.depth <= near_empty => {
                self.idle += 1;
                self.pressure = 0;
            }
            None => {
                self.pressure = 0;
                self.idle = 0;
            }
        }
        if self.pressure >= UP_TICKS && self.current < self.max {
            // The ticks' reasons can differ (growing, then half full): name the latest as such.
            let why = format!(
                "under pressure for {UP_TICKS} intervals, now: {}",
                reason.unwrap_or_default()
            );
            return Some(self.change(self.current + 1, why));
        }
        if self.idle >= DOWN_TICKS && self.current > self.min {
            let why = format!(
                "queue at most {near_empty} records for {DOWN_TICKS} intervals (now {})",
                o.depth
            );
            return Some(self.change(self.current - 1, why));
        }
        None
    }

    /// The change `observe` returned could not be made (a thread could not start).
    pub fn undo(&mut self, change: &Change) {
        self.current = change.from;
    }

    fn change(&mut self, to: usize, why: String) -> Change {
        let from = self.current;
        self.current = to;
        self.pressure = 0;
        self.idle = 0;
        Change { from, to, why }
    }
}

/// What consumers of a scaled run share with the scaler.
#[derive(Debug, Default)]
pub struct Shared {
    /// Consumers asked to retire and not retired yet: whichever consumer comes to its check
    /// next (between batches, all it took committed) takes one and ends.
    retire: AtomicUsize,
    /// The longest wait of a record popped since the scaler last looked, ns.
    waited_ns: AtomicU64,
}

impl Shared {
    /// Asks one consumer to retire.
    pub fn retire_one(&self) {
        // Relaxed: a count, publishing nothing; the read-modify-writes keep it exact.
        self.retire.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back a retirement asked for and not taken yet; `false` if there is none.
    pub fn cancel_retirement(&self) -> bool {
        self.take_retirement()
    }

    /// Whether this consumer should retire now (it took one of the retirements asked for).
    pub fn take_retirement(&self) -> bool {
        // Relaxed: as in `retire_one`; a consumer that retires has committed what it took.
        self.retire
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// A consumer popped a record that had waited `ns` in the ring.
    pub fn waited(&self, ns: u64) {
        // Relaxed: a statistic, publishing nothing.
        self.waited_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// The longest wait since the last call, ns (0: nothing popped).
    pub fn take_waited(&self) -> u64 {
        // Relaxed: as in `waited`.
        self.waited_ns.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
