//! The PostgreSQL sink against a real server (`PC_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`; unset: each test prints one SKIP line and
//! passes). Each test works in a database of its own, dropped at its end; the server restart
//! test runs alone (it takes [`SERVER`] for writing, the others for reading).
//!
//! What they pin: every message stored once (generated, ingested across `kill -9`, across a
//! killed connection and a server restart), a partial last line replaced once completed, a
//! foreign `messages` table refused untouched, a NUL byte dead-lettered alone, bad connection
//! settings as one line without the password, and a batch whose COMMIT reply was lost not
//! stored twice.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};
use serde_json::Value;

use common::{Out, Running, Scratch, assert_one_line_error, assert_verify, finish, json, run, u};
use pc_host::config::Synchronous;
use pc_host::config::url::ServerUrl;
use pc_host::message::Record;
use pc_host::position::FileKey;
use pc_host::sink::postgres::{self as pg, Writer};
use pc_host::sink::{ErrorKind, RunStart, Sink as _};

const VAR: &str = "PC_TEST_POSTGRES_URL";

/// Taken for reading by every test, for writing by the one that restarts the server.
static SERVER: RwLock<()> = RwLock::new(());

// ---------------------------------------------------------------------------------------------
// The server and a database per test

/// The server's URL; `None` (after the SKIP line) when the variable is not set.
fn server_url() -> Option<String> {
    match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP: {VAR} not set");
            None
        }
    }
}

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(PoisonError::into_inner)
}

/// `url` with its database (path) replaced by `db`; parameters kept.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, authority) = split_url(base);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

/// `(scheme, authority)` of `scheme://authority/path`.
fn split_url(url: &str) -> (&str, &str) {
    let (scheme, rest) = url.split_once("://").expect("a scheme:// URL");
    (scheme, rest.split(['/', '?']).next().unwrap_or(rest))
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

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e:?}"))
}

/// A database of one test: created empty, dropped (with whatever still connects to it) when
/// the test ends, also when it fails.
struct Db {
    admin: String,
    name: String,
    url: String,
}

impl Db {
    fn new(admin: &str, test: &str) -> Self {
        let name = format!("pc_{test}_{}", std::process::id());
        let mut c = connect(admin);
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop an old test database");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        Self {
            admin: admin.to_string(),
            url: with_db(admin, &name),
            name,
        }
    }

    fn client(&self) -> Client {
        connect(&self.url)
    }

    /// Ends every other session on this database (pc-host's connections).
    fn kill_connections(&self) -> i64 {
        self.client()
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("terminate the sessions")
            .get(0)
    }

    /// Every row as `(producer, seq, message)`, in id order.
    fn rows(&self) -> Vec<(i32, i64, String)> {
        self.client()
            .query(
                "SELECT producer, seq, message FROM messages ORDER BY id",
                &[],
            )
            .expect("read the rows")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// `(producer, seq)` of a run's rows, sorted, duplicates kept.
    fn pairs(&self, run_id: i64) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = self
            .client()
            .query(
                "SELECT producer, seq FROM messages WHERE run_id = $1",
                &[&run_id],
            )
            .expect("read the pairs")
            .iter()
            .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
            .collect();
        v.sort_unstable();
        v
    }

    /// What a generated run recorded per producer: every (producer, seq) it must hold.
    fn expected_pairs(&self, run_id: i64) -> Vec<(i64, i64)> {
        self.client()
            .query(
                "SELECT producer, produced FROM run_producers WHERE run_id = $1 ORDER BY producer",
                &[&run_id],
            )
            .expect("read run_producers")
            .iter()
            .flat_map(|r| {
                let (p, n): (i32, i64) = (r.get(0), r.get(1));
                (0..n).map(move |s| (i64::from(p), s))
            })
            .collect()
    }

    /// `(input_id, offset, line)` of each input.
    fn inputs(&self) -> Vec<(i32, i64, i64)> {
        self.client()
            .query(
                "SELECT input_id, \"offset\", line FROM inputs ORDER BY input_id",
                &[],
            )
            .expect("read the inputs")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// The tables of the public schema, sorted.
    fn tables(&self) -> Vec<String> {
        self.client()
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
                 ORDER BY tablename",
                &[],
            )
            .expect("list the tables")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.admin, NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `pc-host ARGS --sink URL --output json --report-interval 0`, to its end.
fn run_json(s: &Scratch, db: &Db, args: &[&str]) -> Out {
    let mut all = vec![
        "--sink",
        &db.url,
        "--output",
        "json",
        "--report-interval",
        "0",
    ];
    all.extend_from_slice(args);
    run(s.dir(), &all)
}

/// Asserts the run exited 0, ok, everything produced stored; returns its summary.
fn assert_all_stored(out: &Out) -> Value {
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
    v
}

fn run_id(v: &Value) -> i64 {
    v["run_id"].as_i64().expect("run_id")
}

/// `n` lines of varied text (quotes, backslashes, tabs, other scripts), each with its `\n`.
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

fn write_lines(path: &std::path::Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).expect("write the input file");
}

/// Asserts the table holds exactly the first `k` of `lines`, once each, in order, as input
/// 1, with the input's committed position after line `k`; returns `k`.
fn committed_prefix(db: &Db, lines: &[String]) -> usize {
    let rows = db.rows();
    for (k, (producer, seq, message)) in rows.iter().enumerate() {
        assert!(
            *producer == 1 && *seq == k as i64 && lines.get(k) == Some(message),
            "row {} is (input {producer}, seq {seq}, {message:?}); expected line {k}: {:?}",
            k + 1,
            lines.get(k)
        );
    }
    let k = rows.len();
    let offset: usize = lines[..k].iter().map(|l| l.len() + 1).sum();
    assert_eq!(
        db.inputs(),
        [(1, offset as i64, k as i64)],
        "the committed position is just after the last stored line ({k} rows)"
    );
    k
}

// ---------------------------------------------------------------------------------------------
// Runs of the binary

#[test]
fn a_generated_run_stores_every_message_once_and_verify_agrees() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "generated");
    let s = Scratch::new("pg-generated");
    // Twice: the first run creates the tables, the second finds them.
    for _ in 0..2 {
        let args = [
            "--producers",
            "3",
            "--consumers",
            "2",
            "--messages",
            "30000",
            "--rps",
            "0",
        ];
        let v = assert_all_stored(&run_json(&s, &db, &args));
        assert_eq!(u(&v, "stored"), 30_000);
        let id = run_id(&v);
        assert_eq!(db.pairs(id), db.expected_pairs(id), "every message once");
    }
    assert_eq!(
        db.tables(),
        [
            "inputs",
            "messages",
            "pc_host_schema",
            "run_inputs",
            "run_producers",
            "runs"
        ]
    );
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

#[test]
fn a_file_ingest_is_exactly_once_across_kill_9_and_a_rerun() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "kill9");
    let s = Scratch::new("pg-kill9");
    let lines = lines(150_000);
    let file = s.path("input.log");
    write_lines(&file, &lines);
    let source = format!("file:{}", file.display());
    let mut k = 0;
    // Killed right after its first commit, then well into the file.
    for (point, batch) in [(1, "10000"), (30_000, "500")] {
        let args = [
            "--source",
            &source,
            "--sink",
            &db.url,
            "--rps",
            "50000",
            "--batch-size",
            batch,
            "--report-interval",
            "0.02",
        ];
        let mut r = Running::start(&s, &args);
        let seen = r.err.wait_stored_at_least(point);
        let status = r.kill();
        assert!(!status.success(), "the run ended before the kill: {status}");
        let now = committed_prefix(&db, &lines);
        assert!(now >= k + seen as usize, "progress showed {seen} stored");
        assert!(now < lines.len(), "the killed run stored the whole file");
        k = now;
    }
    let v = assert_all_stored(&run_json(&s, &db, &["--source", &source]));
    assert_eq!(
        u(&v, "stored"),
        (lines.len() - k) as u64,
        "only the rest: {v}"
    );
    assert_eq!(committed_prefix(&db, &lines), lines.len());
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

#[test]
fn a_partial_last_line_completed_by_a_later_run_replaces_its_row() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "partial");
    let s = Scratch::new("pg-partial");
    let file = s.path("app.log");
    std::fs::write(&file, "line1\nabc").unwrap();
    let source = format!("file:{}", file.display());
    let first = assert_all_stored(&run_json(&s, &db, &["--source", &source]));
    assert_eq!(u(&first, "stored"), 2);
    let again = assert_all_stored(&run_json(&s, &db, &["--source", &source]));
    assert_eq!(u(&again, "stored"), 0, "an unchanged file stores nothing");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(b"def\nline3\n").unwrap();
    let grown = assert_all_stored(&run_json(&s, &db, &["--source", &source]));
    assert_eq!(u(&grown, "stored"), 2, "the completed line and line3");
    assert_eq!(
        db.rows(),
        [
            (1, 0, "line1".to_string()),
            (1, 1, "abcdef".to_string()),
            (1, 2, "line3".to_string())
        ]
    );
    assert_eq!(
        db.inputs(),
        [(1, 19, 3)],
        "the position at the end of the file"
    );
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

#[test]
fn a_foreign_messages_table_is_refused_and_left_as_it_was() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "foreign");
    let s = Scratch::new("pg-foreign");
    db.client()
        .batch_execute(
            "CREATE TABLE messages (id SERIAL PRIMARY KEY, message TEXT NOT NULL, \
             created_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
             INSERT INTO messages (message) VALUES ('seed one'), ('seed two');",
        )
        .unwrap();
    let snapshot = |db: &Db| {
        db.client()
            .query(
                "SELECT id, message, created_at::text FROM messages ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, i32>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = snapshot(&db);
    let out = run(s.dir(), &["--sink", &db.url, "--messages", "10"]);
    assert_one_line_error(&out, 1, "not pc-host's");
    assert!(out.stderr.contains(&db.url), "{}", out.stderr);
    let out = run(s.dir(), &["verify", "--sink", &db.url]);
    assert_one_line_error(&out, 1, "not pc-host's");
    assert_eq!(db.tables(), ["messages"], "nothing created beside it");
    assert_eq!(snapshot(&db), before, "its rows are untouched");
}

#[test]
fn a_record_with_a_nul_byte_is_dead_lettered_and_the_rest_stored() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "nul");
    let s = Scratch::new("pg-nul");
    let mut lines = lines(2000);
    lines[700] = "before\0after".to_string();
    let file = s.path("input.log");
    write_lines(&file, &lines);
    let source = format!("file:{}", file.display());
    let dead = s.path("dead.jsonl");
    let dead_s = dead.display().to_string();
    let out = run_json(&s, &db, &["--source", &source, "--dead-letter", &dead_s]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(
        (u(&v, "stored"), u(&v, "dead_lettered"), u(&v, "not_stored")),
        (1999, 1, 0),
        "{v}"
    );
    let text = std::fs::read_to_string(&dead).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["record"], "before\0after");
    assert_eq!(
        entries[0]["source"]["line"], 701,
        "line numbers count from 1"
    );
    let why = entries[0]["error"].as_str().unwrap();
    assert!(why.contains("22021") && !why.contains('\n'), "{why}");
    let mut want = lines.clone();
    want.remove(700);
    let rows = db.rows();
    let got: Vec<&str> = rows.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(got, want, "every other line, in order");
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

/// A TCP port that answers like a web server, not like PostgreSQL.
fn not_postgres() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        }
    });
    port
}

/// A port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_connection_settings_fail_with_one_line_without_the_password() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let s = Scratch::new("pg-bad");
    let (scheme, _) = split_url(&admin);
    let hp = host_port(&admin);
    let pid = std::process::id();
    let cases = [
        (
            format!(
                "{scheme}://postgres:sekret@127.0.0.1:{}/test",
                closed_port()
            ),
            "cannot connect: connection refused",
        ),
        (
            format!("{scheme}://pc_no_such_user_{pid}:sekret@{hp}/test"),
            "cannot connect:",
        ),
        (
            format!(
                "{scheme}://{}:sekret@{hp}/pc_no_such_db_{pid}",
                user(&admin)
            ),
            "does not exist",
        ),
        (
            format!(
                "{scheme}://postgres:sekret@127.0.0.1:{}/test",
                not_postgres()
            ),
            "cannot connect:",
        ),
    ];
    for (url, needle) in &cases {
        for args in [
            vec!["--sink", url.as_str(), "--messages", "10"],
            vec!["verify", "--sink", url.as_str()],
        ] {
            let out = run(s.dir(), &args);
            assert_one_line_error(&out, 1, needle);
            assert!(
                !out.stderr.contains("sekret"),
                "password shown: {}",
                out.stderr
            );
            let shown = url.replace(":sekret@", ":***@");
            assert!(out.stderr.contains(&shown), "URL not named: {}", out.stderr);
        }
    }
}

#[test]
fn a_connection_killed_mid_run_is_retried_and_nothing_is_lost_or_doubled() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "killconn");
    let s = Scratch::new("pg-killconn");
    let args = [
        "--sink",
        &db.url,
        "--producers",
        "2",
        "--consumers",
        "2",
        "--rps",
        "4000",
        "--duration",
        "600",
        "--retry-for",
        "30",
        "--report-interval",
        "0.05",
        "--output",
        "json",
    ];
    let mut r = Running::start(&s, &args);
    for round in 1..=2 {
        let stored = r.err.wait_stored_at_least(1);
        assert!(db.kill_connections() >= 1, "no pc-host session to kill");
        r.err.wait("saying the commit is retried", |l| {
            l.contains("retrying for up to")
        });
        r.err.wait("saying the sink recovered", |l| {
            l.contains("the sink recovered")
        });
        r.err.wait_stored_at_least(stored + 100 * round);
    }
    let out = r.interrupt();
    let v = assert_all_stored(&out);
    assert!(u(&v, "retries") >= 2, "{v}");
    let id = run_id(&v);
    assert_eq!(db.pairs(id), db.expected_pairs(id), "every message once");
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

/// The command that restarts the server (`PC_TEST_POSTGRES_RESTART`, default: Debian's
/// `pg_ctlcluster 15 main restart`).
fn restart_command() -> Command {
    let line = std::env::var("PC_TEST_POSTGRES_RESTART")
        .unwrap_or_else(|_| "pg_ctlcluster 15 main restart".to_string());
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().expect("a restart command"));
    cmd.args(words);
    cmd
}

/// Waits (at most a minute) until the server takes connections again.
fn wait_for_server(admin: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if Client::connect(admin, NoTls).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Starts the server again if a test stopped it and did not bring it back.
struct LeaveRunning<'a>(&'a str);

impl Drop for LeaveRunning<'_> {
    fn drop(&mut self) {
        if Client::connect(self.0, NoTls).is_err() {
            let line = std::env::var("PC_TEST_POSTGRES_RESTART")
                .unwrap_or_else(|_| "pg_ctlcluster 15 main restart".to_string())
                .replace(" restart", " start");
            let mut words = line.split_whitespace();
            if let Some(program) = words.next() {
                let _ = Command::new(program).args(words).status();
            }
            wait_for_server(self.0);
        }
    }
}

#[test]
fn a_server_restart_mid_ingest_is_retried_and_every_line_is_stored_once() {
    let Some(admin) = server_url() else { return };
    let _alone = SERVER.write().unwrap_or_else(PoisonError::into_inner);
    let db = Db::new(&admin, "restart");
    let s = Scratch::new("pg-restart");
    let lines = lines(60_000);
    let file = s.path("input.log");
    write_lines(&file, &lines);
    let source = format!("file:{}", file.display());
    let args = [
        "--source",
        &source,
        "--sink",
        &db.url,
        "--rps",
        "10000",
        "--retry-for",
        "60",
        "--report-interval",
        "0.05",
        "--output",
        "json",
    ];
    let mut r = Running::start(&s, &args);
    r.err.wait_stored_at_least(1000);
    let _leave_running = LeaveRunning(&admin);
    let restarted = restart_command().output().expect("run the restart command");
    assert!(
        restarted.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    assert!(wait_for_server(&admin), "the server did not come back");
    r.err.wait("saying the commit is retried", |l| {
        l.contains("retrying for up to")
    });
    r.err.wait("saying the sink recovered", |l| {
        l.contains("the sink recovered")
    });
    let out = finish(r);
    let v = assert_all_stored(&out);
    assert_eq!(u(&v, "stored"), lines.len() as u64, "{v}");
    assert_eq!(committed_prefix(&db, &lines), lines.len());
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

// ---------------------------------------------------------------------------------------------
// The writer through the library

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn open_writer(db: &Db) -> (Writer, i64) {
    let url = ServerUrl {
        url: db.url.clone(),
        shown: db.url.clone(),
    };
    let start = RunStart {
        producers: 1,
        config_json: "{}",
        started_at: now_ns(),
        busy: Duration::from_secs(5),
        synchronous: Synchronous::Normal,
    };
    pg::open(&url, &start).expect("open the writer")
}

fn records(seqs: std::ops::Range<u64>) -> Vec<Record> {
    seqs.map(|seq| Record {
        intended_ns: 0,
        created_at: now_ns(),
        producer: 0,
        seq,
        end_offset: 0,
        tail: 0,
        replaces: false,
        text: format!("message {seq}"),
    })
    .collect()
}

#[test]
fn a_batch_whose_commit_reply_was_lost_is_not_stored_twice() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "unknown");
    let (mut w, _) = open_writer(&db);
    let first = records(0..100);
    let first: Vec<&Record> = first.iter().collect();
    w.write(&first).unwrap();
    // Written again as it is, the unique key refuses the batch: a fatal error.
    let e = w.write(&first).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.to_string().contains("23505"), "{e}");
    // Written again after a lost COMMIT reply, it is found stored and not stored again.
    w.forget_commit_outcome();
    w.write(&first).unwrap();
    assert_eq!(w.count_stored().unwrap(), 100);
    // A batch after a lost reply whose transaction did not commit is written.
    let next = records(100..150);
    let next: Vec<&Record> = next.iter().collect();
    w.forget_commit_outcome();
    w.write(&next).unwrap();
    assert_eq!(w.count_stored().unwrap(), 150);
    assert_eq!(db.rows().len(), 150);
}

#[test]
fn a_write_on_a_killed_connection_is_retryable_and_the_next_one_reconnects() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "reconnect");
    let (mut w, _) = open_writer(&db);
    let mut other = w.connect_another().unwrap();
    let batch = records(0..10);
    let batch: Vec<&Record> = batch.iter().collect();
    assert_eq!(db.kill_connections(), 2);
    let e = w.write(&batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    let line = e.to_string();
    assert!(
        line.starts_with("committing a batch of 10 messages failed: PostgreSQL ")
            && line.contains(&db.url)
            && !line.contains('\n'),
        "{line}"
    );
    w.write(&batch).unwrap();
    // The other connection was killed too; its bookkeeping reconnects by itself.
    assert_eq!(other.count_stored().unwrap(), 10);
    let nul = records(10..11).into_iter().map(|mut r| {
        r.text.push('\0');
        r
    });
    let nul: Vec<Record> = nul.collect();
    let e = other.write(&nul.iter().collect::<Vec<_>>()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Record, "{e}");
    assert_eq!(w.count_stored().unwrap(), 10);
}

fn open_writer_waiting(db: &Db, busy: Duration) -> Writer {
    let url = ServerUrl {
        url: db.url.clone(),
        shown: db.url.clone(),
    };
    let start = RunStart {
        producers: 0,
        config_json: "{}",
        started_at: now_ns(),
        busy,
        synchronous: Synchronous::Normal,
    };
    pg::open(&url, &start).expect("open the writer").0
}

/// Line `seq` of input `input`, ending at byte `end`.
fn line(input: u32, seq: u64, end: u64) -> Record {
    Record {
        intended_ns: 0,
        created_at: now_ns(),
        producer: input,
        seq,
        end_offset: end,
        tail: 0,
        replaces: false,
        text: format!("line {seq}"),
    }
}

#[test]
fn a_lock_past_the_busy_timeout_is_retryable_and_a_moved_input_is_fatal() {
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "locks");
    let mut w = open_writer_waiting(&db, Duration::from_millis(200));
    let key = FileKey {
        path: "/var/log/app.log".into(),
        dev: 1,
        ino: 2,
        born: None,
    };
    let input = w.register(Some(&key)).unwrap().input;
    let first = line(input, 0, 10);
    // Another client holds the input's row: the position cannot move within the busy time.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute("SELECT 1 FROM inputs FOR UPDATE", &[]).unwrap();
    let e = w.write(&[&first]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.to_string().contains("55P03"), "{e}");
    tx.rollback().unwrap();
    w.write(&[&first]).unwrap();
    assert_eq!(db.inputs(), [(input as i32, 10, 1)]);
    // Another process moves the input: this writer must not commit past it.
    db.client()
        .execute("UPDATE inputs SET \"offset\" = 99, line = 9", &[])
        .unwrap();
    let e = w.write(&[&line(input, 1, 20)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.to_string().contains("advanced by another process"), "{e}");
    assert_eq!(db.rows().len(), 1, "nothing of the refused write is stored");
}

// ---------------------------------------------------------------------------------------------
// Measurements (not run by default): pc-host's own binary COPY encoding against the
// `postgres` crate's BinaryCopyInWriter. Prints rows/s; asserts nothing about time.
// cargo test --release --test postgres -- --ignored --nocapture copy_encodings

#[test]
#[ignore = "a measurement: run by hand"]
fn copy_encodings_compared() {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let Some(admin) = server_url() else { return };
    let _shared = shared();
    let db = Db::new(&admin, "encodings");
    let mut c = db.client();
    c.batch_execute(
        "CREATE UNLOGGED TABLE m (message TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, \
         producer INT NOT NULL, seq BIGINT NOT NULL, run_id BIGINT NOT NULL)",
    )
    .unwrap();
    let rows = records(0..300_000);
    let refs: Vec<&Record> = rows.iter().collect();
    let copy = "COPY m (message, created_at, producer, seq, run_id) FROM STDIN (FORMAT binary)";
    let types = [
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::INT4,
        Type::INT8,
        Type::INT8,
    ];
    let mut buf = Vec::new();
    let (mut own, mut crate_writer) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        c.batch_execute("TRUNCATE m").unwrap();
        let t = Instant::now();
        for chunk in refs.chunks(10_000) {
            pg::encode::encode(&mut buf, chunk, 1).unwrap();
            let mut w = c.copy_in(copy).unwrap();
            w.write_all(&buf).unwrap();
            w.finish().unwrap();
        }
        own.push(refs.len() as f64 / t.elapsed().as_secs_f64());
        c.batch_execute("TRUNCATE m").unwrap();
        let t = Instant::now();
        for chunk in refs.chunks(10_000) {
            let mut w = BinaryCopyInWriter::new(c.copy_in(copy).unwrap(), &types);
            for r in chunk {
                let at = UNIX_EPOCH + Duration::from_nanos(r.created_at as u64);
                w.write(&[&r.text, &at, &(r.producer as i32), &(r.seq as i64), &1i64])
                    .unwrap();
            }
            w.finish().unwrap();
        }
        crate_writer.push(refs.len() as f64 / t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "COPY of {} rows in batches of 10000, median of 5: own encoding {:.0} rows/s, \
         BinaryCopyInWriter {:.0} rows/s",
        refs.len(),
        median(&mut own),
        median(&mut crate_writer)
    );
}
