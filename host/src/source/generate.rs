//! The generator: tokens from the shared bucket -> synthetic messages -> the ring.
//!
//! Each loop takes up to `chunk` tokens with one partial take, builds one message per token
//! stamped with that token's due instant (its intended send time), and pushes them with one
//! batch push. Without a bucket (`--rps 0`) a chunk is stamped with the clock reading taken
//! when it is built.
//!
//! With a bucket, each message's lateness (the clock reading when its token was taken minus
//! the token's due instant) goes into the producer's built-late histogram: the part of its
//! latency spent before it existed, while its producer was not running (a busy or stalled
//! machine) or was still pushing an earlier chunk into a full ring.

use std::sync::PoisonError;

use super::Context;
use super::rate::Take;
use crate::message::{Record, generated_text};
use crate::telemetry::ProducerStats;

/// One generator thread.
#[derive(Debug)]
pub struct Generator<'a> {
    pub id: u32,
    pub cx: Context<'a>,
    /// How many messages this producer makes (count mode), or `None` (until stopped).
    pub quota: Option<u64>,
    /// Pre-built padding, `payload_size` dots.
    pub padding: &'a str,
    pub stats: &'a ProducerStats,
}

impl Generator<'_> {
    /// Runs until the quota is met, the deadline passes, the run stops, or the ring is closed.
    pub fn run(self) {
        let mut seq = 0u64;
        let mut buf: Vec<Record> = Vec::with_capacity(self.cx.chunk as usize);
        loop {
            let want = match self.quota {
                Some(q) => (q - seq).min(self.cx.chunk),
                None => self.cx.chunk,
            };
            if want == 0 {
                return;
            }
            let Take::Go { grant, now } = self.cx.take(want) else {
                return;
            };
            let created_at = self.cx.unix(now);
            match grant {
                None => {
                    for _ in 0..want {
                        buf.push(self.message(seq, now, created_at));
                        seq += 1;
                    }
                }
                Some(grant) => {
                    let bucket = self.cx.bucket.expect("a grant comes from the bucket");
                    let mut late = (self.stats.built_late.0)
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    for due in bucket.schedule(&grant) {
                        if due >= self.cx.measure_from {
                            late.saturating_record(now.saturating_sub(due).max(1));
                        }
                        buf.push(self.message(seq, due, created_at));
                        seq += 1;
                    }
                }
            }
            if !self.cx.push(&mut buf, self.stats) {
                return; // the ring was closed: the run is being torn down
            }
        }
    }

    fn message(&self, seq: u64, intended_ns: u64, created_at: i64) -> Record {
        Record {
            intended_ns,
            created_at,
            producer: self.id,
            seq,
            end_offset: 0,
            tail: 0,
            replaces: false,
            text: generated_text(self.id, seq, self.padding),
            delivery: None,
            lane: self.cx.lane,
        }
    }
}
