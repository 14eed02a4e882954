//! The floor of the 1P1C single-message row: pc's ring, shared and split into handles, beside
//! three reference rings with a stamp per slot that differ only in how a side claims its
//! position (a CAS; a plain store; a plain store plus a locked add to a private line). See
//! `pc_benches::ring::floor`.
//!
//! `cargo run --release -p pc-benches --bin ring_floor -- --help` prints the options.

use std::time::Duration;

use pc_benches::ab::median;
use pc_benches::ring::floor::{StampCas, StampPlain, StampPlainLocked};
use pc_benches::ring::{self, Flavor, Pc, PcSplit, PcSplitTryPush};

const USAGE: &str = "\
usage: ring_floor [--repeats N] [--messages N]
       ring_floor --help

compare's 1P1C single row (one producer, one consumer, pinned to two cores, u64 messages,
capacity 1024, each side spinning once on full or empty) for pc's ring (shared, and split
into handles, whose sole producer and consumer claim with plain stores; both push with
try_push_spinning, which after a full ring waits for room for a run; the split handles
also with the exact try_push, which retries the moment a slot frees, to show what that
wait does here) and three reference rings with a stamp per slot, runs interleaved and
repeated; medians, and each one's ratio to the reference that claims with a CAS. The
references differ only in the claim (none waits for a run):

  stamps, CAS claim                          a compare-and-swap, as multi-producer rings do
  stamps, plain claim                        a plain store (one thread per side only)
  stamps, plain claim + private locked add   the plain store, and a locked add to a counter
                                             in a cache line no other thread touches

  --repeats N    runs of each ring (default 7)
  --messages N   messages a run (default 20000000)
  -h, --help     print this and exit";

/// Exits with status 2 and one line on stderr.
fn usage_error(msg: &str) -> ! {
    eprintln!("ring_floor: {msg} (see ring_floor --help)");
    std::process::exit(2)
}

/// `--repeats` and `--messages`.
fn parse_args(args: &[String]) -> (usize, u64) {
    let (mut repeats, mut messages) = (7usize, 20_000_000u64);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            "--repeats" | "--messages" => {
                let Some(value) = it.next() else {
                    usage_error(&format!("{arg} needs a value"))
                };
                match (arg.as_str(), value.parse::<u64>()) {
                    ("--repeats", Ok(n @ 1..=1000)) => repeats = n as usize,
                    ("--messages", Ok(n @ 1..)) => messages = n,
                    _ => usage_error(&format!("{arg} takes a positive number, not {value:?}")),
                }
            }
            other => usage_error(&format!("unknown argument {other:?}")),
        }
    }
    (repeats, messages)
}

/// One 1P1C single-message run of `F`: M msg/s.
fn run<F: Flavor>(cores: &[core_affinity::CoreId], messages: u64) -> f64 {
    let elapsed: Duration = ring::spsc_throughput::<F>(cores, messages, 1);
    messages as f64 / elapsed.as_secs_f64() / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (repeats, messages) = parse_args(&args);
    let cores = ring::cores();
    if cores.len() < 2 {
        eprintln!(
            "ring_floor: needs two cores to pin the two sides to; this process has {}",
            cores.len()
        );
        std::process::exit(1);
    }
    type Runner = fn(&[core_affinity::CoreId], u64) -> f64;
    let rings: [(&str, Runner); 6] = [
        (Pc::NAME, run::<Pc>),
        (StampCas::NAME, run::<StampCas>),
        (PcSplit::NAME, run::<PcSplit>),
        (PcSplitTryPush::NAME, run::<PcSplitTryPush>),
        (StampPlain::NAME, run::<StampPlain>),
        (StampPlainLocked::NAME, run::<StampPlainLocked>),
    ];
    let mut samples = vec![Vec::new(); rings.len()];
    for r in 0..repeats {
        eprintln!("ring_floor: round {} of {repeats}", r + 1);
        for (i, (_, f)) in rings.iter().enumerate() {
            samples[i].push(f(&cores, messages));
        }
    }
    let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
    let cas = medians[1]; // StampCas
    println!("| ring | M msg/s, median | vs stamps, CAS claim | samples |");
    println!("|---|---:|---:|---|");
    for (((name, _), m), s) in rings.iter().zip(&medians).zip(&samples) {
        let s: Vec<String> = s.iter().map(|x| format!("{x:.1}")).collect();
        println!("| {name} | {m:.1} | {:.2}x | {} |", m / cas, s.join(" "));
    }
}
