//! The bounded queue between the sources and the consumers: one pc-core ring, or with
//! `--lanes` one ring per lane with a priority pop (pc-core's `HeapLanes`: the highest
//! non-empty lane first). Two variants, so that a run without lanes takes exactly the plain
//! ring's path.
//!
//! Close then drain, as for the ring: after [`Queue::close`] pushes fail, and pops return what
//! is left, then `Closed`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use pc_core::{CapacityError, Closed, HeapLanes, HeapRing, PopError};

use crate::message::Record;
use crate::telemetry::{ProducerStats, bump};

/// Makes pc-core's sleep/wake handshake a fence on both sides instead of `membarrier`, before
/// the first ring is built (a no-op after). Every push and pop here is a batch, so a barrier
/// per call costs little, while consumers and producers go to sleep and wake thousands of
/// times a second at moderate rates, and each `membarrier` interrupts the other CPUs running
/// pc-host and waits for them: on a 2-vCPU VM that cost more than the rest of a sleep
/// (`docs/performance-log.md`, "wake-ups that cost less").
fn choose_fences() {
    // Correct either way: `false` only means another ring decided first.
    let _ = pc_core::use_fence_instructions();
}

/// The ring, or the lanes.
#[derive(Debug)]
pub enum Queue {
    Ring(HeapRing<Record>),
    /// Lane 0 first. pc-core's default starvation guard: one pop in 8 looks at a lower lane
    /// first, so a busy higher lane cannot starve the others.
    Lanes(HeapLanes<Record>),
}

impl Queue {
    /// One ring of `capacity` slots.
    ///
    /// # Errors
    /// A capacity the ring cannot use.
    pub fn ring(capacity: usize) -> Result<Self, CapacityError> {
        choose_fences();
        HeapRing::try_with_capacity(capacity).map(Self::Ring)
    }

    /// `lanes` lanes of `capacity` slots each.
    ///
    /// # Errors
    /// A capacity the ring cannot use, or no lanes.
    pub fn lanes(capacity: usize, lanes: usize) -> Result<Self, CapacityError> {
        choose_fences();
        HeapLanes::try_with_capacities(&vec![capacity; lanes]).map(Self::Lanes)
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        match self {
            Self::Ring(r) => r.capacity(),
            Self::Lanes(l) => (0..l.lanes()).map(|i| l.capacity(i)).sum(),
        }
    }

    /// Records held now (a snapshot).
    pub fn len(&self) -> usize {
        match self {
            Self::Ring(r) => r.len(),
            Self::Lanes(l) => l.len(),
        }
    }

    /// Records held in `lane` now (a snapshot); the ring is lane 0.
    pub fn lane_len(&self, lane: usize) -> usize {
        match self {
            Self::Ring(r) if lane == 0 => r.len(),
            Self::Ring(_) => 0,
            Self::Lanes(l) if lane < l.lanes() => l.lane_len(lane),
            Self::Lanes(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Self::Ring(r) => r.is_empty(),
            Self::Lanes(l) => l.is_empty(),
        }
    }

    /// Closes it: pushes fail from now on, pops drain what is left. `true` for the call that
    /// closed it.
    pub fn close(&self) -> bool {
        match self {
            Self::Ring(r) => r.close(),
            Self::Lanes(l) => l.close(),
        }
    }

    /// Whether the queue is closed (every lane, with lanes).
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Ring(r) => r.is_closed(),
            Self::Lanes(l) => l.is_closed(),
        }
    }

    /// Pushes all of `buf` into `lane` (0 for the ring), waiting while it is full; stops at a
    /// close. `buf` is left with the records that did not go in, in order (none unless the
    /// queue was closed: the run is being torn down).
    ///
    /// Returns how many went in. Counts into `counts`: each record as `produced` when it goes
    /// in (never one that did not), and the wait for room as `blocked`, readable while it
    /// lasts.
    pub fn push_all(&self, lane: usize, buf: &mut Vec<Record>, counts: &ProducerStats) -> usize {
        let mut items = buf.drain(..);
        let mut counted = Counted {
            items: &mut items,
            produced: &counts.produced,
        };
        let mut pushed = match self {
            Self::Ring(ring) => ring.try_push_batch(&mut counted),
            Self::Lanes(lanes) => lanes.try_push_batch(lane, &mut counted),
        }
        .unwrap_or(0);
        if counted.size_hint().0 > 0 {
            let began = counts.blocked.begin();
            pushed += match self {
                Self::Ring(ring) => ring.push_batch(&mut counted),
                Self::Lanes(lanes) => lanes.push_batch(lane, &mut counted),
            }
            .unwrap_or_else(|closed| closed.0);
            counts.blocked.end(began);
        }
        // Closed: what the queue did not take goes back (a rare path, so the copy).
        let rest: Vec<Record> = items.collect();
        buf.extend(rest);
        pushed
    }

    /// Pops up to `max` records into `out`, waiting for at least one.
    ///
    /// # Errors
    /// [`Closed`] once closed and drained.
    pub fn pop_batch(&self, out: &mut Vec<Record>, max: usize) -> Result<usize, Closed> {
        match self {
            Self::Ring(r) => r.pop_batch(out, max),
            Self::Lanes(l) => l.pop_batch(out, max),
        }
    }

    /// Pops up to `max` records into `out` if any is ready. Never waits.
    ///
    /// # Errors
    /// [`PopError::Empty`] if none is ready, [`PopError::Closed`] once closed and drained.
    pub fn try_pop_batch(&self, out: &mut Vec<Record>, max: usize) -> Result<usize, PopError> {
        match self {
            Self::Ring(r) => r.try_pop_batch(out, max),
            Self::Lanes(l) => l.try_pop_batch(out, max),
        }
    }

    /// Waits, popping nothing, until a pop would find a record, or at most `timeout` if given
    /// (pc-core's `wait_ready`: woken by the push, passing no wake-up on). Another consumer may
    /// pop it first.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    pub fn wait_ready(&self, timeout: Option<Duration>) -> Result<(), PopError> {
        match (self, timeout) {
            (Self::Ring(r), None) => r.wait_ready().map_err(|_| PopError::Closed),
            (Self::Ring(r), Some(t)) => r.wait_ready_timeout(t),
            (Self::Lanes(l), None) => l.wait_ready().map_err(|_| PopError::Closed),
            (Self::Lanes(l), Some(t)) => l.wait_ready_timeout(t),
        }
    }

    /// Pops up to `max` records into `out`, waiting at most `timeout` for at least one.
    ///
    /// # Errors
    /// [`PopError::Empty`] if the time ran out, [`PopError::Closed`] once closed and drained.
    pub fn pop_batch_timeout(
        &self,
        out: &mut Vec<Record>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, PopError> {
        match self {
            Self::Ring(r) => r.pop_batch_timeout(out, max, timeout),
            Self::Lanes(l) => l.pop_batch_timeout(out, max, timeout),
        }
    }
}

/// Records taken from `items`, each counted `produced` as it is taken. The ring (or a lane's
/// ring) takes an item only once it has claimed a slot for it, and publishes it only after
/// taking it: so a record is counted before any consumer can pop it, and one the ring did not
/// take is never counted.
struct Counted<'a, I> {
    items: I,
    produced: &'a AtomicU64,
}

impl<I: Iterator<Item = Record>> Iterator for Counted<'_, I> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let record = self.items.next()?;
        bump(self.produced, 1);
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pc-host's queue, ring or lanes, makes pc-core wake sleepers with fences, never
    /// `membarrier` (which cost more than the rest of a sleep on a 2-vCPU VM): checked in a
    /// fresh process per probe, this test binary running only that probe, where no other ring
    /// has decided first.
    #[test]
    fn the_queue_wakes_sleepers_with_fences_not_membarrier() {
        if !membarrier_available() {
            println!(
                "SKIP: no expedited membarrier here: fences are in use whatever the queue does"
            );
            return;
        }
        for probe in ["fence_probe_ring_queue", "fence_probe_lanes_queue"] {
            let probe = format!("queue::tests::{probe}");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([&probe, "--exact", "--nocapture", "--test-threads", "1"])
                .env("PC_FENCE_PROBE", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{probe}: {stdout}{stderr}");
            assert!(
                stdout.contains("1 passed"),
                "{probe} did not run:\n{stdout}"
            );
        }
    }

    /// Whether the kernel offers the expedited private `membarrier` (asked without registering).
    fn membarrier_available() -> bool {
        const QUERY: libc::c_int = 0;
        const WANTED: libc::c_long = (1 << 3) | (1 << 4); // PRIVATE_EXPEDITED and its REGISTER
        // SAFETY: `membarrier(QUERY, 0, 0)` reads and writes no memory of ours.
        let supported = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0, 0) };
        supported >= 0 && supported & WANTED == WANTED
    }

    /// Run by the test above in a fresh process; does nothing otherwise.
    #[test]
    fn fence_probe_ring_queue() {
        if std::env::var_os("PC_FENCE_PROBE").is_none() {
            return;
        }
        let _queue = Queue::ring(8).unwrap();
        assert!(
            pc_core::use_fence_instructions(),
            "the ring registered for membarrier"
        );
    }

    /// Run by the test above in a fresh process; does nothing otherwise.
    #[test]
    fn fence_probe_lanes_queue() {
        if std::env::var_os("PC_FENCE_PROBE").is_none() {
            return;
        }
        let _queue = Queue::lanes(8, 2).unwrap();
        assert!(
            pc_core::use_fence_instructions(),
            "the lanes registered for membarrier"
        );
    }

    fn record(seq: u64) -> Record {
        Record {
            seq,
            ..Record::default()
        }
    }

    #[test]
    fn a_full_lower_lane_never_holds_back_a_push_to_a_higher_lane_nor_its_pop() {
        let counts = ProducerStats::default();
        let q = Queue::lanes(2, 2).unwrap();
        let mut low = vec![record(10), record(11)];
        assert_eq!(q.push_all(1, &mut low, &counts), 2);
        assert_eq!(q.lane_len(1), 2, "the low lane is full");
        let mut high = vec![record(0), record(1)];
        let waited_before = counts.blocked.total_ns();
        assert_eq!(q.push_all(0, &mut high, &counts), 2);
        assert_eq!(
            counts.blocked.total_ns(),
            waited_before,
            "the high lane's push did not wait"
        );
        assert!(high.is_empty());
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 4), Ok(4));
        let seqs: Vec<u64> = out.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 10, 11], "the high lane first");
        assert_eq!((q.capacity(), q.len()), (4, 0));
    }

    fn seqs(buf: &[Record]) -> Vec<u64> {
        buf.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn after_a_close_a_push_takes_nothing_and_hands_every_record_back() {
        let counts = ProducerStats::default();
        for q in [Queue::ring(4).unwrap(), Queue::lanes(4, 2).unwrap()] {
            assert!(q.close());
            let mut buf = vec![record(0), record(1)];
            assert_eq!(q.push_all(1, &mut buf, &counts), 0);
            assert_eq!(seqs(&buf), [0, 1], "nothing dropped");
            assert_eq!(q.pop_batch(&mut Vec::new(), 4), Err(Closed(())));
        }
    }

    #[test]
    fn a_push_blocked_on_a_full_queue_that_closes_hands_back_what_did_not_go_in() {
        let counts = ProducerStats::default();
        for q in [Queue::ring(4).unwrap(), Queue::lanes(4, 1).unwrap()] {
            std::thread::scope(|s| {
                s.spawn(|| {
                    // Closes once the four slots are taken: the pusher holds two more.
                    crate::test_support::wait_until("the four slots are taken", || q.len() >= 4);
                    q.close();
                });
                let mut buf: Vec<Record> = (0..6).map(record).collect();
                assert_eq!(q.push_all(0, &mut buf, &counts), 4);
                assert_eq!(seqs(&buf), [4, 5], "the two that did not fit, in order");
            });
            let mut out = Vec::new();
            assert_eq!(q.pop_batch(&mut out, 8), Ok(4));
            assert_eq!(seqs(&out), [0, 1, 2, 3]);
        }
    }
}
