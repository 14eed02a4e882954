//! Short real runs: counts match, the database holds exactly the expected (producer, seq) set,
//! the JSON contract, re-running on the same file, and `verify`.

mod common;

use common::OutputWithin as _;
use common::{Running, Scratch, expected_pairs, finish, json, pairs, recorded, run, u};

const JSON_KEYS: [&str; 10] = [
    "schema_version",
    "config",
    "produced",
    "consumed",
    "stored",
    "elapsed_s",
    "throughput_msgs_per_s",
    "latency_ns",
    "ok",
    "run_id",
];

#[test]
fn message_count_run_stores_exactly_every_producer_sequence() {
    let s = Scratch::new("count");
    let db = s.path("t.db");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "3",
            "--consumers",
            "2",
            "--messages",
            "3001",
            "--rps",
            "0",
            "--capacity",
            "64",
            "--batch-size",
            "50",
            "--payload-size",
            "40",
            "--report-interval",
            "0",
            "--output",
            "json",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(
        (u(&v, "produced"), u(&v, "consumed"), u(&v, "stored")),
        (3001, 3001, 3001)
    );
    assert_eq!(v["ok"], true);
    assert_eq!(v["stop_reason"], "messages");
    let run_id = v["run_id"].as_i64().unwrap();
    // 3001 over 3 producers: 1001, 1000, 1000.
    assert_eq!(recorded(&db, run_id), [1001, 1000, 1000]);
    assert_eq!(pairs(&db, run_id), expected_pairs(&[1001, 1000, 1000]));

    // Every text is the seed's message, padded with dots to the payload size.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (text, created_at): (String, i64) = conn
        .query_row(
            "SELECT message, created_at FROM messages WHERE producer = 2 AND seq = 17",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        text,
        format!("Message from producer 2: #17{}", ".".repeat(40 - 28))
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let age_ns = now.as_nanos() as i64 - created_at;
    assert!(
        (0..3_600_000_000_000).contains(&age_ns),
        "created_at is unix ns: {created_at}"
    );
}

#[test]
fn rate_limited_duration_run_matches_and_json_has_the_contract_keys() {
    let s = Scratch::new("duration");
    let db = s.path("t.db");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "2",
            "--consumers",
            "3",
            "--rps",
            "4000",
            "--duration",
            "0.5",
            "--batch-wait-ms",
            "1",
            "--report-interval",
            "0",
            "--output",
            "json",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    for key in JSON_KEYS {
        assert!(v.get(key).is_some(), "missing key {key} in {v}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ns"][key].is_u64(), "latency_ns.{key} in {v}");
    }
    // The SQLite WAL's figures: sizes and the checkpoint passes that held up commits.
    for key in [
        "wal_max_bytes",
        "wal_writer_holds",
        "wal_writer_held_max_ns",
    ] {
        assert!(v[key].is_u64(), "{key} in {v}");
    }
    assert_eq!(v["wal_truncated"], true);
    let lat = &v["latency_ns"];
    assert!(u(lat, "p50") <= u(lat, "p99") && u(lat, "p99") <= u(lat, "max"));
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["config"]["producers"], 2);
    assert_eq!(v["config"]["rps"], 4000);
    let produced = u(&v, "produced");
    assert!(produced > 0);
    assert_eq!(u(&v, "stored"), produced);
    assert_eq!(u(&v, "consumed"), produced);
    assert_eq!(
        u(lat, "count"),
        produced,
        "every message has a latency sample"
    );
    // The bucket is exact and starts empty: never more than the rate allows.
    let producing_s = v["producing_s"].as_f64().unwrap();
    assert!(
        produced as f64 <= 4000.0 * producing_s + 1.0,
        "{produced} in {producing_s} s"
    );
    let run_id = v["run_id"].as_i64().unwrap();
    let per: Vec<i64> = recorded(&db, run_id);
    assert_eq!(per.iter().sum::<i64>() as u64, produced);
    assert_eq!(pairs(&db, run_id), expected_pairs(&per));
}

#[test]
fn many_consumers_share_the_one_writer_without_busy_errors() {
    let s = Scratch::new("many");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "4",
            "--consumers",
            "24",
            "--messages",
            "6000",
            "--rps",
            "0",
            "--batch-size",
            "100",
            "--batch-wait-ms",
            "0",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!((u(&v, "consumed"), u(&v, "stored")), (6000, 6000));
    assert!(
        u(&v, "batches") >= 60,
        "no transaction holds more than --batch-size rows"
    );
    let db = s.path("pc-host.db");
    assert_eq!(pairs(&db, 1), expected_pairs(&[1500; 4]));
}

#[test]
fn warm_up_messages_are_left_out_of_the_latency_only() {
    let s = Scratch::new("warmup");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "1",
            "--consumers",
            "1",
            "--rps",
            "1000",
            "--duration",
            "0.6",
            "--warmup",
            "0.3",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    let (produced, sampled) = (u(&v, "produced"), u(&v["latency_ns"], "count"));
    assert_eq!(
        u(&v, "stored"),
        produced,
        "warm-up messages are stored like the rest"
    );
    // The bucket starts empty at the start: about 300 messages are due in the warm-up.
    assert!(
        sampled > 0 && sampled < produced,
        "{sampled} samples of {produced}"
    );
    assert!(
        produced - sampled >= 299 && produced - sampled <= 301,
        "{sampled} of {produced}"
    );
    assert_eq!(
        u(&v["built_late_ns"], "count"),
        sampled,
        "the built-late figures leave out the same warm-up messages"
    );
}

/// Each message is built no later than it is committed (one clock), so with one figure each
/// for the same messages, every quantile of "built late" is at most latency's. A run without
/// a schedule (`--rps 0`) has nothing to be late for and shows no such figure.
#[test]
fn built_late_is_the_share_of_latency_before_a_message_existed() {
    let s = Scratch::new("built-late");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "2",
            "--rps",
            "2000",
            "--duration",
            "0.5",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    let (late, latency) = (&v["built_late_ns"], &v["latency_ns"]);
    assert_eq!(u(late, "count"), u(&v, "produced"), "{late}");
    assert_eq!(u(late, "count"), u(latency, "count"), "{late} {latency}");
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(u(late, q) <= u(latency, q), "{q}: {late} vs {latency}");
    }
    // A producer takes its token no sooner than the clock reads its due instant, and reading
    // the clock takes time: a real lateness, not the 1 ns floor of a zero.
    assert!(u(late, "p50") > 1, "{late}");

    let out = run(
        s.dir(),
        &[
            "--producers",
            "1",
            "--messages",
            "500",
            "--rps",
            "0",
            "--no-pin",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(!out.stdout.contains("built late"), "{}", out.stdout);
    let out = run(
        s.dir(),
        &["--messages", "500", "--rps", "0", "--output", "json"],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(json(&out)["built_late_ns"].is_null(), "{}", out.stdout);
}

#[test]
fn text_summary_goes_to_stdout_and_progress_to_stderr() {
    let s = Scratch::new("text");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "1",
            "--consumers",
            "1",
            "--messages",
            "400",
            "--rps",
            "2000",
            "--report-interval",
            "0.02",
            "--no-pin",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    // Default database in the current directory.
    assert!(s.path("pc-host.db").is_file());
    for label in [
        "produced      400",
        "consumed      400",
        "stored        400",
        "result        OK",
        "latency (ms)",
        "p99.9",
        "throughput",
        "MB/s",
        "target 2000 msg/s",
    ] {
        assert!(
            out.stdout.contains(label),
            "summary lacks {label:?}:\n{}",
            out.stdout
        );
    }
    assert!(
        !out.stdout.contains("unthrottled"),
        "a paced run's latency is not queueing:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("pc-host run 1 ->"),
        "header on stderr:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("1 producer generating"),
        "the header counts the producer:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with('[')),
        "a progress line:\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.lines().any(|l| l.starts_with('[')),
        "no progress on stdout"
    );
}

#[test]
fn rerunning_on_the_same_database_adds_a_run_and_verify_checks_both() {
    let s = Scratch::new("rerun");
    let args = [
        "--producers",
        "2",
        "--consumers",
        "1",
        "--messages",
        "500",
        "--rps",
        "0",
        "--report-interval",
        "0",
        "--output",
        "json",
    ];
    let first = json(&run(s.dir(), &args));
    let second = json(&run(s.dir(), &args));
    assert_eq!(
        (first["run_id"].as_i64(), second["run_id"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(u(&second, "stored"), 500, "counted back for run 2 only");
    let db = s.path("pc-host.db");
    assert_eq!(pairs(&db, 2), expected_pairs(&[250, 250]));

    let verify = run(s.dir(), &["verify"]);
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("run 1: completed"),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains("run 2: completed"),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains("result: OK (2 runs, 1000 rows)"),
        "{}",
        verify.stdout
    );

    // verify takes the sink from the environment as a run does: PC_HOST_SINK names this
    // database, moved where the default --db does not find it.
    std::fs::create_dir(s.path("kept")).unwrap();
    std::fs::rename(&db, s.path("kept/runs.db")).unwrap();
    let verify = common::run_env(
        s.dir(),
        &["verify"],
        &[("PC_HOST_SINK", "sqlite:kept/runs.db")],
    );
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("result: OK (2 runs, 1000 rows)"),
        "{}",
        verify.stdout
    );
    // Layered as for a run: a flag beats the other's variable (a publisher's exported NATS
    // sink does not stop `verify --db`); one layer giving both is an error.
    let verify = common::run_env(
        s.dir(),
        &["verify", "--db", "kept/runs.db"],
        &[("PC_HOST_SINK", "nats://127.0.0.1:4222/S")],
    );
    assert_eq!(verify.code, Some(0), "{}\n{}", verify.stdout, verify.stderr);
    let both = common::run_env(
        s.dir(),
        &["verify"],
        &[
            ("PC_HOST_SINK", "sqlite:kept/runs.db"),
            ("PC_HOST_DB", "kept/runs.db"),
        ],
    );
    common::assert_one_line_error(
        &both,
        2,
        "error: PC_HOST_SINK and PC_HOST_DB both say which database to check: give only one",
    );
    let both = run(
        s.dir(),
        &[
            "verify",
            "--sink",
            "sqlite:kept/runs.db",
            "--db",
            "kept/runs.db",
        ],
    );
    common::assert_one_line_error(&both, 2, "--sink and --db both say which database");
    // A misspelt variable is refused for verify as for a run.
    let typo = common::run_env(s.dir(), &["verify"], &[("PC_HOST_DBB", "kept/runs.db")]);
    common::assert_one_line_error(
        &typo,
        2,
        "PC_HOST_DBB is set, but pc-host has no such variable",
    );
}

#[test]
fn verify_finds_a_gap_a_duplicate_and_a_wrong_text() {
    let s = Scratch::new("verify");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "2",
            "--consumers",
            "2",
            "--messages",
            "300",
            "--rps",
            "0",
            "--report-interval",
            "0",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let db = s.path("pc-host.db");
    let conn = rusqlite::Connection::open(&db).unwrap();

    conn.execute("DELETE FROM messages WHERE producer = 1 AND seq = 42", [])
        .unwrap();
    let gap = run(s.dir(), &["verify", "--db", db.to_str().unwrap()]);
    assert_eq!(gap.code, Some(1), "{}", gap.stdout);
    assert!(
        gap.stdout
            .contains("producer 1: 1 of seq 0..150 missing (first: #42)"),
        "{}",
        gap.stdout
    );

    conn.execute(
        "INSERT INTO messages (message, created_at, producer, seq, run_id) \
         SELECT message, created_at, producer, seq, run_id FROM messages WHERE producer = 0 AND seq = 7",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE messages SET message = 'tampered' WHERE producer = 0 AND seq = 9",
        [],
    )
    .unwrap();
    // Its padding cut off: the right words, not the run's 64 bytes.
    conn.execute(
        "UPDATE messages SET message = 'Message from producer 0: #11..' \
         WHERE producer = 0 AND seq = 11",
        [],
    )
    .unwrap();
    let dup = run(s.dir(), &["verify", "--run", "1"]);
    assert_eq!(dup.code, Some(1), "{}", dup.stdout);
    assert!(
        dup.stdout.contains("PROBLEM: 1 duplicate row; "),
        "{}",
        dup.stdout
    );
    assert!(
        dup.stdout.contains("2 rows whose text does not match"),
        "{}",
        dup.stdout
    );

    let missing_run = run(s.dir(), &["verify", "--run", "9"]);
    common::assert_one_line_error(&missing_run, 2, "--run 9: pc-host.db has no run 9");
}

/// Two runs writing one database at the same time interleave their ids: each still counts back
/// exactly its own rows (the count checks each row's run when another run shares its range).
/// Two runs started at once on a path where no database is yet: one creates the file, and the
/// other, finding it empty for an instant before its first page is written, waits for it as
/// for a busy database instead of refusing it as an empty file pc-host did not make. Several
/// rounds, each on a new path, so that the instant is hit.
#[test]
fn two_runs_creating_one_database_at_once_both_run() {
    let s = Scratch::new("two-create");
    for round in 0..8 {
        let db = format!("new-{round}.db");
        let args = [
            "--db",
            &db,
            "--messages",
            "1",
            "--rps",
            "0",
            "--report-interval",
            "0",
        ];
        let (a, b) = (Running::start(&s, &args), Running::start(&s, &args));
        for r in [a, b] {
            let out = finish(r);
            assert_eq!(out.code, Some(0), "round {round}, stderr:\n{}", out.stderr);
        }
    }
}

/// A run killed (SIGKILL) while it sets a new SQLite database up leaves nothing at the path
/// that the next run would refuse (an empty file, a database without tables, a `-journal`):
/// the database is made under a temporary name and linked into place whole, and the next run
/// creates it and removes what the killed one left.
#[test]
fn a_run_killed_while_creating_its_database_leaves_nothing_the_next_run_refuses() {
    let s = Scratch::new("kill-create");
    let mut caught = 0;
    for round in 0..6 {
        let db = format!("new-{round}.db");
        let mut child = common::pc_host(s.dir())
            .args(["--db", &db, "--messages", "1", "--report-interval", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start pc-host");
        // Its temporary database: `.NAME.pc-host-new.PID.RANDOM`.
        let prefix = format!(".{db}.pc-host-new.{}.", child.id());
        let temp = || {
            std::fs::read_dir(s.dir())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        };
        // Killed the moment its temporary database is there: mid-setup.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mid_setup = loop {
            if temp() {
                break true;
            }
            if child.try_wait().expect("wait").is_some() {
                break false; // set up and done before it was seen
            }
            assert!(std::time::Instant::now() < deadline, "no setup seen");
            std::thread::yield_now();
        };
        let _ = child.kill();
        child.wait().expect("reap");
        caught += u64::from(mid_setup);
        let out = run(
            s.dir(),
            &["--db", &db, "--messages", "1", "--output", "json"],
        );
        assert_eq!(out.code, Some(0), "round {round}:\n{}", out.stderr);
        assert_eq!(u(&json(&out), "stored"), 1);
        assert!(!temp(), "the killed run's temporary database is removed");
    }
    assert!(caught > 0, "no run was killed mid-setup");
}

#[test]
fn two_runs_writing_one_database_at_once_each_count_only_their_rows() {
    let s = Scratch::new("two-at-once");
    let args = [
        "--producers",
        "1",
        "--consumers",
        "1",
        "--rps",
        "4000",
        "--duration",
        "1",
        "--batch-wait-ms",
        "0",
        "--report-interval",
        "0",
        "--output",
        "json",
    ];
    // The database exists first: this is about two runs writing at once, not two creating it.
    let made = run(
        s.dir(),
        &["--messages", "1", "--rps", "0", "--report-interval", "0"],
    );
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    // Both runs' stderr is read as they run (each on its own thread), so neither blocks on a
    // full pipe while the other is waited for.
    let (a, b) = (Running::start(&s, &args), Running::start(&s, &args));
    let mut runs = Vec::new();
    for r in [a, b] {
        let out = finish(r);
        assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
        let v = json(&out);
        assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
        assert_eq!(v["ok"], true, "{v}");
        runs.push(v["run_id"].as_i64().unwrap());
    }
    // The two runs' id ranges overlap, so the count above had to tell their rows apart.
    let conn = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    let range = |run: i64| -> (i64, i64) {
        conn.query_row(
            "SELECT MIN(id), MAX(id) FROM messages WHERE run_id = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (a, b) = (range(runs[0]), range(runs[1]));
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the runs did not write at the same time: ids {a:?} and {b:?}"
    );
    // Each run wrote where its rows end when it finished (not at every commit).
    for (run, (_, last)) in runs.iter().zip([a, b]) {
        let last_id: Option<i64> = conn
            .query_row("SELECT last_id FROM runs WHERE run_id = ?1", [run], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(last_id, Some(last), "run {run}");
    }
    let verify = run(s.dir(), &["verify"]);
    assert_eq!(verify.code, Some(0), "{}", verify.stdout);
}

/// A reader that goes away (`pc-host | head -1`) does not turn a good run into a failure
/// without a word: the run's status stands and stderr says the summary was cut short.
#[test]
fn a_closed_stdout_leaves_a_good_run_good_and_says_so() {
    let s = Scratch::new("closed-stdout");
    let mut r = Running::start(
        &s,
        &["--messages", "50", "--rps", "0", "--report-interval", "0"],
    );
    drop(r.child.stdout.take()); // the reader is gone before the summary is written
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("stdout was closed"),
        "stderr should say the summary was not written:\n{}",
        out.stderr
    );
}

/// A summary that cannot be written (`> /dev/full`) is lost, so the exit is 1, but the one
/// line on stderr says how the run itself went.
#[test]
fn a_summary_that_cannot_be_written_exits_1_and_still_gives_the_result() {
    let s = Scratch::new("full-stdout");
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        common::skip("no /dev/full here");
        return;
    };
    let out: common::Out = common::pc_host(s.dir())
        .args(["--messages", "50", "--rps", "0", "--report-interval", "0"])
        .stdout(full)
        .output_within_keeping_stdout()
        .expect("run pc-host")
        .into();
    let said = "error: cannot write the summary to stdout: No space left on device (os error \
                28) (the run's result: OK)";
    common::assert_error(&out, 1, said);
    assert_eq!(out.stderr.lines().last(), Some(said), "one line, last");
}

/// A generated run at 2000 msg/s that ends when told to, once it has stored some rows.
fn start_storing(s: &Scratch) -> Running {
    start_storing_with(s, &[])
}

/// [`start_storing`], with `extra` arguments.
fn start_storing_with(s: &Scratch, extra: &[&str]) -> Running {
    let mut args = vec![
        "--rps",
        "2000",
        "--duration",
        "600",
        "--report-interval",
        "0.05",
        "--output",
        "json",
    ];
    args.extend(extra);
    let mut r = Running::start(s, &args);
    r.err.wait("showing messages stored", common::stored_some);
    r
}

/// Ends a run started by [`start_storing`] with SIGINT; its output, once it has exited 1 (a
/// run whose database went away mid-run is not OK).
fn interrupted_failing(r: Running) -> common::Out {
    common::signal(&r.child, libc::SIGINT);
    let out = finish(r);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    out
}

/// The database file removed mid-run took the committed rows with it: the run is not OK and
/// says so (it reported OK, counting back from the removed file it still had open).
#[test]
fn a_database_removed_mid_run_is_reported_not_ok() {
    let s = Scratch::new("db-removed");
    let r = start_storing(&s);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.path(&format!("pc-host.db{suffix}")));
    }
    let out = interrupted_failing(r);
    let v = json(&out);
    assert_eq!(v["ok"], false, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("was removed during the run"), "{error}");
}

/// A database moved mid-run keeps the rows committed into it: the run is not OK (its path no
/// longer holds them) and the error names where they went, where every stored row is.
#[test]
fn a_database_moved_mid_run_names_where_its_rows_went() {
    let s = Scratch::new("db-moved");
    let r = start_storing(&s);
    std::fs::rename(s.path("pc-host.db"), s.path("moved.db")).unwrap();
    let out = interrupted_failing(r);
    let v = json(&out);
    assert_eq!(v["ok"], false, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    let there = std::fs::canonicalize(s.path("moved.db")).unwrap();
    let said = format!("was moved to {} during the run", there.display());
    assert!(error.contains(&said), "{error}");
    let conn = rusqlite::Connection::open(&there).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        u64::try_from(rows).unwrap(),
        common::u(&v, "stored"),
        "every stored row is in the moved file"
    );
}

/// A database moved mid-run while a reader holds a snapshot: the final checkpoint cannot empty
/// the write-ahead log, which SQLite keeps at the old path and which holds the newest rows.
/// The run keeps it there (it used to remove it, and the rows with it), says where to move
/// it, and with it beside the moved file every stored row is there.
#[test]
fn a_moved_database_keeps_the_log_its_final_checkpoint_could_not_empty() {
    let s = Scratch::new("db-moved-reader");
    let mut r = start_storing_with(&s, &["--busy-timeout-ms", "100"]);
    let reader = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    let snapshot = reader.unchecked_transaction().unwrap();
    let seen: i64 = snapshot
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    // Rows committed after the reader's snapshot: frames no checkpoint may copy while it lasts.
    let seen = u64::try_from(seen).unwrap();
    r.err
        .wait(&format!("showing stored > {}", seen + 100), |line| {
            common::stored_in(line).is_some_and(|n| n > seen + 100)
        });
    std::fs::rename(s.path("pc-host.db"), s.path("moved.db")).unwrap();
    let out = interrupted_failing(r);
    assert!(
        out.stderr
            .contains("holds the newest rows of the moved database"),
        "stderr:\n{}\nstdout:\n{}",
        out.stderr,
        out.stdout
    );
    assert!(s.path("pc-host.db-wal").exists(), "the log was removed");
    let stored = common::u(&json(&out), "stored");
    drop(snapshot);
    drop(reader);
    // As the error says: the log beside the moved file (if the reader's close did not already
    // checkpoint it in through the file it had open).
    if s.path("pc-host.db-wal").exists() {
        std::fs::rename(s.path("pc-host.db-wal"), s.path("moved.db-wal")).unwrap();
    }
    let moved = rusqlite::Connection::open(s.path("moved.db")).unwrap();
    let rows: i64 = moved
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        u64::try_from(rows).unwrap(),
        stored,
        "every stored row kept"
    );
}

/// A database removed mid-run (its `-wal` and `-shm` left where they were) does not keep the
/// next run off its path: the run removes the side files it had open, which SQLite leaves
/// behind a moved database, and the next run there makes a new database.
#[test]
fn a_run_after_the_database_was_removed_mid_run_makes_a_new_one_at_that_path() {
    let s = Scratch::new("db-removed-alone");
    let r = start_storing(&s);
    std::fs::remove_file(s.path("pc-host.db")).unwrap();
    interrupted_failing(r);
    for suffix in ["-wal", "-shm"] {
        assert!(
            !s.path(&format!("pc-host.db{suffix}")).exists(),
            "{suffix} left"
        );
    }
    let again = run(s.dir(), &["--messages", "10", "--report-interval", "0"]);
    assert_eq!(again.code, Some(0), "stderr:\n{}", again.stderr);
}

/// Another program's database moved into the run's path mid-run is left as it came: the run
/// fails saying so, and writes nothing at that path (it recorded its end into the WAL there,
/// which the new file then read as its own: its rows were lost to pc-host's pages).
#[test]
fn a_database_replaced_mid_run_is_left_as_it_came() {
    let s = Scratch::new("db-replaced");
    let theirs = s.path("theirs.db");
    {
        let c = rusqlite::Connection::open(&theirs).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);",
        )
        .unwrap();
        for i in 0..2000 {
            c.execute(
                "INSERT INTO customers (name) VALUES (?1)",
                [format!("c{i}")],
            )
            .unwrap();
        }
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }
    let before = std::fs::read(&theirs).unwrap();
    let r = start_storing(&s);
    std::fs::rename(&theirs, s.path("pc-host.db")).unwrap();
    let out = interrupted_failing(r);
    let v = json(&out);
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("was replaced during the run"), "{error}");
    let db = s.path("pc-host.db");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file itself");
    let c = rusqlite::Connection::open(&db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: i64 = c
        .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2000, "their rows, as they were");
}

/// Counts edited into the bookkeeping tables are reported as problems, not trusted: verify
/// aborted allocating for `runs.producers = 2000000000`.
#[test]
fn verify_reports_absurd_recorded_counts_instead_of_aborting() {
    let s = Scratch::new("verify-absurd");
    let out = run(
        s.dir(),
        &["--messages", "20", "--rps", "0", "--report-interval", "0"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let conn = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    conn.execute_batch(
        "UPDATE runs SET producers = 2000000000; \
         UPDATE run_producers SET produced = 9000000000000000000 WHERE producer = 0;",
    )
    .unwrap();
    drop(conn);
    let out = run(s.dir(), &["verify"]);
    assert_eq!(
        out.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("more than pc-host runs"),
        "{}",
        out.stdout
    );
}

/// `verify` with its reader gone (`verify | head -1`) does not panic; its exit status still
/// says what it found.
#[test]
fn verify_with_a_closed_stdout_keeps_its_result() {
    let s = Scratch::new("verify-closed-stdout");
    let made = run(
        s.dir(),
        &["--messages", "20", "--rps", "0", "--report-interval", "0"],
    );
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let mut r = Running::start(&s, &["verify"]);
    drop(r.child.stdout.take());
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn an_unthrottled_run_says_its_latency_is_time_queued() {
    let s = Scratch::new("unthrottled");
    let out = run(
        s.dir(),
        &[
            "--producers",
            "1",
            "--messages",
            "2000",
            "--rps",
            "0",
            "--no-pin",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains("unthrottled: latency is time queued"),
        "{}",
        out.stdout
    );
}

/// A read source unthrottled takes records as they come, which may be slowly: its note does
/// not claim they came faster than the sink stored them.
#[test]
fn an_unthrottled_read_source_does_not_claim_its_records_queued() {
    let s = Scratch::new("unthrottled-read");
    std::fs::write(s.path("in.txt"), "a\nb\nc\n").unwrap();
    let out = run(s.dir(), &["--source", "file:in.txt", "--no-pin"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout
            .contains("unthrottled: records are taken as fast as they are read")
            && !out.stdout.contains("records arrive faster"),
        "{}",
        out.stdout
    );
}

/// Adaptive batching: with a free sink a consumer commits what it has; it gathers more only
/// while the sink is busy. Given --batch-wait-ms, it waits for the batch to fill instead.
#[test]
fn a_free_sink_commits_a_batch_at_once_unless_a_batch_wait_is_given() {
    let s = Scratch::new("adaptive");
    let batches = |extra: &[&str]| {
        let mut args = vec![
            "--producers",
            "1",
            "--consumers",
            "1",
            "--messages",
            "10",
            "--rps",
            "20",
            "--output",
            "json",
            "--no-pin",
        ];
        args.extend(extra);
        let out = run(s.dir(), &args);
        assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
        let v = json(&out);
        assert_eq!(u(&v, "stored"), 10);
        u(&v, "batches")
    };
    // One record every 50 ms: each committed on its own (a few may arrive together).
    assert!(batches(&[]) >= 5);
    // Waiting a minute for the batch to fill: the run's end (the ring closed) ends the wait.
    assert_eq!(batches(&["--batch-wait-ms", "60000"]), 1);
}

#[test]
fn a_new_database_takes_the_page_size_and_the_summary_says_what_the_run_cost_the_machine() {
    let s = Scratch::new("page-size-machine");
    let db = s.path("p.db");
    let args = |output: &'static str| {
        [
            "--page-size",
            "4096",
            "--rps",
            "0",
            "--messages",
            "50000",
            "--report-interval",
            "0",
            "--output",
            output,
            "--db",
            "p.db",
        ]
    };
    let out = run(s.dir(), &args("json"));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("(WAL, synchronous=normal, 4096-byte pages)"),
        "the header names the page size:\n{}",
        out.stderr
    );
    let page: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page, 4096);
    let v = json(&out);
    assert_eq!(v["config"]["page_size"], 4096);
    assert_eq!(v["page_size"], 4096, "the page size in effect");
    if !cfg!(target_os = "linux") {
        assert!(v["machine"].is_null(), "{v}");
        return;
    }
    let m = &v["machine"];
    let secs = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"));
    assert!(
        secs("user_s") + secs("system_s") > 0.0,
        "50000 rows took CPU: {m}"
    );
    assert!(secs("wall_s") > 0.0, "{m}");
    assert!(m["cpus"].as_u64().is_some_and(|n| n >= 1), "{m}");
    // 50000 rows went through the page cache of a file on disk (tmpfs counts nothing).
    if !common::on_tmpfs(s.dir()) {
        assert!(u(m, "written_bytes") > 50_000 * 64, "{m}");
    }

    let text = run(s.dir(), &args("text"));
    assert_eq!(text.code, Some(0), "stderr:\n{}", text.stderr);
    // One consumer into SQLite unless told.
    assert!(
        text.stdout.lines().any(|l| l == "  consumers     1"),
        "{}",
        text.stdout
    );
    for line in ["  cpu           ", "  storage       "] {
        assert!(
            text.stdout.lines().any(|l| l.starts_with(line)),
            "no `{}` line:\n{}",
            line.trim(),
            text.stdout
        );
    }
}

#[test]
fn a_new_database_gets_small_pages_when_throttled_to_50k_or_less_and_bulk_pages_otherwise() {
    let s = Scratch::new("page-size-by-rate");
    std::fs::write(s.path("lines.txt"), "one\ntwo\n").unwrap();
    let page_size_of = |db: &str| -> i64 {
        rusqlite::Connection::open(s.path(db))
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    // Each run into `db` (its first or not): the page size the summary reports.
    let make = |db: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--report-interval", "0", "--output", "json", "--db", db];
        all.extend_from_slice(args);
        let out = common::run_env(s.dir(), &all, env);
        assert_eq!(out.code, Some(0), "{args:?}: stderr:\n{}", out.stderr);
        let v = json(&out);
        assert!(v["config"]["page_size"].is_null(), "none given: {v}");
        v["page_size"].as_i64().expect("the page size in effect")
    };
    let generate = |rps| ["--rps", rps, "--messages", "100"];
    for (db, args, env, want) in [
        ("slow.db", &generate("500")[..], &[][..], 4096),
        ("edge.db", &generate("50000")[..], &[], 4096),
        ("fast.db", &generate("50001")[..], &[], 16384),
        ("bulk.db", &generate("0")[..], &[], 16384),
        (
            "env.db",
            &["--messages", "100"][..],
            &[("PC_HOST_RPS", "500")][..],
            4096,
        ),
        // The rate in total decides, not a lane's share of it.
        (
            "lanes.db",
            &["--lanes", "a:1,b:1", "--rps", "60000", "--messages", "100"][..],
            &[],
            16384,
        ),
        // A file is read as fast as the sink takes it, unless throttled.
        ("file.db", &["--source", "file:lines.txt"][..], &[], 16384),
        (
            "file-slow.db",
            &["--source", "file:lines.txt", "--rps", "500"][..],
            &[],
            4096,
        ),
    ] {
        assert_eq!(make(db, args, env), want, "{args:?} {env:?}: the summary");
        assert_eq!(page_size_of(db), want, "{args:?} {env:?}: the file");
    }
    // An existing database keeps its own whatever the next run's rate.
    assert_eq!(make("slow.db", &generate("0"), &[]), 4096);
    assert_eq!(make("bulk.db", &generate("500"), &[]), 16384);
    assert_eq!(
        (page_size_of("slow.db"), page_size_of("bulk.db")),
        (4096, 16384)
    );
}

/// At a rate whose tokens come further apart than the default timer slack (500/s: one per
/// 2 ms), source threads nap until their next token with a slack of 1 ns, so a nap ends when
/// it is due, not up to 50 us later; the other threads keep the default. Reading another
/// thread's slack needs `CAP_SYS_NICE`: without it the test says SKIP.
#[cfg(target_os = "linux")]
#[test]
fn producers_wake_on_time_and_the_other_threads_keep_the_default_timer_slack() {
    let s = Scratch::new("timer-slack");
    let mut run = common::Running::start(
        &s,
        &["--producers", "2", "--consumers", "1", "--rps", "500"],
    );
    run.err.wait_stored_at_least(1);
    let tasks = format!("/proc/{}/task", run.child.id());
    // Each thread's name and slack; a thread's slack is in /proc/TID (not under task/).
    let threads = || -> Vec<(String, std::io::Result<u64>)> {
        let mut all = Vec::new();
        for task in std::fs::read_dir(&tasks).expect("the run's threads") {
            let tid = task.expect("a thread").file_name();
            let dir = std::path::Path::new("/proc").join(&tid);
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let slack = std::fs::read_to_string(dir.join("timerslack_ns"))
                .map(|v| v.trim().parse::<u64>().expect("a number of ns"));
            all.push((comm.trim().to_string(), slack));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let of = |all: &[(String, std::io::Result<u64>)], prefix: &str| -> Vec<Option<u64>> {
        let named = all.iter().filter(|(n, _)| n.starts_with(prefix));
        named.map(|(_, ns)| ns.as_ref().ok().copied()).collect()
    };
    let mut all = threads();
    if all.iter().any(|(_, ns)| {
        ns.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    }) {
        common::skip("reading another thread's timer slack needs CAP_SYS_NICE");
        return;
    }
    // Each producer sets its slack as it starts; wait (for up to WAIT) until both have.
    let give_up = std::time::Instant::now() + common::WAIT;
    while of(&all, "producer-") != [Some(1), Some(1)] && std::time::Instant::now() < give_up {
        std::thread::yield_now();
        all = threads();
    }
    assert_eq!(of(&all, "producer-"), [Some(1), Some(1)], "{all:?}");
    let consumers = of(&all, "consumer-");
    assert!(
        !consumers.is_empty() && consumers.iter().all(|ns| ns.is_some_and(|ns| ns > 1)),
        "{all:?}"
    );
    let out = run.interrupt();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
}

/// The header counts in the singular where the count is one: "1 producer", "1 record".
#[test]
fn the_header_says_one_producer_and_one_record_in_the_singular() {
    let s = Scratch::new("singular");
    let out = run(
        s.dir(),
        &["--producers", "1", "--messages", "1", "--db", "one.db"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1 producer generating messages padded to 64 bytes")
            && out.stderr.contains(", 1 record in total"),
        "{}",
        out.stderr
    );
}

/// A reader holding a snapshot of the database at the run's end (another pc-host writing the
/// same file, say) keeps the final checkpoint from emptying the WAL: an info line and the
/// summary say the WAL was left to it, not that a checkpoint failed, and the run is OK.
#[test]
fn a_wal_left_to_another_connection_is_said_so_not_called_a_failure() {
    let s = Scratch::new("wal-left");
    let args = ["--messages", "10", "--rps", "0", "--db", "w.db"];
    let first = run(s.dir(), &args);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let reader = rusqlite::Connection::open(s.path("w.db")).unwrap();
    reader
        .execute_batch("BEGIN; SELECT COUNT(*) FROM messages;")
        .unwrap();
    let out = run(
        s.dir(),
        &[&args[..], &["--busy-timeout-ms", "100"]].concat(),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("left at the end to another connection using the database")
            && !out.stdout.contains("final checkpoint failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("INFO the final checkpoint of") && !out.stderr.contains("WARN"),
        "{}",
        out.stderr
    );
    reader.execute_batch("COMMIT").unwrap();
}
