//! Ring benches, capacity 1024, u64 messages; pc's ring and its peers in the same groups.
//! (a) single-thread push+pop pair; (b) 1P1C throughput, pinned, single and batch (32, 64);
//! (c) ping-pong round trip; (d) 2P2C with blocking APIs (threads outnumber cores here).
//! Peers: crossbeam `ArrayQueue`, heapless, rtrb (SPSC), crossbeam-channel, std
//! `sync_channel`, kanal, flume, concurrent-queue, disruptor (multi-producer); the batch rows
//! only for those with a batch API (pc, rtrb, disruptor). How each is fitted, and where its
//! model differs: `pc_benches::ring`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pc_benches::ring::{
    self, ArrayQueue, ConcurrentQueue, CrossbeamChannel, Disruptor, Flavor, Flume, Heapless, Kanal,
    Pc, PcSplit, Rtrb, StdSyncChannel,
};

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/a_single_thread_push_pop");
    g.throughput(Throughput::Elements(1));
    fn row<F: Flavor>(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
        g.bench_function(F::NAME, |b| b.iter_custom(ring::single_thread_pairs::<F>));
    }
    row::<Pc>(&mut g);
    row::<ArrayQueue>(&mut g);
    row::<Heapless>(&mut g);
    row::<Rtrb>(&mut g);
    row::<CrossbeamChannel>(&mut g);
    row::<StdSyncChannel>(&mut g);
    row::<Kanal>(&mut g);
    row::<Flume>(&mut g);
    row::<ConcurrentQueue>(&mut g);
    row::<Disruptor>(&mut g);
    g.finish();
}

/// Messages per measured iteration of the threaded benches: enough to amortise spawning the
/// threads, so a sample measures the queue and not `thread::spawn`.
const CHUNK: u64 = 200_000;

/// Runs `f` for `iters` chunks of [`CHUNK`] messages, summing the measured time.
fn chunks(iters: u64, mut f: impl FnMut(u64) -> Duration) -> Duration {
    (0..iters).map(|_| f(CHUNK)).sum()
}

fn spsc(c: &mut Criterion) {
    let cores = ring::cores();
    let mut g = c.benchmark_group("ring/b_1p1c_throughput");
    g.throughput(Throughput::Elements(CHUNK));
    for batch in [1, 32, 64] {
        let mut row = |name: &str, f: fn(&[core_affinity::CoreId], u64, usize) -> Duration| {
            g.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter_custom(|n| chunks(n, |m| f(&cores, m, batch)))
            });
        };
        row(Pc::NAME, ring::spsc_throughput::<Pc>);
        row(PcSplit::NAME, ring::spsc_throughput::<PcSplit>);
        row(Rtrb::NAME, ring::spsc_throughput::<Rtrb>);
        row(Disruptor::NAME, ring::spsc_throughput::<Disruptor>);
        // The others have no batch API: single messages only.
        if batch == 1 {
            row(ArrayQueue::NAME, ring::spsc_throughput::<ArrayQueue>);
            row(Heapless::NAME, ring::spsc_throughput::<Heapless>);
            row(
                CrossbeamChannel::NAME,
                ring::spsc_throughput::<CrossbeamChannel>,
            );
            row(
                StdSyncChannel::NAME,
                ring::spsc_throughput::<StdSyncChannel>,
            );
            row(Kanal::NAME, ring::spsc_throughput::<Kanal>);
            row(Flume::NAME, ring::spsc_throughput::<Flume>);
            row(
                ConcurrentQueue::NAME,
                ring::spsc_throughput::<ConcurrentQueue>,
            );
        }
    }
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    let cores = ring::cores();
    let mut g = c.benchmark_group("ring/c_ping_pong_round_trip");
    let mut row = |name: &str, f: fn(&[core_affinity::CoreId], u64) -> Vec<Duration>| {
        g.bench_function(name, |b| b.iter_custom(|n| f(&cores, n).into_iter().sum()));
    };
    row(Pc::NAME, ring::ping_pong::<Pc>);
    row(PcSplit::NAME, ring::ping_pong::<PcSplit>);
    row(ArrayQueue::NAME, ring::ping_pong::<ArrayQueue>);
    row(Heapless::NAME, ring::ping_pong::<Heapless>);
    row(Rtrb::NAME, ring::ping_pong::<Rtrb>);
    row(CrossbeamChannel::NAME, ring::ping_pong::<CrossbeamChannel>);
    row(Kanal::NAME, ring::ping_pong::<Kanal>);
    row(Flume::NAME, ring::ping_pong::<Flume>);
    row(ConcurrentQueue::NAME, ring::ping_pong::<ConcurrentQueue>);
    row(Disruptor::NAME, ring::ping_pong::<Disruptor>);
    g.finish();
}

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/d_2p2c_blocking");
    g.throughput(Throughput::Elements(CHUNK));
    let mut row = |name: &str, f: fn(u64) -> Duration| {
        g.bench_function(name, |b| b.iter_custom(|n| chunks(n, f)));
    };
    row(Pc::NAME, ring::mpmc_blocking::<Pc>);
    row(PcSplit::NAME, ring::mpmc_blocking::<PcSplit>);
    row(
        CrossbeamChannel::NAME,
        ring::mpmc_blocking::<CrossbeamChannel>,
    );
    row(StdSyncChannel::NAME, ring::mpmc_blocking::<StdSyncChannel>);
    row(ArrayQueue::NAME, ring::mpmc_blocking::<ArrayQueue>);
    row(Heapless::NAME, ring::mpmc_blocking::<Heapless>);
    row(Kanal::NAME, ring::mpmc_blocking::<Kanal>);
    row(Flume::NAME, ring::mpmc_blocking::<Flume>);
    row(
        ConcurrentQueue::NAME,
        ring::mpmc_blocking::<ConcurrentQueue>,
    );
    // Pollers that each see every event: its own loop (see `ring::mpmc_disruptor`).
    row(Disruptor::NAME, ring::mpmc_disruptor);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = single_thread, spsc, ping_pong, mpmc }
criterion_main!(benches);
