//! A source's time waiting on a full ring (or the byte gate), readable while it waits: a
//! stall shows in the progress line and the metrics as it happens, not once it is over.
//!
//! One writer (the source's own thread) and any number of readers. The three words are kept
//! consistent with a sequence lock: the writer makes `seq` odd while it changes them, and a
//! reader retries until it has read them all under one even `seq`. Every field is an atomic, so
//! a reader that races a write reads stale values and retries, never torn memory.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use crossbeam_utils::CachePadded;
use pc_core::Clock;

/// Time waited, as completed waits plus the one under way.
///
/// # Guarantees
/// - A wait is counted once: never both as under way and as completed.
/// - [`Blocked::total_ns`] never goes down from one read to a later one (it is a Prometheus
///   counter). A wait under way counts up to the reader's clock; when it ends it is added
///   whole, measured on the same clock inside the update, so to a time no earlier than any
///   read that saw it under way, but for the nanoseconds a clock read and a store take to
///   reach the other core. For those, a read never returns less than the largest one before.
#[derive(Debug, Default)]
pub struct Blocked {
    /// Odd while the writer changes the fields below.
    seq: AtomicU64,
    /// Completed waits, ns.
    done_ns: AtomicU64,
    /// `Clock::global()` ns + 1 when the wait under way began; 0 when not waiting.
    since: AtomicU64,
    /// The largest total a read has returned. Written by readers, so on a line of its own:
    /// a read then moves none of the writer's lines away from its core, it only shares them.
    shown: CachePadded<AtomicU64>,
}

impl Blocked {
    /// A wait begins now; returns its start, for [`Blocked::end`]. Writer only.
    pub fn begin(&self) -> u64 {
        self.begin_at(|| Clock::global().now())
    }

    /// The wait that began at `began` ends now; returns its length in ns. Writer only.
    pub fn end(&self, began: u64) -> u64 {
        self.end_at(began, || Clock::global().now())
    }

    /// Completed waits plus the one under way up to now, in ns; never less than an earlier
    /// read.
    pub fn total_ns(&self) -> u64 {
        let total = self.read_at(|| Clock::global().now());
        // Relaxed: `shown` orders nothing; fetch_max keeps reads from going down.
        total.max(self.shown.fetch_max(total, Ordering::Relaxed))
    }

    /// [`Blocked::begin`] on the clock `now`.
    fn begin_at(&self, now: impl FnOnce() -> u64) -> u64 {
        let mut began = 0;
        self.write(|| {
            began = now();
            self.since.store(began + 1, Ordering::Relaxed);
        });
        began
    }

    /// [`Blocked::end`] on the clock `now`, read inside the update (see the guarantees).
    fn end_at(&self, began: u64, now: impl FnOnce() -> u64) -> u64 {
        let mut waited = 0;
        self.write(|| {
            waited = now().saturating_sub(began);
            let done = self.done_ns.load(Ordering::Relaxed);
            self.done_ns.store(done + waited, Ordering::Relaxed);
            self.since.store(0, Ordering::Relaxed);
        });
        waited
    }

    /// Changes the fields in `f` under an odd `seq`. Writer only.
    fn write(&self, f: impl FnOnce()) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        // Release fence: a reader that sees any store of `f` also sees the odd `seq` before it
        // (pairs with the reader's Acquire fence), and so retries.
        fence(Ordering::Release);
        f();
        // Release: publishes `f`'s stores with the even `seq`; pairs with the reader's Acquire
        // load of `seq`.
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// Completed waits plus the one under way up to `now()`, read under one even `seq`.
    fn read_at(&self, now: impl Fn() -> u64) -> u64 {
        loop {
            // Acquire: pairs with the writer's Release store of an even `seq`.
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let done = self.done_ns.load(Ordering::Relaxed);
            let since = self.since.load(Ordering::Relaxed);
            // Read under the same `seq`: if it is unchanged below, the wait under way (if any)
            // had not ended when this clock was read, so it counts less than `end` will add.
            let now = now();
            // Acquire fence: pairs with the writer's Release fence (see `write`).
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                let under_way = if since == 0 {
                    0
                } else {
                    now.saturating_sub(since - 1)
                };
                return done + under_way;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn the_word_readers_write_shares_no_cache_line_with_the_writers_words() {
        let blocked = Blocked::default();
        let line = |p: *const AtomicU64| p as usize / 128;
        let shown = line(&*blocked.shown);
        for (name, word) in [
            ("seq", &blocked.seq),
            ("done_ns", &blocked.done_ns),
            ("since", &blocked.since),
        ] {
            assert_ne!(line(word), shown, "{name} shares the readers' line");
        }
    }

    #[test]
    fn a_wait_counts_while_under_way_and_once_when_over() {
        let blocked = Blocked::default();
        assert_eq!(blocked.read_at(|| 100), 0);
        let began = blocked.begin_at(|| 100);
        assert_eq!(
            blocked.read_at(|| 130),
            30,
            "under way: up to the reader's clock"
        );
        assert_eq!(blocked.end_at(began, || 150), 50);
        assert_eq!(
            blocked.read_at(|| 900),
            50,
            "over: counted once, no longer growing"
        );
        let began = blocked.begin_at(|| 1_000);
        assert_eq!(blocked.read_at(|| 1_007), 57);
        blocked.end_at(began, || 1_010);
        assert_eq!(blocked.read_at(|| 5_000), 60);
    }

    /// Waits of 3 ns every 7 ns on a made-up clock, read at a far later time `N`: a read
    /// between waits is `3k`; during wait `k + 1` it is `3k + (N - 7k) = N - 4k`. A torn read
    /// that counted a wait both ways would be `N - 4k + 3`, which no consistent read is.
    #[test]
    fn no_read_counts_a_wait_both_as_under_way_and_as_over() {
        const N: u64 = 1 << 40;
        let blocked = Blocked::default();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for k in 0..200_000 {
                    let began = blocked.begin_at(|| 7 * k);
                    blocked.end_at(began, || 7 * k + 3);
                }
                done.store(true, Ordering::Release);
            });
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                let r = blocked.read_at(|| N);
                let consistent = if r < N / 2 {
                    r.is_multiple_of(3)
                } else {
                    (N - r).is_multiple_of(4)
                };
                assert!(
                    consistent,
                    "read {reads}: {r} (N - r = {})",
                    N.wrapping_sub(r)
                );
                reads += 1;
            }
        });
        assert_eq!(blocked.read_at(|| N), 3 * 200_000);
    }

    #[test]
    fn total_ns_never_goes_down_and_counts_a_wait_under_way() {
        let blocked = Blocked::default();
        let began = blocked.begin();
        let first = blocked.total_ns();
        assert!(blocked.total_ns() >= first);
        let waited = blocked.end(began);
        assert!(blocked.total_ns() >= waited);
    }
}
