//! `bucket_accuracy`'s command line: `--help` prints the usage and succeeds; a bad argument
//! is refused with one line and status 2, before any run.

use std::process::{Command, Output};

fn bucket_accuracy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bucket_accuracy"))
        .args(args)
        .output()
        .expect("run bucket_accuracy")
}

#[test]
fn bucket_accuracy_help_prints_the_usage_and_succeeds() {
    let out = bucket_accuracy(&["--help"]);
    assert!(out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: bucket_accuracy"));
    assert!(out.stderr.is_empty());
}

#[test]
fn bucket_accuracy_refuses_a_window_or_count_it_cannot_run_with_one_line() {
    for (args, needle) in [
        (&["--secs", "-1"][..], "--secs takes seconds"),
        (&["--secs", "NaN"][..], "--secs takes seconds"),
        (
            &["--threads", "0"][..],
            "--threads takes a positive whole number",
        ),
        (
            &["--batch", "0"][..],
            "--batch takes a positive whole number",
        ),
        (
            &["--rate", "fast"][..],
            "--rate takes a positive whole number",
        ),
        (&["--threads"][..], "--threads needs a value"),
        (&["--colour"][..], "unknown argument \"--colour\""),
    ] {
        let out = bucket_accuracy(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing run");
    }
}
