//! Token bucket: pc-core's `TokenBucket` against governor's direct `RateLimiter`, both fed the
//! SAME clock source (pc-core's `Instant`-based `Clock`), so the comparison is of the limiters,
//! not of their clocks (governor's default TSC clock is faster to read but not monotonic across
//! cores, governor #299).
//!
//! Groups (each a few seconds):
//! - `bucket_uncontended`: one thread, one token per call, with a real clock read per call; plus
//!   the clock read alone, and both limiters on a counter clock (the limiter logic alone).
//! - `bucket_contended_2_threads`: two threads on one limiter, one token per call (time is per
//!   call, aggregate over both threads), and pc-core taking 64-token batches.
//!
//! Both limiters are set to 10^9 tokens per second with a burst of 10^9, so every call is
//! granted: this measures the grant path.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bucket cargo bench -p pc-benches --bench bucket`

use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use governor::clock::Clock as GovernorClock;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};
use pc_core::{Clock, TokenBucket};

const RATE: u64 = 1_000_000_000;

/// Governor reading pc-core's clock: `Nanos` since the same anchor.
#[derive(Clone, Copy, Debug)]
struct SameClock(Clock);

impl GovernorClock for SameClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        Nanos::new(self.0.now())
    }
}

/// A clock that advances 1 ns per reading: the limiter logic without a clock read.
#[derive(Debug, Default)]
struct CounterClock(Cell<u64>);

impl GovernorClock for CounterClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        let t = self.0.get() + 1;
        self.0.set(t);
        Nanos::new(t)
    }
}

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(RATE as u32).unwrap())
}

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("bucket_uncontended");
    let clock = Clock::new();

    group.bench_function("clock_now_alone", |b| b.iter(|| black_box(clock.now())));

    let ours = TokenBucket::per_second(RATE, RATE);
    group.bench_function("pc_core_try_acquire_same_clock", |b| {
        b.iter(|| black_box(ours.try_acquire(black_box(1), clock.now())).is_ok())
    });

    let governor = RateLimiter::direct_with_clock(quota(), SameClock(clock));
    group.bench_function("governor_check_same_clock", |b| {
        b.iter(|| black_box(governor.check()).is_ok())
    });

    let ours = TokenBucket::per_second(RATE, RATE);
    let counter = Cell::new(0u64);
    group.bench_function("pc_core_try_acquire_counter_clock", |b| {
        b.iter(|| {
            let now = counter.get() + 1;
            counter.set(now);
            black_box(ours.try_acquire(black_box(1), now)).is_ok()
        })
    });

    let governor = RateLimiter::direct_with_clock(quota(), CounterClock::default());
    group.bench_function("governor_check_counter_clock", |b| {
        b.iter(|| black_box(governor.check()).is_ok())
    });
    group.finish();
}

/// Runs `op` on two threads, `iters` calls in total, and returns the wall time.
fn two_threads(iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
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

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("bucket_contended_2_threads");
    let clock = Clock::new();

    let ours = TokenBucket::per_second(RATE, RATE);
    group.bench_function("pc_core_try_acquire_same_clock", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(ours.try_acquire(1, clock.now()).is_ok());
            })
        })
    });

    let governor = RateLimiter::direct_with_clock(quota(), SameClock(clock));
    group.bench_function("governor_check_same_clock", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(governor.check().is_ok());
            })
        })
    });

    let ours = TokenBucket::per_second(RATE, RATE);
    group.bench_function("pc_core_try_acquire_up_to_64_same_clock", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(ours.try_acquire_up_to(64, clock.now()).is_ok());
            })
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended, contended
}
criterion_main!(benches);
