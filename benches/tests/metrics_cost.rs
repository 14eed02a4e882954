//! `benches/observe/metrics_cost.sh` refuses a bad argument with one line and status 2 before
//! it builds or runs anything.

#[test]
fn metrics_cost_sh_refuses_bad_arguments_with_one_line() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/observe/metrics_cost.sh");
    for (args, needle) in [
        (&["--repeats"][..], "--repeats needs a value"),
        (
            &["--repeats", "0"][..],
            "--repeats takes a positive whole number, not \"0\"",
        ),
        (
            &["--messages", "-5"][..],
            "--messages takes a positive whole number",
        ),
        (&["--colour"][..], "unknown argument \"--colour\""),
    ] {
        let out = std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .output()
            .expect("run metrics_cost.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing run");
    }
}
