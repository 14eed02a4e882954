//! `sqlite_loop`, the bare SQLite ceiling of `benches/sinks/sqlite.sh`: it makes a new
//! database and writes to no file it did not create, and refuses bad arguments with one line
//! and status 2.

use std::process::{Command, Output};

fn sqlite_loop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqlite_loop"))
        .args(args)
        .output()
        .expect("run sqlite_loop")
}

fn one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn sqlite_loop_refuses_a_file_it_did_not_create_and_leaves_it_as_it_was() {
    let dir = std::env::temp_dir().join(format!("pc-sqlite-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mine = dir.join("notes.txt");
    std::fs::write(&mine, "not a database\n").unwrap();
    let out = sqlite_loop(&["--db", mine.to_str().unwrap(), "--messages", "10"]);
    one_line_error(&out, "already exists");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "not a database\n");
    let db = dir.join("new.db");
    let out = sqlite_loop(&["--db", db.to_str().unwrap(), "--messages", "300"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"messages\":300"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sqlite_loop_refuses_bad_arguments_with_one_line() {
    one_line_error(&sqlite_loop(&["--messages", "10"]), "--db PATH is required");
    one_line_error(
        &sqlite_loop(&["--db", "x.db", "--producers", "4294967296"]),
        "--producers 4294967296: at most 4294967295",
    );
    one_line_error(
        &sqlite_loop(&["--db", "x.db", "--batch", "ten"]),
        "not a number",
    );
}
