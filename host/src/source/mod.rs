//! Sources: threads that build or read records and push them into the ring.
//!
//! - `generate.rs`: synthetic messages from `--producers` threads, paced by the token bucket.
//! - `lines.rs` with `input.rs`: one record per line from stdin or a file (following it as it
//!   grows, across rotation), resuming a file where the last committed line ended.
//! - `nats.rs`: messages from a JetStream stream's durable consumer, acknowledged once settled.
//!
//! A full ring makes a source wait, never drop: memory stays bounded whatever the input size,
//! and the time spent waiting is counted.

pub mod generate;
pub mod input;
pub mod lines;
pub mod nats;
pub mod rate;
pub mod watch;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pc_core::{Clock, TokenBucket};

use crate::message::Record;
use crate::queue::Queue;
use crate::telemetry::ProducerStats;

/// What every source thread shares.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The ring (or the lanes) records are pushed into.
    pub ring: &'a Queue,
    /// The lane this source pushes into (0 without lanes).
    pub lane: u8,
    pub clock: &'a Clock,
    /// Unix ns at the clock's 0.
    pub unix_base: i64,
    /// Set when the run stops (duration, signal, error).
    pub stop: &'a AtomicBool,
    /// The end of `--duration` (clock ns): no token due at or after it is taken, so a run of
    /// `d` seconds at `r` records/s produces `r * d` however late the main thread wakes.
    pub deadline: Option<u64>,
    /// The shared token bucket; `None` when the rate is unlimited.
    pub bucket: Option<&'a TokenBucket>,
    /// Records asked for (and pushed) at once.
    pub chunk: u64,
    /// The end of `--warmup` (clock ns): messages due before it are left out of the latency
    /// and built-late figures.
    pub warmup_end_ns: u64,
}

impl Context<'_> {
    /// Unix ns for the clock reading `now`.
    pub fn unix(&self, now: u64) -> i64 {
        self.unix_base.saturating_add(now as i64)
    }

    /// Pushes all of `buf` into this source's lane (waiting while it is full) and counts it;
    /// returns `false` if the ring was closed (the run is being torn down) before all of it
    /// went in. `buf` is left with the records that did not go in.
    pub fn push(&self, buf: &mut Vec<Record>, stats: &ProducerStats) -> bool {
        let built = buf.len();
        self.ring.push_all(usize::from(self.lane), buf, stats) == built
    }
}

/// A `--messages` budget shared by the sources: the records still to accept, and how many of
/// them sources hold in claims not yet settled. A claim takes up to what is left; its taker
/// gives back what it did not use ([`unclaim`](Self::unclaim)) and then settles it
/// ([`release`](Self::release)). A source that finds nothing left ends only once no claim is
/// held ([`spent`](Self::spent)): another source holding the rest may give some back (it
/// reached the end of its file), and ending at once would leave that unread.
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
    held: AtomicU64,
}

impl Budget {
    /// `Some(n)`: `--messages n`; `None`: no limit.
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            left: AtomicU64::new(limit.unwrap_or(u64::MAX)),
            held: AtomicU64::new(0),
        }
    }

    fn unlimited(&self) -> bool {
        // Relaxed: u64::MAX is set once, before any source starts, and never changes.
        self.left.load(Ordering::Relaxed) == u64::MAX
    }

    /// Takes up to `n` (all `n` without a limit); what it took is held until released.
    pub fn claim(&self, n: u64) -> u64 {
        if self.unlimited() {
            return n;
        }
        // Held before it is taken, so that `spent` never sees it taken and not held.
        // AcqRel on `held`, here and below: `spent` reads it before `left`.
        self.held.fetch_add(n, Ordering::AcqRel);
        let mut got = 0;
        let _ = self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                got = left.min(n);
                Some(left - got)
            });
        self.held.fetch_sub(n - got, Ordering::AcqRel);
        got
    }

    /// Gives back `n` of a claim, unused, for any source to claim.
    pub fn unclaim(&self, n: u64) {
        if n > 0 && !self.unlimited() {
            // Release: seen by a `spent` that then sees the claim released.
            self.left.fetch_add(n, Ordering::Release);
        }
    }

    /// Settles claims that took `n` in all: what they took is used or given back.
    pub fn release(&self, n: u64) {
        if n > 0 && !self.unlimited() {
            // Release: after this claim's `unclaim`s, for `spent`'s Acquire.
            self.held.fetch_sub(n, Ordering::Release);
        }
    }

    /// Nothing is left, and no claim is held that could give some back: the budget is used.
    pub fn spent(&self) -> bool {
        // Acquire pairs with the Release in `release` (and `unclaim`): a claim seen released
        // had given back what it did not use.
        self.held.load(Ordering::Acquire) == 0 && self.left.load(Ordering::Acquire) == 0
    }

    /// Nothing is left to claim now (a claim held may still give some back).
    pub fn none_left(&self) -> bool {
        // Relaxed: a look; a claim decides.
        self.left.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_budget_is_spent_only_once_no_claim_held_can_give_some_back() {
        let budget = super::Budget::new(Some(150));
        // One source takes it all, for a chunk of 200.
        assert_eq!(budget.claim(200), 150);
        assert_eq!(budget.claim(10), 0, "nothing left now");
        assert!(!budget.spent(), "but the claim may give some back");
        // That source's file had 100 lines: it gives back 50 and settles.
        budget.unclaim(50);
        budget.release(150);
        assert!(!budget.spent());
        assert_eq!(budget.claim(200), 50, "another source takes the rest");
        assert!(!budget.spent(), "held");
        budget.release(50);
        assert!(budget.spent());
        assert_eq!(budget.claim(1), 0);
        // Without a limit: every claim gets all it asks for, and nothing is ever spent.
        let open = super::Budget::new(None);
        assert_eq!(open.claim(u64::MAX - 1), u64::MAX - 1);
        open.release(5);
        assert!(!open.spent());
    }

    use std::sync::atomic::{AtomicBool, Ordering};

    use pc_core::Clock;

    use super::Context;
    use crate::message::Record;
    use crate::queue::Queue;
    use crate::telemetry::{Counts, Stats, bump};

    /// A source's context on `ring`, pushing `chunk` records at a time, at no set rate (the
    /// sources' tests add a bucket, a deadline or a warm-up with `..context(..)`).
    pub(super) fn context<'a>(
        ring: &'a Queue,
        clock: &'a Clock,
        stop: &'a AtomicBool,
        chunk: u64,
    ) -> Context<'a> {
        Context {
            ring,
            lane: 0,
            clock,
            unix_base: 0,
            stop,
            deadline: None,
            bucket: None,
            chunk,
            warmup_end_ns: 0,
        }
    }

    fn record(seq: u64) -> Record {
        Record {
            intended_ns: 0,
            created_at: 0,
            producer: 0,
            seq,
            end_offset: 0,
            tail: 0,
            mark: 0,
            replaces: false,
            restarted: false,
            text: String::new(),
            delivery: None,
            lane: 0,
        }
    }

    /// A source pushing chunks far larger than the ring waits with part of each chunk already
    /// consumed and settled; every snapshot taken meanwhile must still add up, and no count
    /// may go down from one snapshot to the next.
    #[test]
    fn no_snapshot_counts_a_record_consumed_before_it_is_produced() {
        snapshots_add_up(&Queue::ring(4).expect("a valid capacity"));
    }

    /// As above with `--lanes`: a lane's records are pushed in batches as the ring's are, and
    /// counted produced before any consumer can pop them.
    #[test]
    fn no_snapshot_counts_a_lane_record_consumed_before_it_is_produced() {
        snapshots_add_up(&Queue::lanes(4, 2).expect("valid capacities"));
    }

    fn snapshots_add_up(ring: &Queue) {
        const CHUNK: u64 = 64;
        const RECORDS: u64 = CHUNK * 2_000;
        let stats = Stats::new(1, 1);
        let (clock, stop) = (Clock::new(), AtomicBool::new(false));
        let cx = context(ring, &clock, &stop, CHUNK);
        let drained = AtomicBool::new(false);
        let mut snapshots = 0u64;
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut buf = Vec::new();
                for start in (0..RECORDS).step_by(CHUNK as usize) {
                    buf.extend((start..start + CHUNK).map(record));
                    assert!(cx.push(&mut buf, &stats.producers[0]));
                }
                ring.close();
            });
            s.spawn(|| {
                // As a consumer does: counts what it popped, then what it settled.
                let counters = stats.consumer(0);
                let mut batch = Vec::new();
                while let Ok(n) = ring.pop_batch(&mut batch, 16) {
                    bump(&counters.consumed, n as u64);
                    bump(&counters.stored, n as u64);
                    batch.clear();
                }
                drained.store(true, Ordering::Release);
            });
            let mut last = stats.counts();
            while !drained.load(Ordering::Acquire) {
                let c = stats.counts();
                assert!(
                    c.settled() <= c.consumed && c.consumed <= c.produced,
                    "snapshot {snapshots} does not add up: {c:?}"
                );
                assert!(
                    c.produced >= last.produced
                        && c.consumed >= last.consumed
                        && c.stored >= last.stored,
                    "snapshot {snapshots} went down: {c:?} after {last:?}"
                );
                last = c;
                snapshots += 1;
                // Leave the core to the source and the consumer now and then.
                std::thread::yield_now();
            }
        });
        let end = stats.counts();
        assert_eq!(
            (end.produced, end.consumed, end.stored),
            (RECORDS, RECORDS, RECORDS)
        );
    }

    /// A source pushes four records into a two-slot ring that nobody pops, so it waits; once
    /// its wait shows in the counts (were a wait counted only at its end, it never would),
    /// `unblock` runs on the ring. Returns the counts during the wait, whether all four went
    /// in, the seqs left with the source, and the counts after.
    fn blocked_source(unblock: impl FnOnce(&Queue)) -> (Counts, bool, Vec<u64>, Counts) {
        let ring = Queue::ring(2).expect("a valid capacity");
        let stats = Stats::new(1, 1);
        let (clock, stop) = (Clock::new(), AtomicBool::new(false));
        let cx = context(&ring, &clock, &stop, 4);
        std::thread::scope(|s| {
            let source = s.spawn(|| {
                let mut buf: Vec<Record> = (0..4).map(record).collect();
                let all_in = cx.push(&mut buf, &stats.producers[0]);
                (all_in, buf.iter().map(|r| r.seq).collect::<Vec<_>>())
            });
            crate::test_support::wait_until("the wait shows in the counts", || {
                stats.counts().blocked_ns != 0
            });
            let during = stats.counts();
            unblock(&ring);
            let (all_in, left) = source.join().expect("the source");
            (during, all_in, left, stats.counts())
        })
    }

    /// While a source waits on a full ring, its wait is counted as it goes, not only once it
    /// is over: a stall shows in the progress line and the metrics while it lasts.
    #[test]
    fn a_source_waiting_on_a_full_ring_shows_the_wait_while_it_lasts() {
        let (during, all_in, _, after) = blocked_source(|ring| {
            let mut out = Vec::new();
            while out.len() < 4 {
                ring.pop_batch(&mut out, 4).expect("open");
            }
        });
        assert_eq!(during.produced, 2, "only what the ring took is counted");
        assert!(all_in, "all four went in");
        assert_eq!(after.produced, 4);
    }

    /// A ring closed under a waiting source (a failing run's teardown): the records it did not
    /// take stay with the source, uncounted, so the produced count neither overstates nor goes
    /// down (which a metrics scraper would take for a reset).
    #[test]
    fn a_ring_closed_under_a_waiting_source_counts_only_what_went_in() {
        let (during, all_in, left, after) = blocked_source(|ring| {
            ring.close();
        });
        assert!(!all_in);
        assert_eq!(left, [2, 3], "what the ring did not take stays, in order");
        assert_eq!((during.produced, after.produced), (2, 2));
    }
}
