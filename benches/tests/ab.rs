//! The A/B driver (`pc_benches::ab`, compiled into `benches/ab/`'s binary too), with pc's ring
//! as both A and B: its workloads check their sums and its pairs alternate.

use pc_benches::ab::{self, SCENARIOS, WORKLOADS};
use pc_benches::harness::{self, Flavor};
use pc_benches::ring::{Pc, PcSplit};

#[test]
fn median_odd_even_empty() {
    assert_eq!(ab::median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(ab::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert!(ab::median(&[]).is_nan());
}

#[test]
fn workloads_check_their_sums() {
    for (kind, _) in WORKLOADS {
        let (mut tx, mut rx) = Pc::endpoints();
        let ops = 4 * harness::CAPACITY as u64;
        let sum = ab::ab_workload::<Pc>(&mut tx, &mut rx, kind, ops);
        assert_eq!(sum, (0..ops).sum::<u64>(), "{kind}");
    }
}

#[test]
fn pairs_alternate_and_compare_a_build_with_itself() {
    pairs_alternate::<Pc>();
}

/// `ab.sh --handles split` measures the split handles (the macro `compare` uses too) in every
/// scenario, clones in the 2P2C ones.
#[test]
fn pairs_of_split_handles_run_every_scenario() {
    pairs_alternate::<PcSplit>();
}

fn pairs_alternate<F: Flavor<Tx: Clone, Rx: Clone>>() {
    let cores = harness::cores();
    for s in &SCENARIOS {
        let p = ab::run_pairs::<F, F>(s, &cores, 2, 0.0001);
        assert_eq!((p.a.len(), p.b.len()), (2, 2), "{}", s.name);
        assert!(
            p.ratios().iter().all(|r| r.is_finite() && *r > 0.0),
            "{}",
            s.name
        );
    }
}

/// `ab.sh` given a revision that names no commit stops at once with one line and status 2,
/// before it copies or builds anything.
#[test]
fn ab_sh_refuses_a_revision_that_names_no_commit_with_one_line() {
    assert_eq!(
        ab_sh_refusal(&["--a", "no-such-revision", "--only", "single"], "revision"),
        "ab.sh: not a revision: \"no-such-revision\" (see ab.sh --help)"
    );
}

/// `--handles` takes `shared` or `split`; anything else is refused the same way.
#[test]
fn ab_sh_refuses_handles_it_does_not_know_with_one_line() {
    assert_eq!(
        ab_sh_refusal(&["--handles", "both", "--only", "single"], "handles"),
        "ab.sh: --handles takes shared or split, not \"both\" (see ab.sh --help)"
    );
}

/// Options of the timed scenarios given with `--callgrind` or `--perf` (or `--ops` without
/// them) are refused, not ignored, before anything is built.
#[test]
fn ab_sh_refuses_options_the_chosen_run_would_ignore() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--callgrind", "batch", "--pairs", "3"],
            "--pairs is for the timed scenarios, not --callgrind or --perf",
        ),
        (
            &["--perf", "single", "--only", "batch"],
            "--only is for the timed scenarios, not --callgrind or --perf",
        ),
        (
            &["--both-ways", "--callgrind", "single"],
            "--both-ways is for the timed scenarios, not --callgrind or --perf",
        ),
        (
            &["--ops", "5", "--only", "single"],
            "--ops is for --callgrind and --perf",
        ),
    ];
    for (i, (args, line)) in cases.into_iter().enumerate() {
        assert_eq!(
            ab_sh_refusal(args, &format!("ignored-{i}")),
            format!("ab.sh: {line} (see ab.sh --help)")
        );
    }
}

/// `--pairs` and `--scale` are checked before the build (minutes), not by the binary after it.
#[test]
fn ab_sh_refuses_a_bad_count_or_scale_before_building() {
    for (i, (flag, value)) in [
        ("--pairs", "0"),
        ("--pairs", "00"),
        ("--pairs", "x"),
        ("--scale", "0"),
        ("--scale", "-1"),
        ("--scale", "abc"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            ab_sh_refusal(&[flag, value, "--only", "single"], &format!("number-{i}")),
            format!("ab.sh: {flag} takes a positive number (see ab.sh --help)")
        );
    }
}

/// The early checks take every value the binary would (a Rust integer or float: `+3`, `010`,
/// `1e-1`, `.5`, `1.`) and the combinations that work (`--handles` with `--callgrind`,
/// `--both-ways` with `--pairs` and `--scale`): each of these goes on to a later check, which
/// refuses it for another reason before anything is built.
#[test]
fn ab_sh_takes_every_value_the_binary_reads_past_its_early_checks() {
    let revision = "ab.sh: not a revision: \"no-such-revision\" (see ab.sh --help)";
    let later: [(&[&str], &str); 7] = [
        (&["--pairs", "+3", "--a", "no-such-revision"], revision),
        (&["--pairs", "010", "--a", "no-such-revision"], revision),
        (&["--scale", "1e-1", "--a", "no-such-revision"], revision),
        (&["--scale", ".5", "--a", "no-such-revision"], revision),
        (
            &[
                "--handles",
                "split",
                "--callgrind",
                "single",
                "--a",
                "no-such-revision",
            ],
            revision,
        ),
        (
            &[
                "--perf",
                "2p2c-mixed",
                "--ops",
                "5",
                "--a",
                "no-such-revision",
            ],
            revision,
        ),
        (
            &[
                "--both-ways",
                "--pairs",
                "3",
                "--scale",
                "1.",
                "--a",
                "worktree",
                "--b",
                "worktree",
            ],
            "ab.sh: --a and --b are both the working tree (see ab.sh --help)",
        ),
    ];
    for (i, (args, line)) in later.into_iter().enumerate() {
        assert_eq!(ab_sh_refusal(args, &format!("later-{i}")), line, "{args:?}");
    }
}

/// A `--perf` key that names no scenario or workload is refused before the build too.
#[test]
fn ab_sh_refuses_a_perf_key_it_does_not_know_before_building() {
    assert_eq!(
        ab_sh_refusal(&["--perf", "nope", "--ops", "5"], "perf-key"),
        "ab.sh: no scenario or workload \"nope\" (see ab.sh --help)"
    );
}

/// Runs `ab.sh ARGS` in a work directory of its own (named after `case`); asserts it exited
/// with status 2 having copied nothing, and returns its stderr, trimmed.
fn ab_sh_refusal(args: &[&str], case: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/ab/ab.sh");
    let work = std::env::temp_dir().join(format!("pc-ab-{case}-{}", std::process::id()));
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .env("AB_WORK_DIR", &work)
        .output()
        .expect("run ab.sh");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!work.join("src").exists(), "nothing copied");
    let _ = std::fs::remove_dir_all(&work);
    stderr
}
