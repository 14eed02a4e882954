//! The cost of a priority-lanes pop against a single ring's, in one run: single thread,
//! capacity 1024 per lane, u64 values, each pop timed over a ring (or lane) filled beforehand.
//!
//! Rows: `ring` (a `HeapRing`); `lanes_K/lane_i` (a `HeapLanes` of K lanes, every value in
//! lane i, so a pop first finds lanes 0..i empty), with the default starvation guard (one
//! shared counter increment per pop) and, for the lowest lane, with the guard off (`strict`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pc_core::{HeapLanes, HeapRing};

const CAPACITY: usize = 1024;

/// Times `iters` pops: refills (untimed) with `fill` whenever up to `CAPACITY` values have
/// been popped, times only the pops.
fn timed_pops(iters: u64, mut fill: impl FnMut(usize), mut pop: impl FnMut() -> u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CAPACITY as u64);
        fill(n as usize);
        let start = Instant::now();
        for _ in 0..n {
            black_box(pop());
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn ring_row(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let ring = HeapRing::<u64>::with_capacity(CAPACITY);
    g.bench_function("ring", |b| {
        b.iter_custom(|iters| {
            timed_pops(
                iters,
                |n| (0..n as u64).for_each(|v| ring.try_push(v).unwrap()),
                || ring.try_pop().unwrap(),
            )
        })
    });
}

fn lanes_row(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    k: usize,
    lane: usize,
    guard: Option<u32>,
) {
    let mut lanes = HeapLanes::<u64>::with_capacities(&vec![CAPACITY; k]);
    if let Some(guard) = guard {
        lanes = lanes.with_starvation_guard(guard);
    }
    let name = match guard {
        Some(0) => format!("lanes_{k}/lane_{lane}_strict"),
        _ => format!("lanes_{k}/lane_{lane}"),
    };
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            timed_pops(
                iters,
                |n| (0..n as u64).for_each(|v| lanes.try_push(lane, v).unwrap()),
                || lanes.try_pop().unwrap(),
            )
        })
    });
}

fn pop_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("lanes/a_single_thread_pop");
    g.throughput(Throughput::Elements(1));
    ring_row(&mut g);
    for k in [2, 4] {
        lanes_row(&mut g, k, 0, None);
        lanes_row(&mut g, k, k - 1, None);
        lanes_row(&mut g, k, k - 1, Some(0));
    }
    g.finish();
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
    targets = pop_cost
}
criterion_main!(benches);
