//! Progress on stderr: a bar with rate and ETA on a terminal for a run with a known end, lines
//! otherwise.

mod common;

use std::process::Command;

use common::OutputWithin as _;
use common::Scratch;

#[test]
fn a_terminal_shows_a_bar_with_eta_for_a_run_with_a_known_end() {
    let s = Scratch::new("progress-bar");
    // `script` runs pc-host on a pseudo-terminal (util-linux).
    let bin = env!("CARGO_BIN_EXE_pc-host");
    let cmd = format!("{bin} --messages 3000 --rps 3000 --report-interval 0.1 >/dev/null");
    let mut script = Command::new("script");
    script
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(s.dir());
    // As `common::pc_host` does: no `PC_HOST_*` variable of the test's own environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PC_HOST_") {
            script.env_remove(key);
        }
    }
    let out = match script.output_within() {
        Ok(out) => out,
        Err(e) => {
            common::skip(format_args!("cannot run `script` for a terminal: {e}"));
            return;
        }
    };
    assert!(out.status.success(), "{out:?}");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("3,000/3,000 msgs") && screen.contains("ETA"),
        "no finished bar on the terminal:\n{screen}"
    );
    assert!(
        !screen.contains("] produced"),
        "progress lines were printed as well:\n{screen}"
    );
}

#[test]
fn without_a_terminal_progress_is_one_line_per_interval() {
    let s = Scratch::new("progress-lines");
    let out = common::run(
        s.dir(),
        &[
            "--messages",
            "3000",
            "--rps",
            "3000",
            "--report-interval",
            "0.1",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines = out
        .stderr
        .lines()
        .filter(|l| l.contains("] produced"))
        .count();
    assert!(lines >= 2, "{}", out.stderr);
    assert!(!out.stderr.contains("ETA"), "{}", out.stderr);
}
