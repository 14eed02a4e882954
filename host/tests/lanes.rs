//! Priority lanes (`--lanes`, a source's `lane=`): how producers and messages split across
//! the lanes, every record of every lane accounted for, and the per-lane JSON. No timing is
//! asserted (the overload benchmark, `benches/lanes/overload.sh`, measures the latencies).

mod common;

use common::{Scratch, assert_verify, expected_pairs, json, pairs, recorded, run, u};

/// A run into `db` with `args` added and `--output json`: its output (JSON on stdout, the
/// header on stderr), having checked that it succeeded.
fn run_ok(s: &Scratch, db: &str, args: &[&str]) -> common::Out {
    let mut all = vec!["--report-interval", "0", "--output", "json", "--db", db];
    all.extend(args);
    let out = run(s.dir(), &all);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    out
}

/// `--output json` of a generated run into `db` with `args` added.
fn generated(s: &Scratch, db: &str, args: &[&str]) -> serde_json::Value {
    json(&run_ok(s, db, args))
}

/// A lane's object has the contract's keys, its latency quantiles are ordered, and every
/// record it produced was stored.
fn assert_lane_stored_all(v: &serde_json::Value, lane: &str, produced: u64) {
    let l = &v["lanes"][lane];
    assert_eq!(u(l, "produced"), produced, "lanes.{lane} in {v}");
    assert_eq!(u(l, "stored"), produced, "lanes.{lane} in {v}");
    for key in ["duplicates", "dead_lettered", "not_stored"] {
        assert_eq!(u(l, key), 0, "lanes.{lane}.{key} in {v}");
    }
    let lat = &l["latency_ns"];
    let (p50, p99, max) = (u(lat, "p50"), u(lat, "p99"), u(lat, "max"));
    assert!(p50 <= p99 && p99 <= max, "lanes.{lane}.latency_ns in {v}");
    assert_eq!(u(lat, "count"), produced, "every record measured: {v}");
}

#[test]
fn an_overloaded_lanes_run_stores_every_record_of_every_lane_and_verifies() {
    let s = Scratch::new("lanes-overload");
    // Unthrottled producers and a slow sink (small batches): the low lane backs up.
    let v = generated(
        &s,
        "t.db",
        &[
            "--lanes",
            "high:1,low:9",
            "--messages",
            "20000",
            "--rps",
            "0",
            "--batch-size",
            "20",
            "--capacity",
            "1024",
        ],
    );
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "stored"), 20_000);
    assert_lane_stored_all(&v, "high", 2_000);
    assert_lane_stored_all(&v, "low", 18_000);
    assert_eq!(
        v["lanes"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["high".to_string(), "low".to_string()])
    );
    assert_eq!(v["config"]["lanes"][0]["name"], "high");
    assert_eq!(v["config"]["lanes"][1]["weight"], 9);
    assert_verify(s.dir(), &["verify", "--db", "t.db"]);
}

#[test]
fn producers_and_messages_split_by_weight_with_at_least_one_per_lane() {
    let s = Scratch::new("lanes-split");
    // 4 producers at 1:9 -> 0.4 and 3.6 -> high gets 1 (at least one), low 3; 10000 messages
    // -> 1000 and 9000, low's split evenly over its 3 producers.
    let v = generated(
        &s,
        "t.db",
        &[
            "--lanes",
            "high:1,low:9",
            "--producers",
            "4",
            "--messages",
            "10000",
            "--rps",
            "0",
        ],
    );
    assert_lane_stored_all(&v, "high", 1_000);
    assert_lane_stored_all(&v, "low", 9_000);
    let run_id = v["run_id"].as_i64().unwrap();
    let db = s.path("t.db");
    assert_eq!(recorded(&db, run_id), [1000, 3000, 3000, 3000]);
    assert_eq!(
        pairs(&db, run_id),
        expected_pairs(&[1000, 3000, 3000, 3000])
    );
}

#[test]
fn a_rate_limited_lanes_run_produces_each_lane_its_share_of_the_rate() {
    let s = Scratch::new("lanes-rate");
    let v = generated(
        &s,
        "t.db",
        &[
            "--lanes",
            "high:1,low:3",
            "--producers",
            "4",
            "--rps",
            "4000",
            "--duration",
            "0.5",
        ],
    );
    assert_eq!(v["ok"], true, "{v}");
    let (high, low) = (
        u(&v["lanes"]["high"], "produced"),
        u(&v["lanes"]["low"], "produced"),
    );
    assert_lane_stored_all(&v, "high", high);
    assert_lane_stored_all(&v, "low", low);
    assert_eq!(high + low, u(&v, "produced"));
    // Each lane's bucket is exact and starts empty: never more than its share allows.
    let producing_s = v["producing_s"].as_f64().unwrap();
    assert!(high as f64 <= 1000.0 * producing_s + 1.0, "{v}");
    assert!(low as f64 <= 3000.0 * producing_s + 1.0, "{v}");
}

#[test]
fn file_sources_go_to_the_lane_they_name_and_others_to_the_last_lane() {
    let s = Scratch::new("lanes-files");
    let a: String = (0..300).map(|i| format!("urgent {i}\n")).collect();
    let b: String = (0..700).map(|i| format!("bulk {i}\n")).collect();
    std::fs::write(s.path("a.log"), &a).unwrap();
    std::fs::write(s.path("b.log"), &b).unwrap();
    let out = run_ok(
        &s,
        "t.db",
        &[
            "--lanes",
            "high:1,mid:1,low:1",
            "--rps",
            "4000",
            "--source",
            "file:a.log?lane=high",
            "--source",
            "file:b.log",
        ],
    );
    // The rate is split over the lanes a source feeds: mid has none, so it takes no share.
    for lane in [
        "high (weight 1): 2000 records/s",
        "mid (weight 1): no source",
        "low (weight 1): 2000 records/s",
    ] {
        assert!(
            out.stderr.contains(lane),
            "{lane:?} not in:\n{}",
            out.stderr
        );
    }
    let v = json(&out);
    assert_lane_stored_all(&v, "high", 300);
    assert_eq!(u(&v["lanes"]["mid"], "produced"), 0, "{v}");
    assert_lane_stored_all(&v, "low", 700);
    for file in ["a.log", "b.log"] {
        let source = format!("file:{file}");
        assert_verify(s.dir(), &["verify", "--db", "t.db", "--source", &source]);
    }
}

/// `--rps` needs at least 1 per lane that has a source, not per declared lane: 2 records/s
/// over three lanes of which one is fed is a valid run.
#[test]
fn a_rate_as_low_as_the_fed_lanes_is_accepted() {
    let s = Scratch::new("lanes-low-rate");
    std::fs::write(s.path("one.log"), "only line\n").unwrap();
    let out = run_ok(
        &s,
        "t.db",
        &[
            "--lanes",
            "a:1,b:1,c:1",
            "--rps",
            "2",
            "--source",
            "file:one.log?lane=a",
        ],
    );
    assert!(
        out.stderr.contains("a (weight 1): 2 records/s"),
        "{}",
        out.stderr
    );
    assert_lane_stored_all(&json(&out), "a", 1);
}

#[test]
fn without_lanes_the_json_has_no_lanes_key() {
    let s = Scratch::new("lanes-none");
    let v = generated(&s, "t.db", &["--messages", "100", "--rps", "0"]);
    assert!(v.get("lanes").is_none(), "{v}");
    assert!(v["config"]["lanes"].is_null(), "{v}");
}

/// A lane that got no records says so: its latency is n/a, not a row of zeros.
#[test]
fn a_lane_without_records_shows_no_latency_figures() {
    let s = Scratch::new("lanes-empty");
    std::fs::write(s.path("a.log"), "one\ntwo\n").unwrap();
    let out = run(
        s.dir(),
        &[
            "--db",
            "t.db",
            "--report-interval",
            "0",
            "--lanes",
            "high:1,low:1",
            "--source",
            "file:a.log?lane=high",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let low = common::summary_line(&out, "lane low");
    assert!(
        low.ends_with("produced 0, stored 0; latency (ms) n/a"),
        "{low}"
    );
}
