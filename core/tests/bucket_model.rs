//! Property test: the bucket against a simple sequential reference model.
//!
//! The model is the specification written the plainest way: exact `i128`/`u128` arithmetic,
//! real division, no fixed point, no bias, no atomics. "Token `k` exists once
//! `floor(now * rate / period) >= k`; the bucket has handed out tokens up to `last`; a request
//! for `n` at `now` takes tokens `max(last, T(now) - burst) + 1 ..= + n` if they all exist."
//! Random sequences of requests, with `now` stepping forwards, backwards (stale readings) and
//! jumping far ahead (idle), must get exactly the model's answers, and the model's grants must
//! respect the over-grant bound.

use std::time::Duration;
use std::vec::Vec;

use pc_core::{Denied, TokenBucket};
use proptest::prelude::*;

/// The reference model.
struct Model {
    rate: u128,
    period: u128,
    burst: i128,
    /// The clock index of the last token handed out (negative while the initial fill lasts).
    last: i128,
}

/// What a call returned, in a comparable form: `(count, first_due, due)` or the refusal.
type Outcome = Result<(u64, u64, u64), Denied>;

impl Model {
    fn tokens(&self, now: u64) -> i128 {
        (now as u128 * self.rate / self.period) as i128
    }

    /// The instant token `k` comes into existence: the least `t` with `t * rate >= k * period`.
    fn due(&self, k: i128) -> u64 {
        if k <= 0 {
            return 0;
        }
        let t = (k as u128 * self.period).div_ceil(self.rate);
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    fn available(&self, now: u64) -> i128 {
        let t = self.tokens(now);
        (t - self.last.max(t - self.burst)).max(0)
    }

    fn take(&mut self, count: i128, now: u64) -> Outcome {
        let first = self.last.max(self.tokens(now) - self.burst) + 1;
        self.last = first + count - 1;
        Ok((count as u64, self.due(first), self.due(self.last)))
    }

    fn not_yet(&self, n: i128, now: u64) -> Outcome {
        let ready_at = self.due(self.last + n);
        // `u64::MAX` is "never" (beyond the clock's range), in both fields.
        let wait_ns = match ready_at {
            u64::MAX => u64::MAX,
            due => due.saturating_sub(now),
        };
        Err(Denied::NotYet { ready_at, wait_ns })
    }

    fn try_acquire(&mut self, n: u64, now: u64) -> Outcome {
        if n as i128 > self.burst {
            return Err(Denied::ExceedsBurst {
                requested: n,
                burst: self.burst as u64,
            });
        }
        if n == 0 {
            return Ok((0, now, now));
        }
        if self.available(now) >= n as i128 {
            self.take(n as i128, now)
        } else {
            self.not_yet(n as i128, now)
        }
    }

    fn try_acquire_up_to(&mut self, n: u64, now: u64) -> Outcome {
        if n == 0 {
            return Ok((0, now, now));
        }
        match self.available(now) {
            0 => self.not_yet(1, now),
            there => self.take(there.min(n as i128), now),
        }
    }
}

fn observe(outcome: Result<pc_core::Grant, Denied>) -> Outcome {
    outcome.map(|g| (g.count(), g.first_due(), g.due()))
}

/// One step of a scenario: which call, how many tokens, how far `now` moves.
#[derive(Clone, Debug)]
enum Op {
    /// `try_acquire(n)` after moving `now` by `dt` (in 1/64 of a token interval).
    Acquire { n: u64, dt: i64 },
    /// `try_acquire_up_to(n)` likewise.
    UpTo { n: u64, dt: i64 },
    /// Jump ahead by `dt` token intervals (idle; `now` stays below 2^62), then `try_acquire_up_to(n)`.
    Idle { n: u64, dt: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..40u64, -256..1024i64).prop_map(|(n, dt)| Op::Acquire { n, dt }),
        4 => (0..40u64, -256..1024i64).prop_map(|(n, dt)| Op::UpTo { n, dt }),
        1 => (0..40u64, 0..10_000u64).prop_map(|(n, dt)| Op::Idle { n, dt }),
    ]
}

/// (rate, period): per second, minute and hour, odd periods, and up to 2e9 per second.
fn rate() -> impl Strategy<Value = (u64, Duration)> {
    prop_oneof![
        (1..=2_000_000_000u64).prop_map(|r| (r, Duration::from_secs(1))),
        (1..=1_000u64).prop_map(|r| (r, Duration::from_secs(60))),
        (1..=1_000u64).prop_map(|r| (r, Duration::from_secs(3600))),
        (1..=1_000_000u64, 1..=10_000_000_000u64).prop_map(|(r, p)| (r, Duration::from_nanos(p))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_the_sequential_reference_model(
        (rate, period) in rate(),
        burst in prop_oneof![1..=4u64, 1..=40u64, 1..=1_000_000u64],
        start in prop_oneof![Just(None), (0..1u64 << 45).prop_map(Some)],
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let period_ns = period.as_nanos();
        let mut bucket = TokenBucket::new(rate, period, burst);
        let mut model = Model { rate: rate as u128, period: period_ns, burst: burst as i128, last: -(burst as i128) };
        let mut now: u64 = 0;
        if let Some(t0) = start {
            bucket = bucket.starting_empty_at(t0);
            model.last = model.tokens(t0);
            now = t0;
        }
        // One token interval in 1/64 ns (at least 1), for scaling the steps.
        let tick = ((period_ns * 64) / rate as u128).max(1) as i128;
        let mut log = Vec::new();
        for op in ops {
            let (n, outcome, expected) = match op {
                Op::Acquire { n, dt } => {
                    now = (now as i128 + dt as i128 * tick / 64).max(0) as u64;
                    (n, observe(bucket.try_acquire(n, now)), model.try_acquire(n, now))
                }
                Op::UpTo { n, dt } => {
                    now = (now as i128 + dt as i128 * tick / 64).max(0) as u64;
                    (n, observe(bucket.try_acquire_up_to(n, now)), model.try_acquire_up_to(n, now))
                }
                Op::Idle { n, dt } => {
                    now = (now + (dt as i128 * tick / 64) as u64).min(1 << 62);
                    (n, observe(bucket.try_acquire_up_to(n, now)), model.try_acquire_up_to(n, now))
                }
            };
            prop_assert_eq!(outcome, expected, "n={} now={}", n, now);
            prop_assert_eq!(bucket.available(now) as i128, model.available(now));
            if let Ok((count, ..)) = outcome {
                log.push((now, count));
            }
        }
        // The model itself keeps the bound, on every interval of `now` values.
        log.sort_unstable();
        let (mut total, mut lowest) = (0i128, i128::MAX);
        for &(t, count) in &log {
            lowest = lowest.min(total - model.tokens(t));
            total += count as i128;
            prop_assert!(total - model.tokens(t) - lowest <= model.burst);
        }
    }

    /// Every token of a grant is due at the model's instant, in order.
    #[test]
    fn schedule_matches_the_model(
        (rate, period) in rate(),
        burst in 1..=200u64,
        t0 in 0..1u64 << 40,
        later in 0..400u64,
    ) {
        let bucket = TokenBucket::new(rate, period, burst).starting_empty_at(t0);
        let model = Model { rate: rate as u128, period: period.as_nanos(), burst: burst as i128, last: 0 };
        let first = model.tokens(t0);
        let now = t0 + model.due(later as i128).min(1 << 50);
        if let Ok(grant) = bucket.try_acquire_up_to(u64::MAX, now) {
            let due: Vec<u64> = grant.schedule().collect();
            let last = model.tokens(now);
            let expected: Vec<u64> = ((last - grant.count() as i128 + 1)..=last).map(|k| model.due(k)).collect();
            prop_assert_eq!(due.len() as u64, grant.count());
            prop_assert!(last - first >= grant.count() as i128);
            prop_assert_eq!(due, expected);
        }
    }
}
