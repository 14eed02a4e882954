//! The token bucket comparisons: pc-core's [`TokenBucket`] against governor's direct
//! `RateLimiter`, both fed the SAME clock source (pc-core's `Instant`-based [`Clock`]), so they
//! compare the limiters, not their clocks (governor's default TSC clock is faster to read but
//! not monotonic across cores, governor #299). Used by `benches/bucket.rs` (criterion) and by
//! the `compare` binary (the README table), which therefore time the very same loops.
//!
//! Throughput measures use [`RATE`] tokens per second with a burst of [`RATE`], so every call
//! is granted: they time the grant path. Each `fn(.., iters) -> Duration` runs `iters` calls and
//! returns the wall time, for criterion's `iter_custom`.
//!
//! Every call is `black_box(limiter.call(..).is_ok())`: the caller branches on the answer, as
//! real callers do, rather than forcing the whole `Result` into memory (governor's is seven
//! words, pc-core's four), which measures how the compiler happens to spill it.
//!
//! Caveat, measured: the logic-only loops are a few instructions around a locked CAS, and
//! their timing depends on code placement. Governor's counter-clock loop timed 3.5 ns per call
//! when written inline in a criterion closure and 4.0 ns here, pc-core's 3.3-3.4 ns both ways.

use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use pc_core::{Clock, Denied, TokenBucket};

/// Tokens per second (and burst) of the throughput measures: every call is granted.
pub const RATE: u64 = 1_000_000_000;

/// Governor's direct (un-keyed) limiter on clock `C`.
pub type Governor<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<Nanos>>;

/// Governor reading pc-core's clock: `Nanos` since the same anchor.
#[derive(Clone, Copy, Debug)]
pub struct SameClock(pub Clock);

impl GovernorClock for SameClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        Nanos::new(self.0.now())
    }
}

/// A clock that advances 1 ns per reading: the limiter logic without a clock read.
#[derive(Debug, Default)]
pub struct CounterClock(Cell<u64>);

impl GovernorClock for CounterClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        let t = self.0.get() + 1;
        self.0.set(t);
        Nanos::new(t)
    }
}

/// pc-core's bucket for the throughput measures: [`RATE`] per second, burst [`RATE`].
pub fn pc_bucket() -> TokenBucket {
    TokenBucket::per_second(RATE, RATE)
}

/// Governor's limiter for the throughput measures, on `clock`: [`RATE`] per second, burst
/// [`RATE`] (governor's default burst is one second's worth).
pub fn governor<C: GovernorClock<Instant = Nanos>>(clock: C) -> Governor<C> {
    RateLimiter::direct_with_clock(Quota::per_second(nonzero(RATE)), clock)
}

/// One thread, one token per call, one clock read per call: pc-core.
pub fn pc_uncontended(bucket: &TokenBucket, clock: &Clock, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(bucket.try_acquire(black_box(1), clock.now()).is_ok());
    }
    start.elapsed()
}

/// One thread, one token per call, one clock read per call (its own clock): governor.
pub fn governor_uncontended<C: GovernorClock<Instant = Nanos>>(
    limiter: &Governor<C>,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(limiter.check().is_ok());
    }
    start.elapsed()
}

/// The limiter logic alone: pc-core with `now` advancing 1 ns per call from `*now` (kept
/// across calls, so the bucket never sees time go back).
pub fn pc_counter_clock(bucket: &TokenBucket, now: &mut u64, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        *now += 1;
        black_box(bucket.try_acquire(black_box(1), *now).is_ok());
    }
    start.elapsed()
}

/// Runs `op` on two threads, `iters` calls in total, and returns the wall time.
pub fn two_threads(iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let per_thread = iters.div_ceil(2);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

/// Two threads on one bucket, one token per call and one clock read per call: pc-core.
pub fn pc_contended(bucket: &TokenBucket, clock: &Clock, iters: u64) -> Duration {
    two_threads(iters, &|| {
        black_box(bucket.try_acquire(1, clock.now()).is_ok());
    })
}

/// As [`pc_contended`], taking up to 64 tokens per call (the batch producer's call).
pub fn pc_contended_up_to_64(bucket: &TokenBucket, clock: &Clock, iters: u64) -> Duration {
    two_threads(iters, &|| {
        black_box(bucket.try_acquire_up_to(64, clock.now()).is_ok());
    })
}

/// Two threads on one limiter, one token per call: governor.
pub fn governor_contended<C: GovernorClock<Instant = Nanos> + Sync>(
    limiter: &Governor<C>,
    iters: u64,
) -> Duration {
    two_threads(iters, &|| {
        black_box(limiter.check().is_ok());
    })
}

/// How an accuracy run is set up; both limiters get the same.
///
/// Counted: tokens granted to calls made inside the window, against `rate * window`. The window
/// opens at a multiple of the token interval and closes half an interval after `window`, so
/// that both limiters' token grids (pc-core's is aligned to the clock's 0, governor's to the
/// instant it was drained) put exactly `rate * window` tokens inside it; a token due exactly at
/// a window's edge would otherwise count for one and not the other.
#[derive(Clone, Copy, Debug)]
pub struct AccuracyRun {
    /// Target tokens per second.
    pub rate: u64,
    /// Threads taking tokens flat out.
    pub threads: u64,
    /// The counted window.
    pub window: Duration,
    /// Capacity: 10 ms of tokens by default (see `bin/bucket_accuracy.rs` for why).
    pub burst: u64,
    /// Tokens per call, all or nothing: 1 ms of tokens split among the threads by default.
    pub batch: u64,
}

impl AccuracyRun {
    /// The defaults for `rate` and `threads` over `window`.
    pub fn new(rate: u64, threads: u64, window: Duration) -> Self {
        Self {
            rate,
            threads,
            window,
            burst: (rate / 100).max(1),
            batch: (rate / 1000 / threads.max(1)).max(1),
        }
    }

    /// Relative error of the tokens granted to calls made inside the window against
    /// `rate * window`, in percent (positive: over-delivered).
    fn error_percent(&self, granted: u64) -> f64 {
        let target = self.rate as f64 * self.window.as_secs_f64();
        (granted as f64 - target) / target * 100.0
    }

    /// The window, `(start, end)` in `clock`'s nanoseconds: see the type's docs. It opens
    /// 20 ms ahead, so that every taker is waiting when it does.
    fn window(&self, clock: &Clock) -> (u64, u64) {
        let interval = (1_000_000_000 / self.rate).max(1);
        let start = (clock.now() + 20_000_000).next_multiple_of(interval);
        (start, start + self.window.as_nanos() as u64 + interval / 2)
    }

    /// pc-core: the bucket starts empty at the window's start; each thread takes `batch`
    /// tokens at a time with `try_acquire`, waiting for the bucket's own hint when denied.
    /// Returns the error in percent.
    pub fn pc(&self, clock: &Clock) -> f64 {
        let bucket = TokenBucket::try_per_second(self.rate, self.burst)
            .expect("accuracy run: bad rate or burst");
        let (start, end) = self.window(clock);
        let bucket = bucket.starting_empty_at(start);
        let granted = self.on_threads(clock, start, end, |now| {
            match bucket.try_acquire(self.batch, now) {
                Ok(grant) => Some(Ok(grant.count())),
                Err(Denied::NotYet { ready_at, .. }) if ready_at <= end => Some(Err(ready_at)),
                Err(_) => None,
            }
        });
        self.error_percent(granted)
    }

    /// governor, the same way: same rate, burst and batches (`check_n`, all or nothing),
    /// waiting for its own hint, and each call made at the very instant the caller read (see
    /// [`CallClock`]), so only calls inside the window count. Governor starts full and cannot
    /// start empty, so its burst is taken at the window's opening instant, before the takers
    /// begin: it too starts the window empty. Returns the error in percent.
    pub fn governor(&self, clock: &Clock) -> f64 {
        let quota = Quota::per_second(nonzero(self.rate)).allow_burst(nonzero(self.burst));
        let (start, end) = self.window(clock);
        CallClock::set(start);
        let limiter = RateLimiter::direct_with_clock(quota, CallClock);
        while limiter.check().is_ok() {}
        let batch = nonzero(self.batch);
        let granted = self.on_threads(clock, start, end, |now| {
            CallClock::set(now);
            match limiter.check_n(batch) {
                Ok(Ok(())) => Some(Ok(self.batch)),
                Ok(Err(not_until)) => {
                    let ready_at = u64::from(not_until.earliest_possible());
                    (ready_at <= end).then_some(Err(ready_at))
                }
                Err(_) => None,
            }
        });
        self.error_percent(granted)
    }

    /// Runs `take(now)` on this run's threads (see [`take_on_threads`]); returns the tokens
    /// granted in all.
    fn on_threads(
        &self,
        clock: &Clock,
        start: u64,
        end: u64,
        take: impl Fn(u64) -> Option<Result<u64, u64>> + Sync,
    ) -> u64 {
        take_on_threads(self.threads, clock, start, end, take)
            .iter()
            .sum()
    }
}

/// Runs `take(now)` flat out on `threads` threads from `start` until `now` passes `end`
/// or `take` returns `None`; `take` returns `Ok(tokens)` or `Err(instant to wait for)`.
/// Returns the tokens granted to each thread.
pub fn take_on_threads(
    threads: u64,
    clock: &Clock,
    start: u64,
    end: u64,
    take: impl Fn(u64) -> Option<Result<u64, u64>> + Sync,
) -> Vec<u64> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    clock.wait_until(start);
                    let mut granted = 0;
                    loop {
                        let now = clock.now();
                        if now > end {
                            return granted;
                        }
                        match take(now) {
                            Some(Ok(tokens)) => granted += tokens,
                            Some(Err(ready_at)) => {
                                clock.wait_until(ready_at);
                            }
                            None => return granted,
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("accuracy run: a taker panicked"))
            .collect()
    })
}

/// A governor clock that reads the instant the calling thread last passed to
/// [`CallClock::set`]: governor then decides at exactly the `now` the caller read from the
/// shared [`Clock`], as pc-core's bucket does.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallClock;

thread_local! {
    static CALL_NOW: Cell<u64> = const { Cell::new(0) };
}

impl CallClock {
    /// Sets this thread's reading.
    pub fn set(now: u64) {
        CALL_NOW.with(|c| c.set(now));
    }
}

impl GovernorClock for CallClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::new(CALL_NOW.with(Cell::get))
    }
}

/// `n` as governor's `NonZeroU32`.
///
/// # Panics
/// If `n` is 0 or does not fit in a `u32`.
fn nonzero(n: u64) -> NonZeroU32 {
    u32::try_from(n)
        .ok()
        .and_then(NonZeroU32::new)
        .expect("governor takes 1..=u32::MAX")
}
