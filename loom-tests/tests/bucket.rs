//! Loom model checks of the token bucket: grants stay within the bound while the clock itself
//! races.
//!
//! In each model the clock is a loom `AtomicU64` that one thread advances while the others read
//! it with `Relaxed` loads, so loom hands them stale values too (better-bucket's model froze the
//! clock and missed exactly that). After the join, every model checks the over-grant bound on
//! every interval of the `now` values that were used, and that tokens granted plus tokens left
//! never exceed what the clock issued plus the burst.
//!
//! Clock values sit near `u64::MAX / 2` (far from 0, where a biased or wrapping representation
//! would break), at 1 token per ns or per 2 ns, so one clock tick is one token and the bounds
//! are tight.
//!
//! Mutant check: with `--cfg pc_mutant="bucket_store"` (pc-core's build script sets it from
//! `PC_CORE_MUTANT` in a loom build) the bucket's CAS becomes a load and a
//! store, and every model here must FAIL (a lost update grants the same token twice):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" PC_CORE_MUTANT=bucket_store CARGO_TARGET_DIR=target/loom \
//!   cargo test -p pc-loom-tests --release --test bucket        # must fail, 3 of 3
//! ```
//!
//! Without the mutant (`RUSTFLAGS="--cfg loom"`) they pass. Preemptions are bounded at 3 unless
//! `LOOM_MAX_PREEMPTIONS` says otherwise: the file then takes 7-15 s on a 2-core machine
//! (43 s with 4; unbounded runs for well over 15 minutes).
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use pc_core::TokenBucket;

/// Runs `f` under loom, with at most 3 preemptions unless `LOOM_MAX_PREEMPTIONS` is set.
fn model(f: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Where the clock starts: large, to exercise the fixed point far from 0.
const START: u64 = u64::MAX / 2;

/// One call's `now` and the tokens it was granted (0 if denied).
type Log = Vec<(u64, u64)>;

/// Asserts the bucket's guarantees over the merged `log` of all threads:
/// - for every interval `[t0, t1]` of `now` values, grants by calls in it total at most
///   `burst + T(t1) - T(t0)`;
/// - grants plus what is left at the latest `now` total at most `burst + T(t1) - T(t0)` over
///   the whole run;
/// - with an empty start at `empty_at`, grants total at most `T(latest) - T(empty_at)`.
fn check(bucket: &TokenBucket, mut log: Log, empty_at: Option<u64>) {
    log.sort_unstable();
    let burst = bucket.burst() as i128;
    let t = |now: u64| bucket.tokens_at(now) as i128;
    let (mut total, mut lowest) = (0i128, i128::MAX);
    for &(now, count) in &log {
        lowest = lowest.min(total - t(now));
        total += count as i128;
        assert!(total - t(now) - lowest <= burst, "over-granted: {log:?}");
    }
    let (first, last) = (log[0].0, log[log.len() - 1].0);
    let left = bucket.available(last) as i128;
    assert!(
        total + left <= burst + t(last) - t(first),
        "over-granted: {log:?} and {left} left"
    );
    if let Some(t0) = empty_at {
        assert!(
            total <= t(last) - t(t0),
            "over-granted after an empty start: {log:?}"
        );
    }
}

/// Reads the clock (possibly stale) and asks for `n` tokens, all or nothing or up to `n`.
fn attempt(bucket: &TokenBucket, clock: &AtomicU64, n: u64, partial: bool) -> (u64, u64) {
    // Relaxed: the clock is an ordinary racing reading; stale values are the point.
    let now = clock.load(Ordering::Relaxed);
    let outcome = if partial {
        bucket.try_acquire_up_to(n, now)
    } else {
        bucket.try_acquire(n, now)
    };
    (now, outcome.map_or(0, |grant| grant.count()))
}

/// Two threads take one token at a time (twice each) from a full 1-token bucket while a third
/// moves the clock one token ahead.
#[test]
fn two_takers_and_a_ticking_clock() {
    model(|| {
        let bucket = Arc::new(TokenBucket::per_second(1_000_000_000, 1));
        let clock = Arc::new(AtomicU64::new(START));
        let ticker = {
            let clock = Arc::clone(&clock);
            // Relaxed: a clock tick publishes nothing but itself.
            thread::spawn(move || clock.store(START + 1, Ordering::Relaxed))
        };
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let (bucket, clock) = (Arc::clone(&bucket), Arc::clone(&clock));
                thread::spawn(move || {
                    (0..2)
                        .map(|_| attempt(&bucket, &clock, 1, false))
                        .collect::<Log>()
                })
            })
            .collect();
        ticker.join().unwrap();
        let log: Log = takers.into_iter().flat_map(|h| h.join().unwrap()).collect();
        check(&bucket, log, None);
    });
}

/// Two batch takers (`try_acquire_up_to(2)`) on a bucket that starts empty at `START`, at half
/// a token per ns, while the clock moves 1 and then 2 tokens ahead.
#[test]
fn two_batch_takers_from_an_empty_start() {
    model(|| {
        let bucket = Arc::new(TokenBucket::per_second(500_000_000, 2).starting_empty_at(START));
        let clock = Arc::new(AtomicU64::new(START));
        let ticker = {
            let clock = Arc::clone(&clock);
            thread::spawn(move || {
                // Relaxed: a clock tick publishes nothing but itself.
                clock.store(START + 2, Ordering::Relaxed);
                clock.store(START + 4, Ordering::Relaxed);
            })
        };
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let (bucket, clock) = (Arc::clone(&bucket), Arc::clone(&clock));
                thread::spawn(move || attempt(&bucket, &clock, 2, true))
            })
            .collect();
        ticker.join().unwrap();
        let log: Log = takers.into_iter().map(|h| h.join().unwrap()).collect();
        check(&bucket, log, Some(START));
    });
}

/// Three takers: one advances the clock and takes with its fresh reading, two take with
/// whatever (possibly stale) reading they get; plus the main thread's own late look.
#[test]
fn three_takers_with_stale_readers() {
    model(|| {
        let bucket = Arc::new(TokenBucket::per_second(1_000_000_000, 1));
        let clock = Arc::new(AtomicU64::new(START));
        let advancer = {
            let (bucket, clock) = (Arc::clone(&bucket), Arc::clone(&clock));
            thread::spawn(move || {
                // Relaxed: a clock tick publishes nothing but itself.
                let now = clock.fetch_add(1, Ordering::Relaxed) + 1;
                (
                    now,
                    bucket.try_acquire(1, now).map_or(0, |grant| grant.count()),
                )
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (bucket, clock) = (Arc::clone(&bucket), Arc::clone(&clock));
                thread::spawn(move || attempt(&bucket, &clock, 1, false))
            })
            .collect();
        let mut log: Log = readers.into_iter().map(|h| h.join().unwrap()).collect();
        log.push(advancer.join().unwrap());
        check(&bucket, log, None);
    });
}
