//! Every benchmark script refuses an argument it does not know the same way: one line on
//! stderr naming the script, status 2 (a usage error, as `compare`, `ab.sh` and clap give).
//! The rule holds for every runnable script under `benches/`, one without options included:
//! it refuses any argument. (Sourced helpers, such as `sinks/lib.sh`, are not executable.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The executable `*.sh` files under `benches/`.
fn scripts() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read benches/") {
            let entry = entry.expect("entry");
            let (path, kind) = (entry.path(), entry.file_type().expect("file type"));
            if kind.is_dir() {
                walk(&path, found);
            } else if kind.is_file()
                && path.extension().is_some_and(|e| e == "sh")
                && entry.metadata().expect("metadata").permissions().mode() & 0o111 != 0
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
    for known in ["ab/ab.sh", "sinks/mysql.sh", "sinks/sqlite.sh"] {
        assert!(
            scripts.iter().any(|s| s.ends_with(known)),
            "{known} not found in {scripts:?}"
        );
    }
    for script in scripts {
        let name = script.file_name().unwrap().to_string_lossy().into_owned();
        // A bare environment: a script that did not refuse would fail soon, not benchmark.
        let out = Command::new("/bin/bash")
            .arg(&script)
            .arg("--no-such-flag")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
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
