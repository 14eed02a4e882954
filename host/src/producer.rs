//! A producer: tokens from the shared bucket -> messages -> the ring.
//!
//! Each loop takes up to `chunk` tokens with one partial take (`try_acquire_up_to`), builds one
//! message per token stamped with that token's due instant (its intended send time), and pushes
//! them with one batch push. A full ring makes the producer wait, never drop; the time spent
//! waiting is counted. Without a bucket (`--rps 0`) a chunk is stamped with the clock reading
//! taken when it is built.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pc_core::{Clock, HeapRing, TokenBucket};

use crate::report::{ProducerStats, bump};

/// One message, moved through the ring and written once.
#[derive(Debug)]
pub struct Msg {
    /// When the bucket scheduled it (monotonic ns of the run's clock).
    pub intended_ns: u64,
    /// When the producer built it, unix ns (the `created_at` column).
    pub created_at: i64,
    /// The producer's own sequence number, from 0.
    pub seq: u64,
    pub producer: u32,
    /// "Message from producer 2: #17", padded with '.' to the payload size.
    pub text: String,
}

/// The longest pause between two checks of the stop flag while waiting for tokens.
const MAX_NAP: Duration = Duration::from_millis(5);

/// Everything one producer needs; shared parts are borrowed from the pipeline.
#[derive(Debug)]
pub struct Producer<'a> {
    pub id: u32,
    pub ring: &'a HeapRing<Msg>,
    pub bucket: Option<&'a TokenBucket>,
    pub clock: &'a Clock,
    /// Unix ns at the clock's 0.
    pub unix_base: i64,
    pub stop: &'a AtomicBool,
    /// The end of the run's duration (clock ns): no token due at or after it is taken, so a
    /// run of `d` seconds at `r` msg/s produces `r * d` messages however late the main thread
    /// wakes to say stop.
    pub deadline: Option<u64>,
    /// How many messages this producer makes (count mode), or `None` (until `stop`).
    pub quota: Option<u64>,
    /// Tokens asked for per take (>= 1).
    pub chunk: u64,
    /// Pre-built padding, `payload_size` dots.
    pub padding: &'a str,
    pub stats: &'a ProducerStats,
}

impl Producer<'_> {
    /// Runs until the quota is met, the deadline passes, `stop` is set, or the ring is closed.
    pub fn run(self) {
        let mut seq = 0u64;
        let mut buf: Vec<Msg> = Vec::with_capacity(self.chunk as usize);
        let mut blocked_ns = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let want = match self.quota {
                Some(q) => (q - seq).min(self.chunk),
                None => self.chunk,
            };
            if want == 0 {
                break;
            }
            let now = self.clock.now();
            if self.deadline.is_some_and(|d| now >= d) {
                break;
            }
            let created_at = self.unix_base.saturating_add(now as i64);
            match self.bucket {
                None => {
                    for _ in 0..want {
                        buf.push(self.message(seq, now, created_at));
                        seq += 1;
                    }
                }
                Some(bucket) => match bucket.try_acquire_up_to(want, now) {
                    Ok(grant) => {
                        for due in bucket.schedule(&grant) {
                            buf.push(self.message(seq, due, created_at));
                            seq += 1;
                        }
                    }
                    Err(denied) => {
                        let wait = denied.wait_ns().map_or(MAX_NAP, Duration::from_nanos);
                        std::thread::sleep(wait.min(MAX_NAP));
                        continue;
                    }
                },
            }
            let built = buf.len() as u64;
            let pushed = self.push(&mut buf, &mut blocked_ns);
            bump(&self.stats.produced, pushed);
            self.stats.blocked_ns.store(blocked_ns, Ordering::Relaxed);
            if pushed < built {
                break; // the ring was closed: the run is being torn down
            }
        }
    }

    fn message(&self, seq: u64, intended_ns: u64, created_at: i64) -> Msg {
        Msg {
            intended_ns,
            created_at,
            seq,
            producer: self.id,
            text: text(self.id, seq, self.padding),
        }
    }

    /// Pushes all of `buf` (waiting while the ring is full); returns how many went in, fewer
    /// only if the ring was closed. `buf` is left empty.
    fn push(&self, buf: &mut Vec<Msg>, blocked_ns: &mut u64) -> u64 {
        let mut items = buf.drain(..);
        let mut pushed = self.ring.try_push_batch(&mut items).unwrap_or(0);
        if items.len() > 0 {
            let since = self.clock.now();
            pushed += match self.ring.push_batch(&mut items) {
                Ok(n) => n,
                Err(closed) => closed.0,
            };
            *blocked_ns += self.clock.now().saturating_sub(since);
        }
        pushed as u64
    }
}

/// "Message from producer {id}: #{seq}", padded with '.' to `padding.len()` bytes; a longer
/// text is kept whole.
pub fn text(id: u32, seq: u64, padding: &str) -> String {
    let mut s = String::with_capacity(padding.len().max(48));
    s.push_str("Message from producer ");
    push_decimal(&mut s, u64::from(id));
    s.push_str(": #");
    push_decimal(&mut s, seq);
    if let Some(pad) = padding.get(s.len()..) {
        s.push_str(pad);
    }
    s
}

fn push_decimal(s: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    s.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// How many tokens a producer asks for at once: about 1 ms of the rate, shared among the
/// producers (at least 1); without a rate, a fixed chunk that the ring can hold.
pub fn chunk(rps: u64, producers: usize, capacity: usize) -> u64 {
    let c = if rps == 0 {
        256
    } else {
        rps / 1000 / producers as u64
    };
    c.clamp(1, (capacity as u64 / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_padded_to_the_payload_and_never_cut() {
        let pad = ".".repeat(40);
        let t = text(2, 17, &pad);
        assert_eq!(t.len(), 40);
        assert!(t.starts_with("Message from producer 2: #17."));
        assert_eq!(text(2, 17, ""), "Message from producer 2: #17");
        assert_eq!(
            text(4095, u64::MAX, "..."),
            format!("Message from producer 4095: #{}", u64::MAX)
        );
        assert_eq!(text(0, 0, &".".repeat(25)), "Message from producer 0: #0");
    }

    #[test]
    fn chunk_is_about_a_millisecond_per_producer() {
        assert_eq!(chunk(100_000, 10, 65_536), 10);
        assert_eq!(chunk(500, 10, 65_536), 1);
        assert_eq!(chunk(0, 1, 65_536), 256);
        assert_eq!(chunk(0, 1, 4), 2);
        assert_eq!(chunk(1_000_000_000, 1, 1024), 512);
    }
}
