//! `examples/cluster.sh`, run for real: three network namespaces on this machine (a private
//! `nats-server`, the publishers, the consumers), records published across a virtual network
//! and consumed into one SQLite database, checked by `pc-host verify`. Needs root and `ip netns`
//! (prints one `SKIP` line where `ip netns add` is refused, or `nats-server` is not on PATH).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Why `ip netns add` cannot be used here, found by adding (and deleting) a namespace; `None`
/// when it can.
fn netns_refused() -> Option<String> {
    let name = format!("pc-probe-{}", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &name])
        .stdin(Stdio::null())
        .output();
    match added {
        Err(e) => Some(format!("cannot run `ip` (iproute2): {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`ip netns add` is not permitted here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => {
            let deleted = Command::new("ip")
                .args(["netns", "delete", &name])
                .status()
                .expect("run ip netns delete");
            assert!(
                deleted.success(),
                "could not delete the probe namespace {name}"
            );
            None
        }
    }
}

/// Whether `program` is an executable file in a directory of PATH.
fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Namespaces left over by the script run whose shell had process id `pid` (its `$$`).
fn leftover_namespaces(pid: u32) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    let suffix = format!("-{pid}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("pc-") && name.ends_with(&suffix))
        .map(str::to_string)
        .collect()
}

#[test]
fn cluster_example_stores_every_record_exactly_once_across_namespaces() {
    if let Some(reason) = netns_refused() {
        skip(reason);
        return;
    }
    if !on_path("nats-server") {
        skip("nats-server is not on PATH");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds host/");
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("examples/cluster.sh"))
        .args(["--pc-host", env!("CARGO_BIN_EXE_pc-host")])
        .args(["--publishers", "2", "--consumers", "2"])
        .args(["--messages", "5000", "--producers", "2"])
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Neither the test's environment nor a developer's settings change the run: pc-host reads
    // PC_HOST_*, the script CLUSTER_*.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("PC_HOST_") || key_text.starts_with("CLUSTER_") {
            cmd.env_remove(&key);
        }
    }
    let child = cmd.spawn().expect("run bash examples/cluster.sh");
    let shell_pid = child.id();
    let out = child
        .wait_with_output()
        .expect("wait for examples/cluster.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "examples/cluster.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .map(str::trim)
            .any(|l| l.starts_with("result: OK (") && l.ends_with(", 10000 rows)")),
        "verify did not report OK for 10000 rows:\n{stdout}"
    );
    assert_eq!(
        stdout
            .matches("every producer's seq 0..n exactly once, texts match: OK")
            .count(),
        2,
        "both publishing runs verified:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l
            .starts_with("end-to-end: OK: 10000 records published from pc-prod-")
            && l.contains(", 10000 stored in pc-cons-")),
        "no end-to-end OK line:\n{stdout}"
    );
    assert_eq!(
        leftover_namespaces(shell_pid),
        Vec::<String>::new(),
        "the script's cleanup left namespaces behind"
    );
}

/// One `SKIP: why` line on the process's stderr, which the test harness does not capture (as
/// `common::skip`; this file does without the common helpers).
fn skip(why: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
}
