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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pc_core::{Clock, TokenBucket};

use crate::message::Record;
use crate::queue::Queue;
use crate::telemetry::{ProducerStats, bump};

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
        let pushed = self.ring.push_all(usize::from(self.lane), buf, self.clock);
        if pushed.blocked_ns > 0 {
            bump(&stats.blocked_ns, pushed.blocked_ns);
        }
        bump(&stats.produced, pushed.records as u64);
        pushed.records == built
    }
}

/// Takes up to `n` records of a `--messages` budget shared by the sources (`u64::MAX`: no
/// limit); returns how many were taken.
pub fn claim(budget: &AtomicU64, n: u64) -> u64 {
    if budget.load(Ordering::Relaxed) == u64::MAX {
        return n;
    }
    let mut got = 0;
    let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        got = left.min(n);
        Some(left - got)
    });
    got
}
