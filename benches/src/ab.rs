//! The A/B driver: two builds of pc-core's ring, `A` and `B`, measured in ONE process by the
//! ring comparisons' own loops ([`crate::harness`]), their runs alternating (A then B in even
//! pairs, B then A in odd ones) so that the machine's drifting speed hits both alike; per
//! scenario it reports both medians, B/A, and B/A pair by pair.
//!
//! `benches/ab/ab.sh` builds it: it links two revisions of pc-core into one binary (see
//! `benches/ab/README.md`) and calls [`main`] with them. This file is compiled into that binary
//! by path, with the harness at the root of that crate, so it may use `crate::harness` and
//! `std` only. pc-benches compiles it too, so that clippy and the tests see it.
//!
//! It also runs single workloads (`--run-one`), for `valgrind --tool=callgrind` (instruction
//! counts, repeatable on a noisy machine) and `perf stat`, which `ab.sh` drives.

use std::hint::black_box;
use std::time::Duration;

use crate::harness::{self, Flavor};

/// A measured scenario: the ring comparisons' rows, the same loops as `compare`'s.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Its key, for `--only` and `--run-one`.
    pub key: &'static str,
    /// The row label (as in `compare`'s table).
    pub name: &'static str,
    /// The unit of its value.
    pub unit: &'static str,
    /// Whether a bigger value is better.
    pub higher_is_better: bool,
    /// Operations (messages, pairs or round trips) per run at `--scale 1`, as in `compare`.
    pub ops: u64,
}

/// The scenarios, in the order they run.
pub const SCENARIOS: [Scenario; 8] = [
    Scenario {
        key: "single",
        name: "single-thread push+pop",
        unit: "ns/op",
        higher_is_better: false,
        ops: 2_000_000,
    },
    Scenario {
        key: "1p1c",
        name: "1P1C throughput, single",
        unit: "M msg/s",
        higher_is_better: true,
        ops: 5_000_000,
    },
    Scenario {
        key: "batch32",
        name: "1P1C throughput, batch 32",
        unit: "M msg/s",
        higher_is_better: true,
        ops: 5_000_000,
    },
    Scenario {
        key: "batch64",
        name: "1P1C throughput, batch 64",
        unit: "M msg/s",
        higher_is_better: true,
        ops: 5_000_000,
    },
    Scenario {
        key: "pingpong",
        name: "ping-pong round trip p50",
        unit: "ns",
        higher_is_better: false,
        ops: 200_000,
    },
    Scenario {
        key: "2p2c",
        name: "2P2C blocking (oversubscribed)",
        unit: "M msg/s",
        higher_is_better: true,
        ops: 2_000_000,
    },
    Scenario {
        key: "2p2c-mixed",
        name: "2P2C blocking, a producer and a consumer pinned to each core",
        unit: "M msg/s",
        higher_is_better: true,
        ops: 2_000_000,
    },
    Scenario {
        key: "2p2c-split",
        name: "2P2C blocking, producers pinned to one core, consumers to the other",
        unit: "M msg/s",
        higher_is_better: true,
        ops: 2_000_000,
    },
];

/// The single-threaded workloads for callgrind: deterministic, so two runs of one build count
/// the same instructions (give or take a handful).
pub const WORKLOADS: [(&str, &str); 3] = [
    (
        "single",
        "push one, pop one, `ops` times (the single-thread push+pop row)",
    ),
    (
        "batch",
        "push a batch of 64, pop a batch of 64, `ops / 64` times (the batch API's own cost)",
    ),
    (
        "fill",
        "push until full, pop until empty, one at a time, `ops / capacity` laps",
    ),
];

/// Runs `scenario` once on flavour `F` with `ops` operations; returns its value in its unit.
///
/// # Panics
/// If `scenario` is not one of [`SCENARIOS`], or a run loses or duplicates a message.
pub fn measure<F>(scenario: &Scenario, cores: &[core_affinity::CoreId], ops: u64) -> f64
where
    F: Flavor<Tx: Clone, Rx: Clone>,
{
    let per_sec = |d: Duration| ops as f64 / d.as_secs_f64() / 1e6;
    match scenario.key {
        "single" => harness::single_thread_pairs::<F>(ops).as_nanos() as f64 / ops as f64,
        "1p1c" => per_sec(harness::spsc_throughput::<F>(cores, ops, 1)),
        "batch32" => per_sec(harness::spsc_throughput::<F>(cores, ops, 32)),
        "batch64" => per_sec(harness::spsc_throughput::<F>(cores, ops, 64)),
        "pingpong" => {
            harness::quantile(&mut harness::ping_pong::<F>(cores, ops), 0.5).as_nanos() as f64
        }
        "2p2c" => per_sec(harness::mpmc_blocking::<F>(ops)),
        "2p2c-mixed" => per_sec(harness::mpmc_blocking_placed::<F>(
            cores,
            ops,
            harness::Placement::Mixed,
        )),
        "2p2c-split" => per_sec(harness::mpmc_blocking_placed::<F>(
            cores,
            ops,
            harness::Placement::Split,
        )),
        other => panic!("no scenario {other:?}"),
    }
}

/// One single-threaded workload (see [`WORKLOADS`]) on flavour `F`; returns a checksum.
/// Never inlined and named for callgrind's `--toggle-collect=*ab_workload*`, so that only the
/// workload is counted, not the process's start-up or the ring's allocation.
///
/// # Panics
/// If `kind` is not one of [`WORKLOADS`], or the ring loses a value.
#[inline(never)]
pub fn ab_workload<F: Flavor>(tx: &mut F::Tx, rx: &mut F::Rx, kind: &str, ops: u64) -> u64 {
    use harness::{Rx as _, Tx as _};
    let mut sum = 0u64;
    match kind {
        "single" => {
            for i in 0..ops {
                tx.try_push(black_box(i)).expect("room for one");
                sum = sum.wrapping_add(rx.try_pop().expect("the value just pushed"));
            }
        }
        "batch" => {
            const BATCH: u64 = 64;
            for lap in 0..ops / BATCH {
                let next = lap * BATCH;
                let pushed = tx.try_push_batch(black_box(next), next + BATCH, BATCH as usize);
                assert_eq!(pushed as u64, BATCH, "{}: batch push", F::NAME);
                let popped = rx.try_pop_batch(BATCH as usize, &mut sum);
                assert_eq!(popped as u64, BATCH, "{}: batch pop", F::NAME);
            }
        }
        "fill" => {
            let cap = harness::CAPACITY as u64;
            for lap in 0..ops / cap {
                for i in 0..cap {
                    tx.try_push(black_box(lap * cap + i)).expect("not full yet");
                }
                for _ in 0..cap {
                    sum = sum.wrapping_add(rx.try_pop().expect("not empty yet"));
                }
                assert!(rx.try_pop().is_none(), "{}: more than was pushed", F::NAME);
            }
        }
        other => panic!("no workload {other:?}"),
    }
    sum
}

/// What one A/B scenario measured: `a[i]` and `b[i]` ran back to back (pair `i`).
#[derive(Clone, Debug)]
pub struct Pairs {
    /// The scenario.
    pub scenario: Scenario,
    /// A's values, one per pair.
    pub a: Vec<f64>,
    /// B's values, one per pair.
    pub b: Vec<f64>,
}

impl Pairs {
    /// The median of A's values.
    #[must_use]
    pub fn median_a(&self) -> f64 {
        median(&self.a)
    }

    /// The median of B's values.
    #[must_use]
    pub fn median_b(&self) -> f64 {
        median(&self.b)
    }

    /// B/A of each pair, in pair order.
    #[must_use]
    pub fn ratios(&self) -> Vec<f64> {
        self.a.iter().zip(&self.b).map(|(a, b)| b / a).collect()
    }

    /// In how many pairs B did better than A (by the scenario's direction).
    #[must_use]
    pub fn b_better(&self) -> usize {
        let better = |r: &f64| {
            if self.scenario.higher_is_better {
                *r > 1.0
            } else {
                *r < 1.0
            }
        };
        self.ratios().iter().filter(|r| better(r)).count()
    }
}

/// The median of `v` (the mean of the middle two for an even count); NaN if empty.
#[must_use]
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Measures `scenario` `pairs` times on `A` and on `B`, alternating which goes first.
pub fn run_pairs<A, B>(
    scenario: &Scenario,
    cores: &[core_affinity::CoreId],
    pairs: usize,
    scale: f64,
) -> Pairs
where
    A: Flavor<Tx: Clone, Rx: Clone>,
    B: Flavor<Tx: Clone, Rx: Clone>,
{
    let ops = ((scenario.ops as f64 * scale) as u64).max(64);
    let (mut a, mut b) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..pairs {
        if i % 2 == 0 {
            a.push(measure::<A>(scenario, cores, ops));
            b.push(measure::<B>(scenario, cores, ops));
        } else {
            b.push(measure::<B>(scenario, cores, ops));
            a.push(measure::<A>(scenario, cores, ops));
        }
    }
    Pairs {
        scenario: *scenario,
        a,
        b,
    }
}

const USAGE: &str = "\
usage: ab [--pairs N] [--only WORD] [--scale X] [--label-a TEXT] [--label-b TEXT]
       ab --run-one a|b KEY OPS
       ab --help

The A/B binary that benches/ab/ab.sh builds (two pc-core builds linked as pc_core_a and
pc_core_b). Run it through ab.sh, which builds it; see ab.sh --help.

  --pairs N        runs per build and scenario, alternating A,B / B,A (default 10)
  --only WORD      only the scenarios whose key or name contains WORD
                   (keys: single, 1p1c, batch32, batch64, pingpong, 2p2c, 2p2c-mixed, 2p2c-split)
  --scale X        multiply every scenario's operation count by X (default 1; 0.05 for a
                   quick look: noisier)
  --label-a TEXT   what A is, for the header (ab.sh passes the revision)
  --label-b TEXT   what B is
  --run-one S K N  run one thing once on side S (a or b) with N operations and print its value:
                   K a scenario key above, or a single-threaded workload for callgrind:
                   single, batch, fill (only the workload is timed; under callgrind, count
                   with --toggle-collect='*ab_workload*')";

/// Parsed command line.
struct Args {
    pairs: usize,
    only: Option<String>,
    scale: f64,
    label_a: String,
    label_b: String,
    run_one: Option<(String, String, u64)>,
}

fn fail(msg: &str) -> ! {
    eprintln!("ab: {msg} (see ab --help)");
    std::process::exit(2)
}

fn parse(args: &[String]) -> Args {
    let mut parsed = Args {
        pairs: 10,
        only: None,
        scale: 1.0,
        label_a: "A".into(),
        label_b: "B".into(),
        run_one: None,
    };
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<'_, String>, flag: &str| -> String {
        it.next()
            .cloned()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--pairs" => {
                parsed.pairs = match value(&mut it, arg).parse() {
                    Ok(n) if n > 0 => n,
                    _ => fail("--pairs takes a positive number"),
                }
            }
            "--only" => parsed.only = Some(value(&mut it, arg)),
            "--scale" => {
                parsed.scale = match value(&mut it, arg).parse::<f64>() {
                    Ok(x) if x > 0.0 && x.is_finite() => x,
                    _ => fail("--scale takes a positive number"),
                }
            }
            "--label-a" => parsed.label_a = value(&mut it, arg),
            "--label-b" => parsed.label_b = value(&mut it, arg),
            "--run-one" => {
                let side = value(&mut it, arg);
                let key = value(&mut it, arg);
                let ops = value(&mut it, arg)
                    .parse()
                    .unwrap_or_else(|_| fail("--run-one's OPS is a number"));
                if side != "a" && side != "b" {
                    fail("--run-one's side is a or b");
                }
                parsed.run_one = Some((side, key, ops));
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    parsed
}

/// Runs one scenario or workload once on flavour `F`; prints its value.
fn run_one<F: Flavor<Tx: Clone, Rx: Clone>>(key: &str, ops: u64) {
    if WORKLOADS.iter().any(|(k, _)| *k == key) {
        let (mut tx, mut rx) = F::endpoints();
        let t0 = std::time::Instant::now();
        let sum = ab_workload::<F>(&mut tx, &mut rx, key, ops);
        let elapsed = t0.elapsed();
        black_box(sum);
        println!(
            "{} {key}: {ops} ops, {:.2} ns/op",
            F::NAME,
            elapsed.as_nanos() as f64 / ops.max(1) as f64
        );
    } else if let Some(s) = SCENARIOS.iter().find(|s| s.key == key) {
        let value = measure::<F>(s, &harness::cores(), ops);
        println!("{} {}: {ops} ops, {value:.2} {}", F::NAME, s.name, s.unit);
    } else {
        fail(&format!("no scenario or workload {key:?}"));
    }
}

/// The A/B binary's `main`: parses `std::env::args`, runs, prints.
pub fn main<A, B>()
where
    A: Flavor<Tx: Clone, Rx: Clone>,
    B: Flavor<Tx: Clone, Rx: Clone>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = parse(&args);
    if let Some((side, key, ops)) = &args.run_one {
        if side == "a" {
            run_one::<A>(key, *ops);
        } else {
            run_one::<B>(key, *ops);
        }
        return;
    }
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| {
            args.only
                .as_deref()
                .is_none_or(|w| s.key.contains(w) || s.name.contains(w))
        })
        .collect();
    if chosen.is_empty() {
        fail("no scenario matches --only");
    }
    let cores = harness::cores();
    println!(
        "A/B, one process: A = {}, B = {}; {} pairs per scenario (A,B then B,A, alternating), scale {}",
        args.label_a, args.label_b, args.pairs, args.scale
    );
    println!();
    println!(
        "| scenario | unit | A median | B median | B/A (medians) | B/A per pair: median [min, max] | B better in |"
    );
    println!("|---|---|---:|---:|---:|---|---:|");
    for s in chosen {
        eprintln!("ab: {} ...", s.name);
        let p = run_pairs::<A, B>(s, &cores, args.pairs, args.scale);
        let ratios = p.ratios();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.3} | {:.3} [{:.3}, {:.3}] | {}/{} pairs |",
            s.name,
            s.unit,
            p.median_a(),
            p.median_b(),
            p.median_b() / p.median_a(),
            median(&ratios),
            lo,
            hi,
            p.b_better(),
            ratios.len()
        );
    }
    println!();
    println!(
        "B/A > 1 means B measured more: better for M msg/s, worse for ns and ns/op. \
         A HEAD-vs-HEAD run shows this machine's noise floor."
    );
}
