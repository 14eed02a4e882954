//! The token bucket's guarantees, one test each, named after the guarantee (see `pc_core::bucket`).
//!
//! Time is simulated throughout: `now` values are made up by the tests, never read from a clock,
//! and nothing waits. Expected token counts are computed here with plain `u128` division,
//! independently of the bucket's fixed point.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::vec::Vec;

use pc_core::{Denied, Grant, RateError, TokenBucket};

/// A deterministic xorshift64* generator: no dependency, reproducible failures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `floor(now * rate / period)`, exactly, the way the bucket's guarantees are stated.
fn exact_tokens(bucket: &TokenBucket, now: u64) -> i128 {
    let period = bucket.period().as_nanos();
    (now as u128 * bucket.rate() as u128 / period) as i128
}

/// Asserts the over-grant bound on every interval of `now` values at once: for all `t0 <= t1`,
/// the tokens granted by calls whose `now` lies in `[t0, t1]` number at most
/// `burst + T(t1) - T(t0)`, with `T` the exact token count (so `<= burst + ceil(rate * (t1 -
/// t0) / period)`).
///
/// `log` holds `(now, tokens granted)` per call, in any order. With the calls sorted by `now`
/// and `P` the running total, the bound for calls `i..=j` reads
/// `(P[j] - T[j]) - (P[i - 1] - T[i]) <= burst`, so one scan with a running minimum checks every
/// interval.
fn assert_never_over_granted(bucket: &TokenBucket, log: &mut [(u64, u64)], extra: i128) {
    log.sort_unstable();
    let burst = bucket.burst() as i128;
    let mut total: i128 = 0;
    let mut lowest_start = i128::MAX;
    let mut i = 0;
    while i < log.len() {
        let now = log[i].0;
        let t = exact_tokens(bucket, now);
        lowest_start = lowest_start.min(total - t);
        while i < log.len() && log[i].0 == now {
            total += log[i].1 as i128;
            i += 1;
        }
        let worst = total - t - lowest_start;
        assert!(
            worst <= burst + extra,
            "over-granted: {worst} tokens beyond the clock in an interval ending at {now}, burst {burst}"
        );
    }
}

/// A grant's own invariants.
fn check_grant(grant: &Grant, asked: u64, now: u64) {
    assert!(grant.count() <= asked);
    assert!(grant.first_due() <= grant.due(), "{grant:?}");
    assert!(grant.due() <= now, "{grant:?} at {now}");
}

const SECOND: u64 = 1_000_000_000;

/// Buckets of every shape the tests cover: (rate, period, burst).
fn shapes() -> Vec<(u64, Duration, u64)> {
    vec![
        (1, Duration::from_secs(1), 1),
        (500, Duration::from_secs(1), 5),
        (100_000, Duration::from_secs(1), 100),
        (1_000_000, Duration::from_secs(1), 1000),
        (300_000_000, Duration::from_secs(1), 64),
        (1_000_000_000, Duration::from_secs(1), 1_000_000),
        (7, Duration::from_secs(60), 3),
        (1, Duration::from_secs(3600), 2),
        (3, Duration::from_nanos(7), 10),
    ]
}

/// Average nanoseconds per token, at least 1.
fn interval(bucket: &TokenBucket) -> u64 {
    (bucket.period().as_nanos() / bucket.rate() as u128).max(1) as u64
}

#[test]
fn never_over_grants() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for (rate, period, burst) in shapes() {
        for start_empty in [false, true] {
            let t0 = rng.below(1 << 40);
            let mut bucket = TokenBucket::new(rate, period, burst);
            if start_empty {
                bucket = bucket.starting_empty_at(t0);
            }
            let step = interval(&bucket);
            let mut now = t0;
            let mut log = Vec::new();
            for _ in 0..20_000 {
                // Forward by up to 4 tokens' worth, sometimes backwards (a stale reading).
                if rng.below(5) == 0 {
                    now = now.saturating_sub(rng.below(step * 3 + 1)).max(t0);
                } else {
                    now += rng.below(step * 4 + 1);
                }
                let n = rng.below(burst + 2);
                let granted = if rng.below(2) == 0 {
                    bucket.try_acquire(n, now).map(|g| (g, n))
                } else {
                    bucket.try_acquire_up_to(n, now).map(|g| (g, n))
                };
                if let Ok((grant, asked)) = granted {
                    check_grant(&grant, asked, now);
                    log.push((now, grant.count()));
                }
            }
            assert!(log.iter().map(|e| e.1).sum::<u64>() > 0);
            assert_never_over_granted(&bucket, &mut log, 0);
            if start_empty {
                // No burst at all: since t0, at most T(now) - T(t0).
                let total: u64 = log.iter().map(|e| e.1).sum();
                let latest = log.iter().map(|e| e.0).max().unwrap();
                let due = exact_tokens(&bucket, latest) - exact_tokens(&bucket, t0);
                assert!(total as i128 <= due, "{total} > {due}");
            }
        }
    }
}

/// Four threads on one bucket, each with its own simulated clock: a shared time that any
/// thread may advance, read with a random per-thread lag (so each thread's readings are stale
/// and go backwards now and then). After the join, the bound must hold on every interval.
#[test]
fn never_over_grants_under_contention() {
    for (rate, burst, start_empty) in [
        (1_000_000_000, 4, false),
        (100_000_000, 1, true),
        (300_000_000, 32, false),
    ] {
        let t0 = 1 << 50;
        let mut bucket = TokenBucket::per_second(rate, burst);
        if start_empty {
            bucket = bucket.starting_empty_at(t0);
        }
        let time = AtomicU64::new(t0);
        let logs: Vec<Vec<(u64, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|id| {
                    let (bucket, time) = (&bucket, &time);
                    s.spawn(move || {
                        let mut rng =
                            Rng(0x9E37_79B9_7F4A_7C15
                                ^ (id + 1).wrapping_mul(0xFF51_AFD7_ED55_8CCD));
                        let mut log = Vec::new();
                        for _ in 0..50_000 {
                            if rng.below(4) == 0 {
                                time.fetch_add(rng.below(8), Ordering::Relaxed);
                            }
                            let now = time.load(Ordering::Relaxed) - rng.below(16).min(3);
                            let n = 1 + rng.below(burst + 1);
                            let outcome = if rng.below(2) == 0 {
                                bucket.try_acquire(n, now)
                            } else {
                                bucket.try_acquire_up_to(n, now)
                            };
                            if let Ok(grant) = outcome {
                                check_grant(&grant, n, now);
                                log.push((now, grant.count()));
                            }
                        }
                        log
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut log: Vec<(u64, u64)> = logs.into_iter().flatten().collect();
        assert!(!log.is_empty());
        assert_never_over_granted(&bucket, &mut log, 0);
        if start_empty {
            let total: u64 = log.iter().map(|e| e.1).sum();
            let latest = log.iter().map(|e| e.0).max().unwrap();
            assert!(total as i128 <= exact_tokens(&bucket, latest) - exact_tokens(&bucket, t0));
        }
    }
}

/// A greedy taker, in simulated time, receives exactly the tokens the exact rate issues, at
/// every rate from one per hour to 10^9 per second: so certainly within 0.01%. (Integer
/// nanoseconds per token would be +11% at 3e8/s, +0.1% at 3e6/s.)
#[test]
fn exact_over_the_long_run() {
    let mut rng = Rng(42);
    let cases: [(u64, Duration, u64); 9] = [
        (1, Duration::from_secs(1), 2_000_000 * SECOND),
        (500, Duration::from_secs(1), 20_000 * SECOND),
        (100_000, Duration::from_secs(1), 100 * SECOND),
        (1_000_000, Duration::from_secs(1), 100 * SECOND),
        (300_000_000, Duration::from_secs(1), 100 * SECOND),
        (999_999_999, Duration::from_secs(1), 100 * SECOND),
        (1_000_000_000, Duration::from_secs(1), 100 * SECOND),
        (1, Duration::from_secs(60), 200_000_000 * SECOND),
        (1, Duration::from_secs(3600), 5_000_000_000 * SECOND),
    ];
    for (rate, period, elapsed) in cases {
        for t0 in [0, 1 << 62] {
            let steps = 100_000;
            let mean_step = elapsed / steps;
            // Big enough that no step's tokens overflow the bucket: a greedy taker loses none.
            let burst = (2 * mean_step as u128 * rate as u128 / period.as_nanos()) as u64 + 2;
            let bucket = TokenBucket::new(rate, period, burst).starting_empty_at(t0);
            let mut now = t0;
            let mut granted: u64 = 0;
            while now < t0 + elapsed {
                now = (now + 1 + rng.below(2 * mean_step)).min(t0 + elapsed);
                if let Ok(grant) = bucket.try_acquire_up_to(u64::MAX, now) {
                    granted += grant.count();
                }
            }
            let due = exact_tokens(&bucket, t0 + elapsed) - exact_tokens(&bucket, t0);
            assert_eq!(granted as i128, due, "{rate} per {period:?} from {t0}");
            let target = rate as f64 * elapsed as f64 / period.as_nanos() as f64;
            let error = (granted as f64 - target).abs() / target;
            assert!(
                error < 1e-4,
                "{rate} per {period:?}: {granted} vs {target}: {error}"
            );
        }
    }
}

/// The same through the one-token path: every call `try_acquire(1)`, clock stepping one token
/// interval at a time with a jitter, so rounding per call would show.
#[test]
fn exact_over_the_long_run_one_token_at_a_time() {
    let mut rng = Rng(7);
    for rate in [500, 100_000, 1_000_000, 300_000_000, 1_000_000_000] {
        let elapsed = 200_000 * SECOND / rate; // 200k tokens
        let bucket = TokenBucket::per_second(rate, 4).starting_empty_at(SECOND);
        let step = (SECOND / rate).max(1);
        let mut now = SECOND;
        let mut granted: u64 = 0;
        while now < SECOND + elapsed {
            now = (now + rng.below(2 * step) + 1).min(SECOND + elapsed);
            while bucket.try_acquire(1, now).is_ok() {
                granted += 1;
            }
        }
        let due = exact_tokens(&bucket, SECOND + elapsed) - exact_tokens(&bucket, SECOND);
        assert_eq!(granted as i128, due, "{rate}/s");
    }
}

#[test]
fn no_burst_after_idle() {
    for (rate, period, burst) in shapes() {
        let bucket = TokenBucket::new(rate, period, burst);
        let mut now = 1_000;
        assert_eq!(
            bucket.try_acquire_up_to(u64::MAX, now).unwrap().count(),
            burst,
            "starts full"
        );
        // Long enough to refill from empty, and far longer.
        let refill = (bucket.period().as_nanos() * burst as u128).div_ceil(rate as u128) as u64;
        for idle in [
            refill,
            refill * 1000,
            100 * 365 * 24 * 3600 * SECOND,
            u64::MAX / 4,
        ] {
            now += idle;
            assert_eq!(bucket.available(now), burst);
            assert_eq!(
                bucket.try_acquire(burst + 1, now),
                Err(Denied::ExceedsBurst {
                    requested: burst + 1,
                    burst
                })
            );
            let grant = bucket.try_acquire_up_to(u64::MAX, now).unwrap();
            assert_eq!(grant.count(), burst, "after idling {idle} ns");
            assert!(
                bucket.try_acquire(1, now).is_err(),
                "more than burst after idle"
            );
            assert!(bucket.try_acquire_up_to(u64::MAX, now).is_err());
            // The tokens taken after idle were due within the last `burst` intervals.
            let oldest = now - (bucket.period().as_nanos() * burst as u128 / rate as u128) as u64;
            assert!(grant.first_due() >= oldest, "{grant:?}");
        }
    }
}

#[test]
fn no_overflow_at_extremes() {
    let nows = [
        0,
        1,
        2,
        u64::MAX / 2 - 1,
        u64::MAX / 2,
        u64::MAX / 2 + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    let rates = [
        (1, Duration::from_secs(1)),
        (1_000_000_000, Duration::from_secs(1)),
        ((1 << 63) - 1, Duration::from_nanos(1)),
        ((1 << 63) - 1, Duration::from_nanos(u64::MAX)),
        (1, Duration::from_nanos(u64::MAX)),
        (1, Duration::from_secs(3600)),
    ];
    let bursts = [1, 1000, (1 << 62) + 1, (1 << 63) - 1];
    for (rate, period) in rates {
        for burst in bursts {
            for start in [None, Some(0), Some(u64::MAX / 2), Some(u64::MAX)] {
                let mut bucket = TokenBucket::new(rate, period, burst);
                if let Some(t0) = start {
                    bucket = bucket.starting_empty_at(t0);
                }
                let mut log = Vec::new();
                for now in nows {
                    for n in [
                        0,
                        1,
                        2,
                        burst - 1,
                        burst,
                        burst.saturating_add(1),
                        u64::MAX / 2,
                        u64::MAX,
                    ] {
                        let before = bucket.available(now);
                        match bucket.try_acquire(n, now) {
                            Ok(grant) => {
                                assert_eq!(grant.count(), n);
                                assert!(n <= before, "took {n} of {before}");
                                check_grant(&grant, n, now);
                                log.push((now, n));
                            }
                            Err(Denied::ExceedsBurst { requested, .. }) => {
                                assert!(requested > burst)
                            }
                            Err(Denied::NotYet { ready_at, wait_ns }) => {
                                assert!(n > before, "denied {n} with {before} there");
                                assert!(
                                    ready_at > now || ready_at == u64::MAX,
                                    "until {ready_at} at {now}"
                                );
                                let wait = match ready_at {
                                    u64::MAX => u64::MAX,
                                    due => due - now,
                                };
                                assert_eq!(wait_ns, wait);
                            }
                        }
                        let before = bucket.available(now);
                        match bucket.try_acquire_up_to(n, now) {
                            Ok(grant) => {
                                assert_eq!(grant.count(), n.min(before));
                                check_grant(&grant, n, now);
                                assert!(grant.schedule().take(3).all(|due| due <= now));
                                log.push((now, grant.count()));
                            }
                            Err(denied) => {
                                assert_eq!(before, 0, "{denied:?}");
                                let Denied::NotYet { ready_at, .. } = denied else {
                                    panic!("{denied:?}")
                                };
                                assert!(ready_at > now || ready_at == u64::MAX);
                            }
                        }
                    }
                }
                assert_never_over_granted(&bucket, &mut log, 0);
            }
        }
    }
    // Values no bucket can honour are errors, not panics (or wrapped arithmetic).
    assert_eq!(
        TokenBucket::try_per_second(u64::MAX, 1).unwrap_err(),
        RateError::TooFast
    );
    assert_eq!(
        TokenBucket::try_per_second(0, 1).unwrap_err(),
        RateError::ZeroRate
    );
    assert_eq!(
        TokenBucket::try_per_second(1, 0).unwrap_err(),
        RateError::ZeroBurst
    );
    assert_eq!(
        TokenBucket::try_new(1, Duration::ZERO, 1).unwrap_err(),
        RateError::ZeroPeriod
    );
    assert_eq!(
        TokenBucket::try_new(1, Duration::MAX, 1).unwrap_err(),
        RateError::TooSlow
    );
    // A burst the 64-bit count has no room for: refused, not a bucket that never grants.
    for burst in [1 << 63, u64::MAX - 1, u64::MAX] {
        assert_eq!(
            TokenBucket::try_per_second(1000, burst).unwrap_err(),
            RateError::BurstTooLarge
        );
    }
    // Fails closed at the end of the token clock's range: at 1e9/s, `now = u64::MAX` is token
    // `u64::MAX`, and nothing past it can be represented.
    let bucket = TokenBucket::per_second(1_000_000_000, 10);
    assert_eq!(bucket.available(u64::MAX - 5), 5);
    assert_eq!(bucket.try_acquire(5, u64::MAX - 5).unwrap().count(), 5);
    assert!(bucket.try_acquire(1, u64::MAX).unwrap_err().is_never());
}

/// A refusal that no wait can lift says "never" in both of `NotYet`'s fields, so a caller that
/// reads `wait_ns` (rather than `wait_ns()` or `is_never()`) gets the same sentinel, not a
/// finite wait of `u64::MAX - now` nanoseconds.
#[test]
fn a_never_due_refusal_says_never_in_both_fields() {
    let bucket = TokenBucket::per_second(1, 1).starting_empty_at(u64::MAX);
    for now in [0, 1_000, u64::MAX / 2] {
        let denied = bucket.try_acquire(1, now).unwrap_err();
        assert_eq!(
            denied,
            Denied::NotYet {
                ready_at: u64::MAX,
                wait_ns: u64::MAX
            },
            "now = {now}"
        );
        assert_eq!(denied.wait_ns(), None);
        assert!(denied.is_never());
    }
}

/// A refusal's `ready_at` is an instant at which the request is granted, or "never": at a rate
/// near `u64::MAX` tokens per nanosecond the count can reach the top at the very instant the
/// tokens were to be due, and then no instant grants: the refusal says never rather than name
/// that instant.
#[test]
fn a_refusal_names_an_instant_that_grants_or_says_never() {
    let bucket = TokenBucket::new(1 << 62, Duration::from_nanos(1), 1).starting_empty_at(3);
    let denied = bucket.try_acquire(1, 3).unwrap_err();
    assert!(denied.is_never(), "{denied:?}");
    assert!(bucket.try_acquire(1, 4).unwrap_err().is_never());
    // Where the count stays below the top, `ready_at` grants.
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let rate = 1 + rng.next() % (1 << 40);
        let period = Duration::from_nanos(1 + rng.next() % 1_000_000_000);
        let burst = 1 + rng.next() % 1000;
        let start = rng.next() % (1 << 50);
        let bucket = TokenBucket::new(rate, period, burst).starting_empty_at(start);
        let n = 1 + rng.next() % burst;
        match bucket.try_acquire(n, start) {
            Err(Denied::NotYet { ready_at, .. }) if ready_at != u64::MAX => {
                assert!(
                    bucket.try_acquire(n, ready_at - 1).is_err(),
                    "{bucket:?} n {n}"
                );
                assert!(bucket.try_acquire(n, ready_at).is_ok(), "{bucket:?} n {n}");
            }
            _ => {}
        }
    }
}

/// The largest burst accepted leaves room in the 64-bit count for `2^63` tokens: an empty-start
/// bucket with it keeps granting for centuries of `now` (a burst near `u64::MAX` once granted
/// for one second of a 1,000/s rate, then never again).
#[test]
fn the_largest_burst_still_grants_for_centuries() {
    const SECOND: u64 = 1_000_000_000;
    const YEAR: u64 = 365 * 24 * 3600 * SECOND;
    let bucket = TokenBucket::per_second(1000, (1 << 63) - 1).starting_empty_at(0);
    let mut before = 0;
    for now in [SECOND, 2 * SECOND, YEAR, 500 * YEAR] {
        let grant = bucket
            .try_acquire_up_to(u64::MAX, now)
            .expect("tokens are due");
        assert_eq!(
            grant.count(),
            bucket.tokens_at(now) - bucket.tokens_at(before)
        );
        assert_eq!(bucket.available(now), 0);
        before = now;
    }
}

/// A denial whose tokens are not due within the clock's range says so, instead of a wait of
/// nearly `2^64` ns.
#[test]
fn a_denial_that_is_never_due_says_so() {
    let now = u64::MAX - 1;
    let denied = TokenBucket::per_hour(1, 1)
        .starting_empty_at(now)
        .try_acquire(1, now)
        .unwrap_err();
    assert!(denied.is_never(), "{denied:?}");
    assert_eq!(
        denied.to_string(),
        "rate limited: the tokens are not due within the clock's range"
    );
    let soon = TokenBucket::per_second(1000, 1)
        .starting_empty_at(0)
        .try_acquire(1, 0)
        .unwrap_err();
    assert_eq!(soon.to_string(), "rate limited: tokens due in 1000000 ns");
}

/// A stale or backwards `now` only ever sees fewer tokens: both as a snapshot, and when two
/// copies of one bucket are asked the same thing at an earlier and a later instant.
#[test]
fn stale_or_backwards_now_sees_fewer_tokens() {
    let mut rng = Rng(99);
    for (rate, period, burst) in shapes() {
        let step = interval(&TokenBucket::new(rate, period, burst));
        for _ in 0..200 {
            let history: Vec<(u64, u64)> = (0..20)
                .map(|_| (rng.below(step * 50), rng.below(burst + 1)))
                .collect();
            let t0 = rng.below(step * 5);
            let make = || {
                let bucket = TokenBucket::new(rate, period, burst).starting_empty_at(t0);
                let mut now = 0;
                for &(dt, n) in &history {
                    now += dt;
                    let _ = bucket.try_acquire_up_to(n, now);
                }
                (bucket, now)
            };
            let (a, now) = make();
            let (b, _) = make();
            let later = now + rng.below(step * 10);
            let stale = later - rng.below(step * 20).min(later);
            assert!(a.available(stale) <= a.available(later));
            let seen_late = a
                .try_acquire_up_to(u64::MAX, later)
                .map_or(0, |g| g.count());
            let seen_stale = b
                .try_acquire_up_to(u64::MAX, stale)
                .map_or(0, |g| g.count());
            assert!(
                seen_stale <= seen_late,
                "stale {stale} saw {seen_stale}, {later} saw {seen_late}"
            );
            // After a grant at `later`, a call with a stale `now` finds nothing the grant left out.
            assert!(a.available(stale) <= a.available(later));
            assert_eq!(
                a.try_acquire_up_to(u64::MAX, stale)
                    .map_or(0, |g| g.count()),
                0
            );
        }
    }
}

/// Where `T(now) + burst` passes `u64::MAX` the bucket holds at most `u64::MAX - T(now)`: there
/// a later `now` sees fewer tokens (the exception the guarantee above names), and a request for
/// `n` is denied for good once `T(now) + n` would pass `u64::MAX`; it never holds more.
#[test]
fn near_the_top_of_the_token_clock_a_later_now_sees_fewer_tokens_never_more() {
    // At 1e9/s, `T(now) == now`.
    let bucket = TokenBucket::per_second(1_000_000_000, 10);
    assert_eq!(bucket.available(u64::MAX - 10), 10);
    assert_eq!(
        bucket.available(u64::MAX - 5),
        5,
        "only what is left below u64::MAX"
    );
    assert_eq!(bucket.available(u64::MAX), 0);
    assert!(bucket.try_acquire(10, u64::MAX - 5).unwrap_err().is_never());
    assert_eq!(
        bucket.try_acquire_up_to(10, u64::MAX - 5).unwrap().count(),
        5
    );
    assert!(bucket.try_acquire(1, u64::MAX - 5).unwrap_err().is_never());
    assert!(
        bucket
            .try_acquire_up_to(1, u64::MAX - 1)
            .unwrap_err()
            .is_never()
    );
}

/// A blocking acquire that no wait can satisfy returns at once, saying never (it does not
/// wait for the clock's last instant): a request past the burst, and one whose tokens are
/// not due within the clock's range. The guard's time limit only turns a hang into a failure.
#[test]
fn a_blocking_acquire_that_can_never_be_granted_returns_never_at_once() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let clock = pc_core::Clock::new();
        // One token an hour, starting empty at the clock's last instant: never due.
        let never = TokenBucket::per_hour(1, 1).starting_empty_at(u64::MAX);
        let outcomes = [
            never.acquire(1, &clock).map(|g| g.count()),
            never.acquire_up_to(1, &clock).map(|g| g.count()),
            TokenBucket::per_second(10, 1)
                .acquire(2, &clock)
                .map(|g| g.count()),
        ];
        tx.send(outcomes).unwrap();
    });
    let outcomes = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the acquires returned");
    assert!(outcomes[0].unwrap_err().is_never());
    assert!(outcomes[1].unwrap_err().is_never());
    assert_eq!(
        outcomes[2],
        Err(Denied::ExceedsBurst {
            requested: 2,
            burst: 1
        })
    );
}

/// Threads blocking on one bucket each get their own tokens: when another thread takes the
/// tokens a waiter was waiting for, it waits again rather than returning a refusal or a
/// token twice. Every grant is a token no other grant has, due on the rate's grid (with a
/// burst of 1, a token nobody took in time lapses, so not every token is granted).
#[test]
fn blocking_acquires_racing_for_tokens_each_get_distinct_ones() {
    const THREADS: u64 = 4;
    const EACH: u64 = 20;
    let clock = pc_core::Clock::new();
    // One token per 100 us, burst 1: the threads race for every token.
    let bucket = TokenBucket::per_second(10_000, 1).starting_empty_at(clock.now());
    let mut dues: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    (0..EACH)
                        .map(|_| bucket.acquire(1, &clock).expect("a wait grants").due())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    dues.sort_unstable();
    let count = dues.len();
    dues.dedup();
    assert_eq!(dues.len(), count, "no token granted twice");
    assert_eq!(count as u64, THREADS * EACH);
    assert!(dues.iter().all(|due| due % 100_000 == 0), "{dues:?}");
}

/// The schedule a grant reports: token `k` of the clock is due at `ceil(k * period / rate)`.
#[test]
fn grants_report_when_each_token_was_due() {
    let bucket = TokenBucket::per_second(3, 3).starting_empty_at(0); // 333_333_333.3 ns apart
    let grant = bucket.try_acquire_up_to(10, SECOND).unwrap();
    let due: Vec<u64> = grant.schedule().collect();
    assert_eq!(due, [333_333_334, 666_666_667, SECOND]);
    assert_eq!((grant.first_due(), grant.due()), (333_333_334, SECOND));
    assert_eq!(
        bucket.try_acquire(3, SECOND),
        Err(Denied::NotYet {
            ready_at: 2 * SECOND,
            wait_ns: SECOND
        })
    );
    // After an idle spell the bucket holds the *latest* `burst` tokens: those are the ones due.
    let grant = bucket.try_acquire_up_to(10, 10 * SECOND).unwrap();
    let due: Vec<u64> = grant.schedule().collect();
    assert_eq!(due, [9_333_333_334, 9_666_666_667, 10 * SECOND]);
    // Its length is known ahead, and once it ends it stays ended (a `FusedIterator`).
    fn fused<I: std::iter::FusedIterator>(i: I) -> I {
        i
    }
    let mut schedule = fused(grant.schedule());
    assert_eq!(schedule.size_hint(), (3, Some(3)));
    // Its `Debug` speaks the caller's clock: what is left and when the next is due.
    assert_eq!(
        format!("{schedule:?}"),
        "Schedule { left: 3, next_due: Some(9333333334) }"
    );
    assert_eq!(schedule.by_ref().count(), 3);
    assert_eq!(
        format!("{schedule:?}"),
        "Schedule { left: 0, next_due: None }"
    );
    assert_eq!((schedule.next(), schedule.next()), (None, None));
}

/// Splitting a reservation at any instant, with any cap, hands out a prefix of its schedule whose
/// tokens are all due by then, and keeps the rest: the two schedules are the whole one, in order.
#[test]
fn split_due_hands_out_a_prefix_of_due_tokens_and_keeps_the_rest() {
    let mut split_several = 0;
    // Full (the initial tokens are due at 0), empty from 0, and empty from an odd instant.
    let starts = [None, Some(0), Some(1_234_567)];
    for ((rate, period, burst), start) in shapes().into_iter().flat_map(|s| starts.map(|t| (s, t)))
    {
        let bucket = match start {
            None => TokenBucket::new(rate, period, burst),
            Some(t) => TokenBucket::new(rate, period, burst).starting_empty_at(t),
        };
        let step = interval(&bucket).max(1);
        let from = start.unwrap_or(0);
        let ahead = from + 5 * step;
        let Ok(reserved) = bucket.try_acquire_up_to(burst, ahead) else {
            continue; // no token within five intervals at this shape
        };
        let whole: Vec<u64> = reserved.schedule().collect();
        split_several += usize::from(whole.len() >= 3);
        for now in [
            0,
            from + step / 2,
            from + step,
            from + 2 * step + 1,
            ahead,
            u64::MAX,
        ] {
            for max in [0, 1, 2, u64::MAX] {
                let (out, kept) = reserved.clone().split_due(now, max);
                let first: Vec<u64> = out.schedule().collect();
                let rest: Vec<u64> = kept.schedule().collect();
                assert!(first.len() as u64 <= max, "{max} at most");
                assert!(
                    first.iter().all(|&due| due <= now),
                    "{first:?} due by {now}"
                );
                let wanted = whole
                    .iter()
                    .filter(|&&due| due <= now)
                    .count()
                    .min(max as usize);
                assert_eq!(first.len(), wanted, "every due token up to the cap");
                assert_eq!([first, rest].concat(), whole, "split at {now}, max {max}");
                assert_eq!(
                    (out.count(), kept.count()),
                    (wanted as u64, reserved.count() - wanted as u64)
                );
                if out.count() == 0 {
                    assert_eq!(out.due(), now, "an empty part is due at `now`");
                }
            }
        }
    }
    assert!(
        split_several > 0,
        "some shape reserved three tokens or more"
    );
}

/// `Debug` shows the settings a user gave, not the schedule's internal position.
#[test]
fn debug_shows_the_settings_and_nothing_internal() {
    let bucket = TokenBucket::per_second(100, 10);
    let shown = format!("{bucket:?}");
    assert_eq!(
        shown,
        "TokenBucket { rate: 100, period: 1s, burst: 10, .. }"
    );
}
