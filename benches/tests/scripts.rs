//! Every benchmark script refuses an argument it does not know the same way: one line on
//! stderr naming the script, status 2 (a usage error, as `compare`, `ab.sh` and clap give),
//! before it builds or runs anything.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The scripts under `benches/` that take arguments (`sinks/lib.sh` is sourced, not run).
fn scripts() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read benches/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "sh")
                && path.file_name().is_some_and(|n| n != "lib.sh")
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new(env!("CARGO_MANIFEST_DIR")), &mut found);
    found.sort();
    found
}

#[test]
fn every_bench_script_refuses_an_unknown_argument_with_one_line_and_status_2() {
    let scripts = scripts();
    assert!(scripts.len() >= 9, "found {scripts:?}");
    for script in scripts {
        let name = script.file_name().unwrap().to_string_lossy().into_owned();
        let out = Command::new("bash")
            .arg(&script)
            .arg("--no-such-flag")
            .output()
            .expect("run the script");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("{name}: ")) && stderr.contains("--no-such-flag"),
            "{name}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{name} printed to stdout");
    }
}
