//! Token bucket: pc-core's `TokenBucket` against governor's direct `RateLimiter`, both fed the
//! SAME clock source (pc-core's `Instant`-based `Clock`), so the comparison is of the limiters,
//! not of their clocks. The measured loops live in `pc_benches::bucket`, shared with the
//! `compare` binary.
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
//! Run: `CARGO_TARGET_DIR=/work/target-h3 cargo bench -p pc-benches --bench bucket`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pc_benches::bucket::{self, CounterClock, SameClock};
use pc_core::Clock;

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("bucket_uncontended");
    let clock = Clock::new();

    group.bench_function("clock_now_alone", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(clock.now());
            }
            start.elapsed()
        })
    });

    let ours = bucket::pc_bucket();
    group.bench_function("pc_core_try_acquire_same_clock", |b| {
        b.iter_custom(|iters| bucket::pc_uncontended(&ours, &clock, iters))
    });

    let governor = bucket::governor(SameClock(clock));
    group.bench_function("governor_check_same_clock", |b| {
        b.iter_custom(|iters| bucket::governor_uncontended(&governor, iters))
    });

    let ours = bucket::pc_bucket();
    let mut now = 0;
    group.bench_function("pc_core_try_acquire_counter_clock", |b| {
        b.iter_custom(|iters| bucket::pc_counter_clock(&ours, &mut now, iters))
    });

    let governor = bucket::governor(CounterClock::default());
    group.bench_function("governor_check_counter_clock", |b| {
        b.iter_custom(|iters| bucket::governor_uncontended(&governor, iters))
    });
    group.finish();
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("bucket_contended_2_threads");
    let clock = Clock::new();

    let ours = bucket::pc_bucket();
    group.bench_function("pc_core_try_acquire_same_clock", |b| {
        b.iter_custom(|iters| bucket::pc_contended(&ours, &clock, iters))
    });

    let governor = bucket::governor(SameClock(clock));
    group.bench_function("governor_check_same_clock", |b| {
        b.iter_custom(|iters| bucket::governor_contended(&governor, iters))
    });

    let ours = bucket::pc_bucket();
    group.bench_function("pc_core_try_acquire_up_to_64_same_clock", |b| {
        b.iter_custom(|iters| bucket::pc_contended_up_to_64(&ours, &clock, iters))
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
