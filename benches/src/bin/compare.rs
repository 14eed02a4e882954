//! Quick side-by-side comparison: short versions of the ring and token bucket benches (pc and
//! its peers in the same run, interleaved, repeated), printed as one table: each measure, ours,
//! the best peer, and the ratio (> 1 means pc is ahead).
//!
//! `cargo run --release -p pc-benches --bin compare [-- --repeats N] [--only WORD]`
//!
//! `--only WORD` runs just the sections whose names contain WORD (`single`, `1P1C`, `batch`,
//! `ping-pong`, `2P2C`, `bucket`), for a quick look at one measure.

use std::time::Duration;

use pc_benches::ring::{
    self, ArrayQueue, CrossbeamChannel, Flavor, Heapless, Pc, Rtrb, StdSyncChannel,
};

/// A named measurement to repeat: returns one sample.
type Run<'a> = (&'static str, Box<dyn FnMut() -> f64 + 'a>);

/// One table row: a measure, its unit, and whether bigger is better.
struct Row {
    measure: String,
    unit: &'static str,
    higher_is_better: bool,
    /// (name, median value) for pc first, then each peer.
    results: Vec<(&'static str, f64)>,
}

impl Row {
    /// Measures `runs` (see [`measure`]) into a row.
    fn measured(
        measure: impl Into<String>,
        unit: &'static str,
        higher_is_better: bool,
        repeats: usize,
        runs: &mut [Run<'_>],
    ) -> Self {
        Self {
            measure: measure.into(),
            unit,
            higher_is_better,
            results: crate::measure(repeats, runs),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs each flavour's closure `repeats` times, interleaved (pc, peer1, .., pc, peer1, ..) so
/// drifting machine load hits all alike; keeps the median of each.
fn measure(repeats: usize, runs: &mut [Run<'_>]) -> Vec<(&'static str, f64)> {
    let mut samples = vec![Vec::new(); runs.len()];
    for _ in 0..repeats {
        for (i, (_, run)) in runs.iter_mut().enumerate() {
            samples[i].push(run());
        }
    }
    runs.iter()
        .zip(samples)
        .map(|((name, _), s)| (*name, median(s)))
        .collect()
}

/// A 1P1C throughput run of flavour `F`: M msg/s.
fn spsc<F: Flavor>(cores: &[core_affinity::CoreId], msgs: u64, batch: usize) -> Run<'_> {
    (
        F::NAME,
        Box::new(move || per_sec(msgs, ring::spsc_throughput::<F>(cores, msgs, batch))),
    )
}

/// A ping-pong run of flavour `F`: the `q`-quantile of its round trips, in ns.
fn ping_pong<F: Flavor>(cores: &[core_affinity::CoreId], rounds: u64, q: f64) -> Run<'_> {
    (
        F::NAME,
        Box::new(move || {
            ring::quantile(&mut ring::ping_pong::<F>(cores, rounds), q).as_nanos() as f64
        }),
    )
}

fn per_sec(msgs: u64, d: Duration) -> f64 {
    msgs as f64 / d.as_secs_f64() / 1e6
}

/// The value after flag `name` on the command line, if the flag is there; exits with a one-line
/// error if the flag has no value.
fn flag(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next()?;
    Some(args.next().unwrap_or_else(|| {
        eprintln!("compare: {name} needs a value");
        std::process::exit(2)
    }))
}

fn main() {
    if let Some(bad) = std::env::args()
        .skip(1)
        .step_by(2)
        .find(|a| a != "--repeats" && a != "--only")
    {
        eprintln!("compare: unknown argument {bad:?} (usage: compare [--repeats N] [--only WORD])");
        std::process::exit(2);
    }
    let repeats = flag("--repeats").map_or(5, |n| match n.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("compare: --repeats takes a positive number, not {n:?}");
            std::process::exit(2)
        }
    });
    let only = flag("--only");
    macro_rules! flavours { ($f:ident, $($t:ty),*) => { [$((<$t>::NAME, Box::new(move || $f::<$t>()) as Box<dyn FnMut() -> f64>)),*] } }
    let wants = |section: &str| only.as_deref().is_none_or(|w| section.contains(w));
    let cores = ring::cores();
    let mut rows = Vec::new();

    if wants("single-thread push+pop") {
        eprintln!("(a) single-thread push+pop ...");
        const PAIRS: u64 = 2_000_000;
        fn a<F: Flavor>() -> f64 {
            ring::single_thread_pairs::<F>(PAIRS).as_nanos() as f64 / PAIRS as f64
        }
        rows.push(Row::measured(
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
                StdSyncChannel
            ),
        ));
    }
    const MSGS: u64 = 5_000_000;
    for batch in [1usize, 32, 64] {
        let name = if batch == 1 {
            "1P1C throughput, single".to_owned()
        } else {
            format!("1P1C throughput, batch {batch}")
        };
        if !wants(&name) {
            continue;
        }
        eprintln!("(b) {name} ...");
        let c = &cores;
        let mut runs: Vec<Run<'_>> = vec![spsc::<Pc>(c, MSGS, batch), spsc::<Rtrb>(c, MSGS, batch)];
        if batch == 1 {
            runs.extend([
                spsc::<ArrayQueue>(c, MSGS, 1),
                spsc::<Heapless>(c, MSGS, 1),
                spsc::<CrossbeamChannel>(c, MSGS, 1),
                // std parks on every message: a fifth of the messages keeps its run short.
                spsc::<StdSyncChannel>(c, MSGS / 5, 1),
            ]);
        }
        rows.push(Row::measured(name, "M msg/s", true, repeats, &mut runs));
    }

    if wants("ping-pong round trip") {
        eprintln!("(c) ping-pong ...");
        const ROUNDS: u64 = 200_000;
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            let c = &cores;
            let mut runs: Vec<Run<'_>> = vec![
                ping_pong::<Pc>(c, ROUNDS, q),
                ping_pong::<ArrayQueue>(c, ROUNDS, q),
                ping_pong::<Heapless>(c, ROUNDS, q),
                ping_pong::<Rtrb>(c, ROUNDS, q),
                ping_pong::<CrossbeamChannel>(c, ROUNDS, q),
            ];
            rows.push(Row::measured(
                format!("ping-pong round trip {label}"),
                "ns",
                false,
                repeats,
                &mut runs,
            ));
        }
    }
    if wants("2P2C blocking (oversubscribed)") {
        eprintln!("(d) 2P2C blocking ...");
        const MPMC_MSGS: u64 = 2_000_000;
        fn d<F: Flavor<Tx: Clone, Rx: Clone>>() -> f64 {
            per_sec(MPMC_MSGS, ring::mpmc_blocking::<F>(MPMC_MSGS))
        }
        rows.push(Row::measured(
            "2P2C blocking (oversubscribed)",
            "M msg/s",
            true,
            repeats,
            &mut flavours!(
                d,
                Pc,
                CrossbeamChannel,
                StdSyncChannel,
                ArrayQueue,
                Heapless
            ),
        ));
    }
    rows.extend(bucket_rows(repeats, &wants));
    if rows.is_empty() {
        eprintln!(
            "compare: no measure matches --only {:?}",
            only.unwrap_or_default()
        );
        std::process::exit(2);
    }

    print_table(&rows);
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
                (
                    "pc-core",
                    Box::new(|| ns_per_call(bucket::pc_uncontended(&ours, &clock, CALLS), CALLS)),
                ),
                (
                    "governor",
                    Box::new(|| ns_per_call(bucket::governor_uncontended(&governor, CALLS), CALLS)),
                ),
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
                (
                    "pc-core",
                    Box::new(|| {
                        let d = bucket::pc_counter_clock(&ours, &mut now, LOGIC_CALLS);
                        ns_per_call(d, LOGIC_CALLS)
                    }),
                ),
                (
                    "governor",
                    Box::new(|| {
                        let d = bucket::governor_uncontended(&governor, LOGIC_CALLS);
                        ns_per_call(d, LOGIC_CALLS)
                    }),
                ),
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
                (
                    "pc-core",
                    Box::new(|| per_sec(CALLS, bucket::pc_contended(&ours, &clock, CALLS))),
                ),
                (
                    "governor",
                    Box::new(|| per_sec(CALLS, bucket::governor_contended(&governor, CALLS))),
                ),
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
                    ("pc-core", Box::new(|| accuracy(run.pc(&clock)))),
                    ("governor", Box::new(|| accuracy(run.governor(&clock)))),
                ]));
    }
    rows
}

fn print_table(rows: &[Row]) {
    println!("| measure | unit | pc | best peer | peer | ratio (pc vs best) |");
    println!("|---|---|---:|---:|---|---:|");
    for row in rows {
        let (_, ours) = row.results[0];
        let peers = &row.results[1..];
        let best = if row.higher_is_better {
            peers.iter().max_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            peers.iter().min_by(|a, b| a.1.total_cmp(&b.1))
        };
        let Some(&(name, best)) = best else { continue };
        let ratio = if row.higher_is_better {
            ours / best
        } else {
            best / ours
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {} | {:.2}x |",
            row.measure, row.unit, ours, best, name, ratio
        );
    }
    println!();
    println!("All peers, medians:");
    for row in rows {
        let all: Vec<String> = row
            .results
            .iter()
            .map(|(n, v)| format!("{n} {v:.2}"))
            .collect();
        println!("- {} ({}): {}", row.measure, row.unit, all.join(", "));
    }
}
