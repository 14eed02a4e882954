//! The PostgreSQL sink against a real server (`PC_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`; unset: each test prints one SKIP line and
//! passes). Each test works in a database of its own, dropped at its end; the server restart
//! test runs alone (the others share the server). The helpers both servers' tests use are in
//! `common/server.rs`.
//!
//! What they pin: every message stored once (generated, ingested across `kill -9`, across a
//! killed connection and a server restart), a partial last line replaced once completed, a
//! foreign `messages` table refused untouched, a NUL byte dead-lettered alone, bad connection
//! settings as one line without the password, a batch whose COMMIT reply was lost not stored
//! twice; report intervals and the run's summary kept with the data (`run_intervals`, `runs`),
//! written while the run goes on without waiting on another client's lock; a version 1 schema
//! upgraded in place; verify accepting exactly the dead-lettered gaps of a generated run;
//! `verify --source` comparing a file with its rows as on SQLite; and consumers scaled up and
//! down (`--consumers 1..2`) storing every line once.

mod common;

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use postgres::{Client, NoTls};

use common::OutputWithin as _;
use common::server::{
    Forwarder, Server, TestDb, assert_all_stored, assert_birth_time_known_to_one_run_only_resumes,
    assert_fixed_width_rewrite_is_read_from_its_start,
    assert_kill_9_then_rerun_stores_each_line_once, assert_ok,
    assert_partial_line_replaced_once_completed, assert_refused_as_not_pc_hosts,
    assert_rejected_completion_leaves_no_fragment, assert_renamed_file_resumes,
    assert_restart_mid_ingest_loses_nothing, assert_url_refused, closed_port, dead_letters,
    not_a_server, now_ns, record, refs, run_id, run_to_cut, split_url, wait_retried_then_recovered,
    wait_until, write_input,
};
use common::{Scratch, assert_one_line_error, u};
use pc_host::message::Record;
use pc_host::position::FileKey;
use pc_host::sink::postgres::{self as pg, Writer};
use pc_host::sink::sqlite::schema::Busy;
use pc_host::sink::{ErrorKind, RunEnd, Sink as _};
use pc_host::telemetry::Counts;
use pc_host::telemetry::interval::Interval;

// ---------------------------------------------------------------------------------------------
// The server and a database per test

/// PostgreSQL, through the `postgres` crate.
struct Pg;

type Db = TestDb<Pg>;

impl Server for Pg {
    const VAR: &'static str = "PC_TEST_POSTGRES_URL";

    fn execute(url: &str, sql: &str) -> Result<(), String> {
        let mut c = Client::connect(url, NoTls).map_err(|e| format!("{e:?}"))?;
        c.batch_execute(sql).map_err(|e| format!("{e:?}"))
    }

    fn drop_database(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    }

    fn kill_sessions(url: &str) -> usize {
        let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                   WHERE datname = current_database() AND pid <> pg_backend_pid()";
        let killed: i64 = connect(url)
            .query_one(sql, &[])
            .expect("terminate the sessions")
            .get(0);
        killed as usize
    }

    fn rows(url: &str) -> Vec<(i64, i64, String)> {
        let sql = "SELECT producer::int8, seq, message FROM messages ORDER BY id";
        let rows = connect(url).query(sql, &[]).expect("read the rows");
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    fn inputs(url: &str) -> Vec<(i64, i64, i64)> {
        let sql = "SELECT input_id::int8, \"offset\", line FROM inputs ORDER BY input_id";
        let rows = connect(url).query(sql, &[]).expect("read the inputs");
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    fn restart(_admin: &str) {
        let mut restart = ctl("restart").expect("a command in PC_TEST_POSTGRES_RESTART");
        let out = restart.output_within().expect("run the restart command");
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "restart failed: {why}");
    }

    fn start(_admin: &str) {
        if let Some(mut start) = ctl("start") {
            let _ = start.status();
        }
    }
}

/// The server's control command with `action` for `restart`: `PC_TEST_POSTGRES_RESTART`,
/// default Debian's `pg_ctlcluster 15 main restart`.
fn ctl(action: &str) -> Option<Command> {
    let line = std::env::var("PC_TEST_POSTGRES_RESTART")
        .unwrap_or_else(|_| "pg_ctlcluster 15 main restart".to_string())
        .replace(" restart", &format!(" {action}"));
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next()?);
    cmd.args(words);
    Some(cmd)
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e:?}"))
}

/// `host:port` of the URL (5432 if it names none).
fn host_port(url: &str) -> String {
    let authority = split_url(url).1;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    }
}

/// The user the URL names (`postgres` if none).
fn user(url: &str) -> &str {
    match split_url(url).1.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.split(':').next().unwrap_or(userinfo),
        None => "postgres",
    }
}

impl TestDb<Pg> {
    fn client(&self) -> Client {
        connect(&self.url)
    }

    /// Asserts run `run_id` stored each (producer, seq) it recorded producing exactly once.
    fn assert_every_message_once(&self, run_id: i64) {
        let mut c = self.client();
        let sql = "SELECT producer::int8, seq FROM messages WHERE run_id = $1";
        let rows = c.query(sql, &[&run_id]).expect("read the pairs");
        let mut pairs: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        pairs.sort_unstable();
        let sql = "SELECT producer::int8, produced FROM run_producers WHERE run_id = $1 \
                   ORDER BY producer";
        let rows = c.query(sql, &[&run_id]).expect("read run_producers");
        let expected: Vec<(i64, i64)> = rows
            .iter()
            .flat_map(|r| {
                let (p, n): (i64, i64) = (r.get(0), r.get(1));
                (0..n).map(move |s| (p, s))
            })
            .collect();
        assert_eq!(pairs, expected, "every message once");
    }

    /// The tables of the public schema, sorted.
    fn tables(&self) -> Vec<String> {
        let sql = "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
                   ORDER BY tablename";
        let rows = self.client().query(sql, &[]).expect("list the tables");
        rows.iter().map(|r| r.get(0)).collect()
    }
}

/// `n` lines of varied text (quotes, backslashes, tabs, other scripts).
fn lines(n: usize) -> Vec<String> {
    const WORDS: [&str; 8] = [
        "alpha",
        "δέλτα",
        "漢字",
        "🚀",
        "\"quoted\"",
        "back\\slash",
        "tab\there",
        "'single'",
    ];
    (0..n)
        .map(|i| {
            let mut t = format!("line {i}");
            for k in 0..i % 5 {
                t.push(' ');
                t.push_str(WORDS[(i + k) % WORDS.len()]);
            }
            t
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Runs of the binary

#[test]
fn a_generated_run_stores_every_message_once_and_verify_agrees() {
    let Some(db) = Db::shared("generated") else {
        return;
    };
    let s = Scratch::new("pg-generated");
    // Twice: the first run creates the tables, the second finds them.
    for _ in 0..2 {
        let args = "--producers 3 --consumers 2 --messages 30000 --rps 0";
        let v = assert_all_stored(&db.run_json(&s, args));
        assert_eq!(u(&v, "stored"), 30_000);
        db.assert_every_message_once(run_id(&v));
    }
    let tables = [
        "inputs",
        "messages",
        "pc_host_schema",
        "run_inputs",
        "run_intervals",
        "run_producers",
        "runs",
    ];
    assert_eq!(db.tables(), tables);
    db.assert_verify(&s);
}

#[test]
fn a_file_ingest_is_exactly_once_across_kill_9_and_a_rerun() {
    let Some(db) = Db::shared("kill9") else {
        return;
    };
    let s = Scratch::new("pg-kill9");
    // Killed right after its first commit, then well into the file.
    let kills = [(1, "--batch-size 10000"), (30_000, "--batch-size 500")];
    let args = "--rps 50000 --report-interval 0.02";
    assert_kill_9_then_rerun_stores_each_line_once(&db, &s, &lines(150_000), args, &kills);
}

#[test]
fn a_last_line_completed_into_a_rejected_line_leaves_no_fragment_row() {
    for (name, then) in [("fragment_more", "three\n"), ("fragment_last", "")] {
        let Some(db) = Db::shared(name) else {
            return;
        };
        let s = Scratch::new(&format!("pg-{name}"));
        assert_rejected_completion_leaves_no_fragment(&db, &s, then);
    }
}

#[test]
fn a_run_given_the_old_name_after_a_rotation_names_the_file_left_unread() {
    let Some(db) = Db::shared("rotated") else {
        return;
    };
    let s = Scratch::new("pg-rotated-away");
    common::assert_rotation_names_the_file_left_unread(&s, |args| db.run_json(&s, args));
}

#[test]
fn a_file_whose_birth_time_is_known_to_one_run_only_resumes_at_its_path() {
    let Some(db) = Db::shared("birth_time") else {
        return;
    };
    let s = Scratch::new("pg-birth-time");
    assert_birth_time_known_to_one_run_only_resumes(&db, &s);
}

#[test]
fn a_fixed_width_file_refilled_past_its_offset_is_read_from_its_start() {
    let Some(db) = Db::shared("fixed_width") else {
        return;
    };
    let s = Scratch::new("pg-fixed-width");
    assert_fixed_width_rewrite_is_read_from_its_start(&db, &s);
}

#[test]
fn a_partial_last_line_completed_by_a_later_run_replaces_its_row() {
    let Some(db) = Db::shared("partial") else {
        return;
    };
    let s = Scratch::new("pg-partial");
    assert_partial_line_replaced_once_completed(&db, &s, "line1\nabc", "def\nline3\n");
}

#[test]
fn a_foreign_messages_table_is_refused_and_left_as_it_was() {
    let Some(db) = Db::shared("foreign") else {
        return;
    };
    let s = Scratch::new("pg-foreign");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE messages (id SERIAL PRIMARY KEY, message TEXT NOT NULL, \
         created_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
         INSERT INTO messages (message) VALUES ('seed one'), ('seed two');",
    )
    .unwrap();
    let mut snapshot = || -> Vec<(i32, String, String)> {
        let sql = "SELECT id, message, created_at::text FROM messages ORDER BY id";
        let rows = c.query(sql, &[]).unwrap();
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let before = snapshot();
    assert_refused_as_not_pc_hosts(&db, &s);
    assert_eq!(db.tables(), ["messages"], "nothing created beside it");
    assert_eq!(snapshot(), before, "its rows are untouched");
}

/// A broker source's run keeps its delivery keys in `delivered` and `nats_origins`: tables of
/// those names that pc-host did not make (in a database without pc-host's tables, or with
/// other columns or types) are refused and left as they were, and no run is recorded.
#[test]
fn foreign_delivery_tables_are_refused_and_left_as_they_were() {
    let Some(db) = Db::shared("foreign_delivered") else {
        return;
    };
    let open = |db: &Db| {
        db.try_open_writer(0, Duration::from_secs(5), true, pg::open)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut c = db.client();
    // Exactly pc-host's shape, with a row of its own, in a database without pc-host's tables.
    c.batch_execute(
        "CREATE TABLE delivered (key_run BIGINT NOT NULL, producer INTEGER NOT NULL, \
         seq BIGINT NOT NULL, stored_by BIGINT NOT NULL, PRIMARY KEY (key_run, producer, seq)); \
         INSERT INTO delivered VALUES (1, 2, 3, 4);",
    )
    .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("table named delivered") && err.contains("not pc-host's"),
        "{err}"
    );
    assert_eq!(db.tables(), ["delivered"], "nothing created beside it");
    c.batch_execute("DROP TABLE delivered").unwrap();
    // A pc-host database, then a `nats_origins` of another shape.
    open(&db).expect("pc-host's tables and its delivery tables");
    c.batch_execute(
        "DROP TABLE nats_origins; CREATE TABLE nats_origins (origin TEXT PRIMARY KEY, \
         run_id BIGINT NOT NULL); INSERT INTO nats_origins VALUES ('theirs', 9);",
    )
    .unwrap();
    let runs = |c: &mut Client| -> i64 {
        c.query_one("SELECT count(*) FROM runs", &[])
            .unwrap()
            .get(0)
    };
    let before = runs(&mut c);
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("`nats_origins` has columns (origin text"),
        "{err}"
    );
    assert_eq!(runs(&mut c), before, "no run recorded");
    let kept: (String, i64) = c
        .query_one("SELECT origin, run_id FROM nats_origins", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(kept, ("theirs".to_string(), 9));
}

/// `delivered` and `nats_origins` dedupe by their one unique key: a `delivered` of pc-host's
/// columns with no key (a record delivered twice would be stored twice), or with another
/// unique key besides (a new record could be taken for a duplicate), is refused before a run
/// is recorded, and left as it was.
#[test]
fn a_delivery_table_without_pc_hosts_one_unique_key_is_refused() {
    let Some(db) = Db::shared("delivered_keys") else {
        return;
    };
    let open = |db: &Db| {
        db.try_open_writer(0, Duration::from_secs(5), true, pg::open)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    open(&db).expect("pc-host's tables and its delivery tables");
    let mut c = db.client();
    let runs = |c: &mut Client| -> i64 {
        c.query_one("SELECT count(*) FROM runs", &[])
            .unwrap()
            .get(0)
    };
    let before = runs(&mut c);
    c.batch_execute("ALTER TABLE delivered DROP CONSTRAINT delivered_pkey")
        .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains(
            "`delivered` has unique keys none but pc-host's has one, on (key_run,producer,seq)"
        ),
        "{err}"
    );
    c.batch_execute(
        "ALTER TABLE delivered ADD PRIMARY KEY (key_run, producer, seq); \
         CREATE UNIQUE INDEX theirs ON delivered (seq)",
    )
    .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("unique keys (key_run,producer,seq), (seq)"),
        "{err}"
    );
    c.batch_execute(
        "DROP INDEX theirs; CREATE UNIQUE INDEX theirs ON delivered (key_run, producer, seq) \
         WHERE seq > 0; ALTER TABLE delivered DROP CONSTRAINT delivered_pkey",
    )
    .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("(partial, on an expression or deferrable)"),
        "{err}"
    );
    // A key on an expression alone names no column (its columns read as NULL, which
    // panicked).
    c.batch_execute("DROP INDEX theirs; CREATE UNIQUE INDEX theirs ON delivered ((seq + 1))")
        .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("unique keys ( (partial, on an expression or deferrable))"),
        "{err}"
    );
    assert_eq!(runs(&mut c), before, "no run recorded");
    // pc-host's key again: accepted.
    c.batch_execute(
        "DROP INDEX theirs; ALTER TABLE delivered ADD PRIMARY KEY (key_run, producer, seq)",
    )
    .unwrap();
    open(&db).expect("pc-host's key");
    assert_eq!(runs(&mut c), before + 1);
}

/// Only `delivered`'s key makes a record a duplicate: a row another constraint refuses (an
/// exclusion constraint someone added, which `ON CONFLICT DO NOTHING` without a target took as
/// an arbiter) fails the write instead of being counted as a duplicate and dropped.
#[test]
fn only_the_key_makes_a_delivered_record_a_duplicate() {
    let Some(db) = Db::shared("delivered_exclusion") else {
        return;
    };
    let (mut writer, _) = db
        .try_open_writer(0, Duration::from_secs(5), true, pg::open)
        .expect("open");
    db.client()
        .batch_execute(
            "ALTER TABLE delivered ADD CONSTRAINT theirs EXCLUDE USING btree (seq WITH =)",
        )
        .unwrap();
    // Another producer's seq 7: another key, the same seq.
    common::server::assert_only_the_key_makes_a_duplicate(
        &mut writer,
        &common::server::delivered(1, 7),
        &common::server::delivered(2, 7),
        "theirs",
    );
}

/// A run whose `messages` table another client holds locked past `--busy-timeout-ms` is
/// refused with one line before it is recorded: no run row is left behind (one was, as a run
/// that "did not finish").
#[test]
fn a_run_refused_by_a_held_lock_leaves_no_run_behind() {
    let Some(db) = Db::shared("held_lock") else {
        return;
    };
    let s = Scratch::new("pg-held-lock");
    assert_ok(&db.run_json(&s, "--messages 10"));
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let out = db.run(
        &s,
        "--messages 10 --busy-timeout-ms 200 --report-interval 0",
    );
    assert_one_line_error(
        &out,
        1,
        "another client held a lock on table messages for longer than --busy-timeout-ms",
    );
    tx.rollback().unwrap();
    let runs: i64 = db
        .client()
        .query_one("SELECT count(*) FROM runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(runs, 1, "the refused run left no row");
}

/// A signal while the start waits for a lock another client holds ends the wait within a
/// slice of it, before the run is recorded: exit 130, no summary, no run (it waited out the
/// lock, then ran and drained).
#[test]
fn a_signal_while_the_start_waits_for_a_lock_stops_it_without_recording_a_run() {
    let Some(db) = Db::shared("signal_at_start") else {
        return;
    };
    let s = Scratch::new("pg-signal-at-start");
    assert_ok(&db.run_json(&s, "--messages 10"));
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let args = [
        "--sink",
        &db.url,
        "--messages",
        "10",
        "--busy-timeout-ms",
        "120000",
    ];
    let (out, rest) = common::sigint_at_start(&s, &args, 1);
    tx.rollback().unwrap();
    assert_eq!(out.code, Some(130), "{rest:#?}");
    assert!(
        out.stdout.is_empty(),
        "no summary for a run that never started"
    );
    assert!(
        rest.iter().any(
            |l| l.starts_with("pc-host: stopped by SIGINT while waiting for ")
                && l.ends_with(
                    "(another client held a lock on table messages): the run did not start and \
                 nothing was recorded"
                )
        ),
        "{rest:#?}"
    );
    let runs: i64 = db
        .client()
        .query_one("SELECT count(*) FROM runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(runs, 1, "no run recorded for the interrupted start");
}

/// Another client holding the run's `runs` row when the run records its end (past the busy
/// time): the end is tried again within `--retry-for`, as a write would be, and the run that
/// stored everything ends OK once the lock is gone (it failed, its end unrecorded).
#[test]
fn a_lock_on_the_runs_row_at_the_end_is_waited_out_within_the_retry_time() {
    let Some(db) = Db::shared("end_lock") else {
        return;
    };
    let s = Scratch::new("pg-end-lock");
    let args = [
        "--sink",
        &db.url,
        "--rps",
        "500",
        "--busy-timeout-ms",
        "200",
        "--report-interval",
        "0.02",
        "--output",
        "json",
    ];
    let mut r = common::Running::start(&s, &args);
    r.err.wait_stored_at_least(1);
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    // The row, not the table: the count back and the interval rows (whose key checks share
    // the row) go on; only the end's UPDATE waits.
    tx.batch_execute(
        "SELECT 1 FROM runs WHERE run_id = (SELECT max(run_id) FROM runs) FOR NO KEY UPDATE",
    )
    .unwrap();
    common::signal(&r.child, libc::SIGINT);
    r.err.wait("the end's first failure", |l| {
        l.contains("recording the end of the run") && l.contains("retrying for up to")
    });
    tx.rollback().unwrap();
    let out = common::finish(r);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = common::json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
    assert!(u(&v, "retries") >= 1, "the end's retries are counted: {v}");
    assert!(
        out.stderr.contains("recorded the end of the run after "),
        "{}",
        out.stderr
    );
    let finished: bool = db
        .client()
        .query_one(
            "SELECT finished_at IS NOT NULL FROM runs ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(finished, "the end is recorded");
    db.assert_verify(&s);
}

/// A `pc_host_schema` table that is not pc-host's mark (another column, or `version` of
/// another type) is refused with one line, not a server error or a panic.
#[test]
fn a_foreign_mark_table_is_refused_as_not_pc_hosts() {
    let Some(db) = Db::shared("foreign_mark") else {
        return;
    };
    let s = Scratch::new("pg-foreign-mark");
    let mut c = db.client();
    for table in [
        "pc_host_schema (note TEXT)",
        "pc_host_schema (version TEXT)",
    ] {
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS pc_host_schema; CREATE TABLE {table}; \
             INSERT INTO pc_host_schema VALUES ('x');"
        ))
        .unwrap();
        assert_refused_as_not_pc_hosts(&db, &s);
        assert_eq!(db.tables(), ["pc_host_schema"], "nothing created beside it");
    }
}

#[test]
fn a_record_with_a_nul_byte_is_dead_lettered_and_the_rest_stored() {
    let Some(db) = Db::shared("nul") else { return };
    let s = Scratch::new("pg-nul");
    let mut lines = lines(2000);
    lines[700] = "before\0after".to_string();
    let source = write_input(&s, "input.log", &lines);
    let v = assert_ok(&db.run_json(&s, &format!("--source {source} --dead-letter dead.jsonl")));
    assert_eq!(
        (u(&v, "stored"), u(&v, "dead_lettered"), u(&v, "not_stored")),
        (1999, 1, 0),
        "{v}"
    );
    let entries = dead_letters(&s.path("dead.jsonl"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["record"], "before\0after");
    assert_eq!(
        entries[0]["source"]["line"], 701,
        "line numbers count from 1"
    );
    let why = entries[0]["error"].as_str().unwrap();
    assert!(why.contains("22021") && !why.contains('\n'), "{why}");
    lines.remove(700);
    let rows = db.rows();
    let got: Vec<&str> = rows.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(got, lines, "every other line, in order");
    db.assert_verify(&s);
}

/// Bad connection settings, each with the password `sekret`, and what the error must say.
fn bad_urls(admin: &str) -> [(String, &'static str); 5] {
    let (scheme, _) = split_url(admin);
    let (hp, pid) = (host_port(admin), std::process::id());
    let at = |port: u16| format!("{scheme}://postgres:sekret@127.0.0.1:{port}/test");
    [
        (at(closed_port()), "cannot connect: connection refused"),
        (
            format!("{scheme}://pc_no_such_user_{pid}:sekret@{hp}/test"),
            "cannot connect:",
        ),
        (
            format!("{scheme}://{}:sekret@{hp}/pc_no_such_db_{pid}", user(admin)),
            "does not exist",
        ),
        (at(not_a_server()), "cannot connect:"),
        (
            format!(
                "{scheme}://{}:sekret@{hp}/test?sslmode=require",
                user(admin)
            ),
            "cannot connect: error performing TLS handshake: no TLS implementation configured; \
             pc-host connects to PostgreSQL without TLS: use sslmode=disable or sslmode=prefer",
        ),
    ]
}

#[test]
fn bad_connection_settings_fail_with_one_line_without_the_password() {
    let Some((admin, _shared)) = common::server::shared::<Pg>() else {
        return;
    };
    let s = Scratch::new("pg-bad");
    for (url, needle) in &bad_urls(&admin) {
        for args in [
            ["--sink", url.as_str(), "--messages", "10"].as_slice(),
            &["verify", "--sink", url.as_str()],
            // verify --source connects before it looks at the file.
            &["verify", "--sink", url.as_str(), "--source", "file:in.log"],
        ] {
            assert_url_refused(&s, args, url, needle);
        }
    }
}

/// A user who may not create tables, on a database without pc-host's: one line saying what
/// the permission was needed for, and nothing made.
#[test]
fn a_user_who_may_not_create_the_tables_is_told_what_failed() {
    let Some(db) = Db::shared("no_create") else {
        return;
    };
    let s = Scratch::new("pg-no-create");
    let role = format!("pc_no_create_{}", std::process::id());
    let mut c = db.client();
    c.batch_execute(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC"
    ))
    .unwrap();
    let url = common::server::with_user(&db.url, &role);
    let out = common::run(s.dir(), &["--sink", &url, "--messages", "5"]);
    assert_one_line_error(
        &out,
        1,
        "creating pc-host's tables: permission denied for schema public (SQLSTATE 42501)",
    );
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing made");
    c.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

#[test]
fn a_connection_killed_mid_run_is_retried_and_nothing_is_lost_or_doubled() {
    let Some(db) = Db::shared("killconn") else {
        return;
    };
    let s = Scratch::new("pg-killconn");
    let args = "--producers 2 --consumers 2 --rps 4000 --duration 600 --retry-for 30 \
                --report-interval 0.05 --output json";
    let mut r = db.start(&s, args);
    for round in 1..=2 {
        let stored = r.err.wait_stored_at_least(1);
        assert!(db.kill_sessions() >= 1, "no pc-host session to kill");
        wait_retried_then_recovered(&mut r);
        r.err.wait_stored_at_least(stored + 100 * round);
    }
    let v = assert_all_stored(&r.interrupt());
    assert!(u(&v, "retries") >= 2, "{v}");
    db.assert_every_message_once(run_id(&v));
    db.assert_verify(&s);
}

#[test]
fn a_server_restart_mid_ingest_is_retried_and_every_line_is_stored_once() {
    let Some(db) = Db::alone("restart") else {
        return;
    };
    let s = Scratch::new("pg-restart");
    let args = "--rps 10000 --retry-for 60";
    assert_restart_mid_ingest_loses_nothing(&db, &s, &lines(60_000), 1000, args);
}

/// `--consumers 1..2` with a connection each: a consumer is added while another client's lock
/// holds the queue full, and retired once it stays empty; every line is stored once. The second
/// connection is opened when the second consumer starts, not at the start of the run.
#[test]
fn consumers_scale_up_under_load_and_down_when_idle_and_every_line_is_stored_once() {
    let Some(db) = Db::shared("scale") else {
        return;
    };
    let s = Scratch::new("pg-scale");
    let n = 20_000;
    let mut cmd = common::pc_host(s.dir());
    cmd.args(["--sink", &db.url]).args(
        "--source stdin --consumers 1..2 --scale-interval 0.05 --capacity 256 \
         --busy-timeout-ms 20 --retry-for 600 --report-interval 0 --output json"
            .split_whitespace(),
    );
    let mut at_start = None;
    let out = common::scaling::up_then_down_and(
        cmd,
        n,
        || {
            // The run has started (its input is named) and nothing has failed yet.
            at_start = Some(pc_host_sessions(&db));
            let mut holder = db.client();
            holder
                .batch_execute("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
                .expect("lock the messages table");
            holder // dropped: the connection ends, the lock with it
        },
        // Opened on a thread of its own as the second consumer starts: at once, or (while the
        // lock keeps it from preparing its statements) after a failure and a retry.
        |err| {
            err.wait("opening the second connection", |l| {
                l.contains("sink connection 2 opened")
            });
        },
    );
    assert_eq!(at_start, Some(1), "MIN connections at the start, not MAX");
    let v = assert_all_stored(&out);
    assert_eq!((u(&v, "produced"), u(&v, "stored")), (n as u64, n as u64));
    let c = &v["consumers"];
    assert_eq!(
        (u(c, "min"), u(c, "max"), u(c, "peak"), u(c, "writers")),
        (1, 2, 2, 2),
        "{v}"
    );
    let events = out
        .stderr
        .lines()
        .filter(|l| l.contains(": scale "))
        .count();
    assert_eq!(events, 2, "one change each way:\n{}", out.stderr);
    let mut rows: Vec<(i64, String)> = db.rows().into_iter().map(|r| (r.1, r.2)).collect();
    rows.sort();
    let want: Vec<(i64, String)> = (0..n)
        .map(|i| (i as i64, common::scaling::line(i)))
        .collect();
    assert_eq!(rows, want, "each line stored once");
    db.assert_verify(&s);
}

/// pc-host's sessions on `db` now (it names its connections `pc-host`).
fn pc_host_sessions(db: &Db) -> i64 {
    db.client()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'pc-host'",
            &[],
        )
        .expect("count the sessions")
        .get(0)
}

// ---------------------------------------------------------------------------------------------
// The writer through the library

/// A writer on `db` for one producer; and its run id.
fn open_writer(db: &Db) -> (Writer, i64) {
    db.open_writer(1, Duration::from_secs(5), pg::open)
}

/// Messages `seqs` of producer 0.
fn batch(seqs: std::ops::Range<u64>) -> Vec<Record> {
    seqs.map(|seq| record(0, seq, 0)).collect()
}

/// See `common::server::assert_stored_is_what_was_committed_when_the_count_back_fails`.
#[test]
fn the_summary_says_what_was_committed_when_the_count_back_fails() {
    let Some(db) = Db::shared("countback") else {
        return;
    };
    common::server::assert_stored_is_what_was_committed_when_the_count_back_fails(&db, 5432);
}

/// A batch whose COMMIT reply was lost, given up on while the server cannot be reached to ask
/// what became of it, may be stored: its error says so (`unconfirmed`), so that its records
/// are dead-lettered as `unconfirmed`, not as `retries_exhausted` (a replay of those stored
/// them twice). A write that fails with no COMMIT in doubt is not unconfirmed.
#[test]
fn a_lost_commit_that_cannot_be_looked_up_leaves_its_batch_unconfirmed() {
    let Some(db) = Db::shared("unconfirmed") else {
        return;
    };
    for in_doubt in [true, false] {
        let (forwarder, via) = Forwarder::for_url(&db.url, 5432);
        let (mut w, _) =
            db.open_writer(1, Duration::from_secs(5), |_, start| pg::open(&via, start));
        let seqs = if in_doubt { 0..100 } else { 100..200 };
        let first = batch(seqs.clone());
        w.write(&refs(&first)).unwrap();
        if in_doubt {
            w.forget_commit_outcome();
        }
        forwarder.cut();
        let next = batch(seqs.end..seqs.end + 100);
        let e = w.write(&refs(&next)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
        assert_eq!(e.unconfirmed, in_doubt, "{e}");
    }
}

/// A batch whose COMMIT landed but whose reply was lost, given up on at once (`--retry-for
/// 0`) while the server stays reachable for the count back, is counted twice: dead-lettered
/// as `unconfirmed`, and stored by the count back. The summary says how many of the
/// unconfirmed records were stored after all and the counts reconcile: FAILED, not MISMATCH.
#[test]
fn a_lost_commit_reply_given_up_on_is_reconciled_by_the_count_back() {
    let Some(db) = Db::shared("after_all") else {
        return;
    };
    let s = Scratch::new("stored-after-all");
    let (forwarder, via) = Forwarder::for_url(&db.url, 5432);
    // No report intervals: their rows are written in transactions of their own, whose COMMIT
    // replies must not be the one swallowed.
    let mut args = run_to_cut(&via.url);
    args.extend(["--dead-letter", "dead.jsonl", "--report-interval", "0"]);
    let r = common::Running::start(&s, &args);
    // Until the run has made its table, there is nothing to count.
    let held = || {
        connect(&db.url)
            .query_one("SELECT count(*) FROM messages", &[])
            .map_or(0, |r| r.get::<_, i64>(0))
    };
    wait_until("100 rows stored", || held() >= 100);
    forwarder.swallow_reply(b"COMMIT\0");
    let out = common::finish(r);
    assert!(forwarder.swallowed(), "{}", out.stderr);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let v = common::json(&out);
    assert_eq!(v["result"], "FAILED", "{v}");
    assert_eq!(v["stored_counted_back"], true, "{v}");
    assert_eq!(u(&v, "stored"), db.rows().len() as u64, "{v}");
    let (unconfirmed, after_all) = (u(&v, "unconfirmed"), u(&v, "stored_after_all"));
    assert!(after_all > 0 && after_all <= unconfirmed, "{v}");
    assert_eq!(
        u(&v, "produced") + after_all,
        u(&v, "stored") + u(&v, "dead_lettered") + u(&v, "not_stored"),
        "{v}"
    );
    let entries = dead_letters(&s.path("dead.jsonl"));
    let in_doubt = entries
        .iter()
        .filter(|e| e["reason"] == "unconfirmed")
        .count() as u64;
    assert_eq!(in_doubt, unconfirmed, "{v}");
    assert!(
        !v["error"].as_str().unwrap_or("").contains("accounting"),
        "{v}"
    );
}

#[test]
fn a_batch_whose_commit_reply_was_lost_is_not_stored_twice() {
    let Some(db) = Db::shared("unknown") else {
        return;
    };
    let (mut w, _) = open_writer(&db);
    let first = batch(0..100);
    w.write(&refs(&first)).unwrap();
    // Written again as it is, the unique key refuses the batch: a fatal error.
    let e = w.write(&refs(&first)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.to_string().contains("23505"), "{e}");
    // Written again after a lost COMMIT reply, it is found stored and not stored again.
    w.forget_commit_outcome();
    w.write(&refs(&first)).unwrap();
    assert_eq!(w.count_stored().unwrap(), 100);
    // A batch after a lost reply whose transaction did not commit is written.
    w.forget_commit_outcome();
    w.write(&refs(&batch(100..150))).unwrap();
    assert_eq!(w.count_stored().unwrap(), 150);
    assert_eq!(db.rows().len(), 150);
}

/// Whether another session of this database finished asking a transaction's fate
/// (`pg_xact_status`) after `since` (the server's clock, as text): idle after such a query,
/// so it has its answer, which while the transaction is open can only be "in progress" (a
/// writer settling a lost COMMIT then waits between polls).
fn asked_after(c: &mut Client, since: &str) -> bool {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
               AND pid <> pg_backend_pid() AND state = 'idle' \
               AND query LIKE '%pg_xact_status%' AND query_start > $1::text::timestamptz";
    let n: i64 = c
        .query_one(sql, &[&since])
        .expect("read pg_stat_activity")
        .get(0);
    n > 0
}

/// A transaction of another client that has taken an id, still open; and that id.
fn open_transaction(c: &mut Client) -> (postgres::Transaction<'_>, i64) {
    let mut tx = c.transaction().unwrap();
    let xid = tx
        .query_one("SELECT pg_current_xact_id()::text::int8", &[])
        .unwrap()
        .get(0);
    (tx, xid)
}

#[test]
fn a_lost_commit_reply_is_settled_by_the_transactions_fate() {
    let Some(db) = Db::shared("xact_status") else {
        return;
    };
    let (mut w, _) = open_writer(&db);
    let mut c = db.client();
    w.write(&refs(&batch(0..100))).unwrap();
    let committed = w.last_xid().expect("the id of a committed write");
    // Committed: the write succeeds storing nothing (a batch it was not is not looked for).
    w.forget_commit_outcome_of(Some(committed));
    w.write(&refs(&batch(100..150))).unwrap();
    assert_eq!(w.count_stored().unwrap(), 100);
    assert_eq!(w.last_xid(), None);
    // Aborted: the batch is written, even if its first row is there (a fatal duplicate).
    let (tx, aborted) = open_transaction(&mut c);
    tx.rollback().unwrap();
    w.forget_commit_outcome_of(Some(aborted));
    let e = w.write(&refs(&batch(0..100))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.to_string().contains("23505"), "{e}");
    w.forget_commit_outcome_of(Some(aborted));
    w.write(&refs(&batch(100..150))).unwrap();
    assert_eq!(w.count_stored().unwrap(), 150);
    // Still committing: waited for (the writer seen polling `pg_xact_status` while the
    // transaction is open), then settled by how it ends.
    for commit in [true, false] {
        let (tx, xid) = open_transaction(&mut c);
        w.forget_commit_outcome_of(Some(xid));
        let mut watcher = db.client();
        let since: String = watcher
            .query_one("SELECT clock_timestamp()::text", &[])
            .unwrap()
            .get(0);
        std::thread::scope(|s| {
            s.spawn(move || {
                wait_until("the writer asking after the open transaction", || {
                    asked_after(&mut watcher, &since)
                });
                if commit { tx.commit() } else { tx.rollback() }.unwrap();
            });
            w.write(&refs(&batch(150..160))).unwrap();
        });
        assert_eq!(w.count_stored().unwrap(), if commit { 150 } else { 160 });
    }
    assert_eq!(db.rows().len(), 160);
}

/// A lost commit's transaction id the server has never seen (a failover to a server the
/// write never reached: `pg_xact_status` says "in the future", SQLSTATE 22023) is settled by
/// the rows, as a forgotten one is, not taken for a refused record (which split the batch
/// and dead-lettered every row as refused).
#[test]
fn a_lost_commit_whose_id_the_server_never_saw_is_settled_by_the_rows() {
    let Some(db) = Db::shared("xact_future") else {
        return;
    };
    let (mut w, _) = open_writer(&db);
    w.write(&refs(&batch(0..10))).unwrap();
    let future = w.last_xid().expect("the id of a committed write") + 1_000_000;
    w.forget_commit_outcome_of(Some(future));
    w.write(&refs(&batch(10..20))).unwrap();
    assert_eq!(w.count_stored().unwrap(), 20, "not stored before: written");
    w.forget_commit_outcome_of(Some(future));
    w.write(&refs(&batch(10..20))).unwrap();
    assert_eq!(
        w.count_stored().unwrap(),
        20,
        "stored before: not written again"
    );
}

#[test]
fn a_lost_commit_still_committing_past_the_lock_wait_is_retryable() {
    let Some(db) = Db::shared("xact_pending") else {
        return;
    };
    let (mut w, _) = db.open_writer(1, Duration::from_millis(200), pg::open);
    let mut c = db.client();
    let (tx, xid) = open_transaction(&mut c);
    w.forget_commit_outcome_of(Some(xid));
    let ten = batch(0..10);
    let t = Instant::now();
    let e = w.write(&refs(&ten)).unwrap_err();
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.to_string().contains("still committing"), "{e}");
    // Asked again next time: it aborted, so the batch is written.
    tx.rollback().unwrap();
    w.write(&refs(&ten)).unwrap();
    assert_eq!(w.count_stored().unwrap(), 10);
}

#[test]
fn a_write_on_a_killed_connection_is_retryable_and_the_next_one_reconnects() {
    let Some(db) = Db::shared("reconnect") else {
        return;
    };
    let (mut w, _) = open_writer(&db);
    let mut other = w.connector()().unwrap();
    let ten = batch(0..10);
    assert_eq!(db.kill_sessions(), 2);
    let e = w.write(&refs(&ten)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    let line = e.to_string();
    assert!(
        line.starts_with("committing a batch of 10 messages failed: PostgreSQL ")
            && line.contains(&db.url)
            && !line.contains('\n'),
        "{line}"
    );
    w.write(&refs(&ten)).unwrap();
    // The other connection was killed too; its bookkeeping reconnects by itself.
    assert_eq!(other.count_stored().unwrap(), 10);
    let mut nul = batch(10..11);
    nul[0].text.push('\0');
    let e = other.write(&refs(&nul)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Record, "{e}");
    assert_eq!(w.count_stored().unwrap(), 10);
}

#[test]
fn a_lock_past_the_busy_timeout_is_retryable_and_a_moved_input_is_fatal() {
    let Some(db) = Db::shared("locks") else {
        return;
    };
    let (mut w, _) = db.open_writer(0, Duration::from_millis(200), pg::open);
    let key = FileKey {
        path: "/var/log/app.log".into(),
        dev: 1,
        ino: 2,
        born: None,
    };
    let input = w.register(Some(&key)).unwrap().input;
    let first = record(input, 0, 10);
    // Another client holds the input's row: the position cannot move within the busy time.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute("SELECT 1 FROM inputs FOR UPDATE", &[]).unwrap();
    let e = w.write(&[&first]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.to_string().contains("55P03"), "{e}");
    tx.rollback().unwrap();
    w.write(&[&first]).unwrap();
    assert_eq!(db.inputs(), [(i64::from(input), 10, 1)]);
    // Another process moves the input: this writer must not commit past it.
    db.client()
        .execute("UPDATE inputs SET \"offset\" = 99, line = 9", &[])
        .unwrap();
    let e = w.write(&[&record(input, 1, 20)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.to_string().contains("advanced by another process"), "{e}");
    assert_eq!(db.rows().len(), 1, "nothing of the refused write is stored");
}

/// A COPY the server refuses before taking its rows (another client's lock on `messages` held
/// past the busy time) can leave the driver's connection holding a reply no call asked for
/// (rust-postgres issue 789: the driver sends a second Sync as it gives the COPY up), which
/// made a later call on it fail with "unexpected message from server", depending on when
/// that reply came. The writer drops such a connection: the retry runs on a new one.
#[test]
fn a_copy_refused_before_its_rows_is_retried_on_a_new_connection() {
    let Some(db) = Db::shared("copy_lock") else {
        return;
    };
    let (mut w, _) = db.open_writer(1, Duration::from_millis(200), pg::open);
    let first = batch(0..2);
    w.write(&first.iter().collect::<Vec<_>>()).unwrap();
    let before = pc_host_backends(&db);
    assert_eq!(before.len(), 1, "the writer's connection: {before:?}");
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let second = batch(2..4);
    let second: Vec<&Record> = second.iter().collect();
    let e = w.write(&second).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.to_string().contains("55P03"), "{e}");
    tx.rollback().unwrap();
    w.write(&second).unwrap();
    let after = pc_host_backends(&db);
    assert!(
        after.iter().any(|pid| !before.contains(pid)),
        "a new connection: {before:?} then {after:?}"
    );
    assert_eq!(w.count_stored().unwrap(), 4);
}

/// The backend process ids of pc-host's sessions on `db`.
fn pc_host_backends(db: &Db) -> Vec<i32> {
    db.client()
        .query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'pc-host'",
            &[],
        )
        .expect("list the sessions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A trigger function that waits ten minutes: a statement (or COMMIT) the server does not
/// finish on its own.
const SLEEP_TEN_MINUTES: &str = "CREATE FUNCTION pc_test_sleep() RETURNS trigger \
                                 LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(600); \
                                 RETURN NULL; END $$";

/// A statement the server never finishes, on the rows (a trigger that waits), is cancelled by
/// the server once the writers' statement bound has passed (three lock waits plus 5 s:
/// `statement_timeout`); a COMMIT that never finishes (the same trigger, deferred: the server
/// does not time COMMIT's work) is cancelled by the session's watch after as long. Either way
/// the write fails as retryable with nothing stored; a run given no retries then dead-letters
/// its records and ends, exit 1, where an unbounded write would hold it for ever, whatever
/// `--retry-for` says.
#[test]
fn a_statement_the_server_never_finishes_is_cancelled_and_retried_not_waited_for() {
    let Some(db) = Db::shared("hang") else {
        return;
    };
    let (mut w, _) = db.open_writer(1, Duration::from_millis(100), pg::open);
    let mut admin = db.client();
    admin.batch_execute(SLEEP_TEN_MINUTES).unwrap();
    for (trigger, said) in [
        (
            "CREATE TRIGGER pc_test_hang BEFORE INSERT ON messages FOR EACH STATEMENT \
             EXECUTE FUNCTION pc_test_sleep()",
            "statement timeout (SQLSTATE 57014)",
        ),
        (
            "CREATE CONSTRAINT TRIGGER pc_test_hang AFTER INSERT ON messages DEFERRABLE \
             INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pc_test_sleep()",
            "COMMIT had not finished after 5.3 s and was cancelled: canceling statement due to \
             user request (SQLSTATE 57014)",
        ),
    ] {
        admin.batch_execute(trigger).unwrap();
        let e = w.write(&refs(&batch(0..10))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable, "{trigger}: {e}");
        assert!(e.to_string().contains(said), "{trigger}: {e}");
        assert!(!e.unconfirmed, "{trigger}: the server answered: {e}");
        assert!(db.rows().is_empty(), "{trigger}: nothing stored");
        admin
            .batch_execute("DROP TRIGGER pc_test_hang ON messages")
            .unwrap();
    }
    w.write(&refs(&batch(0..10))).unwrap();
    assert_eq!(
        db.rows().len(),
        10,
        "the same writer stores once the trigger is gone"
    );

    admin
        .batch_execute(
            "CREATE TRIGGER pc_test_hang BEFORE INSERT ON messages FOR EACH STATEMENT \
             EXECUTE FUNCTION pc_test_sleep()",
        )
        .unwrap();
    let s = Scratch::new("pg-hang");
    let out = db.run_json(
        &s,
        "--messages 50 --busy-timeout-ms 100 --retry-for 0 --dead-letter dead.jsonl",
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("statement timeout"), "{}", out.stderr);
    let v = common::json(&out);
    assert_eq!(
        (u(&v, "stored"), u(&v, "dead_lettered"), u(&v, "not_stored")),
        (0, 50, 0),
        "{v}"
    );
    assert_eq!(dead_letters(&s.path("dead.jsonl")).len(), 50);
    assert_eq!(db.rows().len(), 10, "the run stored nothing");
}

/// A warning the server sends beside a statement that succeeds (here a trigger's `RAISE
/// WARNING`; a COMMIT cancelled while it waited for a synchronous standby sends one too) is
/// shown on stderr, naming the server; notices below a warning are not.
#[test]
fn a_server_warning_beside_a_write_is_shown_on_stderr() {
    let Some(db) = Db::shared("warning") else {
        return;
    };
    let s = Scratch::new("pg-warning");
    assert_all_stored(&db.run_json(&s, "--messages 10"));
    db.client()
        .batch_execute(
            "CREATE FUNCTION pc_test_warn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             RAISE WARNING 'pc-test: a warning from a trigger'; \
             RAISE NOTICE 'pc-test: a notice from a trigger'; RETURN NULL; END $$; \
             CREATE TRIGGER pc_test_warn BEFORE INSERT ON messages FOR EACH STATEMENT \
             EXECUTE FUNCTION pc_test_warn()",
        )
        .unwrap();
    let out = db.run_json(&s, "--messages 10");
    assert_all_stored(&out);
    let warned = out
        .stderr
        .lines()
        .find(|l| l.contains("pc-test: a warning from a trigger"))
        .unwrap_or_else(|| panic!("no warning line: {}", out.stderr));
    assert!(
        warned.contains("WARN") && warned.contains("PostgreSQL postgres://"),
        "{warned}"
    );
    assert!(
        !out.stderr.contains("a notice from a trigger"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// What a run keeps besides its rows: report intervals, its summary; older schemas

/// One `run_intervals` row.
#[derive(Debug)]
struct IntervalRow {
    t_s: f64,
    produced: i64,
    stored: i64,
    rejected: i64,
    queue_depth: i64,
    /// Latency p50, p99, max.
    latency: [Option<i64>; 3],
}

impl TestDb<Pg> {
    /// The `run_intervals` rows of `run_id`, by time.
    fn interval_rows(&self, run_id: i64) -> Vec<IntervalRow> {
        let sql = "SELECT t_s, produced, stored, rejected, queue_depth, latency_p50_ns, \
                   latency_p99_ns, latency_max_ns FROM run_intervals WHERE run_id = $1 \
                   ORDER BY t_s";
        let rows = self
            .client()
            .query(sql, &[&run_id])
            .expect("read run_intervals");
        rows.iter()
            .map(|r| IntervalRow {
                t_s: r.get(0),
                produced: r.get(1),
                stored: r.get(2),
                rejected: r.get(3),
                queue_depth: r.get(4),
                latency: [r.get(5), r.get(6), r.get(7)],
            })
            .collect()
    }

    /// How many `run_intervals` rows the database holds (0 while the table is not there).
    fn interval_count(&self) -> i64 {
        let sql = "SELECT count(*) FROM run_intervals";
        self.client().query_one(sql, &[]).map_or(0, |r| r.get(0))
    }
}

/// Asserts the intervals are in time order, end where the run ends (`elapsed_s`), add up to
/// the run's produced, stored and rejected, and have sane latencies and queue depths.
fn assert_intervals_add_up(rows: &[IntervalRow], v: &serde_json::Value) {
    assert!(rows.len() >= 5, "a row per 0.1 s of a 1 s run: {rows:?}");
    let mut before = 0.0;
    for row in rows {
        assert!(row.t_s > before, "t_s not strictly increasing: {rows:?}");
        before = row.t_s;
        match row.latency {
            [Some(p50), Some(p99), Some(max)] => assert!(p50 <= p99 && p99 <= max, "{row:?}"),
            l => assert_eq!(l, [None; 3], "latency all NULL or none: {row:?}"),
        }
        assert!((0..=65536).contains(&row.queue_depth), "{row:?}");
    }
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert_eq!(
        rows.last().unwrap().t_s,
        elapsed,
        "the last row ends the run: {rows:?}"
    );
    let sum = |f: fn(&IntervalRow) -> i64| rows.iter().map(f).sum::<i64>() as u64;
    assert_eq!(sum(|r| r.produced), u(v, "produced"), "{rows:?}");
    assert_eq!(sum(|r| r.stored), u(v, "stored"), "{rows:?}");
    assert_eq!(sum(|r| r.rejected), u(v, "rejected"), "{rows:?}");
}

/// Asserts the `runs` row of the summary's run holds its stored, dead-lettered, not stored,
/// retries, latency p50/p99/p999/max and elapsed_s.
fn assert_runs_keeps_the_summary(db: &Db, v: &serde_json::Value) {
    let row = db
        .client()
        .query_one(
            "SELECT stored, dead_lettered, not_stored, retries, latency_p50_ns, \
             latency_p99_ns, latency_p999_ns, latency_max_ns, duplicates, elapsed_s FROM runs \
             WHERE run_id = $1",
            &[&run_id(v)],
        )
        .expect("the runs row");
    let kept: Vec<Option<i64>> = (0..9).map(|i| row.get(i)).collect();
    let lat = &v["latency_ns"];
    let want: Vec<Option<i64>> = [
        &v["stored"],
        &v["dead_lettered"],
        &v["not_stored"],
        &v["retries"],
        &lat["p50"],
        &lat["p99"],
        &lat["p999"],
        &lat["max"],
        &v["duplicates"],
    ]
    .iter()
    .map(|x| x.as_i64())
    .collect();
    assert_eq!(kept, want, "runs vs the summary {v}");
    let elapsed: Option<f64> = row.get(9);
    assert_eq!(
        elapsed,
        v["elapsed_s"].as_f64(),
        "runs.elapsed_s vs the summary"
    );
}

#[test]
fn run_intervals_add_up_to_the_run_and_runs_keeps_the_summary() {
    let Some(db) = Db::shared("intervals") else {
        return;
    };
    let s = Scratch::new("pg-intervals");
    let args = "--messages 3000 --rps 3000 --report-interval 0.1 --output json";
    let v = assert_all_stored(&db.run(&s, args));
    assert_intervals_add_up(&db.interval_rows(run_id(&v)), &v);
    assert_runs_keeps_the_summary(&db, &v);
}

#[test]
fn report_intervals_are_kept_while_the_run_goes_on() {
    let Some(db) = Db::shared("intervals_live") else {
        return;
    };
    let s = Scratch::new("pg-intervals-live");
    let mut r = db.start(&s, "--rps 1000 --duration 600 --report-interval 0.05");
    wait_until("three run_intervals rows", || db.interval_count() >= 3);
    assert!(
        r.child.try_wait().unwrap().is_none(),
        "the run is still going"
    );
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Report intervals ending at 1, 2, .. `n` s, each with `k` messages produced and stored.
fn intervals(n: u32, k: u64) -> Vec<Interval> {
    (1..=n)
        .map(|t| Interval {
            t_s: f64::from(t),
            len_s: 1.0,
            counts: Counts::default(),
            produced: k,
            stored: k,
            rejected: 0,
            queue_depth: 0,
            latency_p50: Some(1_000),
            latency_p99: Some(2_000),
            latency_max: Some(3_000),
            commit_p99: None,
            consumers: 1,
        })
        .collect()
}

#[test]
fn intervals_kept_without_waiting_give_up_at_once_and_kept_again_are_kept_once() {
    let Some(db) = Db::shared("intervals_lock") else {
        return;
    };
    let busy = Duration::from_secs(20);
    let (mut w, run_id) = db.open_writer(1, busy, pg::open);
    // Another client holds the run's row: the rows' reference to it cannot be checked.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute("SELECT 1 FROM runs FOR UPDATE", &[]).unwrap();
    let t = Instant::now();
    let e = w.record_intervals(&intervals(3, 10), false).unwrap_err();
    assert!(t.elapsed() < busy / 4, "waited {:?}", t.elapsed());
    assert!(e.is::<Busy>(), "{e:#}");
    assert!(e.to_string().contains("55P03"), "{e:#}");
    tx.rollback().unwrap();
    drop(holder);
    assert!(db.interval_rows(run_id).is_empty(), "nothing of it kept");
    // Kept, then kept again with one more (as after a lost COMMIT reply): one row each.
    w.record_intervals(&intervals(3, 10), false).unwrap();
    w.record_intervals(&intervals(4, 20), true).unwrap();
    let rows = db.interval_rows(run_id);
    let kept: Vec<(f64, i64)> = rows.iter().map(|r| (r.t_s, r.stored)).collect();
    assert_eq!(kept, [(1.0, 20), (2.0, 20), (3.0, 20), (4.0, 20)]);
    // A lost connection is an error, not made again without waiting; waiting, it is.
    assert!(db.kill_sessions() >= 1, "the writer's session");
    let e = w.record_intervals(&intervals(5, 30), false).unwrap_err();
    assert!(!e.is::<Busy>(), "{e:#}");
    let e = w.record_intervals(&intervals(5, 30), false).unwrap_err();
    assert!(
        e.is::<Busy>() && e.to_string().contains("not connected"),
        "{e:#}"
    );
    w.record_intervals(&intervals(5, 30), true).unwrap();
    assert_eq!(db.interval_rows(run_id).len(), 5);
}

/// Statements are prepared at their first use, so with `messages` dropped by another client a
/// new connection still keeps the run's intervals and records its end; only a write fails,
/// naming the missing table.
#[test]
fn with_messages_dropped_a_new_connection_still_keeps_the_runs_intervals_and_end() {
    let Some(db) = Db::shared("messages_dropped") else {
        return;
    };
    let (mut w, run_id) = db.open_writer(1, Duration::from_secs(5), pg::open);
    db.client().batch_execute("DROP TABLE messages").unwrap();
    assert!(db.kill_sessions() >= 1, "the writer's session");
    w.record_intervals(&intervals(2, 10), true).unwrap();
    assert_eq!(db.interval_rows(run_id).len(), 2);
    let e = w.write(&refs(&[record(0, 0, 0)])).unwrap_err();
    assert!(e.to_string().contains("42P01"), "{e}");
    let end = RunEnd {
        finished_at: now_ns(),
        completed: false,
        per_producer: &[0],
        produced: 2,
        stored: 0,
        duplicates: 1,
        dead_lettered: 0,
        not_stored: 1,
        retries: 0,
        latency: None,
        elapsed_s: 1.0,
    };
    w.finish_run(&end).unwrap();
    let ended: i64 = db
        .client()
        .query_one(
            "SELECT COUNT(*) FROM runs WHERE run_id = $1 AND finished_at IS NOT NULL \
             AND duplicates = 1 AND produced = stored + duplicates + dead_lettered + not_stored",
            &[&run_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        ended, 1,
        "the run's end is recorded, its duplicates with it"
    );
}

/// Version 1 of pc-host's tables, as the previous pc-host created them.
const SCHEMA_V1: &str = r#"
CREATE TABLE pc_host_schema (version INT NOT NULL);
INSERT INTO pc_host_schema (version) VALUES (1);
CREATE TABLE runs (
    run_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    completed   BOOLEAN NOT NULL DEFAULT false,
    producers   INT NOT NULL,
    produced    BIGINT,
    config      TEXT NOT NULL
);
CREATE TABLE run_producers (
    run_id   BIGINT NOT NULL REFERENCES runs (run_id),
    producer INT NOT NULL,
    produced BIGINT NOT NULL,
    PRIMARY KEY (run_id, producer)
);
CREATE TABLE messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    producer   INT NOT NULL,
    seq        BIGINT NOT NULL,
    run_id     BIGINT NOT NULL,
    UNIQUE (run_id, producer, seq)
);
CREATE TABLE inputs (
    input_id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path     TEXT,
    dev      BIGINT,
    ino      BIGINT,
    born     BIGINT,
    "offset" BIGINT NOT NULL DEFAULT 0,
    line     BIGINT NOT NULL DEFAULT 0,
    tail     BIGINT NOT NULL DEFAULT 0,
    UNIQUE (path, dev, ino, born)
);
CREATE TABLE run_inputs (
    run_id   BIGINT NOT NULL REFERENCES runs (run_id),
    input_id INT NOT NULL REFERENCES inputs (input_id),
    PRIMARY KEY (run_id, input_id)
);
INSERT INTO runs (started_at, finished_at, completed, producers, produced, config)
    VALUES (now(), now(), true, 1, 2, '{}');
INSERT INTO run_producers VALUES (1, 0, 2);
INSERT INTO messages (message, created_at, producer, seq, run_id)
    VALUES ('Message from producer 0: #0', now(), 0, 0, 1),
           ('Message from producer 0: #1', now(), 0, 1, 1);
"#;

#[test]
fn an_existing_version_1_schema_is_upgraded_in_place_keeping_its_runs() {
    let Some(db) = Db::shared("upgrade") else {
        return;
    };
    let s = Scratch::new("pg-upgrade");
    db.client().batch_execute(SCHEMA_V1).unwrap();
    db.assert_verify(&s); // read as it is
    let v = assert_all_stored(&db.run_json(&s, "--messages 100 --rps 0"));
    assert_eq!(run_id(&v), 2, "{v}");
    let mut c = db.client();
    let version: i32 = c
        .query_one("SELECT version FROM pc_host_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 5);
    let mut last_column = |table: &str| -> String {
        c.query_one(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) \
             AND attnum > 0 AND NOT attisdropped ORDER BY attnum DESC LIMIT 1",
            &[&table],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(last_column("inputs"), "mark", "version 4's column");
    assert_eq!(last_column("runs"), "duplicates", "version 5's column");
    assert_eq!(
        last_column("run_intervals"),
        "consumers",
        "version 3's column, through the upgrades"
    );
    let old: (i64, i64) = {
        let sql = "SELECT producers::int8, (SELECT count(*) FROM messages WHERE run_id = 1) \
                   FROM runs WHERE run_id = 1 AND completed AND stored IS NULL \
                   AND duplicates IS NULL";
        let row = c
            .query_one(sql, &[])
            .expect("the old run, its summary unknown");
        (row.get(0), row.get(1))
    };
    assert_eq!(old, (1, 2), "the old run and its rows are kept");
    assert_runs_keeps_the_summary(&db, &v);
    db.assert_verify(&s);
    // The upgraded tables are the current ones: a second run finds them as they are.
    assert_all_stored(&db.run_json(&s, "--messages 10 --rps 0"));
}

#[test]
fn verify_accepts_a_generated_run_missing_exactly_its_dead_letters() {
    let Some(db) = Db::shared("deadgaps") else {
        return;
    };
    let s = Scratch::new("pg-deadgaps");
    assert_ok(&db.run_json(&s, "--messages 1 --rps 0"));
    db.client()
        .batch_execute("ALTER TABLE messages ADD CONSTRAINT odd_refused CHECK (seq % 2 = 0)")
        .unwrap();
    let args = "--producers 2 --messages 200 --rps 0 --dead-letter dl.jsonl";
    let v = assert_ok(&db.run_json(&s, args));
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (100, 100), "{v}");
    assert_runs_keeps_the_summary(&db, &v);
    let out = common::run(s.dir(), &["verify", "--sink", &db.url]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stdout.contains("(100 dead-lettered)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("each missing seq is in "),
        "{}",
        out.stdout
    );
    // Without the count, the dead-letter file alone accounts for the gaps; without either,
    // the same gaps are missing rows.
    db.client()
        .execute(
            "UPDATE runs SET dead_lettered = NULL WHERE run_id = $1",
            &[&run_id(&v)],
        )
        .unwrap();
    let out = common::run(s.dir(), &["verify", "--sink", &db.url]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stdout.contains("each missing seq is in "),
        "{}",
        out.stdout
    );
    std::fs::remove_file(s.path("dl.jsonl")).unwrap();
    let out = common::run(s.dir(), &["verify", "--sink", &db.url]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stdout.contains("missing"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------------
// Measurements (not run by default): pc-host's own binary COPY encoding against the
// `postgres` crate's BinaryCopyInWriter. Prints rows/s; asserts nothing about time.
// cargo test --release --test postgres -- --ignored --nocapture copy_encodings

const COPY: &str = "COPY m (message, created_at, producer, seq, run_id) FROM STDIN (FORMAT binary)";

/// Rows/s of loading `rows` into the emptied table `m`, 10000 rows per `copy`.
fn copy_rate(
    c: &mut Client,
    rows: &[&Record],
    copy: &mut dyn FnMut(&mut Client, &[&Record]),
) -> f64 {
    c.batch_execute("TRUNCATE m").unwrap();
    let t = Instant::now();
    for chunk in rows.chunks(10_000) {
        copy(c, chunk);
    }
    rows.len() as f64 / t.elapsed().as_secs_f64()
}

/// One COPY of `chunk` in pc-host's own encoding (into `buf`).
fn copy_own(buf: &mut Vec<u8>, c: &mut Client, chunk: &[&Record]) {
    pg::encode::encode(buf, chunk, 1).unwrap();
    let mut w = c.copy_in(COPY).unwrap();
    w.write_all(buf).unwrap();
    w.finish().unwrap();
}

/// One COPY of `chunk` through the `postgres` crate's BinaryCopyInWriter.
fn copy_with_crate(c: &mut Client, chunk: &[&Record]) {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let types = [
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::INT4,
        Type::INT8,
        Type::INT8,
    ];
    let mut w = BinaryCopyInWriter::new(c.copy_in(COPY).unwrap(), &types);
    for r in chunk {
        let at = UNIX_EPOCH + Duration::from_nanos(r.created_at as u64);
        w.write(&[&r.text, &at, &(r.producer as i32), &(r.seq as i64), &1i64])
            .unwrap();
    }
    w.finish().unwrap();
}

#[test]
#[ignore = "a measurement: run by hand"]
fn copy_encodings_compared() {
    let Some(db) = Db::shared("encodings") else {
        return;
    };
    let mut c = db.client();
    c.batch_execute(
        "CREATE UNLOGGED TABLE m (message TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, \
         producer INT NOT NULL, seq BIGINT NOT NULL, run_id BIGINT NOT NULL)",
    )
    .unwrap();
    let rows = batch(0..300_000);
    let rows = refs(&rows);
    let mut buf = Vec::new();
    let (mut own, mut crate_writer) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        own.push(copy_rate(&mut c, &rows, &mut |c, chunk| {
            copy_own(&mut buf, c, chunk)
        }));
        crate_writer.push(copy_rate(&mut c, &rows, &mut copy_with_crate));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "COPY of {} rows in batches of 10000, median of 5: own encoding {:.0} rows/s, \
         BinaryCopyInWriter {:.0} rows/s",
        rows.len(),
        median(&mut own),
        median(&mut crate_writer)
    );
}

#[test]
fn a_file_renamed_between_runs_resumes_where_it_was_committed() {
    let Some(db) = Db::shared("renamed") else {
        return;
    };
    let s = Scratch::new("pg-renamed");
    assert_renamed_file_resumes(&db, &s);
}

/// `verify --source` reads the file's rows from the server: OK, then a changed row, lines not
/// read yet, a deleted row, rows past a truncated end and a file never ingested, each with
/// the report and exit status SQLite gives.
#[test]
fn verify_source_compares_a_file_with_its_rows_on_the_server() {
    let Some(db) = Db::shared("verify_source") else {
        return;
    };
    let s = Scratch::new("pg-verify-source");
    common::assert_verify_source_judges_the_rows(&s, &["--sink", &db.url], |sql| {
        Pg::execute(&db.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// `plot --sink` draws a run from PostgreSQL's `run_intervals`, as `--db` does from SQLite's.
#[test]
fn plot_draws_a_run_from_the_database() {
    let Some(db) = Db::shared("plot") else { return };
    let s = Scratch::new("pg-plot");
    db.assert_plots(&s, |run| db.interval_rows(run).len() as i64);
}
