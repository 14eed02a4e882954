//! `compare` on a machine, or in a process, with one core: the rows that pin their two sides
//! to two cores are refused with one line and status 2 before anything runs.

use std::process::Command;

#[test]
fn compare_on_one_core_refuses_the_rows_that_pin_two_sides() {
    if Command::new("taskset").arg("--version").output().is_err() {
        println!("SKIP: taskset (util-linux) is not installed");
        return;
    }
    for only in ["1P1C", "batch", "ping-pong"] {
        let out = Command::new("taskset")
            .args(["-c", "0", env!("CARGO_BIN_EXE_compare"), "--only", only])
            .output()
            .expect("run compare under taskset");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--only {only}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "--only {only}: {stderr}");
        assert!(stderr.contains("may run on 1"), "--only {only}: {stderr}");
        assert!(out.stdout.is_empty(), "--only {only}: nothing measured");
    }
}
