//! Quick side-by-side comparison: short versions of the ring and token bucket benches (pc and
//! its peers in the same run, interleaved, repeated), printed as one table: each measure, ours,
//! the best peer, the ratio of the medians and the median of the per-repeat ratios (> 1 means
//! pc is ahead); or, with `--json`, as one JSON document with every sample, for keeping runs
//! and diffing them.
//!
//! `cargo run --release -p pc-benches --bin compare -- --help` prints the options.

use std::time::Duration;

use core_affinity::CoreId;

use pc_benches::ring::{
    self, ArrayQueue, ConcurrentQueue, CrossbeamChannel, Disruptor, Flavor, Flume, Heapless, Kanal,
    Pc, PcSplit, Rtrb, StdSyncChannel,
};
use serde_json::{Value, json};

const USAGE: &str = "\
usage: compare [--repeats N] [--only WORD] [--json]
       compare --help

Short versions of the ring and token bucket benches: pc and every peer in one run, their
runs interleaved (pc, peer1, peer2, .., pc, peer1, ..) and repeated; medians. Two ratios
to the best peer (the one with the best median), > 1 meaning pc is ahead: of the medians,
and paired, the median of the repeats' own ratios (pc's i-th sample against the peer's
i-th, taken minutes apart at most). Where the machine changes speed between repeats (a VM
moved between host cores), the paired ratio compares samples taken in the same stretch.

  --repeats N   runs of each measure per crate (default 5)
  --only WORD   only the measures whose names contain WORD, case aside: single
                (single-thread push+pop and 1P1C single), 1p1c, batch, ping-pong (its p50 and
                p99 rows are one measure), 2p2c, bucket, accuracy, ...
  --json        print one JSON document (metadata; per measure and crate: every sample, the
                median, and both ratios to the best MPMC peer) instead of the table
  -h, --help    print this and exit

Ring: capacity 1024, u64 messages; 1P1C and ping-pong sides pinned to two cores. pc's ring
is measured shared (pc::Ring) and through its split handles (pc::Ring split, each row of its
own in the table, never a peer). Peers:
crossbeam ArrayQueue, heapless mpmc, rtrb (SPSC: shown, not an MPMC peer), crossbeam-channel,
std sync_channel, kanal, flume, concurrent-queue, disruptor (multi-producer). Peers without a
batch API show n/a in the batch rows. Bucket: pc-core's TokenBucket against governor, same
clock. Progress goes to stderr, results to stdout.";

/// What kind of crate a result is from: the MPMC peers are what pc is ranked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// A multi-producer multi-consumer queue (or pc itself).
    Mpmc,
    /// Another way of using pc's ring (its split handles): shown, ranked, never a peer.
    PcVariant,
    /// Single-producer single-consumer only (rtrb): shown, not an MPMC peer.
    Spsc,
    /// A rate limiter (the bucket rows).
    Limiter,
}

/// A named measurement to repeat: each call returns one sample of each of its outputs (one
/// output per row it feeds; ping-pong feeds two, p50 and p99 of the same round trips).
struct Run<'a> {
    name: &'static str,
    class: Class,
    run: Box<dyn FnMut() -> Vec<f64> + 'a>,
}

/// A queue flavour's run with one output.
fn run<'a, F: Flavor>(mut f: impl FnMut() -> f64 + 'a) -> Run<'a> {
    run_outputs::<F>(move || vec![f()])
}

/// A queue flavour's run with several outputs.
fn run_outputs<'a, F: Flavor>(f: impl FnMut() -> Vec<f64> + 'a) -> Run<'a> {
    Run {
        name: F::NAME,
        class: if F::PC_VARIANT {
            Class::PcVariant
        } else if F::SPSC {
            Class::Spsc
        } else {
            Class::Mpmc
        },
        run: Box::new(f),
    }
}

/// A rate limiter's run.
fn limiter<'a>(name: &'static str, mut f: impl FnMut() -> f64 + 'a) -> Run<'a> {
    Run {
        name,
        class: Class::Limiter,
        run: Box::new(move || vec![f()]),
    }
}

/// One crate's result in a row.
struct Measured {
    name: &'static str,
    class: Class,
    samples: Vec<f64>,
    median: f64,
}

/// One table row: a measure, its unit, and whether bigger is better.
struct Row {
    measure: String,
    unit: &'static str,
    higher_is_better: bool,
    /// pc first, then each peer.
    results: Vec<Measured>,
    /// Peers that cannot run this measure, and why (shown as n/a).
    na: Vec<(&'static str, &'static str)>,
}

impl Row {
    /// Measures `runs` (one output each; see [`measure`]) into a row.
    fn measured(
        measure: impl Into<String>,
        unit: &'static str,
        higher_is_better: bool,
        repeats: usize,
        runs: &mut [Run<'_>],
    ) -> Self {
        let results = crate::measure(repeats, runs).swap_remove(0);
        Self::of(measure, unit, higher_is_better, results)
    }

    /// A row of results already measured.
    fn of(
        measure: impl Into<String>,
        unit: &'static str,
        higher_is_better: bool,
        results: Vec<Measured>,
    ) -> Self {
        Self {
            measure: measure.into(),
            unit,
            higher_is_better,
            results,
            na: Vec::new(),
        }
    }

    fn with_na(mut self, na: &[(&'static str, &'static str)]) -> Self {
        self.na.extend_from_slice(na);
        self
    }

    /// The best of the peers (everything but pc, the first result, and its variants) that
    /// `counts`.
    fn best_peer(&self, counts: impl Fn(&Measured) -> bool) -> Option<&Measured> {
        let peers = self.results[1..]
            .iter()
            .filter(|m| m.class != Class::PcVariant && counts(m));
        if self.higher_is_better {
            peers.max_by(|a, b| a.median.total_cmp(&b.median))
        } else {
            peers.min_by(|a, b| a.median.total_cmp(&b.median))
        }
    }

    /// `ours` against `theirs`, oriented so that > 1 means `ours` is ahead.
    fn ratio(&self, ours: f64, theirs: f64) -> f64 {
        if self.higher_is_better {
            ours / theirs
        } else {
            theirs / ours
        }
    }

    /// The median of the per-repeat ratios of `ours` against `theirs` (sample `i` against
    /// sample `i`: `measure` ran them one after the other), oriented as [`Row::ratio`].
    fn paired_ratio(&self, ours: &Measured, theirs: &Measured) -> f64 {
        let ratios = ours
            .samples
            .iter()
            .zip(&theirs.samples)
            .map(|(&o, &t)| self.ratio(o, t))
            .collect();
        median(ratios)
    }
}

/// The median (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Runs each flavour's closure `repeats` times, interleaved (pc, peer1, .., pc, peer1, ..) so
/// drifting machine load hits all alike; keeps every sample and the median of each. Returns
/// one list per output of the runs (all runs have as many outputs as the first), each in the
/// order of `runs`.
fn measure(repeats: usize, runs: &mut [Run<'_>]) -> Vec<Vec<Measured>> {
    // samples[run][output]: that output's samples, one per repeat.
    let mut samples: Vec<Vec<Vec<f64>>> = vec![Vec::new(); runs.len()];
    for _ in 0..repeats {
        for (i, r) in runs.iter_mut().enumerate() {
            let outputs = (r.run)();
            samples[i].resize(outputs.len(), Vec::new());
            for (o, v) in outputs.into_iter().enumerate() {
                samples[i][o].push(v);
            }
        }
    }
    let outputs = samples.first().map_or(0, Vec::len);
    (0..outputs)
        .map(|o| {
            runs.iter()
                .zip(&samples)
                .map(|(r, s)| Measured {
                    name: r.name,
                    class: r.class,
                    median: median(s[o].clone()),
                    samples: s[o].clone(),
                })
                .collect()
        })
        .collect()
}

/// The batch sizes of the 1P1C throughput rows (1: single pushes and pops).
const SPSC_BATCHES: [usize; 3] = [1, 32, 64];

/// The name of the 1P1C throughput row of `batch`.
fn spsc_row_name(batch: usize) -> String {
    if batch == 1 {
        "1P1C throughput, single".to_owned()
    } else {
        format!("1P1C throughput, batch {batch}")
    }
}

/// The ping-pong measure's name (its rows add the quantile).
const PING_PONG: &str = "ping-pong round trip";

/// A 1P1C throughput run of flavour `F`: M msg/s.
fn spsc<F: Flavor>(cores: &[core_affinity::CoreId], msgs: u64, batch: usize) -> Run<'_> {
    run::<F>(move || per_sec(msgs, ring::spsc_throughput::<F>(cores, msgs, batch)))
}

/// A ping-pong run of flavour `F`: the p50 and the p99 of the same round trips, in ns.
fn ping_pong<F: Flavor>(cores: &[core_affinity::CoreId], rounds: u64) -> Run<'_> {
    run_outputs::<F>(move || {
        let mut trips = ring::ping_pong::<F>(cores, rounds);
        PING_PONG_QUANTILES
            .iter()
            .map(|&(q, _)| ring::quantile(&mut trips, q).as_nanos() as f64)
            .collect()
    })
}

/// The quantiles of the ping-pong rows, and their labels.
const PING_PONG_QUANTILES: [(f64, &str); 2] = [(0.5, "p50"), (0.99, "p99")];

fn per_sec(msgs: u64, d: Duration) -> f64 {
    msgs as f64 / d.as_secs_f64() / 1e6
}

/// Exits with status 2 and one line on stderr.
fn usage_error(msg: &str) -> ! {
    eprintln!("compare: {msg} (see compare --help)");
    std::process::exit(2)
}

/// The command line.
struct Options {
    repeats: usize,
    only: Option<String>,
    json: bool,
}

fn parse_args(args: &[String]) -> Options {
    let mut options = Options {
        repeats: 5,
        only: None,
        json: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage_error(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--json" => options.json = true,
            "--repeats" => {
                let n = value();
                options.repeats = match n.parse() {
                    Ok(n) if n > 0 => n,
                    _ => usage_error(&format!("--repeats takes a positive number, not {n:?}")),
                };
            }
            "--only" => options.only = Some(value()),
            other => usage_error(&format!("unknown argument {other:?}")),
        }
    }
    options
}

/// Peers without a batch API, for the batch rows.
const NO_BATCH_API: [(&str, &str); 7] = [
    (ArrayQueue::NAME, "no batch API"),
    (Heapless::NAME, "no batch API"),
    (CrossbeamChannel::NAME, "no batch API"),
    (StdSyncChannel::NAME, "no batch API"),
    (Kanal::NAME, "no batch send (drain_into receives only)"),
    (Flume::NAME, "no batch send (drain receives only)"),
    (ConcurrentQueue::NAME, "no batch API"),
];

/// `[run::<T>(|| f::<T>()), ...]` for each flavour `T`: one run per crate of generic `f`.
macro_rules! flavours { ($f:ident, $($t:ty),*) => { [$(run::<$t>(move || $f::<$t>())),*] } }

fn main() {
    let command_line: Vec<String> = std::env::args().collect();
    let options = parse_args(&command_line[1..]);
    let repeats = options.repeats;
    let only = options.only.clone();
    let wants = |section: &str| wanted(only.as_deref(), section);
    let cores = ring::cores();
    // On one core the two pinned sides would share it, spinning in turn through whole time
    // slices: hours for a row, and figures of nothing. Refused before anything runs.
    let pinned_rows =
        SPSC_BATCHES.into_iter().any(|b| wants(&spsc_row_name(b))) || wants(PING_PONG);
    if cores.len() < 2 && pinned_rows {
        usage_error(&format!(
            "the 1P1C and ping-pong rows pin their two sides to two cores, and this process \
             may run on {} (give it two, or --only a row that needs one: single-thread, \
             2P2C, bucket)",
            cores.len()
        ));
    }
    let mut rows = Vec::new();

    if wants("single-thread push+pop") {
        eprintln!("(a) single-thread push+pop ...");
        rows.push(single_thread_row(repeats));
    }
    rows.extend(spsc_rows(&cores, repeats, &wants));
    if wants(PING_PONG) {
        eprintln!("(c) ping-pong ...");
        rows.extend(ping_pong_rows(&cores, repeats));
    }
    if wants("2P2C blocking (oversubscribed)") {
        eprintln!("(d) 2P2C blocking ...");
        rows.push(mpmc_row(repeats));
    }
    rows.extend(bucket_rows(repeats, &wants));
    if rows.is_empty() {
        usage_error(&format!(
            "no measure matches --only {:?}",
            only.unwrap_or_default()
        ));
    }

    print_rows(&rows, &command_line, &options);
}

/// The single-thread push+pop row: one thread pushing and popping, ns per pair.
fn single_thread_row(repeats: usize) -> Row {
    const PAIRS: u64 = 2_000_000;
    fn a<F: Flavor>() -> f64 {
        ring::single_thread_pairs::<F>(PAIRS).as_nanos() as f64 / PAIRS as f64
    }
    Row::measured(
        "single-thread push+pop",
        "ns/op",
        false,
        repeats,
        &mut flavours!(
            a,
            Pc,
            ArrayQueue,
            Heapless,
            Rtrb,
            CrossbeamChannel,
            StdSyncChannel,
            Kanal,
            Flume,
            ConcurrentQueue,
            Disruptor
        ),
    )
}

/// The 1P1C rows, single messages and each batch size, that `wants`: the two sides pinned to
/// two of `cores`.
fn spsc_rows(cores: &[CoreId], repeats: usize, wants: &dyn Fn(&str) -> bool) -> Vec<Row> {
    let mut rows = Vec::new();
    const MSGS: u64 = 5_000_000;
    for batch in SPSC_BATCHES {
        let name = spsc_row_name(batch);
        if !wants(&name) {
            continue;
        }
        eprintln!("(b) {name} ...");
        let c = cores;
        let mut runs: Vec<Run<'_>> = vec![
            spsc::<Pc>(c, MSGS, batch),
            spsc::<PcSplit>(c, MSGS, batch),
            spsc::<Rtrb>(c, MSGS, batch),
            spsc::<Disruptor>(c, MSGS, batch),
        ];
        let mut na: &[_] = &NO_BATCH_API;
        if batch == 1 {
            na = &[];
            runs.extend([
                spsc::<ArrayQueue>(c, MSGS, 1),
                spsc::<Heapless>(c, MSGS, 1),
                spsc::<CrossbeamChannel>(c, MSGS, 1),
                // std parks on every message: a fifth of the messages keeps its run short.
                spsc::<StdSyncChannel>(c, MSGS / 5, 1),
                spsc::<Kanal>(c, MSGS, 1),
                spsc::<Flume>(c, MSGS, 1),
                spsc::<ConcurrentQueue>(c, MSGS, 1),
            ]);
        }
        rows.push(Row::measured(name, "M msg/s", true, repeats, &mut runs).with_na(na));
    }

    rows
}

/// The ping-pong rows (p50 and p99 from the same runs): the two sides pinned to two of
/// `cores`.
fn ping_pong_rows(cores: &[CoreId], repeats: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    const ROUNDS: u64 = 200_000;
    let c = cores;
    let mut runs: Vec<Run<'_>> = vec![
        ping_pong::<Pc>(c, ROUNDS),
        ping_pong::<PcSplit>(c, ROUNDS),
        ping_pong::<ArrayQueue>(c, ROUNDS),
        ping_pong::<Heapless>(c, ROUNDS),
        ping_pong::<Rtrb>(c, ROUNDS),
        ping_pong::<CrossbeamChannel>(c, ROUNDS),
        ping_pong::<Kanal>(c, ROUNDS),
        ping_pong::<Flume>(c, ROUNDS),
        ping_pong::<ConcurrentQueue>(c, ROUNDS),
        ping_pong::<Disruptor>(c, ROUNDS),
    ];
    // Both rows from the same runs, so a repeat's p50 and p99 describe one sample set.
    let quantiles = measure(repeats, &mut runs);
    for ((_, label), results) in PING_PONG_QUANTILES.iter().zip(quantiles) {
        let name = format!("{PING_PONG} {label}");
        rows.push(Row::of(name, "ns", false, results));
    }
    rows
}

/// The 2P2C row: two producers and two consumers, blocking, on however many cores there are.
fn mpmc_row(repeats: usize) -> Row {
    const MPMC_MSGS: u64 = 2_000_000;
    fn d<F: Flavor<Tx: Clone, Rx: Clone>>() -> f64 {
        per_sec(MPMC_MSGS, ring::mpmc_blocking::<F>(MPMC_MSGS))
    }
    let mut runs: Vec<Run<'_>> = flavours!(
        d,
        Pc,
        PcSplit,
        CrossbeamChannel,
        StdSyncChannel,
        ArrayQueue,
        Heapless,
        Kanal,
        Flume,
        ConcurrentQueue
    )
    .into_iter()
    .collect();
    // The disruptor's consumers are pollers that each see every event: its own loop.
    runs.push(run::<Disruptor>(|| {
        per_sec(MPMC_MSGS, ring::mpmc_disruptor(MPMC_MSGS))
    }));
    Row::measured(
        "2P2C blocking (oversubscribed)",
        "M msg/s",
        true,
        repeats,
        &mut runs,
    )
}

/// Prints `rows`: the table, or with `--json` one document with the run's metadata.
fn print_rows(rows: &[Row], command_line: &[String], options: &Options) {
    if options.json {
        let doc = json!({
            "tool": "pc-benches compare",
            "metadata": metadata(command_line, options),
            "measures": rows.iter().map(row_json).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON of plain values")
        );
    } else {
        print_table(rows);
    }
}

/// The token bucket rows: pc-core's `TokenBucket` against governor's direct limiter, both on
/// pc-core's `Clock` (the same clock source), through the loops of `pc_benches::bucket` that the
/// criterion bench times too. Runs are interleaved and repeated like the ring rows.
fn bucket_rows(repeats: usize, wants: &dyn Fn(&str) -> bool) -> Vec<Row> {
    use pc_benches::bucket::{self, AccuracyRun, CounterClock, SameClock};
    use pc_core::Clock;

    const CALLS: u64 = 2_000_000;
    const LOGIC_CALLS: u64 = 20_000_000;
    let ns_per_call = |d: Duration, calls: u64| d.as_nanos() as f64 / calls as f64;
    let clock = Clock::new();
    let mut rows = Vec::new();

    if wants("bucket: uncontended try_acquire, real clock") {
        eprintln!("(e) bucket uncontended ...");
        let ours = bucket::pc_bucket();
        let governor = bucket::governor(SameClock(clock));
        rows.push(Row::measured(
            "bucket: uncontended try_acquire, real clock",
            "ns/op",
            false,
            repeats,
            &mut [
                limiter("pc-core", || {
                    ns_per_call(bucket::pc_uncontended(&ours, &clock, CALLS), CALLS)
                }),
                limiter("governor", || {
                    ns_per_call(bucket::governor_uncontended(&governor, CALLS), CALLS)
                }),
            ],
        ));
    }
    if wants("bucket: limiter logic only (counter clock)") {
        let ours = bucket::pc_bucket();
        let governor = bucket::governor(CounterClock::default());
        let mut now = 0;
        rows.push(Row::measured(
            "bucket: limiter logic only (counter clock)",
            "ns/op",
            false,
            repeats,
            &mut [
                limiter("pc-core", || {
                    let d = bucket::pc_counter_clock(&ours, &mut now, LOGIC_CALLS);
                    ns_per_call(d, LOGIC_CALLS)
                }),
                limiter("governor", || {
                    let d = bucket::governor_uncontended(&governor, LOGIC_CALLS);
                    ns_per_call(d, LOGIC_CALLS)
                }),
            ],
        ));
    }
    if wants("bucket: 2 threads contended, real clock") {
        eprintln!("(f) bucket contended, 2 threads ...");
        let ours = bucket::pc_bucket();
        let governor = bucket::governor(SameClock(clock));
        rows.push(Row::measured(
            "bucket: 2 threads contended, real clock",
            "M calls/s",
            true,
            repeats,
            &mut [
                limiter("pc-core", || {
                    per_sec(CALLS, bucket::pc_contended(&ours, &clock, CALLS))
                }),
                limiter("governor", || {
                    per_sec(CALLS, bucket::governor_contended(&governor, CALLS))
                }),
            ],
        ));
    }
    if wants("bucket: accuracy") {
        eprintln!("(g) bucket accuracy, 2 threads at 100k/s ...");
        let run = AccuracyRun::new(100_000, 2, Duration::from_millis(500));
        // 100 - |error %|: higher is better, so the ratio reads like the others.
        let accuracy = |error: f64| 100.0 - error.abs();
        rows.push(Row::measured(format!(
                "bucket: accuracy (100 - abs. error %), 2 threads at 100k/s, {} ms, batch {}, burst {}",
                run.window.as_millis(),
                run.batch,
                run.burst
            ), "%", true, repeats,
                &mut [
                    limiter("pc-core", || accuracy(run.pc(&clock))),
                    limiter("governor", || accuracy(run.governor(&clock))),
                ]));
    }
    rows
}

fn print_table(rows: &[Row]) {
    println!("| measure | unit | pc | best peer | peer | ratio (pc vs best) | paired |");
    println!("|---|---|---:|---:|---|---:|---:|");
    for row in rows {
        let Some(best) = row.best_peer(|_| true) else {
            continue;
        };
        let variants = row.results[1..]
            .iter()
            .filter(|m| m.class == Class::PcVariant);
        for ours in std::iter::once(&row.results[0]).chain(variants) {
            let measure = if ours.class == Class::PcVariant {
                format!("{} ({})", row.measure, ours.name)
            } else {
                row.measure.clone()
            };
            println!(
                "| {} | {} | {:.2} | {:.2} | {} | {:.2}x | {:.2}x |",
                measure,
                row.unit,
                ours.median,
                best.median,
                best.name,
                row.ratio(ours.median, best.median),
                row.paired_ratio(ours, best)
            );
        }
    }
    println!();
    println!("All peers, medians:");
    for row in rows {
        let all: Vec<String> = row
            .results
            .iter()
            .map(|m| format!("{} {:.2}", m.name, m.median))
            .chain(row.na.iter().map(|(name, _)| format!("{name} n/a")))
            .collect();
        println!("- {} ({}): {}", row.measure, row.unit, all.join(", "));
    }
}

/// One measure as JSON: every crate's samples and median, and its ratios (of the medians, and
/// paired: [`Row::paired_ratio`]) to the best MPMC peer and to the best peer of any kind,
/// oriented so that > 1 means that crate is ahead.
fn row_json(row: &Row) -> Value {
    let best_mpmc = row.best_peer(|m| m.class == Class::Mpmc);
    let best_any = row.best_peer(|_| true);
    let summary = |m: Option<&Measured>| m.map(|m| json!({"crate": m.name, "median": m.median}));
    let mut results: Vec<Value> = row
        .results
        .iter()
        .map(|m| {
            json!({
                "crate": m.name,
                "kind": match m.class {
                    Class::Mpmc => "mpmc",
                    Class::PcVariant => "pc variant",
                    Class::Spsc => "spsc",
                    Class::Limiter => "rate limiter",
                },
                "samples": m.samples,
                "median": m.median,
                "ratio_vs_best_mpmc_peer": best_mpmc.map(|b| row.ratio(m.median, b.median)),
                "ratio_vs_best_peer": best_any.map(|b| row.ratio(m.median, b.median)),
                "paired_ratio_vs_best_mpmc_peer": best_mpmc.map(|b| row.paired_ratio(m, b)),
                "paired_ratio_vs_best_peer": best_any.map(|b| row.paired_ratio(m, b)),
            })
        })
        .collect();
    results.extend(
        row.na
            .iter()
            .map(|(name, why)| json!({"crate": name, "median": null, "n/a": why})),
    );
    json!({
        "measure": row.measure,
        "unit": row.unit,
        "higher_is_better": row.higher_is_better,
        "best_mpmc_peer": summary(best_mpmc),
        "best_peer": summary(best_any),
        "results": results,
    })
}

/// Where and how the run was made.
fn metadata(command_line: &[String], options: &Options) -> Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    json!({
        "date_utc": utc_now(),
        "cpu_model": cpu_model(),
        "cpus_available": std::thread::available_parallelism().map(usize::from).ok(),
        "rustc": env!("PC_BENCHES_RUSTC"),
        "profile": if cfg!(debug_assertions) { "debug (numbers meaningless)" } else { "release" },
        "git_commit": git(&["rev-parse", "HEAD"]),
        // At run time: a dirty tree means the binary may hold uncommitted changes.
        "git_dirty": git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
        "command_line": command_line,
        "repeats": options.repeats,
        "only": options.only,
        "ring_capacity": ring::CAPACITY,
        "message": "u64",
    })
}

/// The CPU's model name, from /proc/cpuinfo, else from `lscpu`.
fn cpu_model() -> Option<String> {
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| field(&t, "model name"))
        .or_else(|| {
            let out = std::process::Command::new("lscpu").output().ok()?;
            field(&String::from_utf8_lossy(&out.stdout), "Model name")
        })
}

/// Now, in UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Whether `--only` (if given) selects the measure named `section`: its name contains the
/// word, case aside (`--only 2p2c` is the 2P2C row, as `ab.sh` names it).
fn wanted(only: Option<&str>, section: &str) -> bool {
    only.is_none_or(|w| section.to_lowercase().contains(&w.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn only_selects_the_measures_whose_names_contain_the_word_case_aside() {
        assert!(wanted(None, "2P2C blocking (oversubscribed)"));
        for word in ["2p2c", "2P2C", "blocking"] {
            assert!(
                wanted(Some(word), "2P2C blocking (oversubscribed)"),
                "{word}"
            );
        }
        assert!(wanted(Some("1p1c"), "1P1C throughput, batch 64"));
        assert!(wanted(Some("Ping-Pong"), "ping-pong round trip"));
        assert!(
            !wanted(Some("p50"), "ping-pong round trip"),
            "one measure, two rows"
        );
        assert!(!wanted(Some("batch"), "single-thread push+pop"));
    }

    /// A VM that turned fast between the third repeat's two runs: every repeat but that one
    /// has pc ahead, yet the medians (pc's from its three slow samples, the peer's from its
    /// three fast ones) put it far behind. The paired ratio keeps each repeat's samples
    /// together.
    #[test]
    fn the_paired_ratio_compares_each_repeat_with_itself() {
        let measured = |name, samples: &[f64]| Measured {
            name,
            class: Class::Mpmc,
            samples: samples.to_vec(),
            median: median(samples.to_vec()),
        };
        let pc = measured("pc", &[520.0, 491.0, 511.0, 130.0, 130.0]);
        let peer = measured("peer", &[560.0, 571.0, 150.0, 150.0, 150.0]);
        let row = Row::of("round trip", "ns", false, vec![pc, peer]);
        let (pc, peer) = (&row.results[0], &row.results[1]);
        let of_medians = row.ratio(pc.median, peer.median);
        assert!((of_medians - 150.0 / 491.0).abs() < 1e-9, "{of_medians}");
        let paired = row.paired_ratio(pc, peer);
        assert!((paired - 150.0 / 130.0).abs() < 1e-9, "{paired}");
        assert!(
            row.paired_ratio(peer, pc) < 1.0,
            "oriented: > 1 means ahead"
        );
    }

    #[test]
    fn runs_are_interleaved_and_each_output_row_keeps_the_samples_of_the_same_calls() {
        let calls = Cell::new(0.0);
        let call = || {
            calls.set(calls.get() + 1.0);
            vec![calls.get(), calls.get() * 10.0]
        };
        let mut runs = [
            Run {
                name: "a",
                class: Class::Mpmc,
                run: Box::new(call),
            },
            Run {
                name: "b",
                class: Class::Spsc,
                run: Box::new(call),
            },
        ];
        let outputs = measure(3, &mut runs);
        assert_eq!(outputs.len(), 2, "one list per output");
        let samples = |o: usize, r: usize| outputs[o][r].samples.clone();
        // Interleaved: a, b, a, b, a, b.
        assert_eq!(samples(0, 0), [1.0, 3.0, 5.0]);
        assert_eq!(samples(0, 1), [2.0, 4.0, 6.0]);
        // The second output of each call sits beside the first, in the same order.
        assert_eq!(samples(1, 0), [10.0, 30.0, 50.0]);
        assert_eq!(samples(1, 1), [20.0, 40.0, 60.0]);
        assert_eq!(outputs[1][1].median, 40.0);
        assert_eq!(outputs[1][1].name, "b");
    }
}
