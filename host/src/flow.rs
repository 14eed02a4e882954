//! The byte budget of records in flight: read by a source and not yet committed.
//!
//! The ring bounds how many records are in flight; this bounds their bytes, so an input of
//! long lines cannot fill memory whatever `--max-record-bytes` allows. A source waits (and
//! counts the wait as blocked) until its chunk fits; consumers give the bytes back once
//! committed. A chunk larger than the whole budget is let through when nothing else is in
//! flight, so a run always makes progress.
//!
//! With `--lanes` each lane has its own share of the budget, so a lower lane's backlog never
//! holds back a higher lane's source at the gate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Bytes in flight for ingest sources.
pub const IN_FLIGHT_BYTES: u64 = 256 << 20;
/// A source's chunk ends once its records hold this many bytes (plus at most one record).
pub const CHUNK_BYTES: u64 = 1 << 20;

/// The most record bytes an ingest run holds: the budget, plus each source's chunk being
/// filled or waiting at the gate.
pub fn ingest_bound(sources: usize, max_record_bytes: u64) -> u64 {
    let per_source = 2 * (CHUNK_BYTES + max_record_bytes);
    IN_FLIGHT_BYTES.saturating_add((sources as u64).saturating_mul(per_source))
}

/// How often a waiting source looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A counting gate over bytes (see the module docs): one budget per lane (one without lanes).
#[derive(Debug)]
pub struct ByteGate {
    /// Each lane's budget.
    limit: u64,
    /// Bytes in flight, per lane.
    used: Mutex<Vec<u64>>,
    freed: Condvar,
}

impl ByteGate {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: Mutex::new(vec![0]),
            freed: Condvar::new(),
        }
    }

    /// `limit` shared evenly by the `fed` lanes of `lanes` that have a source (at least a
    /// chunk each; a lane without one never takes its budget); one budget for 0 or 1 lanes.
    pub fn per_lane(limit: u64, lanes: usize, fed: usize) -> Self {
        if lanes <= 1 {
            return Self::new(limit);
        }
        Self {
            limit: (limit / fed.max(1) as u64).max(CHUNK_BYTES),
            used: Mutex::new(vec![0; lanes]),
            freed: Condvar::new(),
        }
    }

    /// Takes `n` bytes of `lane`'s budget, waiting while they do not fit. Returns `false`
    /// (having taken nothing) if `stop` is set while waiting.
    pub fn acquire(&self, lane: u8, n: u64, stop: &AtomicBool) -> bool {
        // Relaxed: a flag polled between waits; a late read only waits one more check.
        self.acquire_unless(lane, n, || stop.load(Ordering::Relaxed))
    }

    /// As [`Self::acquire`], giving up once `give_up()` says so (looked at before each wait).
    pub fn acquire_unless(&self, lane: u8, n: u64, give_up: impl Fn() -> bool) -> bool {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let i = usize::from(lane).min(used.len() - 1);
        while used[i] > 0 && used[i].saturating_add(n) > self.limit {
            if give_up() {
                return false;
            }
            used = self
                .freed
                .wait_timeout(used, STOP_CHECK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        used[i] = used[i].saturating_add(n);
        true
    }

    /// Gives bytes back (records committed): `(lane, bytes)` each.
    pub fn release(&self, freed: impl IntoIterator<Item = (u8, u64)>) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let last = used.len() - 1;
        for (lane, n) in freed {
            let i = usize::from(lane).min(last);
            used[i] = used[i].saturating_sub(n);
        }
        self.freed.notify_all();
    }

    /// Bytes in flight now, in all lanes.
    pub fn used(&self) -> u64 {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .sum()
    }
}

/// The most records a source takes tokens for and pushes at once: about 1 ms of the rate,
/// shared among the `threads` taking tokens (at least 1; a source that keeps pace takes one
/// reserved token at a time, one that fell behind the tokens already due, up to this); without
/// a rate, a fixed chunk that the ring can hold. Each source holds up to this many records it
/// built or read.
pub fn chunk(rps: u64, threads: usize, capacity: usize) -> u64 {
    let c = if rps == 0 {
        256
    } else {
        rps / 1000 / threads.max(1) as u64
    };
    c.clamp(1, (capacity as u64 / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_is_about_a_millisecond_per_thread() {
        assert_eq!(chunk(100_000, 10, 65_536), 10);
        assert_eq!(chunk(500, 10, 65_536), 1);
        assert_eq!(chunk(0, 1, 65_536), 256);
        assert_eq!(chunk(0, 1, 4), 2);
        assert_eq!(chunk(1_000_000_000, 1, 1024), 512);
    }

    #[test]
    fn a_source_waits_until_committed_bytes_are_released() {
        let gate = ByteGate::new(100);
        let stop = AtomicBool::new(false);
        assert!(gate.acquire(0, 60, &stop));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.acquire(0, 60, &stop));
            // The waiter cannot pass until 60 bytes come back: release them.
            gate.release([(0, 60)]);
            assert!(waiter.join().unwrap());
        });
        assert_eq!(gate.used(), 60);
    }

    #[test]
    fn an_oversized_chunk_passes_alone_and_a_stop_ends_the_wait() {
        let gate = ByteGate::new(100);
        let stop = AtomicBool::new(false);
        assert!(
            gate.acquire(0, 500, &stop),
            "alone, it may exceed the budget"
        );
        stop.store(true, Ordering::Relaxed);
        assert!(!gate.acquire(0, 1, &stop), "stopped while full");
        assert_eq!(gate.used(), 500);
    }

    #[test]
    fn a_wait_ends_only_when_its_own_condition_says_so() {
        let gate = ByteGate::new(100);
        assert!(gate.acquire_unless(0, 100, || false));
        let looks = std::cell::Cell::new(0);
        // Full: the waiter looks, waits, looks again, and gives up on the third look.
        let give_up = || {
            looks.set(looks.get() + 1);
            looks.get() >= 3
        };
        assert!(!gate.acquire_unless(0, 1, give_up));
        assert_eq!((looks.get(), gate.used()), (3, 100), "nothing taken");
    }

    #[test]
    fn a_full_lane_never_holds_back_another_lane_at_the_gate() {
        let gate = ByteGate::per_lane(4 * CHUNK_BYTES, 2, 2);
        let stop = AtomicBool::new(false);
        assert!(gate.acquire(1, 2 * CHUNK_BYTES, &stop));
        stop.store(true, Ordering::Relaxed);
        assert!(!gate.acquire(1, 1, &stop), "lane 1 is full");
        assert!(
            gate.acquire(0, 2 * CHUNK_BYTES, &stop),
            "lane 0 has its own budget"
        );
        gate.release([(1, 2 * CHUNK_BYTES), (0, CHUNK_BYTES)]);
        assert_eq!(gate.used(), CHUNK_BYTES);
    }

    #[test]
    fn a_lane_without_a_source_leaves_its_budget_to_the_fed_ones() {
        // Two lanes, one fed: the fed lane may hold the whole budget.
        let gate = ByteGate::per_lane(4 * CHUNK_BYTES, 2, 1);
        let stop = AtomicBool::new(true);
        assert!(gate.acquire(0, CHUNK_BYTES, &stop));
        assert!(
            gate.acquire(0, 3 * CHUNK_BYTES, &stop),
            "within the whole budget"
        );
        assert!(!gate.acquire(0, 1, &stop), "past the whole budget");
    }
}
