//! `--consumers MIN..MAX`: the scaler adds a consumer while the queue stays full and removes it
//! once the queue stays empty, each change one line on stderr, and every record read is stored
//! exactly once. The load is driven from the test (see `common/scaling.rs`): no sleeps, no
//! timing thresholds. The same against PostgreSQL is in `postgres.rs`.

mod common;

use common::scaling::{line, up_then_down};
use common::{Scratch, all_rows, assert_verify, hold_write_lock, json, pc_host, u};

/// Lines written: several times the ring, so it stays full while the sink is held.
const LINES: usize = 20_000;

/// A scaled run with a small ring, a short interval, and retries while the test holds the sink.
const SCALED: [&str; 14] = [
    "--consumers",
    "1..2",
    "--scale-interval",
    "0.05",
    "--capacity",
    "256",
    "--busy-timeout-ms",
    "20",
    "--retry-for",
    "600",
    "--report-interval",
    "0.05",
    "--output",
    "json",
];

#[test]
fn consumers_scale_up_under_load_and_down_when_idle_and_every_line_is_stored_once() {
    let s = Scratch::new("scale-sqlite");
    let db = s.path("pc-host.db");
    let mut cmd = pc_host(s.dir());
    cmd.args(["--source", "stdin"]);
    cmd.args(SCALED);
    let out = up_then_down(cmd, LINES, || hold_write_lock(&db));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "produced"), LINES as u64, "{v}");
    assert_eq!(u(&v, "stored"), LINES as u64, "{v}");
    let c = &v["consumers"];
    assert_eq!((u(c, "min"), u(c, "max"), u(c, "peak")), (1, 2, 2), "{v}");
    let events: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": scale "))
        .collect();
    assert_eq!(events.len(), 2, "one change each way:\n{}", out.stderr);
    let mut rows: Vec<(i64, String)> = all_rows(&db).into_iter().map(|r| (r.1, r.2)).collect();
    rows.sort();
    let want: Vec<(i64, String)> = (0..LINES).map(|i| (i as i64, line(i))).collect();
    assert_eq!(rows, want, "each line stored once");
    assert_verify(s.dir(), &["verify"]);

    // Each interval row keeps the consumers running at its end; the last covers the drain,
    // after the scale-down.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT consumers FROM run_intervals WHERE run_id = ?1 ORDER BY t_s")
        .expect("prepare");
    let kept: Vec<i64> = stmt
        .query_map([v["run_id"].as_i64().expect("run_id")], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(kept.iter().all(|c| (1..=2).contains(c)), "{kept:?}");
    assert_eq!(kept.last(), Some(&1), "{kept:?}");
}

#[test]
fn lanes_and_scaling_together_store_every_line_once_per_lane() {
    const HIGH: usize = 500;
    let s = Scratch::new("scale-lanes");
    let db = s.path("pc-host.db");
    let urgent = s.path("urgent.log");
    let text: String = (0..HIGH).map(|i| format!("urgent {i}\n")).collect();
    std::fs::write(&urgent, text).expect("write the high lane's file");
    let mut cmd = pc_host(s.dir());
    cmd.args([
        "--lanes",
        "high:1,low:9",
        "--source",
        &format!("file:{}?lane=high", urgent.display()),
        "--source",
        "stdin",
    ]);
    cmd.args(SCALED);
    let out = up_then_down(cmd, LINES, || hold_write_lock(&db));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    let total = (LINES + HIGH) as u64;
    assert_eq!((u(&v, "produced"), u(&v, "stored")), (total, total), "{v}");
    let c = &v["consumers"];
    assert_eq!((u(c, "min"), u(c, "max"), u(c, "peak")), (1, 2, 2), "{v}");
    for (lane, want) in [("high", HIGH as u64), ("low", LINES as u64)] {
        let l = &v["lanes"][lane];
        assert_eq!(
            (u(l, "produced"), u(l, "stored")),
            (want, want),
            "lane {lane}: {v}"
        );
    }
    let mut texts: Vec<String> = all_rows(&db).into_iter().map(|r| r.2).collect();
    texts.sort();
    let mut want: Vec<String> = (0..LINES).map(line).collect();
    want.extend((0..HIGH).map(|i| format!("urgent {i}")));
    want.sort();
    assert_eq!(texts, want, "each line stored once");
    assert_verify(s.dir(), &["verify"]);
}
