//! The generator: tokens from the shared bucket -> synthetic messages -> the ring.
//!
//! Each loop takes up to `chunk` tokens with one partial take, builds one message per token
//! stamped with that token's due instant (its intended send time), and pushes them with one
//! batch push. Without a bucket (`--rps 0`) a chunk is stamped with the clock reading taken
//! when it is built.
//!
//! With a bucket, the lateness of each message that goes into the ring (the clock reading
//! when its token was taken minus the token's due instant) goes into the producer's built-late
//! histogram: the part of its latency spent before it existed, waking up, or while its
//! producer was not running (a busy or stalled machine) or was still pushing an earlier chunk
//! into a full ring.

use std::sync::PoisonError;

use super::Context;
use super::rate::{Reserved, Take};
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
        // Each record's lateness in ns (0: not measured, due in the warm-up), kept beside `buf`
        // so that only the records that went into the ring are counted.
        let mut late: Vec<u64> = Vec::with_capacity(self.cx.chunk as usize);
        let mut reserved = Reserved::default();
        loop {
            let want = match self.quota {
                Some(q) => (q - seq).min(self.cx.chunk),
                None => self.cx.chunk,
            };
            if want == 0 {
                return;
            }
            let Take::Go { grant, now } = self.cx.take(want, &mut reserved) else {
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
                    for due in grant.schedule() {
                        let measured = due >= self.cx.warmup_end_ns;
                        late.push(if measured {
                            now.saturating_sub(due).max(1)
                        } else {
                            0
                        });
                        buf.push(self.message(seq, due, created_at));
                        seq += 1;
                    }
                }
            }
            let built = buf.len();
            let all_in = self.cx.push(&mut buf, self.stats);
            if !late.is_empty() {
                // One lateness per record built (the bucket's chunks), in push order.
                self.record_late(&late[..built - buf.len()]);
                late.clear();
            }
            if !all_in {
                return; // the ring was closed: the run is being torn down
            }
        }
    }

    /// Adds the lateness of records that went into the ring to this producer's histogram.
    fn record_late(&self, late: &[u64]) {
        let mut h = (self.stats.built_late.0)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &ns in late.iter().filter(|&&ns| ns > 0) {
            h.saturating_record(ns);
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
            mark: 0,
            replaces: false,
            restarted: false,
            text: generated_text(self.id, seq, self.padding),
            delivery: None,
            lane: self.cx.lane,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering::Relaxed;

    use pc_core::{Clock, TokenBucket};

    use super::Generator;
    use crate::queue::Queue;
    use crate::source::Context;
    use crate::source::tests::context;
    use crate::telemetry::ProducerStats;

    /// A chunk of 8 records built for a ring of 4 slots that is closed once full: the 4 that
    /// went in are produced and have a lateness; the 4 handed back have neither, so "built
    /// late" speaks of the same messages as the latency figures.
    #[test]
    fn only_records_that_went_into_the_ring_count_as_built_late() {
        let ring = Queue::ring(4).expect("a valid capacity");
        let (clock, stop) = (Clock::new(), AtomicBool::new(false));
        // Starts full: the first take gets all 8 tokens, already due.
        let bucket = TokenBucket::per_second(1_000_000, 8);
        let stats = ProducerStats::default();
        let cx = Context {
            bucket: Some(&bucket),
            ..context(&ring, &clock, &stop, 8)
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                let generator = Generator {
                    id: 0,
                    cx,
                    quota: Some(8),
                    padding: "",
                    stats: &stats,
                };
                generator.run();
            });
            crate::test_support::wait_until("four records are in", || ring.len() >= 4);
            ring.close();
        });
        assert_eq!(stats.produced.load(Relaxed), 4);
        let late = stats.built_late.0.lock().expect("not poisoned");
        assert_eq!(late.len(), 4);
    }
}
